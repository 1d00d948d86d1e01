//! Regular files of a layer written by a small pool of threads.
//!
//! Creating a file is mostly the kernel's work (on the machine this was measured on, ~1 ms
//! per `openat(O_CREAT)`), and the kernel does it in parallel for files in different
//! directories. The unpacker (one thread, in tar order) still decides everything: it checks
//! every path, makes every directory, symlink and link itself, and hands only the creation
//! of new regular files, with their content, to these workers.
//!
//! Files of one directory go to the same worker: creating entries in one directory takes
//! that directory's lock in the kernel, so spreading them would only make workers wait.
//!
//! Why that is safe: a job's parent directories were checked to be real directories when it
//! was queued, and the unpacker calls [`FileWriter::flush`] — wait for every queued file —
//! before it removes or replaces anything. So no directory a queued file goes into can
//! become a symlink while the file is pending, and the file itself is opened with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`.

use nix::sys::stat::futimens;
use nix::sys::time::TimeSpec;
use std::fs::{OpenOptions, Permissions};
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{fchown, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use nix::fcntl::OFlag;

/// Threads writing files: two per core is enough to keep the kernel busy on small machines.
const WORKERS: usize = 4;
/// Files waiting for each worker, at most (each at most [`MAX_QUEUED_FILE`] bytes).
const QUEUE: usize = 64;
/// Larger files are written by the unpacker itself: memory stays bounded.
pub const MAX_QUEUED_FILE: u64 = 1 << 20;

/// One file to create.
pub struct FileJob {
    /// The entry's name in the layer, for errors.
    pub name: String,
    /// Where to create it (the layer directory joined with a checked relative path).
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// A failed job: which entry, doing what, and why.
pub struct JobError {
    pub name: String,
    pub action: &'static str,
    pub error: io::Error,
}

/// Counts the jobs not finished yet, and keeps the first error.
#[derive(Default)]
struct Progress {
    pending: usize,
    error: Option<JobError>,
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

pub struct FileWriter {
    senders: Vec<SyncSender<FileJob>>,
    shared: Shared,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl FileWriter {
    pub fn new() -> Self {
        let shared: Shared = Arc::default();
        let mut senders = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let (sender, receiver) = sync_channel::<FileJob>(QUEUE);
            let shared = Arc::clone(&shared);
            senders.push(sender);
            workers.push(std::thread::spawn(move || work(&receiver, &shared)));
        }
        Self {
            senders,
            shared,
            workers,
        }
    }

    /// Queues a file; blocks while the queue is full.
    pub fn queue(&self, job: FileJob) -> Result<(), JobError> {
        let name = job.name.clone();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        job.path.parent().hash(&mut hasher);
        let worker = (hasher.finish() % self.senders.len() as u64) as usize;
        lock(&self.shared.0).pending += 1;
        let sent = self.senders.get(worker).map(|sender| sender.send(job));
        if !matches!(sent, Some(Ok(()))) {
            lock(&self.shared.0).pending -= 1;
            return Err(JobError {
                name,
                action: "handing the file to a writer",
                error: io::Error::other("the writer threads are gone"),
            });
        }
        Ok(())
    }

    /// Waits until every queued file is written; returns the first failure, if any.
    pub fn flush(&self) -> Result<(), JobError> {
        let (progress, done) = &*self.shared;
        let mut state = lock(progress);
        while state.pending > 0 {
            state = done.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.error.take().map_or(Ok(()), Err)
    }
}

impl Default for FileWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // Closing the queues ends the workers once they are empty.
        self.senders.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn lock(progress: &Mutex<Progress>) -> std::sync::MutexGuard<'_, Progress> {
    progress.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn work(receiver: &Receiver<FileJob>, shared: &Shared) {
    while let Ok(job) = receiver.recv() {
        let result = write(&job);
        let (progress, done) = &**shared;
        let mut state = lock(progress);
        if let Err((action, error)) = result {
            state.error.get_or_insert(JobError {
                name: job.name,
                action,
                error,
            });
        }
        state.pending -= 1;
        if state.pending == 0 {
            done.notify_all();
        }
    }
}

/// Creates the file (never through a symlink, never over something), writes it, then sets
/// owner, mode, xattrs and mtime in the order the kernel needs (chown clears setuid bits and
/// security.capability, so it comes first).
fn write(job: &FileJob) -> Result<(), (&'static str, io::Error)> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(&job.path)
        .map_err(|e| ("creating the file", e))?;
    file.write_all(&job.content).map_err(|e| ("writing the file", e))?;
    fchown(&file, Some(job.uid), Some(job.gid)).map_err(|e| ("setting the owner", e))?;
    file.set_permissions(Permissions::from_mode(job.mode))
        .map_err(|e| ("setting the mode", e))?;
    for (key, value) in &job.xattrs {
        match xattr::FileExt::set_xattr(&file, key, value) {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => {}
            other => other.map_err(|e| ("setting an extended attribute", e))?,
        }
    }
    let time = TimeSpec::new(job.mtime, 0);
    futimens(file.as_fd(), &time, &time).map_err(|e| ("setting the mtime", e.into()))
}
