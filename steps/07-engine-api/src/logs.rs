//! The container log in Docker's json-file format, one JSON object per line:
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-23T10:00:00.123456789Z"}`. The monitor
//! appends to it; the engine reads it for `docker logs`, long after the container ended.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Seek, Write};
use std::path::Path;
use std::time::SystemTime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

// ANCHOR: append
/// Appends `bytes` written by the container on `stream` as one entry per line (a final
/// partial line is an entry too: the container may never finish it).
pub fn append(file: &mut impl Write, stream: &str, bytes: &[u8]) -> std::io::Result<()> {
    let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let mut out = Vec::new();
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.to_owned(),
            time: time.clone(),
        };
        serde_json::to_writer(&mut out, &entry).map_err(std::io::Error::other)?;
        out.push(b'\n');
    }
    // One write per chunk: a reader never sees half an entry unless the disk fills.
    file.write_all(&out)
}
// ANCHOR_END: append

/// What `docker logs` asked for.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub stdout: bool,
    pub stderr: bool,
    /// Only entries at or after / before these instants.
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Only the last N entries (across both streams).
    pub tail: Option<usize>,
}

impl Selection {
    pub fn wants(&self, entry: &Entry) -> bool {
        let stream_ok = match entry.stream.as_str() {
            "stderr" => self.stderr,
            _ => self.stdout,
        };
        if !stream_ok {
            return false;
        }
        let Ok(time) = humantime::parse_rfc3339(&entry.time) else {
            return true;
        };
        self.since.is_none_or(|since| time >= since) && self.until.is_none_or(|until| time <= until)
    }
}

/// The entries from byte `offset` on, and the offset after the last whole line read.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<Entry>, u64)> {
    match std::fs::File::open(path) {
        Ok(file) => read_entries(&file, offset),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), offset)),
        Err(e) => Err(e),
    }
}

/// The same from a log file already open: a follower keeps reading it after the container
/// is removed (and its file unlinked) before the client has read everything.
pub fn read_entries(mut file: &std::fs::File, offset: u64) -> std::io::Result<(Vec<Entry>, u64)> {
    file.seek(std::io::SeekFrom::Start(offset))?;
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut position = offset;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a line the monitor is still writing
        }
        position += read as u64;
        if let Ok(entry) = serde_json::from_slice::<Entry>(&line) {
            entries.push(entry);
        }
    }
    Ok((entries, position))
}

/// The payload `docker logs` shows for an entry: with `-t`, the time and a space first.
pub fn payload(entry: &Entry, timestamps: bool) -> Vec<u8> {
    if timestamps {
        format!("{} {}", entry.time, entry.log).into_bytes()
    } else {
        entry.log.clone().into_bytes()
    }
}

/// `since`/`until` as the CLI sends them: unix seconds, maybe with a fraction.
pub fn parse_unix_time(text: &str) -> Option<SystemTime> {
    if text.is_empty() || text == "0" {
        return None;
    }
    let seconds: f64 = text.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(seconds.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_lines_and_a_partial_line_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut file = std::fs::File::create(&path).expect("create");
        append(&mut file, "stdout", b"one\ntwo\nthr").expect("append");
        append(&mut file, "stderr", b"err\n").expect("append");
        file.write_all(b"{\"log\":\"half").expect("write");
        let (entries, offset) = read_from(&path, 0).expect("read");
        let logs: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["one\n", "two\n", "thr", "err\n"]);
        assert_eq!(entries[3].stream, "stderr");
        let (more, again) = read_from(&path, offset).expect("read again");
        assert!(more.is_empty());
        assert_eq!(again, offset);
    }

    #[test]
    fn selection_filters_streams_and_time() {
        let entry = Entry {
            log: "x\n".into(),
            stream: "stderr".into(),
            time: "2026-01-01T00:00:10Z".into(),
        };
        let mut selection = Selection {
            stdout: true,
            stderr: true,
            ..Selection::default()
        };
        assert!(selection.wants(&entry));
        selection.since = parse_unix_time("1767225611");
        assert!(!selection.wants(&entry));
        selection.since = None;
        selection.stderr = false;
        assert!(!selection.wants(&entry));
        assert_eq!(payload(&entry, true), b"2026-01-01T00:00:10Z x\n");
    }
}
