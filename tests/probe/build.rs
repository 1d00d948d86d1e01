//! Builds the probe: a tiny program of ours, linked statically so that it runs in any rootfs
//! (the busybox one has no libc), that prints what a process sees from inside a container.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "tests/probe/probe.rs";
    println!("cargo:rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let probe = out.join("keel-probe");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "target-feature=+crt-static",
            "-C",
            "strip=symbols",
            "-o",
        ])
        .arg(&probe)
        .arg(source)
        .status()
        .expect("running rustc for the probe");
    assert!(status.success(), "building the probe failed");
    println!("cargo:rustc-env=KEEL_PROBE={}", probe.display());
}
