//! CVE-2019-5736: the runtime runs from an unwritable view of itself, never from its file.
//!
//! A runtime that enters a container is, until it execs the container's command, a process of
//! the container whose `/proc/PID/exe` is the runtime's binary on the host. Worse, a container
//! whose command is `/proc/self/exe` (or a script starting `#!/proc/self/exe`) makes the
//! kernel execute *that* link as the runtime's exec resolves it: the runtime binary itself
//! then runs inside the container, as the container's process. Another process of the
//! container opens `/proc/PID/exe` while it runs, and once it has exited reopens that
//! descriptor for writing (`/proc/self/fd/N`): the host's runtime is overwritten, and the
//! next `docker exec` runs the attacker's program as root on the host.
//!
//! The fix, runc's: before `create`, `run` or `exec` do anything, the binary re-executes
//! itself from a file nobody can write, so `/proc/PID/exe` never names the host's binary.
//! Two ways, the cheap one first:
//!
//! - **A read-only overlay of its own directory** (root): `fsopen("overlay")` with the
//!   binary's directory as the top lower layer and an empty directory below it, no upper
//!   layer, mounted read-only and never attached anywhere (`fsmount` returns a descriptor).
//!   A file of an overlay without an upper layer cannot be written whatever is done to the
//!   mount: there is nowhere to copy it up to. Nothing is copied; the pages are the binary's.
//! - **A sealed memfd copy** (everyone else, or a kernel without the new mount API): the
//!   binary copied into an anonymous memory file, sealed against every change. It costs a
//!   copy of the binary per command, a few milliseconds.

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::statfs::{fstatfs, OVERLAYFS_SUPER_MAGIC};
use nix::sys::statvfs::{fstatvfs, FsFlags};
use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// **For tests only**: set, the runtime runs from its file as it did before this measure, so
/// a test can show the attack succeeding without it. Never set it otherwise.
pub const TEST_ONLY_SWITCH: &str = "KEEL_TEST_ONLY_UNSEALED_EXE";

/// **For tests only**: set, the overlay is not tried, so that the memfd copy (what a user
/// without root gets) is tested as root too.
pub const TEST_ONLY_MEMFD: &str = "KEEL_TEST_ONLY_SEALED_EXE_MEMFD";

/// Set in the environment of the re-executed runtime: if it finds itself still running from
/// its file, something is wrong, and it says so instead of re-executing forever.
const REEXECUTED: &str = "_KEEL_SEALED_EXE";

/// The empty directory under the runtime's state root that is the overlay's bottom layer
/// (an overlay without an upper layer needs two lower ones), one per process, removed as
/// soon as the overlay exists: the kernel resolved it then, and nothing is left behind.
fn empty_layer(state_root: &Path) -> std::path::PathBuf {
    state_root.join(format!(".sealed-exe-{}", std::process::id()))
}

#[derive(Debug, thiserror::Error)]
pub enum SealedExeError {
    #[error("protecting the runtime binary (CVE-2019-5736): {action}: {error}")]
    Io {
        action: &'static str,
        error: std::io::Error,
    },
    #[error("protecting the runtime binary (CVE-2019-5736): {action}: {}", .errno.desc())]
    Sys { action: &'static str, errno: Errno },
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> SealedExeError {
    move |error| SealedExeError::Io { action, error }
}

fn sys(action: &'static str) -> impl FnOnce(Errno) -> SealedExeError {
    move |errno| SealedExeError::Sys { action, errno }
}

/// The seals that make the copy unchangeable: no write, no resize, no removing a seal.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Whether this process already runs from an unwritable view (after the re-exec below): a
/// sealed memfd, or a file of a read-only overlay.
fn running_sealed(exe: &File) -> bool {
    if let Ok(bits) = fcntl(exe.as_fd(), FcntlArg::F_GET_SEALS) {
        return SealFlag::from_bits_truncate(bits).contains(seals());
    }
    let on_overlay = fstatfs(exe.as_fd()).is_ok_and(|fs| fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC);
    on_overlay && fstatvfs(exe.as_fd()).is_ok_and(|vfs| vfs.flags().contains(FsFlags::ST_RDONLY))
}

// ANCHOR: overlay
/// The binary seen through a new read-only overlay of its own directory, as a descriptor to
/// execute. Needs CAP_SYS_ADMIN and Linux 5.2's `fsopen`; any failure leaves the caller to
/// the memfd copy.
fn overlay_view(state_root: &Path) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    use rustix::mount::{fsconfig_create, fsconfig_set_string, fsmount, fsopen};
    use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};

