//! Follow mode: files followed across rotation, as `tail -F` does, and
//! redacted into one output.
//!
//! Each followed path is a [`stream`] with its own redactor, which
//! releases only whole lines, so the lines of several files never mix.
//! Every round looks at the paths again ([`watch`]), notices rotations
//! ([`file`]), reads what is new, and writes the released lines in one
//! write. A [`checkpoint`] records, by device and inode, the offset after
//! the last line written, so a restart (`restart`) neither loses nor
//! repeats a line.
//!
//! Files that exist at start are read from their end unless
//! `from_start` is set, which the command line does by default when a
//! checkpoint is given.
//! Files that appear later are read from their start, because everything
//! in them was written after cfscrub last looked.

pub mod checkpoint;
pub mod file;
pub mod output;
mod restart;
mod stream;
pub mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use checkpoint::{Checkpoint, CheckpointError};
use file::{FileId, OpenFile, Rotation, identity_at};
use output::Output;
use stream::{FileFinding, Stream};
use watch::{DirWatcher, Pattern, Wake};

use crate::engine::Scanner;
use crate::observe::throttle::Throttle;
use crate::observe::{FindingRecord, FindingsWriter, Metrics, Stage};

/// Bytes asked for by each read.
const READ_SIZE: usize = 256 * 1024;

/// Closed files remembered with the offset reached. A rotated file is
/// closed long before a glob could match it under its new name, which is
/// the case they serve, so a few suffice.
const CLOSED_REMEMBERED: usize = 256;

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
    /// Set, by the SIGHUP handler, to reopen the output file.
    pub reopen_output: Arc<AtomicBool>,
}

/// The failure that stopped following.
#[derive(Debug)]
pub enum FollowError {
    /// Writing the output failed.
    Output { name: String, source: io::Error },
    /// Reading or writing the checkpoint failed.
    Checkpoint(CheckpointError),
    /// Writing the findings failed.
    Findings { name: String, source: io::Error },
}

impl fmt::Display for FollowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FollowError::Output { name, source } => {
                let detail = crate::source::describe(source);
                write!(f, "write to {name} failed: {detail}")
            }
            FollowError::Checkpoint(error) => error.fmt(f),
            FollowError::Findings { name, source } => {
                write!(f, "write to findings {name} failed: {source}")
            }
        }
    }
}

