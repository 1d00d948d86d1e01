fn main() {
    step03_mount_ns::step02_pid_ns::step01_unshare::cli::main::<step03_mount_ns::Step03>()
}
