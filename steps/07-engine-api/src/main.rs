fn main() {
    use step07_engine_api::step06_images::step05_overlay::step04_cgroups::step03_mount_ns::step02_pid_ns::step01_unshare;
    step01_unshare::cli::main::<step07_engine_api::Step07>()
}
