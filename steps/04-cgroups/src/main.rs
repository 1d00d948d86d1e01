fn main() {
    use step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
    step01_unshare::cli::main::<step04_cgroups::Step04>()
}
