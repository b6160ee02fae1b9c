//! Restarts: opening the files at start where the checkpoint left them,
//! and writing the checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::checkpoint::{Checkpoint, Entry};
use super::file::{OpenFile, find_in_dir, identity_at};
use super::{FollowError, Follower};
use crate::observe::Stage;

impl Follower {
    /// Opens every path the patterns name at start: at the offset the
    /// checkpoint records, or else at the end (or the start, when asked).
    pub(super) fn start(&mut self) -> Result<(), FollowError> {
        let restored = match &self.config.checkpoint {
            Some(path) => {
                Checkpoint::load(path).map_err(FollowError::Checkpoint)?
            }
            None => None,
        };
        self.watch_and_list();
        let read_new_from_start = self.config.from_start || restored.is_some();
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
        let position = match recorded {
            Some(entry) => Some(entry.offset),
            None if from_start => Some(0),
            None => None,
        };
        self.open_into(path, position, None);
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
        match OpenFile::open(&rotated, Some(entry.offset)) {
            Ok(mut file) => {
                tracing::info!(
                    path = %path.display(),
                    rotated = %rotated.display(),
                    offset = file.position,
                    "resuming a file rotated while stopped"
                );
                file.path = path.to_owned();
                let stream = self.streams.get_mut(path).expect("listed");
                stream.push(file);
            }
            Err(error) => self.open_failed(&rotated, &error),
        }
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
                tracing::warn!(%error, "writing the checkpoint failed, retrying");
                Ok(())
            }
            Err(error) => {
                self.metrics.error(Stage::Checkpoint);
                Err(FollowError::Checkpoint(error))
            }
        }
    }
}
