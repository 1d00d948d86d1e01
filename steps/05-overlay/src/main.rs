fn main() {
    use step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
    step01_unshare::cli::main::<step05_overlay::Step05>()
}
