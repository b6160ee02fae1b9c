//! Follow mode: files followed across rotation, as `tail -F` does, and
//! redacted into one output.
//!
//! Each followed path is a [`stream`] with its own redactor, which
//! releases only whole lines, so the lines of several files never mix.
//! Every round looks at the paths again ([`watch`]), notices rotations
//! ([`file`]), reads what is new, and writes the released lines in one
//! write. A [`checkpoint`] records, by device and inode, the offset after
//! the last line written, so a restart neither loses nor repeats a line.
//!
//! Files that exist at start are read from their end unless asked
//! otherwise. Files that appear later, and files not in an existing
//! checkpoint, are read from their start, because everything in them was
//! written after cfscrub last looked.

pub mod checkpoint;
pub mod file;
pub mod output;
mod stream;
pub mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use checkpoint::{Checkpoint, CheckpointError, Entry};
use file::{FileId, OpenFile, Rotation, find_in_dir, identity_at};
use output::Output;
use stream::Stream;
use watch::{DirWatcher, Pattern, Wake};

use crate::engine::Scanner;
use crate::observe::{Metrics, Stage};

/// Bytes asked for by each read.
const READ_SIZE: usize = 256 * 1024;

/// How to follow, from the command line.
#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// Files and globs to follow.
    pub patterns: Vec<Pattern>,
    /// Read the files that exist at start from their beginning.
    pub from_start: bool,
    /// Path of the checkpoint file, if any.
    pub checkpoint: Option<PathBuf>,
    /// Time between checkpoint writes.
    pub checkpoint_interval: Duration,
    /// Time between looks at every path when no event comes.
    pub poll_interval: Duration,
    /// Use no file system events, only polling.
    pub poll_only: bool,
}

/// The failure that stopped following.
#[derive(Debug)]
pub enum FollowError {
    /// Writing the output failed.
    Output { name: String, source: io::Error },
    /// Reading or writing the checkpoint failed.
    Checkpoint(CheckpointError),
}

impl fmt::Display for FollowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowError::Output { name, source } => {
                write!(f, "write to {name} failed: {source}")
            }
            FollowError::Checkpoint(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for FollowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FollowError::Output { source, .. } => Some(source),
            FollowError::Checkpoint(error) => Some(error),
        }
    }
}

impl FollowError {
    /// Returns whether the output was a pipe whose reader went away.
    pub fn is_closed_pipe(&self) -> bool {
        matches!(
            self,
            FollowError::Output { source, .. }
                if source.kind() == io::ErrorKind::BrokenPipe
        )
    }
}

/// The follow loop and everything it holds.
pub struct Follower {
    config: FollowConfig,
    scanner: Arc<Scanner>,
    metrics: Metrics,
    output: Output,
    /// Identity of the output when it is a file, so a glob that matches
    /// it does not follow cfscrub's own output.
    output_id: Option<FileId>,
    streams: BTreeMap<PathBuf, Stream>,
    watcher: DirWatcher,
    wake: Receiver<Wake>,
    /// Files read to their end and closed, by device and inode, with the
    /// offset reached: a glob that later matches one under a new name
    /// goes on from there instead of reading it again.
    closed: HashMap<(u64, u64), (FileId, u64)>,
    buf: Vec<u8>,
    last_checkpoint: Instant,
    saved: Option<Checkpoint>,
}

impl Follower {
    /// Prepares to follow. `wake_sender` is the sender of `wake`: the
    /// watcher sends on it, and so should whatever handles signals.
    pub fn new(
        config: FollowConfig,
        scanner: Arc<Scanner>,
        metrics: Metrics,
        output: Output,
        wake_sender: Sender<Wake>,
        wake: Receiver<Wake>,
    ) -> Follower {
        let watcher = DirWatcher::new(wake_sender, config.poll_only);
        let output_id = output.file_id();
        Follower {
            config,
            scanner,
            metrics,
            output,
            output_id,
            streams: BTreeMap::new(),
            watcher,
            wake,
            closed: HashMap::new(),
            buf: vec![0; READ_SIZE],
            last_checkpoint: Instant::now(),
            saved: None,
        }
    }

