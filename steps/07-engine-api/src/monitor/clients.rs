//! `monitor.sock`: how the engine reaches a container's monitor. A client sends one line:
//!
//! - `attach STDIN STDOUT STDERR` (each 0 or 1): the monitor answers `ok`, then sends the
//!   output as stdcopy frames; what the client writes goes to the container's stdin, and its
//!   EOF closes that stdin when the container was started with `StdinOnce`.
//! - `wait`: one line of JSON ([`ExitInfo`]) once the container has ended.
//! - `resize ROWS COLS`: the pty's size; answers `ok`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use super::{io, MonitorError};
use crate::record::ExitInfo;
use crate::stdcopy;

struct Client {
    stream: UnixStream,
    stdout: bool,
    stderr: bool,
}

pub struct Shared {
    log: Mutex<File>,
    clients: Mutex<Vec<Client>>,
    stdin: Mutex<Option<File>>,
    master: Option<Arc<File>>,
    stdin_once: bool,
    exit: Mutex<Option<ExitInfo>>,
    ended: Condvar,
}

impl Shared {
    pub fn new(log: File, stdin: Option<File>, master: Option<Arc<File>>, stdin_once: bool) -> Self {
        Self {
            log: Mutex::new(log),
            clients: Mutex::new(Vec::new()),
            stdin: Mutex::new(stdin),
            master,
            stdin_once,
            exit: Mutex::new(None),
            ended: Condvar::new(),
        }
    }

    // ANCHOR: output
    /// A chunk the container wrote: logged first (logs are complete even with no client),
    /// then sent to every attached client that wants the stream; a client that cannot take
    /// it is dropped.
    pub fn output(&self, stream: &str, number: u8, bytes: &[u8]) {
        if let Ok(mut log) = self.log.lock() {
            if let Err(error) = crate::logs::append(&mut *log, stream, bytes) {
                eprintln!("keel-monitor: writing the log: {error}");
            }
        }
        let frame = stdcopy::frame(number, bytes);
        if let Ok(mut clients) = self.clients.lock() {
            clients.retain_mut(|client| {
                let wanted = if number == stdcopy::STDERR {
                    client.stderr
                } else {
                    client.stdout
                };
                !wanted || client.stream.write_all(&frame).is_ok()
            });
        }
    }
    // ANCHOR_END: output

    /// The container ended: waiters get their answer, attached clients their EOF.
    pub fn exited(&self, exit: ExitInfo) {
        if let Ok(mut slot) = self.exit.lock() {
            *slot = Some(exit);
        }
        self.ended.notify_all();
        if let Ok(mut clients) = self.clients.lock() {
            for client in clients.drain(..) {
                let _ = client.stream.shutdown(std::net::Shutdown::Both);
            }
        }
        // Give waiters a moment to write their line before the process exits.
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    fn wait(&self) -> Option<ExitInfo> {
        let mut slot = self.exit.lock().ok()?;
        while slot.is_none() {
            slot = self.ended.wait(slot).ok()?;
        }
        slot.clone()
    }
}

/// Listens on `path` and answers each client on its own thread.
pub fn serve(shared: &Arc<Shared>, path: &Path) -> Result<(), MonitorError> {
    let _ = std::fs::remove_file(path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let listener = UnixListener::bind(path).map_err(io(format!("listening on {}", path.display())))?;
    let shared = Arc::clone(shared);
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                if let Err(error) = answer(&shared, connection) {
                    eprintln!("keel-monitor: a client: {error}");
                }
            });
        }
    });
    Ok(())
}

fn answer(shared: &Shared, connection: UnixStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(connection.try_clone()?);
    let mut line = String::new();
    // Read byte by byte up to the newline: what follows is the client's stdin, not ours to
    // buffer.
    let mut byte = [0u8; 1];
    while reader.get_mut().read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    // ANCHOR: requests
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["attach", stdin, stdout, stderr] => attach(shared, connection, *stdin == "1", *stdout == "1", *stderr == "1"),
        ["wait"] => {
            let mut connection = connection;
            if let Some(exit) = shared.wait() {
                let json = serde_json::to_string(&exit).map_err(std::io::Error::other)?;
                writeln!(connection, "{json}")?;
            }
            Ok(())
        }
        ["resize", rows, cols] => {
            let mut connection = connection;
            let (Ok(rows), Ok(cols)) = (rows.parse::<u16>(), cols.parse::<u16>()) else {
                return writeln!(connection, "error bad size");
            };
            if let Some(master) = &shared.master {
                let size = rustix::termios::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                rustix::termios::tcsetwinsize(&**master, size)?;
            }
            writeln!(connection, "ok")
        }
        _ => {
            let mut connection = connection;
            let _ = reader.fill_buf();
            writeln!(connection, "error unknown request {line:?}")
        }
    }
    // ANCHOR_END: requests
}

fn attach(shared: &Shared, connection: UnixStream, stdin: bool, stdout: bool, stderr: bool) -> std::io::Result<()> {
    let mut writer = connection.try_clone()?;
    {
        // "ok" goes out before any frame: the client registers under the same lock the
        // outputs take.
        let mut clients = shared
            .clients
            .lock()
            .map_err(|_| std::io::Error::other("lock poisoned"))?;
        writer.write_all(b"ok\n")?;
        if stdout || stderr {
            clients.push(Client {
                stream: writer,
                stdout,
                stderr,
            });
        }
    }
    if shared.exit.lock().map(|e| e.is_some()).unwrap_or(true) {
        let _ = connection.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    // The client's bytes are the container's stdin; its EOF is "stdin closed", not "gone".
    let mut connection = connection;
    let mut buffer = [0u8; 8192];
    loop {
        let read = connection.read(&mut buffer).unwrap_or(0);
        if read == 0 {
            break;
        }
        if !stdin {
            continue;
        }
        if let Ok(mut slot) = shared.stdin.lock() {
            if let Some(file) = slot.as_mut() {
                if file.write_all(&buffer[..read]).is_err() {
                    *slot = None;
                }
            }
        }
    }
    if stdin && shared.stdin_once {
        if let Ok(mut slot) = shared.stdin.lock() {
            *slot = None;
        }
    }
    Ok(())
}
