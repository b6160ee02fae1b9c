//! Metrics written to a file in the Prometheus text format, for
//! node_exporter's textfile collector when cfscrub runs from cron or a
//! batch job and exits before any scrape.
//!
//! Each write goes to a temporary file in the same directory, which is
//! then renamed over the target, so a reader always sees a whole file. The
//! temporary name starts with a dot and ends in `.tmp`, so the collector,
//! which reads only `*.prom` files, never reads it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Metrics, Stage};

/// Interval between rewrites when the caller has no preference.
pub const DEFAULT_TEXTFILE_INTERVAL: Duration = Duration::from_secs(5);

/// Rewrites a metrics text file every interval from a background thread,
/// and once more when finished.
pub struct TextfileWriter {
    target: Target,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TextfileWriter {
    /// Writes `metrics` to `path` once, then every `interval` from a
    /// background thread.
    ///
    /// # Errors
    ///
    /// Fails, naming the path, when the first write fails, so that a path
    /// in a missing or read-only directory is reported at start-up. Later
    /// failures are logged when they start and when they stop, and each
    /// is counted in `cfscrub_errors_total{stage="textfile"}`.
    pub fn start(
        path: PathBuf,
        metrics: Metrics,
        interval: Duration,
    ) -> anyhow::Result<TextfileWriter> {
        let target = Target::new(path, metrics);
        target.write().map_err(|error| target.error(&error))?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread_target = target.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-textfile".to_owned())
            .spawn(move || {
                rewrite_until_stopped(&thread_target, &stopped, interval)
            })
            .map_err(|error| {
                anyhow::anyhow!(
                    "cannot start the metrics text file thread: {error}"
                )
            })?;
        Ok(TextfileWriter { target, stop: Some(stop), thread: Some(thread) })
    }

    /// Returns the path of the text file.
    pub fn path(&self) -> &Path {
        &self.target.path
    }

    /// Stops the rewrites and writes the file a last time, with every
    /// metric published before this call.
    ///
    /// # Errors
    ///
    /// Fails, naming the path, when the last write fails.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.stop_thread();
        let target = &self.target;
        target.write().map_err(|error| {
            target.metrics.error(Stage::Textfile);
            target.error(&error)
        })
    }

    fn stop_thread(&mut self) {
        // Dropping the sender wakes the thread from its wait.
        drop(self.stop.take());
        let Some(thread) = self.thread.take() else {
            return;
        };
        if thread.join().is_err() {
            tracing::error!(
                path = %self.target.path.display(),
                "metrics text file thread panicked"
            );
        }
    }
}

impl Drop for TextfileWriter {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The file and the metrics written to it.
#[derive(Clone)]
struct Target {
    path: PathBuf,
    temporary: PathBuf,
    metrics: Metrics,
}

impl Target {
    fn new(path: PathBuf, metrics: Metrics) -> Target {
        let name = path.file_name().map_or_else(
            || "metrics".into(),
            |name| name.to_string_lossy().into_owned(),
        );
        let temporary =
            path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        Target { path, temporary, metrics }
    }

    /// Writes the metrics to the temporary file, then renames it over the
    /// target. The temporary file is removed when a step fails.
    fn write(&self) -> io::Result<()> {
        let text = self.metrics.encode();
        let result = File::create(&self.temporary)
            .and_then(|mut file| file.write_all(&text))
            .and_then(|()| fs::rename(&self.temporary, &self.path));
        if result.is_err() {
            let _ = fs::remove_file(&self.temporary);
        }
        result
    }

    fn error(&self, error: &io::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "cannot write metrics to {}: {}",
            self.path.display(),
            super::os_message(error)
        )
    }
}

fn rewrite_until_stopped(
    target: &Target,
    stopped: &mpsc::Receiver<()>,
    interval: Duration,
) {
    let mut failing = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(interval)
    {
        match target.write() {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(
                    path = %target.path.display(),
                    "writing the metrics text file works again"
                );
            }
            Ok(()) => {}
            Err(error) => {
                target.metrics.error(Stage::Textfile);
                // Logged once per run of failures, not once per interval.
                if !failing {
                    failing = true;
                    tracing::warn!(
                        path = %target.path.display(),
                        %error,
                        "writing the metrics text file failed, retrying"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_file_is_hidden_sibling() {
        let target = Target::new(
            PathBuf::from("/var/lib/node_exporter/cfscrub.prom"),
            Metrics::new().unwrap(),
        );
        let name = target.temporary.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            target.temporary.parent(),
            Some(Path::new("/var/lib/node_exporter"))
        );
        assert!(name.starts_with(".cfscrub.prom."), "name: {name}");
        assert!(name.ends_with(".tmp"), "name: {name}");
    }

    #[test]
    fn missing_directory_fails_start() {
        let path = std::env::temp_dir()
            .join(format!("cfscrub-missing-{}", std::process::id()))
            .join("metrics.prom");
        let error = TextfileWriter::start(
            path.clone(),
            Metrics::new().unwrap(),
            DEFAULT_TEXTFILE_INTERVAL,
        )
        .err()
        .expect("a missing directory must fail");
        assert_eq!(
            error.to_string(),
            format!(
                "cannot write metrics to {}: no such file or directory",
                path.display()
            )
        );
    }
}
