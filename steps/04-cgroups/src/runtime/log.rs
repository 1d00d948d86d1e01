//! `--log FILE --log-format json`: containerd's shim reads the runtime's failure from this
//! file, taking the last line whose `level` is exactly `"error"` and showing its `msg` to the
//! user ("OCI runtime create failed: …"). Anything else there is ignored.

use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

use super::state::now_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the runtime's own messages go besides stderr.
pub struct Log {
    pub file: Option<PathBuf>,
    pub format: LogFormat,
}

#[derive(Serialize)]
struct Line<'a> {
    level: &'a str,
    msg: &'a str,
    time: String,
}

impl Log {
    /// Records an error: one line in the log file (if any), and on stderr.
    pub fn error(&self, message: &str) {
        eprintln!("{message}");
        let Some(path) = &self.file else { return };
        let line = match self.format {
            LogFormat::Json => serde_json::to_string(&Line {
                level: "error",
                msg: message,
                time: now_rfc3339(),
            })
            .unwrap_or_default(),
            LogFormat::Text => format!("time=\"{}\" level=error msg={message:?}", now_rfc3339()),
        };
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{line}");
        }
    }
}
