//! The output side of follow mode: each followed path's redactor, which
//! releases only whole lines, and the one destination they share.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memchr::{memchr_iter, memrchr};

use super::file::FileId;
use crate::engine::{Collect, Finding, Redactor, Scanner, Stats};
use crate::observe::{Metrics, SourceType};
use crate::source::open_stdout;

/// A line longer than this is redacted and written in pieces, so memory
/// stays bounded. Such a piece can be followed by lines of another file
/// before the rest of its line.
pub const LONG_LINE: usize = 1024 * 1024;

/// The destination of the redacted lines of every followed file: standard
/// output or a file opened for appending.
pub struct Output {
    file: File,
    /// The destination as named in messages: a path, or `stdout`.
    pub name: String,
    is_regular_file: bool,
    /// The path of an output file, for reopening it.
    path: Option<PathBuf>,
    batch: Vec<u8>,
}

impl Output {
    /// Opens standard output.
    pub fn stdout() -> io::Result<Output> {
        Ok(Output {
            file: open_stdout()?,
            name: "stdout".to_owned(),
            is_regular_file: false,
            path: None,
            batch: Vec::new(),
        })
    }

    /// Opens `path` for appending, creating it if needed.
    pub fn append_to(path: &Path) -> io::Result<Output> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let is_regular_file = file.metadata()?.is_file();
        Ok(Output {
            file,
            name: path.display().to_string(),
            is_regular_file,
            path: Some(path.to_owned()),
            batch: Vec::new(),
        })
    }

    /// Writes and syncs what is pending, then opens the output path again, creating
    /// the file if it was moved away. Returns false, and does nothing, when
    /// the output is standard output.
    pub fn reopen(&mut self) -> io::Result<bool> {
        let Some(path) = self.path.clone() else {
            return Ok(false);
        };
        // Synced, because the next checkpoint syncs only the new file.
        self.sync()?;
        *self = Output::append_to(&path)?;
        Ok(true)
    }

    /// Returns the identity of the destination when it is a regular file.
    pub fn file_id(&self) -> Option<FileId> {
        if !self.is_regular_file {
            return None;
        }
        self.file.metadata().ok().map(|metadata| FileId::of(&metadata))
    }

    /// Returns the buffer that lines are added to before
    /// [`Output::flush`] writes them.
    pub fn batch(&mut self) -> &mut Vec<u8> {
        &mut self.batch
    }

    /// Writes every line added since the last flush, in one write where
    /// the destination takes it.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.batch);
        self.batch.clear();
        result
    }

    /// Makes what was written durable when the destination is a file, so a
    /// checkpoint written next never runs ahead of the output.
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush()?;
        if self.is_regular_file {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

/// The redactor of one followed path and the bytes of its unfinished last
/// line.
///
/// Offsets here count the bytes of the path's stream: everything read from
/// its files, across rotations, in the order it was read. Only whole lines
/// are released, so the output of two files never mixes inside a line and
/// a checkpoint can name the start of a line.
pub struct LineFeeder {
    redactor: Redactor,
    /// Input read after the last newline, not yet given to the redactor.
    line: Vec<u8>,
    /// Output of the redactor not yet released.
    out: Vec<u8>,
    /// Stream offset up to which the output was released.
    released: u64,
    /// Bytes given to [`LineFeeder::feed`].
    fed: u64,
    lines_read: u64,
    lines_written: u64,
    published: Published,
    /// Findings not yet taken by [`LineFeeder::take_findings`].
    findings: Vec<Finding>,
}

/// The totals last added to the metrics.
#[derive(Default)]
struct Published {
    stats: Stats,
    lines_read: u64,
    lines_written: u64,
}

impl LineFeeder {
    /// Returns a feeder at the start of a stream.
    pub fn new(scanner: &Arc<Scanner>) -> LineFeeder {
        LineFeeder {
            redactor: scanner.redactor(),
            line: Vec::new(),
            out: Vec::new(),
            released: 0,
            fed: 0,
            lines_read: 0,
            lines_written: 0,
            published: Published::default(),
            findings: Vec::new(),
        }
    }

    /// Moves the findings since the last call to `into`. Their offsets
    /// count the bytes of the path's stream.
    pub fn take_findings(&mut self, into: &mut Vec<Finding>) {
        into.append(&mut self.findings);
    }

    /// Redacts `bytes`, adding the output to `self.out` and keeping the
    /// findings.
    fn push(&mut self, bytes: &[u8]) {
        let findings = std::mem::take(&mut self.findings);
        let mut sink = Collect { out: &mut self.out, findings };
        let Ok(()) = self.redactor.push(bytes, &mut sink);
        self.findings = sink.findings;
    }

    /// Returns the number of bytes fed so far: the stream offset of the
    /// next byte.
    pub fn fed(&self) -> u64 {
        self.fed
    }

    /// Returns the stream offset up to which output was released. The
    /// bytes after it are held: a line without its newline yet.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// Redacts the next bytes of the stream and adds every line they
    /// complete to `output`.
    pub fn feed(&mut self, chunk: &[u8], output: &mut Vec<u8>) {
        self.fed += chunk.len() as u64;
        self.lines_read += memchr_iter(b'\n', chunk).count() as u64;
        let Some(newline) = memrchr(b'\n', chunk) else {
            self.line.extend_from_slice(chunk);
            if self.line.len() >= LONG_LINE {
                let line = std::mem::take(&mut self.line);
                self.push(&line);
                self.line = line;
                self.line.clear();
                self.release_settled(output);
            }
            return;
        };
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.push(&line);
            self.line = line;
            self.line.clear();
        }
        self.push(&chunk[..=newline]);
        self.line.extend_from_slice(&chunk[newline + 1..]);
        self.release_lines(output);
    }

    /// Ends the stream: redacts the unfinished last line as it is and adds
    /// it to `output`, without a newline.
    pub fn finish(&mut self, output: &mut Vec<u8>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.push(&line);
        }
        let findings = std::mem::take(&mut self.findings);
        let mut sink = Collect { out: &mut self.out, findings };
        let Ok(()) = self.redactor.finish(&mut sink);
        self.findings = sink.findings;
        self.release_settled(output);
    }

    /// Releases the output up to its last newline.
    fn release_lines(&mut self, output: &mut Vec<u8>) {
        if self.redactor.pending_len() == 0 {
            // The redactor settles a line in the push that brings its
            // newline, so the whole output is lines.
            self.release_settled(output);
            return;
        }
        // Not expected, but if the redactor still has pending bytes,
        // release only whole lines and keep the checkpoint where it was, so
        // a restart repeats lines instead of losing them.
        let Some(newline) = memrchr(b'\n', &self.out) else {
            return;
        };
        self.count_written(newline + 1);
        output.extend_from_slice(&self.out[..=newline]);
        self.out.drain(..=newline);
    }

    /// Releases everything the redactor has settled.
    fn release_settled(&mut self, output: &mut Vec<u8>) {
        self.count_written(self.out.len());
        output.extend_from_slice(&self.out);
        self.out.clear();
        self.released = self.redactor.settled_offset();
    }

    fn count_written(&mut self, len: usize) {
        self.lines_written +=
            memchr_iter(b'\n', &self.out[..len]).count() as u64;
    }

    /// Adds what was counted since the last call to `metrics`.
    pub fn publish(&mut self, metrics: &Metrics) {
        let stats = *self.redactor.stats();
        metrics.publish(SourceType::Follow, &self.published.stats, &stats);
        let label = [SourceType::Follow.id()];
        metrics
            .read_records
            .with_label_values(&label)
            .inc_by(self.lines_read - self.published.lines_read);
        metrics
            .written_records
            .with_label_values(&label)
            .inc_by(self.lines_written - self.published.lines_written);
        self.published = Published {
            stats,
            lines_read: self.lines_read,
            lines_written: self.lines_written,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sample;

    fn feeder() -> LineFeeder {
        LineFeeder::new(&Arc::new(Scanner::builder().build().unwrap()))
    }

    #[test]
    fn releases_only_whole_lines() {
        let mut feeder = feeder();
        let mut output = Vec::new();
        feeder.feed(b"first\nsec", &mut output);
        assert_eq!(output, b"first\n");
        assert_eq!(feeder.released(), 6);
        assert_eq!(feeder.fed(), 9);
        feeder.feed(b"ond", &mut output);
        assert_eq!(output, b"first\n");
        feeder.feed(b"\n", &mut output);
        assert_eq!(output, b"first\nsecond\n");
        assert_eq!(feeder.released(), 13);
    }

    #[test]
    fn credential_split_across_feeds_is_redacted() {
        let credential =
            sample::prefixed(&mut rand::rng(), crate::engine::Kind::UserToken);
        let line = format!("token={credential} end\n");
        let (head, tail) = line.as_bytes().split_at(20);
        let mut feeder = feeder();
        let mut output = Vec::new();
        feeder.feed(head, &mut output);
        feeder.feed(tail, &mut output);
        let text = String::from_utf8(output).unwrap();
        assert!(!text.contains(&credential[5..]), "credential in output");
        assert!(text.starts_with("token=[REDACTED"));
        assert!(text.ends_with(" end\n"));
    }

    #[test]
    fn long_line_is_released_in_pieces() {
        let mut feeder = feeder();
        let mut output = Vec::new();
        feeder.feed(&vec![b'a'; LONG_LINE], &mut output);
        assert_eq!(output.len(), LONG_LINE);
        assert_eq!(feeder.released(), LONG_LINE as u64);
    }

    #[test]
    fn finish_releases_unfinished_line() {
        let mut feeder = feeder();
        let mut output = Vec::new();
        feeder.feed(b"done\npartial", &mut output);
        feeder.finish(&mut output);
        assert_eq!(output, b"done\npartial");
    }
}
