//! Mount destinations resolved inside the root filesystem (CVE-2021-30465 and its elders).
//!
//! The mounts are made before `pivot_root`, by paths like `/var/lib/keel/rootfs/data`. The
//! rootfs is the image's, and an image may hold symlinks: with `data -> /etc` (or `..` enough
//! times), following the path as the host sees it creates mount points, empty files and the
//! mount itself on the *host*. runc was bitten several times (CVE-2021-30465 swapped a
//! directory for such a symlink during its setup). So each destination is resolved with
//! `openat2(RESOLVE_IN_ROOT)` from a descriptor of the root: a symlink is followed as the
//! container will see it, `..` stops at the root, and missing directories are created with
//! `mkdirat` in the directory that resolution found. The mount is then made on the
//! descriptor itself (`/proc/self/fd/N`), so nothing can swap the path in between.
//!
//! All of it runs in the child: no allocation, the paths are prepared in the parent.

use nix::errno::Errno;
use nix::fcntl::{open, openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::ffi::{CStr, CString, NulError};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// **For tests only**: set, destinations are resolved as the host sees them (symlinks of the
/// image followed out of it), so a test can show the attack succeeding. Never set it otherwise.
pub const TEST_ONLY_SWITCH: &str = "KEEL_TEST_ONLY_MOUNT_THROUGH_SYMLINKS";

/// A destination under a root, ready for the child.
pub struct InRoot {
    root: CString,
    /// `a`, `a/b`, `a/b/c` for `/a/b/c`: what to resolve from the root, component by component.
    prefixes: Vec<CString>,
    /// `a`, `b`, `c`: what to create in the directory resolved before it.
    names: Vec<CString>,
    resolve: ResolveFlag,
}

/// What the destination must be when it has to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    File,
}

/// A failure in the child: the errno and the call that failed.
pub type Failure = (Errno, &'static [u8]);

impl InRoot {
    /// `destination` (absolute, without `..`: checked by the caller) under `root`.
    pub fn new(root: &Path, destination: &Path) -> Result<Self, NulError> {
        let names: Vec<&[u8]> = destination
            .as_os_str()
            .as_bytes()
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let prefixes = (1..=names.len())
            .map(|n| CString::new(names[..n].join(&b'/')))
            .collect::<Result<_, _>>()?;
        let resolve = if std::env::var_os(TEST_ONLY_SWITCH).is_some() {
            ResolveFlag::empty()
        } else {
            ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
        };
        Ok(Self {
            root: CString::new(root.as_os_str().as_bytes())?,
            prefixes,
            names: names.into_iter().map(CString::new).collect::<Result<_, _>>()?,
            resolve,
        })
    }

    /// In the child: an `O_PATH` descriptor of the destination, resolved inside the root,
    /// creating what is missing (directories, and the last component as `kind`).
    pub fn open(&self, kind: Kind) -> Result<OwnedFd, Failure> {
        // Opened now, not in the parent: the root may have just been bind-mounted on itself,
        // and lookups must start on that mount.
        let root = open(
            self.root.as_c_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| (errno, &b": opening the root: open"[..]))?;
        let last = self.prefixes.len().saturating_sub(1);
        let mut resolved = None::<OwnedFd>;
        for (i, (prefix, name)) in self.prefixes.iter().zip(&self.names).enumerate() {
            let kind = if i == last { kind } else { Kind::Directory };
            let dir = resolved.as_ref().map_or(root.as_fd(), |p| p.as_fd());
            let fd = match self.resolve(&root, prefix, kind) {
                Err(Errno::ENOENT) => {
                    create(dir, name, kind)?;
                    // Still missing: `name` exists, a symlink to a path the root lacks.
                    self.resolve(&root, prefix, kind).map_err(|errno| match errno {
                        Errno::ENOENT => (errno, &b": a symlink to a path missing in the root: openat2"[..]),
                        _ => (errno, &b": resolving it inside the root: openat2"[..]),
                    })
                }
                other => other.map_err(|errno| (errno, &b": resolving it inside the root: openat2"[..])),
            };
            resolved = Some(fd?);
        }
        // The destination `/` is the root itself.
        Ok(resolved.unwrap_or(root))
    }

    /// Reopens the destination, as it is now: after a mount on it, this is the mount's root.
    pub fn reopen(&self) -> Result<OwnedFd, Failure> {
        let root = open(
            self.root.as_c_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| (errno, &b": opening the root: open"[..]))?;
        match self.prefixes.last() {
            None => Ok(root),
            Some(path) => openat2(&root, path.as_c_str(), self.how(OFlag::empty()))
                .map_err(|errno| (errno, &b": resolving it inside the root: openat2"[..])),
        }
    }

    fn how(&self, extra: OFlag) -> OpenHow {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra)
            .resolve(self.resolve)
    }

    fn resolve(&self, root: &OwnedFd, path: &CStr, kind: Kind) -> Result<OwnedFd, Errno> {
        let extra = match kind {
            Kind::Directory => OFlag::O_DIRECTORY,
            Kind::File => OFlag::empty(),
        };
        openat2(root, path, self.how(extra))
    }
}

