fn main() {
    step01_unshare::cli::main::<step01_unshare::Step01>()
}
