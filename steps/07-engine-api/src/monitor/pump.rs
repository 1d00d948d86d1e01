//! One thread per container output: every chunk goes to the log, then to attached clients.

use std::fs::File;
use std::io::Read;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clients::Shared;

pub struct Pumps {
    done: mpsc::Receiver<()>,
    count: usize,
}

pub fn start(shared: &Arc<Shared>, outputs: Vec<(File, &'static str, u8)>) -> Pumps {
    let (sender, done) = mpsc::channel();
    let count = outputs.len();
    for (mut file, stream, number) in outputs {
        let shared = Arc::clone(shared);
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 32 * 1024];
            loop {
                match file.read(&mut buffer) {
                    // A pty reads EIO once its other side is closed: that is its EOF.
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared.output(stream, number, &buffer[..n]),
                }
            }
            let _ = sender.send(());
        });
    }
    Pumps { done, count }
}

/// Waits until every output reached its end (the container and everything that shared its
/// stdio is gone), at most `limit`: a process that escaped the cgroup must not hold us.
pub fn finish(pumps: Pumps, limit: Duration) {
    let deadline = Instant::now() + limit;
    for _ in 0..pumps.count {
        let left = deadline.saturating_duration_since(Instant::now());
        if pumps.done.recv_timeout(left).is_err() {
            break;
        }
    }
}
