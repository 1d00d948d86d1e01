fn main() {
    step02_pid_ns::step01_unshare::cli::main::<step02_pid_ns::Step02>()
}
