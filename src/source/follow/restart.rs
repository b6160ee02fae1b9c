//! Restarts: opening the files at start where the checkpoint left them,
//! writing the checkpoint, and reopening the output when asked.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::checkpoint::{Checkpoint, Entry};
use super::file::{OpenFile, Resumed, Rotation, find_in_dir, identity_at};
use super::{FollowError, Follower, count_rotation};
use crate::observe::Stage;

impl Follower {
    /// Opens every path the patterns name at start: at the offset the
    /// checkpoint records, or else at the end (or the start, when asked).
    pub(super) fn start(&mut self) -> Result<(), FollowError> {
        let restored = match &self.config.checkpoint {
            Some(path) => {
                let restored =
                    Checkpoint::load(path).map_err(FollowError::Checkpoint)?;
                // Failing now, before anything is read, beats retrying
                // and losing the position at exit.
                Checkpoint::check_writable(path)
                    .map_err(FollowError::Checkpoint)?;
                restored
            }
            None => None,
        };
        self.watch_and_list();
        self.warn_missing_paths();
        let read_new_from_start = self.config.from_start;
        let paths: Vec<PathBuf> = self.streams.keys().cloned().collect();
        for path in paths {
            let entries: Vec<&Entry> = restored
                .iter()
                .flat_map(|c| &c.files)
                .filter(|entry| entry.path == path)
                .collect();
            self.restore(&path, &entries, read_new_from_start);
        }
        self.saved = restored;
        self.update_file_gauge();
        Ok(())
    }

    /// Opens the files of `path` at start.
    fn restore(&mut self, path: &Path, entries: &[&Entry], from_start: bool) {
        let current = match identity_at(path) {
            Ok(id) => id,
            Err(error) => {
                self.open_failed(path, &error);
                None
            }
        };
        for entry in entries {
            let id = entry.id();
            if current.is_some_and(|current| current.same_file(&id)) {
                continue;
            }
            self.resume_rotated(path, entry);
        }
        if current.is_none() {
            return;
        }
        let recorded = entries
            .iter()
            .find(|entry| current.is_some_and(|c| c.same_file(&entry.id())));
        match recorded {
            Some(entry) => self.resume(path, path, entry),
            None => self.open_into(path, from_start.then_some(0), None),
        }
    }

    /// Warns about each plain path that names no file and each glob that
    /// matches none, which are followed once a file appears there but are
    /// most often a typing error.
    fn warn_missing_paths(&self) {
        for pattern in &self.config.patterns {
            if pattern.is_glob() {
                if pattern.expand().is_empty() {
                    tracing::warn!(
                        pattern = %pattern.text(),
                        "no file matches a followed glob yet, waiting for one"
                    );
                }
            } else if !Path::new(pattern.text()).exists() {
                tracing::warn!(
                    path = %pattern.text(),
                    "a followed file does not exist yet, waiting for it"
                );
            }
        }
    }

    /// Opens `file`, which a checkpoint entry of `path` names, at the
    /// entry's offset, or at its start when the file was rewritten since
    /// the checkpoint, as a copytruncate rotation does, or when the offset
    /// is inside a line.
    fn resume(&mut self, path: &Path, file: &Path, entry: &Entry) {
        let opened =
            OpenFile::resume(file, entry.offset, entry.fingerprint.as_ref());
        let (mut open, resumed) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                self.open_failed(file, &error);
                return;
            }
        };
        if self.output_id.is_some_and(|output| output.same_file(&open.id)) {
            return;
        }
        if resumed == Resumed::Rewritten {
            tracing::info!(
                path = %file.display(),
                offset = entry.offset,
                "file truncated while stopped, reading from its start"
            );
            count_rotation(&self.metrics, Rotation::Truncate);
        } else if resumed == Resumed::InsideLine {
            tracing::warn!(
                path = %file.display(),
                offset = entry.offset,
                "checkpoint offset is inside a long line, reading the file \
                 again from its start"
            );
        } else if file == path {
            tracing::info!(
                path = %path.display(),
                offset = open.position,
                "following file"
            );
        } else {
            tracing::info!(
                path = %path.display(),
                rotated = %file.display(),
                offset = open.position,
                "resuming a file rotated while stopped"
            );
        }
        open.path = path.to_owned();
        let stream = self.streams.get_mut(path).expect("listed");
        stream.open_failed = false;
        stream.push(open);
    }

    /// Reopens a file that was rotated away from `path` while cfscrub was
    /// stopped, found by its identity in the same directory.
    fn resume_rotated(&mut self, path: &Path, entry: &Entry) {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let found = find_in_dir(dir, &entry.id()).ok().flatten();
        let Some(rotated) = found else {
            tracing::warn!(
                path = %path.display(),
                offset = entry.offset,
                "file rotated while stopped not found, its lines after \
                 the checkpoint are lost"
            );
            return;
        };
        self.resume(path, &rotated, entry);
    }

    /// Reopens the output file when SIGHUP asked for it, so that a file
    /// that logrotate moved away is replaced by a new one at its path.
    pub(super) fn reopen_output_if_requested(
        &mut self,
    ) -> Result<(), FollowError> {
        if !self.config.reopen_output.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let reopened = self.output.reopen().map_err(|source| {
            self.metrics.error(Stage::Write);
            FollowError::Output { name: self.output.name.clone(), source }
        })?;
        if reopened {
            self.output_id = self.output.file_id();
            tracing::info!(output = %self.output.name, "reopened the output");
        } else {
            tracing::info!(
                output = %self.output.name,
                "SIGHUP ignored, the output is not a file"
            );
        }
        Ok(())
    }

    /// Writes the checkpoint when one is configured and the interval has
    /// passed, or at once when `now` is set.
    pub(super) fn save_checkpoint(
        &mut self,
        now: bool,
    ) -> Result<(), FollowError> {
        let Some(path) = &self.config.checkpoint else {
            return Ok(());
        };
        if !now
            && self.last_checkpoint.elapsed() < self.config.checkpoint_interval
        {
            return Ok(());
        }
        self.last_checkpoint = Instant::now();
        let mut entries = Vec::new();
        for stream in self.streams.values() {
            stream.checkpoint(&mut entries);
        }
        let checkpoint = Checkpoint::new(entries);
        if self.saved.as_ref() == Some(&checkpoint) {
            return Ok(());
        }
        // The output first: a checkpoint ahead of it would lose lines.
        self.output.sync().map_err(|source| {
            self.metrics.error(Stage::Write);
            FollowError::Output { name: self.output.name.clone(), source }
        })?;
        match checkpoint.save(path) {
            Ok(()) => {
                self.saved = Some(checkpoint);
                Ok(())
            }
            Err(error) if !now => {
                self.metrics.error(Stage::Checkpoint);
                // Retried every --checkpoint-interval, so a full disk would
                // log a line a second. The metric counts every failure.
                if self.checkpoint_errors.allow() {
                    tracing::warn!(
                        %error,
                        "writing the checkpoint failed, retrying; further \
                         failures are logged at most every 10 s"
                    );
                }
                Ok(())
            }
            Err(error) => {
                self.metrics.error(Stage::Checkpoint);
                Err(FollowError::Checkpoint(error))
            }
        }
    }
}
