fn main() {
    use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
    // The same binary is the workshop's tool and a runc-compatible runtime: which one is
    // decided by the arguments (see `runtime::invoked_as_runtime`).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if step04_cgroups::runtime::invoked_as_runtime(&args) {
        step04_cgroups::runtime::main(args)
    }
    step01_unshare::cli::main::<step04_cgroups::Step04>()
}