/// Creates `name` in `dir` (a directory resolution found): never through a symlink, as
/// `mkdirat` and `O_CREAT|O_EXCL` do not follow one in the last component.
fn create(dir: BorrowedFd, name: &CStr, kind: Kind) -> Result<(), Failure> {
    let made = match kind {
        Kind::Directory => nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)),
        Kind::File => openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
    };
    match made {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err((errno, b": creating the mount point")),
    }
}

/// `/proc/self/fd/N` for a descriptor, on the stack: what `mount(2)` is given as the target,
/// so the mount lands on what the descriptor resolved, whatever the path says by then.
pub struct FdPath {
    bytes: [u8; 32],
}

impl FdPath {
    pub fn new(fd: &OwnedFd) -> Self {
        const PREFIX: &[u8] = b"/proc/self/fd/";
        let mut bytes = [0u8; 32];
        bytes[..PREFIX.len()].copy_from_slice(PREFIX);
        let mut digits = [0u8; 10];
        let mut n = fd.as_raw_fd().unsigned_abs();
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for (i, digit) in digits[..count].iter().rev().enumerate() {
            bytes[PREFIX.len() + i] = *digit;
        }
        Self { bytes }
    }

    pub fn as_c_str(&self) -> &CStr {
        // The buffer always holds the prefix, at most 10 digits and a NUL after them.
        CStr::from_bytes_until_nul(&self.bytes).unwrap_or(c"/proc/self/fd")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_becomes_its_proc_path() {
        let fd = open(c"/", OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).expect("open /");
        let expected = format!("/proc/self/fd/{}", fd.as_raw_fd());
        assert_eq!(FdPath::new(&fd).as_c_str().to_str(), Ok(expected.as_str()));
    }

    #[test]
    fn a_destination_is_split_into_what_to_resolve_and_what_to_create() {
        let in_root = InRoot::new(Path::new("/r"), Path::new("/a/./b//c")).expect("no NUL");
        let texts = |v: &[CString]| {
            v.iter()
                .map(|c| c.to_str().expect("utf-8").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&in_root.prefixes), ["a", "a/b", "a/b/c"]);
        assert_eq!(texts(&in_root.names), ["a", "b", "c"]);
    }

    #[test]
    fn a_symlink_in_the_root_is_followed_inside_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).expect("root");
        std::fs::create_dir_all(&outside).expect("outside");
        std::os::unix::fs::symlink(&outside, root.join("evil")).expect("symlink");
        // The same path inside the root does not exist yet: refused, nothing made outside.
        let in_root = InRoot::new(&root, Path::new("/evil/sub")).expect("no NUL");
        let (errno, _) = in_root
            .open(Kind::Directory)
            .expect_err("a dangling symlink in the root");
        assert_eq!(errno, Errno::ENOENT);
        assert!(!outside.join("sub").exists(), "created outside the root");
        // Once it exists inside the root, that is where the mount point goes.
        let inside = root.join(outside.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(&inside).expect("inside");
        in_root.open(Kind::Directory).expect("open");
        assert!(!outside.join("sub").exists(), "created outside the root");
        assert!(inside.join("sub").is_dir(), "{} missing", inside.display());
        // `..` stops at the root, as it does for `/..`.
        std::os::unix::fs::symlink("../../../..", root.join("up")).expect("symlink");
        let file = InRoot::new(&root, Path::new("/up/keel-file")).expect("no NUL");
        file.open(Kind::File).expect("open");
        assert!(root.join("keel-file").is_file());
    }
}
