//! Standard input, named files and standard output, without the standard
//! library's buffering: the filter reads large chunks and writes clean
//! spans straight from the read buffer.

use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, Write};
use std::ops::Range;
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;

use super::StopSignal;

/// An input of the stream filter: a named file or standard input.
pub struct Input {
    /// The name used in messages and findings: the path, or `-` for stdin.
    pub name: String,
    file: File,
    /// Whether the input is a regular file, whose reads never wait for a
    /// writer.
    regular: bool,
}

impl Input {
    /// Opens `name`, or standard input when `name` is `-`.
    pub fn open(name: &str) -> io::Result<Input> {
        if name == "-" {
            return open_stdin();
        }
        let file = File::open(name)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        Ok(Input::new(name.to_owned(), file))
    }

    fn new(name: String, file: File) -> Input {
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        Input { name, file, regular }
    }

    /// Grows the buffer of the input's pipe to `len` bytes, if the input
    /// is a pipe whose buffer is smaller, so that one read can return up
    /// to `len` bytes and the writer wakes the reader less often.
    ///
    /// The kernel counts pipe buffers against a per-user limit
    /// (`/proc/sys/fs/pipe-user-pages-soft`) and caps one pipe at
    /// `/proc/sys/fs/pipe-max-size`. When the kernel rejects the size, the
    /// pipe keeps the one it had, which is only slower.
    pub fn grow_pipe(&self, len: usize) {
        let is_pipe =
            self.file.metadata().is_ok_and(|m| m.file_type().is_fifo());
        if !is_pipe {
            return;
        }
        match rustix::pipe::fcntl_getpipe_size(&self.file) {
            Ok(current) if current >= len => return,
            _ => {}
        }
        if let Err(error) = rustix::pipe::fcntl_setpipe_size(&self.file, len) {
            tracing::debug!(
                input = %self.name,
                len,
                %error,
                "pipe buffer not grown"
            );
        }
    }

    /// Reads the next chunk into `buf`, retrying when interrupted by a
    /// signal. Returns 0 at end of input.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }

    /// Reads the next chunk into `buf` unless a stop is requested first,
    /// also while the input has no bytes yet. Returns `None` on a stop,
    /// and `Some(0)` at end of input. `before_wait` runs when the read has
    /// to wait for a pipe, terminal or socket to receive bytes.
    ///
    /// # Errors
    ///
    /// Fails when the read fails, or when a regular file ends before the
    /// offset already read: it was truncated while being read. A file
    /// truncated and written again past that offset before the end is
    /// reached is not noticed.
    pub fn read_unless_stopped(
        &mut self,
        buf: &mut [u8],
        stop: &StopSignal,
        before_wait: impl FnMut(),
    ) -> io::Result<Option<usize>> {
        if stop.requested() {
            return Ok(None);
        }
        // Only a pipe, a terminal or a socket can leave a read waiting, so
        // a regular file is read without the extra `poll`. Through a pipe
        // the `poll` before each 64 KiB read cost nothing measurable: 512
        // MiB of loghub samples took 233 to 256 ms with it and 239 to 272
        // ms without (hyperfine, 3 rounds of 8 runs, 2 shared cores).
        if !self.regular && !stop.wait_readable(&self.file, before_wait)? {
            return Ok(None);
        }
        let len = self.read(buf)?;
        if len == 0 && self.regular {
            self.check_not_truncated()?;
        }
        Ok(Some(len))
    }

    fn check_not_truncated(&mut self) -> io::Result<()> {
        let offset = self.file.stream_position()?;
        let len = self.file.metadata()?.len();
        if len >= offset {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "truncated to {len} bytes while being read at offset {offset}"
        )))
    }
}

/// Returns the error's message without the "(os error N)" suffix.
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Opens standard input as an unbuffered file.
pub fn open_stdin() -> io::Result<Input> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    Ok(Input::new("-".to_owned(), File::from(fd)))
}

