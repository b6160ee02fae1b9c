//! Standard input, named files and standard output, without the standard
//! library's buffering: the filter reads large chunks and writes clean
//! spans straight from the read buffer.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;

/// An input of the stream filter: a named file or standard input.
pub struct Input {
    /// The name used in messages and findings: the path, or `-` for stdin.
    pub name: String,
    file: File,
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
        Ok(Input { name: name.to_owned(), file })
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
}

/// Opens standard input as an unbuffered file.
pub fn open_stdin() -> io::Result<Input> {
    let fd = io::stdin().as_fd().try_clone_to_owned()?;
    Ok(Input { name: "-".to_owned(), file: File::from(fd) })
}

/// Opens standard output as an unbuffered file.
pub fn open_stdout() -> io::Result<File> {
    Ok(File::from(io::stdout().as_fd().try_clone_to_owned()?))
}

/// Slices at least this long are written straight through, without being
/// copied into the batch.
const DIRECT_WRITE: usize = 16 * 1024;
/// Size of the batch of small slices.
const BATCH_CAPACITY: usize = 64 * 1024;

/// A writer that joins small slices into one write and passes large ones
/// through uncopied. Nothing reaches the inner writer until a batch fills
/// or [`BatchWriter::flush`] is called, so the caller flushes once per
/// chunk read: a line is written as soon as it has been read, and input
/// that arrives faster than it drains is written in large batches.
pub struct BatchWriter<W: Write> {
    inner: W,
    batch: Vec<u8>,
}

impl<W: Write> BatchWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> BatchWriter<W> {
        BatchWriter { inner, batch: Vec::with_capacity(BATCH_CAPACITY) }
    }

    /// Writes `bytes`, after every slice written before.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.len() >= DIRECT_WRITE {
            self.write_batch()?;
            return self.inner.write_all(bytes);
        }
        if self.batch.len() + bytes.len() > BATCH_CAPACITY {
            self.write_batch()?;
        }
        self.batch.extend_from_slice(bytes);
        Ok(())
    }

    /// Writes out everything written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_batch()?;
        self.inner.flush()
    }

    fn write_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let result = self.inner.write_all(&self.batch);
        self.batch.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_order_of_small_and_large_writes() {
        let mut writer = BatchWriter::new(Vec::new());
        writer.write(b"ab").unwrap();
        writer.write(&vec![b'x'; DIRECT_WRITE]).unwrap();
        writer.write(b"cd").unwrap();
        assert_eq!(writer.inner.len(), 2 + DIRECT_WRITE);
        writer.flush().unwrap();
        assert_eq!(&writer.inner[..2], b"ab");
        assert!(writer.inner.ends_with(b"xcd"));
    }
}
