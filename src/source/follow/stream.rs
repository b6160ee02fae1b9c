//! One followed path: the files that held it, in the order they are read,
//! and the redactor they share.
//!
//! After a rename or a delete, the old file stays open and is read to its
//! end before its successor, because the writer goes on appending to it
//! until it reopens the path. The switch happens once the successor has
//! data. Both files feed one redactor, so a line that a writer started in
//! the old file and ended in the new one, or ended after a truncation, is
//! redacted as one line.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use memchr::memrchr;

use super::checkpoint::Entry;
use super::file::{FileId, Fingerprint, OpenFile, Rotation, TAIL_LEN};
use super::output::LineFeeder;
use crate::engine::Scanner;

/// Bytes read from one path in one round, so that a busy file does not
/// starve the others.
const READ_BUDGET: usize = 4 * 1024 * 1024;

/// A followed path.
pub struct Stream {
    /// The path as the pattern named it.
    pub path: PathBuf,
    /// Whether the path was named on the command line, not by a glob. Such
    /// a stream stays while no file is there.
    pub literal: bool,
    /// Open files, oldest first. The front one is being read; the others
    /// took the path after it and wait for it to be read to the end.
    files: VecDeque<OpenFile>,
    feeder: LineFeeder,
    /// Start offsets, in the stream and in its file, of each run of bytes
    /// read from one file, for the runs that still contain bytes not
    /// released.
    segments: Vec<Segment>,
    /// Whether a failure to open the path was logged already.
    pub open_failed: bool,
    /// Whether a file was ever opened for this path, so that the next one
    /// counts as recreated.
    pub ever_opened: bool,
    /// The input before the start of the unfinished line, for the
    /// fingerprint of a checkpoint offset.
    line_tail: LineTail,
}

/// The last input bytes of a stream, and a copy of them as they were at
/// the end of the last whole line.
#[derive(Debug, Default)]
struct LineTail {
    /// The last up to [`TAIL_LEN`] bytes of input.
    recent: Vec<u8>,
    /// The last up to [`TAIL_LEN`] bytes of input up to the last newline.
    at_line_end: Vec<u8>,
    /// Stream offset after that newline.
    line_end: u64,
}

impl LineTail {
    /// Notes `chunk`, the input that starts at stream offset `start`.
    fn note(&mut self, start: u64, chunk: &[u8]) {
        if let Some(newline) = memrchr(b'\n', chunk) {
            let lines = &chunk[..=newline];
            self.at_line_end.clear();
            if lines.len() < TAIL_LEN {
                let from =
                    (self.recent.len() + lines.len()).saturating_sub(TAIL_LEN);
                let from = from.min(self.recent.len());
                self.at_line_end.extend_from_slice(&self.recent[from..]);
            }
            let own = lines.len().saturating_sub(TAIL_LEN);
            self.at_line_end.extend_from_slice(&lines[own..]);
            self.line_end = start + lines.len() as u64;
        }
        let excess =
            (self.recent.len() + chunk.len()).saturating_sub(TAIL_LEN);
        self.recent.drain(..excess.min(self.recent.len()));
        let own = chunk.len().saturating_sub(TAIL_LEN);
        self.recent.extend_from_slice(&chunk[own..]);
    }

    /// Returns the input bytes that end at stream offset `end` and start
    /// at or after `from`, when they are known.
    fn before(&self, end: u64, from: u64) -> Option<&[u8]> {
        if end != self.line_end {
            return None;
        }
        let len = self.at_line_end.len() as u64;
        let skip = from.saturating_sub(end - len.min(end)).min(len);
        Some(&self.at_line_end[skip as usize..])
    }
}

/// A run of stream bytes read from one file, from `file_start` on.
#[derive(Clone, Debug)]
struct Segment {
    id: FileId,
    path: PathBuf,
    stream_start: u64,
    file_start: u64,
}

/// The outcome of one round of reading a stream.
#[derive(Debug, Default)]
pub struct Round {
    /// The read budget ran out before the end of the front file.
    pub more: bool,
    /// Rotations seen, by kind.
    pub rotations: Vec<Rotation>,
    /// Files closed: read to the end and replaced by a successor, or
    /// deleted and idle.
    pub closed: Vec<(FileId, u64)>,
}

impl Stream {
    /// Returns a stream of `path` with no file open yet.
    pub fn new(
        path: PathBuf,
        literal: bool,
        scanner: &Arc<Scanner>,
    ) -> Stream {
        Stream {
            path,
            literal,
            files: VecDeque::new(),
            feeder: LineFeeder::new(scanner),
            segments: Vec::new(),
            open_failed: false,
            ever_opened: false,
            line_tail: LineTail::default(),
        }
    }