/// Opens standard output as an unbuffered file.
pub fn open_stdout() -> io::Result<File> {
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// Initial capacity of the batch of copied slices.
const BATCH_CAPACITY: usize = 64 * 1024;

/// Slices of the input shorter than this are copied into the batch
/// instead of getting an entry of their own in the vectored write.
// NOTE: an estimate of where copying a slice gets cheaper than one more
// iovec entry, not measured: writes to /dev/null in the benchmarks never
// touch the entries, and slices this short only come between credentials
// closer than 256 bytes.
const MIN_BORROW: usize = 256;
/// Maximum entries in one vectored write: Linux's `IOV_MAX`, 1024.
const MAX_SEGMENTS: usize = 1024;

/// A writer that sends the output of one input chunk with one vectored
/// write (`writev`), without copying the spans that come straight from the
/// chunk.
///
/// [`ChunkWriter::begin`] names the chunk. Until [`ChunkWriter::flush`],
/// each slice given to [`ChunkWriter::write`] that lies inside that chunk
/// is kept by its offsets, and any other slice, such as a replacement, is
/// copied into a batch. `flush` then writes them all, in order. Nothing
/// reaches the inner writer before `flush`, so the caller flushes once per
/// chunk read, and each line is written as soon as it has been read.
pub struct ChunkWriter<W: Write> {
    inner: W,
    batch: Vec<u8>,
    segments: Vec<Segment>,
    /// Address range of the chunk given to `begin`.
    input: Range<usize>,
}

/// A part of the output, by offsets into the input chunk or the batch.
#[derive(Clone, Copy, Debug)]
enum Segment {
    Input(usize, usize),
    Batch(usize, usize),
}

impl<W: Write> ChunkWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> ChunkWriter<W> {
        ChunkWriter {
            inner,
            batch: Vec::with_capacity(BATCH_CAPACITY),
            segments: Vec::new(),
            input: 0..0,
        }
    }

    /// Starts the output of `input`: until the next flush, slices of it
    /// given to [`ChunkWriter::write`] are written from it, uncopied.
    ///
    /// # Panics
    ///
    /// Panics if the output of the previous chunk was not flushed.
    pub fn begin(&mut self, input: &[u8]) {
        assert!(self.segments.is_empty(), "begin before flush");
        self.input = address_range(input);
    }

    /// Adds `bytes` to the output, after every slice added before.
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // Distinct allocations never overlap, so a slice whose addresses
        // fall inside the chunk's is a part of the chunk.
        let range = address_range(bytes);
        let inside =
            self.input.start <= range.start && range.end <= self.input.end;
        // One entry stays free for the batch that may follow.
        let room = self.segments.len() + 1 < MAX_SEGMENTS;
        if inside && room && bytes.len() >= MIN_BORROW {
            let start = range.start - self.input.start;
            self.segments.push(Segment::Input(start, start + bytes.len()));
            return;
        }
        let start = self.batch.len();
        self.batch.extend_from_slice(bytes);
        let end = self.batch.len();
        match self.segments.last_mut() {
            Some(Segment::Batch(_, last_end)) if *last_end == start => {
                *last_end = end;
            }
            _ => self.segments.push(Segment::Batch(start, end)),
        }
    }

    /// Writes the output added since [`ChunkWriter::begin`] and flushes
    /// the inner writer. Afterwards the writer is ready for the next
    /// chunk, also when the write failed.
    ///
    /// # Panics
    ///
    /// Panics if `input` is not the chunk given to `begin`.
    pub fn flush(&mut self, input: &[u8]) -> io::Result<()> {
        assert_eq!(address_range(input), self.input, "flush of another chunk");
        let mut slices: Vec<IoSlice<'_>> = self
            .segments
            .iter()
            .map(|segment| match *segment {
                Segment::Input(start, end) => IoSlice::new(&input[start..end]),
                Segment::Batch(start, end) => {
                    IoSlice::new(&self.batch[start..end])
                }
            })
            .collect();
        let result = write_all_vectored(&mut self.inner, &mut slices)
            .and_then(|()| self.inner.flush());
        self.segments.clear();
        self.batch.clear();
        self.input = 0..0;
        result
    }
}

fn address_range(bytes: &[u8]) -> Range<usize> {
    let start = bytes.as_ptr() as usize;
    start..start + bytes.len()
}