impl std::error::Error for FollowError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FollowError::Output { source, .. }
            | FollowError::Findings { source, .. } => Some(source),
            // The message is the checkpoint error's own.
            FollowError::Checkpoint(error) => error.source(),
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
    /// Files closed, newest last, with the offset reached: a glob that
    /// later matches one under a new name goes on from there instead of
    /// reading it again.
    closed: VecDeque<(FileId, u64)>,
    /// When every path was last looked at, not only the open files.
    last_full_look: Instant,
    buf: Vec<u8>,
    last_checkpoint: Instant,
    saved: Option<Checkpoint>,
    /// Rate limit of the log line of a failed checkpoint write.
    checkpoint_errors: Throttle,
    findings: Option<FindingsWriter>,
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
            closed: VecDeque::new(),
            last_full_look: Instant::now(),
            buf: vec![0; READ_SIZE],
            last_checkpoint: Instant::now(),
            saved: None,
            checkpoint_errors: Throttle::new(),
            findings: None,
        }
    }

    /// Writes each finding to `writer`, with the followed file as its
    /// source and the offset in that file.
    pub fn report_findings(&mut self, writer: FindingsWriter) {
        self.findings = Some(writer);
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
        let mut look_at_paths = true;
        loop {
            self.reopen_output_if_requested()?;
            let due =
                self.last_full_look.elapsed() >= self.config.poll_interval;
            let more = self.round(look_at_paths || due)?;
            self.save_checkpoint(false)?;
            match self.wait(more) {
                Wake::Stop => {
                    tracing::info!("stop requested");
                    return Ok(());
                }
                wake => look_at_paths = wake == Wake::Names,
            }
        }
    }

    /// Waits for a change, or for the poll interval, and returns the
    /// strongest reason among the wake-ups that arrived. With `more` to
    /// read it only collects what has arrived.
    fn wait(&mut self, more: bool) -> Wake {
        let mut woke = Wake::Data;
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
            woke = match (woke, wake) {
                (Wake::Stop, _) | (_, Wake::Stop) => Wake::Stop,
                (Wake::Names, _) | (_, Wake::Names) => Wake::Names,
                _ => Wake::Data,
            };
        }
        woke
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
                if is_checkpoint_file(self.config.checkpoint.as_deref(), &path)
                {
                    continue;
                }
                let literal = !pattern.is_glob();
                let stream = Stream::new(path.clone(), literal, &self.scanner);
                self.streams.insert(path, stream);
            }
        }
    }

    /// Reads what is new and writes it out, after looking at every path
    /// for rotations and new files when `look_at_paths` is set. Returns
    /// whether some file has more to read right away.
    fn round(&mut self, look_at_paths: bool) -> Result<bool, FollowError> {
        if look_at_paths {
            self.last_full_look = Instant::now();
            self.watch_and_list();
            let paths: Vec<PathBuf> = self.streams.keys().cloned().collect();
            for path in &paths {
                self.check_path(path);
            }
        }
        let mut more = false;
        let mut found = Vec::new();
        let idle = self.config.poll_interval;
        for stream in self.streams.values_mut() {
            let result = stream.read(&mut self.buf, self.output.batch(), idle);
            match result {
                Ok(round) => {
                    more |= round.more;
                    for rotation in round.rotations {
                        count_rotation(&self.metrics, rotation);
                    }
                    for closed in round.closed {
                        remember_closed(&mut self.closed, closed);
                    }
                }
                Err(error) => {
                    self.metrics.error(Stage::Read);
                    tracing::warn!(
                        path = %stream.path.display(),
                        %error,
                        "reading a followed file failed, reopening it"
                    );
                    // Reopened by the next look at the paths, from where
                    // the read stopped.
                    if let Some(closed) = stream.close_front() {
                        remember_closed(&mut self.closed, closed);
                    }
                }
            }
            stream.take_findings(&mut found);
        }
        self.flush_output().map_err(|source| {
            self.metrics.error(Stage::Write);
            FollowError::Output { name: self.output.name.clone(), source }
        })?;
        self.write_findings(&found)?;
        // The gauge first, so that a scrape that sees this round's lines
        // sees its open files too.
        self.update_file_gauge();
        for stream in self.streams.values_mut() {
            stream.publish(&self.metrics);
        }
        // A glob's path is forgotten once it is gone and its files are
        // closed. One that stays but cannot be opened is kept, so that
        // its failure is logged once.
        self.streams.retain(|path, stream| {
            let keep =
                stream.literal || stream.open_files() > 0 || path.exists();
            if !keep && stream.ever_opened {
                tracing::info!(path = %path.display(), "stopped following");
            }
            keep
        });
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
            .iter()
            .position(|(closed, _)| closed.same_file(&id))
            .and_then(|at| self.closed.remove(at))
            .map(|(_, offset)| offset);
        let stream = &self.streams[path];
        let rotation = if resumed.is_some() {
            // A known file under a new name, or reopened after a failed
            // read: not a rotation of this path.
            None
        } else if stream.newest().is_some() {
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

    /// Logs and counts a failure to open `path` once, until an open
    /// succeeds again.
    fn open_failed(&mut self, path: &Path, error: &io::Error) {
        let stream = self.streams.get_mut(path);
        let first = stream.is_none_or(|stream| {
            let first = !stream.open_failed;
            stream.open_failed = true;
            first
        });
        if first {
            self.metrics.error(Stage::Read);
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

    /// Ends following: with a checkpoint, unfinished last lines are left
    /// for the next run to read again; without one they are written out.
    fn stop(&mut self) -> Result<(), FollowError> {
        if self.config.checkpoint.is_some() {
            return self.save_checkpoint(true);
        }
        let mut found = Vec::new();
        for stream in self.streams.values_mut() {
            stream.finish(self.output.batch());
            stream.take_findings(&mut found);
            stream.publish(&self.metrics);
        }
        self.flush_output().map_err(|source| FollowError::Output {
            name: self.output.name.clone(),
            source,
        })?;
        self.write_findings(&found)
    }

    /// Writes the lines of this round to the output, with the stall gauge
    /// set while the write is in progress, because a reader of stdout that
    /// stopped reading blocks it.
    fn flush_output(&mut self) -> io::Result<()> {
        if self.output.batch().is_empty() {
            return Ok(());
        }
        self.metrics.output_write_started();
        let written = self.output.flush();
        self.metrics.output_write_ended();
        written
    }

    /// Writes `found` to the findings, if they are on, and flushes them.
    fn write_findings(
        &mut self,
        found: &[FileFinding],
    ) -> Result<(), FollowError> {
        let Some(writer) = &mut self.findings else {
            return Ok(());
        };
        if found.is_empty() {
            return Ok(());
        }
        let written = found
            .iter()
            .try_for_each(|found| {
                let source = found.path.display().to_string();
                writer.write(&file_record(found, &source))
            })
            .and_then(|()| writer.flush());
        written.map_err(|source| {
            self.metrics.error(Stage::Findings);
            FollowError::Findings { name: writer.name.clone(), source }
        })
    }
}

/// Returns the findings line of `found`.
///
/// NOTE: follow findings have no line number, because a path's lines are
/// counted across its rotated files, not per file.
fn file_record<'a>(found: &FileFinding, source: &'a str) -> FindingRecord<'a> {
    let finding = &found.finding;
    FindingRecord {
        kind: finding.kind.id(),
        level: finding.level.id(),
        offset: finding.offset,
        length: finding.len,
        source,
        source_offset: found.file_offset,
        line: None,
        fingerprint: finding.fingerprint.to_string(),
        redacted: finding.redacted,
    }
}

/// Returns whether `path` is the checkpoint or one of its temporary
/// files, which a glob over the same directory would otherwise follow.
fn is_checkpoint_file(checkpoint: Option<&Path>, path: &Path) -> bool {
    let Some(checkpoint) = checkpoint else {
        return false;
    };
    let (Some(name), Some(own)) = (path.file_name(), checkpoint.file_name())
    else {
        return false;
    };
    if !name.as_encoded_bytes().starts_with(own.as_encoded_bytes()) {
        return false;
    }
    let parent = |p: &Path| {
        let dir = match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        dir.canonicalize().ok()
    };
    parent(path).is_some_and(|dir| Some(dir) == parent(checkpoint))
}

fn remember_closed(closed: &mut VecDeque<(FileId, u64)>, file: (FileId, u64)) {
    if closed.len() == CLOSED_REMEMBERED {
        closed.pop_front();
    }
    closed.push_back(file);
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
