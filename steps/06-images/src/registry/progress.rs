//! Docker's download display: one line per layer,
//! `<short digest>: Downloading [=====>      ] 1.2MB/3.4MB`, then `<short digest>: Pull complete`.
//!
//! The bars draw on stderr only when it is a terminal: indicatif hides a draw target that is
//! not one, so a pull piped into a file or run by a test prints none of this.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::digest::Digest;

const DOWNLOADING: &str = "{prefix}: {msg:<11} [{bar:50}] {decimal_bytes}/{decimal_total_bytes}";
const FINISHED: &str = "{prefix}: {msg}";

fn style(template: &str) -> ProgressStyle {
    // The templates are constants checked by a test; the fallback only keeps this total.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The bars of one pull.
pub struct PullProgress {
    multi: MultiProgress,
}

impl Default for PullProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl PullProgress {
    /// Bars on stderr (hidden when stderr is not a terminal).
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }

    /// Bars that never draw (for a quiet pull, or a blob nobody needs to watch).
    pub fn hidden() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    /// A new line for the blob `digest` of `size` bytes; the client moves it along.
    pub fn layer(&self, digest: &Digest, size: u64) -> ProgressBar {
        // Made complete while hidden, so the first line drawn is already the right one.
        let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden())
            .with_style(style(DOWNLOADING))
            .with_prefix(digest.short().to_owned())
            .with_message("Waiting");
        self.multi.add(bar)
    }

    /// Ends a line with `message` in place of the bar ("Pull complete").
    pub fn done(&self, bar: &ProgressBar, message: &str) {
        bar.set_style(style(FINISHED));
        bar.finish_with_message(message.to_owned());
    }
}

/// Runs `work` (which moves `bar` along) while a watcher thread calls `report` with the
/// bar's position every `every`, when it has moved and is not at the end yet (the caller
/// reports the end itself, once the work has succeeded).
pub fn watching<T>(bar: &ProgressBar, every: Duration, report: impl Fn(u64) + Sync, work: impl FnOnce() -> T) -> T {
    std::thread::scope(|scope| {
        let (stop, stopped) = mpsc::channel::<()>();
        let report = &report;
        scope.spawn(move || {
            let mut reported = 0;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let current = bar.position();
                if current != reported && Some(current) < bar.length() {
                    reported = current;
                    report(current);
                }
            }
        });
        let result = work();
        drop(stop);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_templates_are_valid() {
        for template in [DOWNLOADING, FINISHED] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn hidden_bars_count_without_drawing() {
        let progress = PullProgress::hidden();
        let digest = Digest::of(b"layer");
        let bar = progress.layer(&digest, 10);
        assert!(bar.is_hidden());
        assert_eq!(bar.prefix(), digest.short());
        bar.inc(4);
        assert_eq!((bar.position(), bar.length()), (4, Some(10)));
        progress.done(&bar, "Pull complete");
        assert!(bar.is_finished());
        assert_eq!(bar.message(), "Pull complete");
    }
}
