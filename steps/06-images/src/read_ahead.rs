//! Decompressing and hashing a layer on one core while another writes its files.
//!
//! Unpacking a layer is three kinds of work: gunzip, sha256 of the uncompressed stream (the
//! diff id), and creating files, which is mostly the kernel's time. Done in turn on one
//! thread, each waits for the others. Here a worker thread reads the stream (decompressing
//! it as it goes), hashes it and hands it over in chunks through a bounded channel, so the
//! file-writing thread never waits for gzip, and memory stays bounded.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::digest::{Digest, Hashing};

/// How much the worker reads at a time, and how many chunks may wait: at most 2 MiB ahead.
const CHUNK: usize = 256 * 1024;
const CHUNKS_AHEAD: usize = 8;

/// Runs `consume` on the bytes of `source`, read, decompressed and hashed by a worker
/// thread. Returns what `consume` returned and the digest and size of everything the worker
/// read: the whole stream when `consume` read it to its end.
pub fn read_ahead<R: Read + Send, T>(
    source: R,
    consume: impl FnOnce(&mut ChannelReader) -> T,
) -> (T, io::Result<(Digest, u64)>) {
    std::thread::scope(|scope| {
        let (sender, receiver) = sync_channel(CHUNKS_AHEAD);
        let worker = scope.spawn(move || feed(source, sender));
        let mut reader = ChannelReader {
            receiver,
            chunk: Vec::new(),
            position: 0,
        };
        let consumed = consume(&mut reader);
        // A consumer that stopped early drops the receiver: the worker's next send fails
        // and it ends instead of blocking.
        drop(reader);
        let hashed = worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the decompression thread panicked")));
        (consumed, hashed)
    })
}

/// The worker: reads `source` to its end, hashing it, and sends it on in chunks.
fn feed(source: impl Read, sender: SyncSender<io::Result<Vec<u8>>>) -> io::Result<(Digest, u64)> {
    let mut hashing = Hashing::new(source);
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let n = match hashing.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let kind = e.kind();
                let message = e.to_string();
                let _ = sender.send(Err(e));
                return Err(io::Error::new(kind, message));
            }
        };
        if n == 0 {
            let (digest, size, _) = hashing.finish();
            return Ok((digest, size));
        }
        chunk.truncate(n);
        if sender.send(Ok(chunk)).is_err() {
            return Err(io::Error::other("the reader stopped before the end of the stream"));
        }
    }
}

/// The consumer's side: a `Read` over the chunks the worker sends.
pub struct ChannelReader {
    receiver: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    position: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.position == self.chunk.len() {
            match self.receiver.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The worker is done: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.position);
        buf[..n].copy_from_slice(&self.chunk[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_consumer_sees_every_byte_and_the_digest_covers_them() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (copy, hashed) = read_ahead(&data[..], |reader| {
            let mut copy = Vec::new();
            reader.read_to_end(&mut copy).map(|_| copy)
        });
        assert_eq!(copy.expect("read"), data);
        let (digest, size) = hashed.expect("hashed");
        assert_eq!(size, data.len() as u64);
        assert_eq!(digest, Digest::of(&data));
    }

    #[test]
    fn a_consumer_that_stops_early_does_not_block_the_worker() {
        let data = vec![7u8; 40 * CHUNK];
        let (first, hashed) = read_ahead(&data[..], |reader| {
            let mut byte = [0u8; 1];
            reader.read(&mut byte).map(|_| byte[0])
        });
        assert_eq!(first.expect("read"), 7);
        assert!(hashed.is_err(), "an unfinished stream has no digest");
    }

    #[test]
    fn a_read_error_reaches_the_consumer() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let (result, hashed) = read_ahead(Failing, |reader| reader.read_to_end(&mut Vec::new()));
        assert!(result.expect_err("error").to_string().contains("disk on fire"));
        assert!(hashed.is_err());
    }
}
