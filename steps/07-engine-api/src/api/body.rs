//! A request body as a blocking `std::io::Read`, for the uploads parsed on a blocking
//! thread (`docker load`, `docker import`, `docker cp` into a container).

use axum::body::Body;
use bytes::Bytes;
use futures_util::StreamExt;
use std::io::{self, Read};
use tokio::sync::mpsc;

/// The request body as a blocking reader: chunks come through a small channel, so an
/// upload is never held in memory whole. A body that breaks off is an error, not an end.
pub(super) struct BodyReader {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

pub(super) fn body_reader(body: Body) -> BodyReader {
    let (sender, chunks) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut wanted = true;
        while let Some(chunk) = stream.next().await {
            // Once the reader has stopped (done, or given up on a bad tar), the rest is read
            // and dropped, so that the client finishes sending and reads the answer.
            if !wanted {
                continue;
            }
            let broken = chunk.is_err();
            let chunk = chunk.map_err(|e| io::Error::other(format!("reading the request body: {e}")));
            if sender.send(chunk).await.is_err() {
                wanted = false;
            }
            if broken {
                break;
            }
        }
    });
    BodyReader {
        chunks,
        current: Bytes::new(),
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(error)) => return Err(error),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