    let binary = std::fs::read_link("/proc/self/exe").map_err(|_| rustix::io::Errno::NOENT)?;
    let (Some(dir), Some(name)) = (binary.parent(), binary.file_name()) else {
        return Err(rustix::io::Errno::INVAL);
    };
    let empty = empty_layer(state_root);
    std::fs::create_dir_all(&empty).map_err(|_| rustix::io::Errno::ACCESS)?;
    // Layers are separated by ':', which a path may contain: escape it (and the escape).
    let escape = |path: &Path| path.to_string_lossy().replace('\\', "\\\\").replace(':', "\\:");
    let created = (|| {
        let context = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
        // The binary's directory on top, so that nothing in the empty layer can hide it.
        fsconfig_set_string(&context, "lowerdir", format!("{}:{}", escape(dir), escape(&empty)))?;
        // Inode numbers of two file systems would be remapped, with a line in the kernel
        // log each time: nothing here needs them.
        let _ = fsconfig_set_string(&context, "xino", "off");
        fsconfig_create(&context)?;
        Ok(context)
    })();
    let _ = std::fs::remove_dir(&empty);
    let context = created?;
    let attributes =
        MountAttrFlags::MOUNT_ATTR_RDONLY | MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOSUID;
    let mount = fsmount(&context, FsMountFlags::FSMOUNT_CLOEXEC, attributes)?;
    rustix::fs::openat(
        &mount,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}
// ANCHOR_END: overlay

fn memfd() -> Result<OwnedFd, SealedExeError> {
    use rustix::fs::{memfd_create, MemfdFlags};
    let name = c"keel-runtime";
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3): memfds may be refused execution otherwise (`vm.memfd_noexec`).
    let created = match memfd_create(name, flags | MemfdFlags::EXEC) {
        // A kernel before 6.3 does not know MFD_EXEC (its memfds are executable anyway).
        Err(rustix::io::Errno::INVAL) => memfd_create(name, flags),
        other => other,
    };
    created.map_err(|errno| sys("memfd_create")(Errno::from_raw(errno.raw_os_error())))
}

/// A sealed memfd copy of the binary.
fn memfd_copy(mut exe: File) -> Result<OwnedFd, SealedExeError> {
    let mut copy = File::from(memfd()?);
    std::io::copy(&mut exe, &mut copy).map_err(io("copying the binary into a memfd"))?;
    fcntl(copy.as_fd(), FcntlArg::F_ADD_SEALS(seals())).map_err(sys("sealing the copy: fcntl(F_ADD_SEALS)"))?;
    Ok(copy.into())
}

// ANCHOR: ensure
/// Makes sure this process runs from an unwritable view of its binary: returns at once when
/// it already does (or when the test-only switch is set); otherwise re-executes itself with
/// the same arguments and environment, and returns only on failure. `state_root` (the
/// runtime's `--root`) holds the overlay's empty layer.
pub fn ensure(args: &[OsString], state_root: &Path) -> Result<(), SealedExeError> {
    if std::env::var_os(TEST_ONLY_SWITCH).is_some() {
        return Ok(());
    }
    let exe = File::open("/proc/self/exe").map_err(io("opening /proc/self/exe"))?;
    if running_sealed(&exe) {
        return Ok(());
    }
    if std::env::var_os(REEXECUTED).is_some() {
        return Err(sys("re-executed, yet still running from the binary's file")(
            Errno::ELOOP,
        ));
    }
    let view = match std::env::var_os(TEST_ONLY_MEMFD) {
        None => overlay_view(state_root).ok(),
        Some(_) => None,
    };
    let target = match view {
        Some(view) => view,
        None => memfd_copy(exe)?,
    };
    let cstrings = |items: Vec<&[u8]>| -> Result<Vec<CString>, SealedExeError> {
        items
            .into_iter()
            .map(|bytes| CString::new(bytes).map_err(|_| sys("re-executing from an unwritable view")(Errno::EINVAL)))
            .collect()
    };
    let argv = cstrings(args.iter().map(|a| a.as_bytes()).collect())?;
    let env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(key, value)| [key.as_bytes(), b"=", value.as_bytes()].concat())
        .chain([format!("{REEXECUTED}=1").into_bytes()])
        .collect();
    let envp = cstrings(env.iter().map(Vec::as_slice).collect())?;
    let Err(errno) = nix::unistd::fexecve(target.as_fd(), &argv, &envp);
    Err(sys("re-executing from an unwritable view: fexecve")(errno))
}
// ANCHOR_END: ensure
