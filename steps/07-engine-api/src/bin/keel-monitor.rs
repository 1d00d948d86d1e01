//! The monitor: one per container, started by the engine, outliving it. See `monitor`.
fn main() {
    std::process::exit(step07_engine_api::monitor::main())
}