/// Writes every slice, retrying after a partial write or an interrupt.
fn write_all_vectored<W: Write>(
    out: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    while !slices.is_empty() {
        match out.write_vectored(slices) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "failed to write whole buffer",
                ));
            }
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe_input() -> (Input, File) {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        let input = Input::new("pipe".to_owned(), reader.into());
        (input, writer.into())
    }

    fn pipe_size(input: &Input) -> usize {
        rustix::pipe::fcntl_getpipe_size(&input.file).unwrap()
    }

    #[test]
    fn grow_pipe_enlarges_small_pipe() {
        let (input, _writer) = pipe_input();
        input.grow_pipe(256 * 1024);
        assert_eq!(pipe_size(&input), 256 * 1024);
    }

    #[test]
    fn grow_pipe_never_shrinks() {
        let (input, _writer) = pipe_input();
        rustix::pipe::fcntl_setpipe_size(&input.file, 512 * 1024).unwrap();
        input.grow_pipe(128 * 1024);
        assert_eq!(pipe_size(&input), 512 * 1024);
    }

    #[test]
    fn grow_pipe_leaves_files_alone() {
        let path = std::env::temp_dir()
            .join(format!("cfscrub-grow-pipe-{}", std::process::id()));
        std::fs::write(&path, b"not a pipe").unwrap();
        let input = Input::open(path.to_str().unwrap()).unwrap();
        input.grow_pipe(256 * 1024);
        let mut text = String::new();
        let mut file = &input.file;
        file.read_to_string(&mut text).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text, "not a pipe");
    }

    /// Accepts at most `limit` bytes per call, as a full pipe does.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(bytes)])
        }

        fn write_vectored(
            &mut self,
            slices: &[IoSlice<'_>],
        ) -> io::Result<usize> {
            self.calls += 1;
            let mut written = 0;
            for slice in slices {
                let len = slice.len().min(self.limit - written);
                self.out.extend_from_slice(&slice[..len]);
                written += len;
                if written == self.limit {
                    break;
                }
            }
            Ok(written)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Fails every write, as a closed pipe does.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn trickle(limit: usize) -> ChunkWriter<Trickle> {
        ChunkWriter::new(Trickle { out: Vec::new(), limit, calls: 0 })
    }

    #[test]
    fn chunk_writer_keeps_order() {
        let input: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
        let mut writer = trickle(usize::MAX);
        writer.begin(&input);
        writer.write(&input[..1000]);
        writer.write(b"[REDACTED]");
        writer.write(&input[1053..1100]);
        writer.write(b"tail of the bytes held back");
        writer.write(&input[1100..]);
        writer.flush(&input).unwrap();
        let mut expected = input[..1000].to_vec();
        expected.extend_from_slice(b"[REDACTED]");
        expected.extend_from_slice(&input[1053..1100]);
        expected.extend_from_slice(b"tail of the bytes held back");
        expected.extend_from_slice(&input[1100..]);
        assert_eq!(writer.inner.out, expected);
        assert_eq!(writer.inner.calls, 1, "one vectored write per chunk");
    }

    #[test]
    fn chunk_writer_borrows_long_input_slices() {
        let input = vec![b'x'; 2 * MIN_BORROW];
        let mut writer = trickle(usize::MAX);
        writer.begin(&input);
        writer.write(&input[..MIN_BORROW]);
        writer.write(b"copied");
        writer.write(&input[MIN_BORROW..MIN_BORROW + 1]);
        assert_eq!(writer.batch, b"copiedx");
        assert_eq!(writer.segments.len(), 2);
        writer.flush(&input).unwrap();
    }

    #[test]
    fn chunk_writer_survives_partial_writes() {
        let input: Vec<u8> = (0..10_000).map(|i| (i % 253) as u8).collect();
        let mut writer = trickle(7);
        writer.begin(&input);
        for piece in input.chunks(300) {
            writer.write(piece);
            writer.write(b"|");
        }
        writer.flush(&input).unwrap();
        let expected: Vec<u8> = input
            .chunks(300)
            .flat_map(|piece| piece.iter().copied().chain([b'|']))
            .collect();
        assert_eq!(writer.inner.out, expected);
    }

    #[test]
    fn chunk_writer_caps_segments() {
        let input = vec![b'y'; MIN_BORROW * (MAX_SEGMENTS + 10)];
        let mut writer = trickle(usize::MAX);
        writer.begin(&input);
        for piece in input.chunks(MIN_BORROW) {
            writer.write(piece);
        }
        assert!(writer.segments.len() <= MAX_SEGMENTS);
        writer.flush(&input).unwrap();
        assert_eq!(writer.inner.out, input);
    }

    #[test]
    fn chunk_writer_resets_after_error() {
        let input = vec![b'z'; 1024];
        let mut writer = ChunkWriter::new(Closed);
        writer.begin(&input);
        writer.write(&input);
        writer.write(b"copied");
        let error = writer.flush(&input).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        assert!(writer.segments.is_empty());
        assert!(writer.batch.is_empty());
        // Panics unless the failed flush ended the chunk.
        writer.begin(b"next");
    }
}