    /// Returns the number of open files.
    pub fn open_files(&self) -> usize {
        self.files.len()
    }

    /// Returns whether `id` is one of the open files.
    pub fn holds(&self, id: &FileId) -> bool {
        self.files.iter().any(|file| file.id.same_file(id))
    }

    /// Returns the identity of the newest open file: the one that had the
    /// path last.
    pub fn newest(&self) -> Option<&FileId> {
        self.files.back().map(|file| &file.id)
    }

    /// Returns whether the newest open file still has a name. A file
    /// whose status cannot be read counts as deleted.
    pub fn newest_is_linked(&self) -> bool {
        let linked = self.files.back().map(OpenFile::is_linked);
        matches!(linked, Some(Ok(true)))
    }

    /// Adds `file` as the newest file of the path.
    pub fn push(&mut self, file: OpenFile) {
        self.ever_opened = true;
        if self.files.is_empty() {
            self.start_segment(&file);
        }
        self.files.push_back(file);
    }

    /// Closes the front file, after a failed read, and goes on with its
    /// successor. Returns the closed file's identity and read offset.
    pub fn close_front(&mut self) -> Option<(FileId, u64)> {
        self.advance().map(|file| (file.id, file.position))
    }

    /// Closes the front file and starts reading the next one, if any.
    fn advance(&mut self) -> Option<OpenFile> {
        let done = self.files.pop_front()?;
        if let Some(next) = self.files.front() {
            let segment = segment_of(next, self.feeder.fed());
            self.segments.push(segment);
        }
        Some(done)
    }

    fn start_segment(&mut self, file: &OpenFile) {
        let segment = segment_of(file, self.feeder.fed());
        self.segments.push(segment);
    }

    /// Reads what the files have, up to the round's budget, and adds the
    /// lines it completes to `output`.
    ///
    /// A deleted file with no successor is closed once nothing was read
    /// from it for `idle`.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        output: &mut Vec<u8>,
        idle: Duration,
    ) -> io::Result<Round> {
        let mut round = Round::default();
        let mut budget = READ_BUDGET;
        loop {
            let Some(front) = self.files.front_mut() else {
                return Ok(round);
            };
            if front.rewind_if_truncated()? {
                tracing::info!(
                    path = %front.path.display(),
                    "file truncated, reading from its start"
                );
                round.rotations.push(Rotation::Truncate);
                self.segments.push(Segment {
                    id: front.id,
                    path: front.path.clone(),
                    stream_start: self.feeder.fed(),
                    file_start: 0,
                });
            }
            let front = self.files.front_mut().expect("front exists");
            let at_end = read_to_end(front, buf, &mut budget, |chunk| {
                self.line_tail.note(self.feeder.fed(), chunk);
                self.feeder.feed(chunk, output);
            })?;
            if !at_end {
                round.more = true;
                self.prune_segments();
                return Ok(round);
            }
            let successor_has_data = match self.files.get(1) {
                Some(next) => next.current_len()? > 0,
                None => false,
            };
            let front = self.files.front_mut().expect("front exists");
            let deleted_and_idle =
                !front.is_linked()? && front.last_data.elapsed() >= idle;
            if !successor_has_data && !deleted_and_idle {
                self.prune_segments();
                return Ok(round);
            }
            if successor_has_data {
                // The writer moved on to the successor: whatever it wrote
                // here before that is there to read now.
                let mut unlimited = usize::MAX;
                read_to_end(front, buf, &mut unlimited, |chunk| {
                    self.line_tail.note(self.feeder.fed(), chunk);
                    self.feeder.feed(chunk, output);
                })?;
            }
            let done = self.advance().expect("front exists");
            tracing::info!(
                path = %done.path.display(),
                bytes = done.position,
                "finished reading a rotated file"
            );
            round.closed.push((done.id, done.position));
        }
    }

    /// Ends the stream, adding its unfinished last line to `output`.
    pub fn finish(&mut self, output: &mut Vec<u8>) {
        self.feeder.finish(output);
    }

    /// Adds what was counted since the last call to `metrics`.
    pub fn publish(&mut self, metrics: &crate::observe::Metrics) {
        self.feeder.publish(metrics);
    }

    /// Drops the segments whose bytes were all released.
    fn prune_segments(&mut self) {
        let released = self.feeder.released();
        let keep_from = self
            .segments
            .iter()
            .rposition(|segment| segment.stream_start <= released)
            .unwrap_or(0);
        self.segments.drain(..keep_from);
    }

    /// Returns the fingerprint of the bytes of `segment`'s file before the
    /// stream offset `released`, when they are known. The bytes before the
    /// segment's start came from another file, or from an earlier run, so
    /// a segment that starts within its file has a shorter fingerprint.
    fn fingerprint_before(
        &self,
        segment: &Segment,
        released: u64,
    ) -> Option<Fingerprint> {
        if released <= segment.stream_start {
            // Nothing of this segment was written out yet, so the offset
            // is where the segment starts in its file.
            return (segment.file_start == 0).then(|| Fingerprint::of(&[]));
        }
        // NOTE: after a line longer than `LONG_LINE` was released in
        // pieces, `released` is inside it and no fingerprint is stored,
        // so a restart there reads the whole file again, repeating lines.
        let bytes = self.line_tail.before(released, segment.stream_start)?;
        Some(Fingerprint::of(bytes))
    }

    /// Adds where a restart should go on reading each file of this path
    /// to `entries`: after the last line written out.
    pub fn checkpoint(&self, entries: &mut Vec<Entry>) {
        let released = self.feeder.released();
        let from = self
            .segments
            .iter()
            .rposition(|segment| segment.stream_start <= released)
            .unwrap_or(0);
        let mut own = Vec::new();
        // NOTE: a line begun before a truncation and not finished yet has
        // its start only in the rotated copy, so a restart at this point
        // reads just the part after the truncation.
        for segment in &self.segments[from..] {
            let into = released.saturating_sub(segment.stream_start);
            let offset = segment.file_start + into;
            let fingerprint = self.fingerprint_before(segment, released);
            let at = (segment.path.as_path(), &segment.id, offset);
            push_entry(&mut own, at, fingerprint);
        }
        for file in self.files.iter().skip(1) {
            let at = (self.path.as_path(), &file.id, file.position);
            push_entry(&mut own, at, Some(file.fingerprint()));
        }
        entries.extend(own);
    }
}

