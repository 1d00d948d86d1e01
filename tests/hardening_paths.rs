//! Masked and read-only paths: /proc and /sys show the host's kernel, and some of their files
//! say too much (`/proc/keys`: the host's keyrings; `/proc/timer_list`: its timers and the
//! tasks behind them) or let root change the host (`/proc/sys`, `/proc/sysrq-trigger`). Step 03
//! binds /dev/null over the first kind and remounts the second read-only. The check reads and
//! writes them by default and with the measure off (`--privileged` or
//! `--security-opt systempaths=unconfined`, as docker's).

use keel_tests::{needs_root, sh_in_rootfs, stdout, TestRootfs};

const ATTACK: &str = "wc -c < /proc/keys; wc -c < /proc/timer_list; \
     grep -q ' /proc/sys ro,' /proc/self/mountinfo && echo sys-read-only || echo sys-writable";

#[test]
fn the_hosts_keys_and_timers_are_hidden_and_proc_sys_is_read_only() {
    if !needs_root() {
        return;
    }
    let rootfs = TestRootfs::new();
    let masked = sh_in_rootfs(&rootfs, &[], ATTACK);
    assert_eq!(stdout(&masked), "0\n0\nsys-read-only\n", "{masked:?}");
    for off in [&["--privileged"][..], &["--security-opt", "systempaths=unconfined"]] {
        let open = sh_in_rootfs(&rootfs, off, ATTACK);
        let report: Vec<String> = stdout(&open).lines().map(str::to_owned).collect();
        assert_eq!(report.len(), 3, "{off:?}: {open:?}");
        let timers: u64 = report[1].trim().parse().expect("a byte count");
        assert!(
            timers > 0,
            "{off:?}: /proc/timer_list should show the host's timers: {open:?}"
        );
        assert_eq!(report[2], "sys-writable", "{off:?}: {open:?}");
    }
}
