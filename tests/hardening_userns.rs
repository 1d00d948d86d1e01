//! User namespaces: root inside a rootless container is not root outside. Started by a user
//! without privileges, steps 01–03, 05 and `run IMAGE` put the container in a user namespace
//! where that user's one id is mapped to 0: root to the programs inside, the user to the
//! kernel for everything outside. Each check shows the attack (writing a host file that
//! only root may write) failing rootless and working when the same command runs as root.

use keel_tests::{binary, needs_root, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// An unprivileged user: any id without a passwd entry does.
const USER: u32 = 1000;

struct Rootless {
    dir: tempfile::TempDir,
}

impl Rootless {
    /// A home of the user's own, and a host file only root may write.
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-userns-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("home");
        nix::unistd::chown(&home, Some(USER.into()), Some(USER.into())).expect("chown home");
        std::fs::write(dir.path().join("host-file"), "host\n").expect("host file");
        Self { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn host_file(&self) -> PathBuf {
        self.dir.path().join("host-file")
    }

    /// A step binary run as the user (`rootless`) or as root, with the user's HOME.
    fn step(&self, rootless: bool, name: &str, args: &[&str]) -> Output {
        let mut command = if rootless {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args([
                    "--reuid",
                    &USER.to_string(),
                    "--regid",
                    &USER.to_string(),
                    "--clear-groups",
                ])
                .arg(binary(name));
            setpriv
        } else {
            Command::new(binary(name))
        };
        command.args(args).env("HOME", self.home()).env_remove("XDG_DATA_HOME");
        command.current_dir(self.dir.path()).output().expect("run")
    }

    /// The busybox rootfs, built by the user.
    fn rootfs(&self) -> PathBuf {
        let rootfs = self.home().join("rootfs");
        let built = self.step(true, "step03-mount-ns", &["rootfs", rootfs.to_str().expect("utf-8")]);
        assert!(built.status.success(), "{built:?}");
        rootfs
    }
}

impl Drop for Rootless {
    fn drop(&mut self) {
        // overlayfs leaves mode-000 work dirs: root removes them regardless.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

const ATTACK: &str = "id -u; echo owned >> /host-file && echo wrote";

fn volume(host_file: &Path) -> String {
    format!("{}:/host-file", host_file.display())
}

#[test]
fn root_in_a_rootless_container_cannot_write_what_only_root_may() {
    if !needs_root() {
        return;
    }
    let env = Rootless::new();
    let rootfs = env.rootfs();
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["run".into(), "--rootfs".into(), rootfs.display().to_string()];
        args.extend(["-v".into(), volume(&env.host_file())]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(["--".into(), "sh".into(), "-c".into(), ATTACK.into()]);
        args
    };
    let args = args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rootless = env.step(true, "step03-mount-ns", &args);
    assert_eq!(stdout(&rootless), "0\n", "root inside: {rootless:?}");
    assert!(stderr(&rootless).contains("Permission denied"), "{rootless:?}");
    assert_eq!(std::fs::read_to_string(env.host_file()).expect("read"), "host\n");
    // The measure off: the same container started by root is root on the host file.
    let rooted = env.step(false, "step03-mount-ns", &args);
    assert_eq!(stdout(&rooted), "0\nwrote\n", "{rooted:?}");
    assert_eq!(std::fs::read_to_string(env.host_file()).expect("read"), "host\nowned\n");
}

#[test]
fn the_map_gives_the_users_one_id_in_steps_01_and_02() {
    if !needs_root() {
        return;
    }
    let env = Rootless::new();
    for step in ["step01-unshare", "step02-pid-ns"] {
        let output = env.step(true, step, &["run", "--", "cat", "/proc/self/uid_map"]);
        let map: Vec<String> = stdout(&output).split_whitespace().map(str::to_owned).collect();
        assert_eq!(map, ["0", &USER.to_string(), "1"], "{step}: {output:?}");
    }
}

#[test]
fn rootless_overlay_and_run_image_keep_their_data_in_the_users_home_and_leave_none() {
    if !needs_root() {
        return;
    }
    let env = Rootless::new();
    let rootfs = env.rootfs();
    let store = env.home().join(".local/share/keel");
    let layer = format!("{}", rootfs.display());
    let overlay = env.step(
        true,
        "step05-overlay",
        &[
            "run",
            "--layer",
            &layer,
            "-v",
            &volume(&env.host_file()),
            "--",
            "sh",
            "-c",
            ATTACK,
        ],
    );
    assert_eq!(stdout(&overlay), "0\n", "{overlay:?}");
    assert!(stderr(&overlay).contains("Permission denied"), "{overlay:?}");
    let imported = env.step(true, "step06-images", &["busybox"]);
    assert!(imported.status.success(), "{imported:?}");
    let image = env.step(
        true,
        "step06-images",
        &["run", "busybox", "--", "sh", "-c", "id -u > /f && cat /f"],
    );
    assert_eq!(stdout(&image), "0\n", "{image:?}");
    let snapshots: Vec<_> = std::fs::read_dir(store.join("snapshots")).expect("snapshots").collect();
    assert!(snapshots.is_empty(), "snapshots left behind: {snapshots:?}");
    // Limits need a cgroup, which a user cannot make here: refused, not ignored.
    let limited = env.step(
        true,
        "step06-images",
        &["run", "--memory", "16m", "busybox", "--", "true"],
    );
    assert!(!limited.status.success(), "{limited:?}");
    assert!(stderr(&limited).contains("cgroup limits"), "{limited:?}");
}
