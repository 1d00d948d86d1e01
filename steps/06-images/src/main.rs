fn main() {
    use step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
    step01_unshare::cli::main::<step06_images::Step06>()
}