/// Adds an entry for the file `id` at `offset`, replacing an earlier one
/// of the same file: after a truncation only the newest run of a file can
/// be read again.
fn push_entry(
    entries: &mut Vec<Entry>,
    (path, id, offset): (&Path, &FileId, u64),
    fingerprint: Option<Fingerprint>,
) {
    entries.retain(|entry| !entry.id().same_file(id));
    entries.push(Entry {
        path: path.to_owned(),
        dev: id.dev,
        ino: id.ino,
        birth_ns: id.birth_ns,
        offset,
        fingerprint,
    });
}

fn segment_of(file: &OpenFile, stream_start: u64) -> Segment {
    Segment {
        id: file.id,
        path: file.path.clone(),
        stream_start,
        file_start: file.position,
    }
}

/// Reads `file` until its current end or until `budget` bytes were read,
/// calling `feed` with each chunk. Returns whether the end was reached.
fn read_to_end(
    file: &mut OpenFile,
    buf: &mut [u8],
    budget: &mut usize,
    mut feed: impl FnMut(&[u8]),
) -> io::Result<bool> {
    while *budget > 0 {
        let want = buf.len().min(*budget);
        let len = file.read(&mut buf[..want])?;
        if len == 0 {
            return Ok(true);
        }
        *budget -= len;
        feed(&buf[..len]);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns what [`LineTail`] should hold after `input`: the up to
    /// [`TAIL_LEN`] bytes before the end of its last line, and that end.
    fn expected_tail(input: &[u8]) -> (Vec<u8>, u64) {
        let end = memrchr(b'\n', input).map_or(0, |newline| newline + 1);
        let start = end.saturating_sub(TAIL_LEN);
        (input[start..end].to_vec(), end as u64)
    }

    #[test]
    fn line_tail_matches_whole_input() {
        let mut input = Vec::new();
        for seq in 0..40 {
            input.extend_from_slice(format!("line {seq} ").as_bytes());
            input.extend(std::iter::repeat_n(b'x', seq * 3));
            input.push(b'\n');
        }
        input.extend_from_slice(b"unfinished");
        for chunk_len in [1, 2, 7, 63, 64, 65, 200, input.len()] {
            let mut tail = LineTail::default();
            let mut fed = 0;
            for chunk in input.chunks(chunk_len) {
                tail.note(fed, chunk);
                fed += chunk.len() as u64;
            }
            let (bytes, end) = expected_tail(&input);
            assert_eq!(tail.line_end, end, "chunks of {chunk_len}");
            assert_eq!(tail.before(end, 0), Some(&bytes[..]));
            let skip = end - 10;
            assert_eq!(
                tail.before(end, skip),
                Some(&bytes[bytes.len() - 10..])
            );
            assert_eq!(tail.before(end - 1, 0), None);
        }
    }
}
