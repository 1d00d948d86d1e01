//! Every step binary's command line, as a participant meets it: `--help` works for the tool
//! and for `run` (which also runs clap's consistency checks in debug builds), and a bad flag
//! is refused with docker's exit status 125, before anything happens.

use keel_tests::{stderr, stdout, step, STEP_BINARIES};

#[test]
fn every_step_explains_itself_and_refuses_bad_flags() {
    for (n, name) in STEP_BINARIES.iter().enumerate() {
        let help = step(name).arg("--help").output().expect("--help");
        assert!(help.status.success(), "{name} --help: {help:?}");
        assert!(
            stdout(&help).contains(&format!("Step {:02}", n + 1)),
            "{name}: {}",
            stdout(&help)
        );
        assert!(stdout(&help).contains("Examples:"), "{name} has no examples");
        let run_help = step(name).args(["run", "--help"]).output().expect("run --help");
        assert!(
            run_help.status.success() && stdout(&run_help).contains("--hostname"),
            "{name} run --help"
        );
        let bad = step(name)
            .args(["run", "--no-such-flag", "--", "true"])
            .output()
            .expect("bad flag");
        assert_eq!(bad.status.code(), Some(125), "{name}: {bad:?}");
        assert!(stderr(&bad).contains("--no-such-flag"), "{name}: {}", stderr(&bad));
    }
}

#[test]
fn each_step_keeps_the_flags_of_the_steps_before_it() {
    let flags = ["--hostname", "--init", "--rootfs", "--memory", "--layer"];
    for (n, name) in STEP_BINARIES.iter().enumerate() {
        let help = stdout(&step(name).args(["run", "--help"]).output().expect("run --help"));
        for (introduced, flag) in flags.iter().enumerate() {
            // --hostname comes with step 01, --init with 02, --rootfs 03, --memory 04, --layer 05.
            assert_eq!(help.contains(flag), n >= introduced, "{name} and {flag}");
        }
    }
}