    /// Follows until [`Wake::Stop`] arrives, then writes the checkpoint,
    /// or without one the unfinished last lines, and returns.
    pub fn run(mut self) -> Result<(), FollowError> {
        self.start()?;
        self.metrics.ready.set(1);
        tracing::info!(
            paths = self.streams.len(),
            polling = self.watcher.is_polling(),
            "following files"
        );
        let result = self.follow();
        self.metrics.ready.set(0);
        result?;
        self.stop()
    }

    fn follow(&mut self) -> Result<(), FollowError> {
        loop {
            let more = self.round()?;
            self.save_checkpoint(false)?;
            if self.wait(more) == Wake::Stop {
                tracing::info!("stop requested");
                return Ok(());
            }
        }
    }

    /// Waits for a change, or for the poll interval, and returns why it
    /// woke. With `more` to read it only collects what has arrived.
    fn wait(&mut self, more: bool) -> Wake {
        let mut woke = Wake::Changed;
        if !more {
            match self.wake.recv_timeout(self.config.poll_interval) {
                Ok(wake) => woke = wake,
                Err(RecvTimeoutError::Timeout) => {}
                // Only the watcher and the signal handler send; without
                // both, polling goes on until the process is killed.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(self.config.poll_interval);
                }
            }
        }
        // Many events mean one more round.
        while let Ok(wake) = self.wake.try_recv() {
            if wake == Wake::Stop {
                woke = Wake::Stop;
            }
        }
        woke
    }

    /// Opens every path the patterns name at start: at the offset the
    /// checkpoint records, or else at the end (or the start, when asked).
    fn start(&mut self) -> Result<(), FollowError> {
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

    /// Watches the directories of the patterns and adds a stream for each
    /// path they name that has none yet.
    fn watch_and_list(&mut self) {
        self.watcher.forget_missing();
        for pattern in &self.config.patterns {
            self.watcher.watch(pattern.watch_dir());
            for path in pattern.expand() {
                if self.streams.contains_key(&path) {
                    continue;
                }
                let literal = !pattern.is_glob();
                let stream = Stream::new(path.clone(), literal, &self.scanner);
                self.streams.insert(path, stream);
            }
        }
    }

    /// Looks at every path, reads what is new and writes it out. Returns
    /// whether some file has more to read right away.
    fn round(&mut self) -> Result<bool, FollowError> {
        self.watch_and_list();
        let paths: Vec<PathBuf> = self.streams.keys().cloned().collect();
        for path in &paths {
            self.check_path(path);
        }
        let mut more = false;
        let idle = self.config.poll_interval;
        for stream in self.streams.values_mut() {
            let result = stream.read(&mut self.buf, self.output.batch(), idle);
            match result {
                Ok(round) => {
                    more |= round.more;
                    for rotation in round.rotations {
                        count_rotation(&self.metrics, rotation);
                    }
                    for (id, offset) in round.closed {
                        self.closed.insert((id.dev, id.ino), (id, offset));
                    }
                }
                Err(error) => {
                    self.metrics.error(Stage::Read);
                    tracing::warn!(
                        path = %stream.path.display(),
                        %error,
                        "reading a followed file failed, closing it"
                    );
                    stream.close_front();
                }
            }
        }
        self.output.flush().map_err(|source| {
            self.metrics.error(Stage::Write);
            FollowError::Output { name: self.output.name.clone(), source }
        })?;
        for stream in self.streams.values_mut() {
            stream.publish(&self.metrics);
        }
        self.streams.retain(|path, stream| {
            let keep = stream.literal || stream.open_files() > 0;
            if !keep {
                tracing::info!(path = %path.display(), "stopped following");
            }
            keep
        });
        self.update_file_gauge();
        Ok(more)
    }

    /// Opens the file now at `path` when it is not the one read last:
    /// after a rotation, or when it appeared.
    fn check_path(&mut self, path: &Path) {
        let id = match identity_at(path) {
            Ok(Some(id)) => id,
            Ok(None) => return,
            Err(error) => {
                self.open_failed(path, &error);
                return;
            }
        };

        let stream = &self.streams[path];
        if stream.newest().is_some_and(|newest| newest.same_file(&id)) {
            return;
        }
        if self.output_id.is_some_and(|output| output.same_file(&id)) {
            return;
        }
        // A file renamed from one followed path to another is read to its
        // end by the first stream, then the second goes on from there.
        let held_elsewhere = self
            .streams
            .iter()
            .any(|(other, stream)| other != path && stream.holds(&id));
        if held_elsewhere {
            return;
        }

        let resumed = self
            .closed
            .remove(&(id.dev, id.ino))
            .filter(|(closed, _)| closed.same_file(&id))
            .map(|(_, offset)| offset);
        let stream = &self.streams[path];
        let rotation = if stream.newest().is_some() {
            if stream.newest_is_linked() {
                Some(Rotation::Rename)
            } else {
                Some(Rotation::Recreate)
            }
        } else if stream.ever_opened {
            Some(Rotation::Recreate)
        } else {
            None
        };
        self.open_into(path, Some(resumed.unwrap_or(0)), rotation);
    }

    /// Opens `path` at `position` as the newest file of its stream.
    fn open_into(
        &mut self,
        path: &Path,
        position: Option<u64>,
        rotation: Option<Rotation>,
    ) {
        let file = match OpenFile::open(path, position) {
            Ok(file) => file,
            Err(error) => {
                self.open_failed(path, &error);
                return;
            }
        };
        if self.output_id.is_some_and(|output| output.same_file(&file.id)) {
            return;
        }
        match rotation {
            Some(rotation) => {
                tracing::info!(
                    path = %path.display(),
                    rotation = rotation.id(),
                    "file rotated, following the new one"
                );
                count_rotation(&self.metrics, rotation);
            }
            None => tracing::info!(
                path = %path.display(),
                offset = file.position,
                "following file"
            ),
        }
        let stream = self.streams.get_mut(path).expect("listed");
        stream.open_failed = false;
        stream.push(file);
    }

    /// Logs a failure to open `path` once, until an open succeeds again.
    fn open_failed(&mut self, path: &Path, error: &io::Error) {
        self.metrics.error(Stage::Read);
        let stream = self.streams.get_mut(path);
        let first = stream.is_none_or(|stream| {
            let first = !stream.open_failed;
            stream.open_failed = true;
            first
        });
        if first {
            tracing::warn!(
                path = %path.display(),
                %error,
                "cannot open a followed file, retrying at each poll"
            );
        }
    }

    fn update_file_gauge(&self) {
        let open: usize = self.streams.values().map(Stream::open_files).sum();
        self.metrics.follow_files.set(open as i64);
    }

    /// Writes the checkpoint when one is configured and the interval has
    /// passed, or at once when `now` is set.
    fn save_checkpoint(&mut self, now: bool) -> Result<(), FollowError> {
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

    /// Ends following: with a checkpoint, unfinished last lines are left
    /// for the next run to read again; without one they are written out.
    fn stop(&mut self) -> Result<(), FollowError> {
        if self.config.checkpoint.is_some() {
            return self.save_checkpoint(true);
        }
        for stream in self.streams.values_mut() {
            stream.finish(self.output.batch());
            stream.publish(&self.metrics);
        }
        self.output.flush().map_err(|source| FollowError::Output {
            name: self.output.name.clone(),
            source,
        })
    }
}

fn count_rotation(metrics: &Metrics, rotation: Rotation) {
    metrics.follow_rotations.with_label_values(&[rotation.id()]).inc();
}

/// Creates the series of every rotation kind at 0, so an alert on an
/// increase fires for the first rotation too.
pub fn touch_rotation_labels(metrics: &Metrics) {
    for rotation in [Rotation::Rename, Rotation::Truncate, Rotation::Recreate]
    {
        metrics.follow_rotations.with_label_values(&[rotation.id()]);
    }
}
