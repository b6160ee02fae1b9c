//! File identity and rotation: which file a path names, and how it
//! changed since it was last looked at.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Bytes before the read position kept to recognize the file later. A
/// file rewritten since would have to repeat this many bytes at the same
/// offset to pass for the one that was read.
pub const TAIL_LEN: usize = 64;

/// The identity of a file, independent of its name: a rename keeps it, a
/// new file at the same path gets a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// Device number of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Creation time in nanoseconds since the Unix epoch, where the file
    /// system records it. An inode number is reused after its file is
    /// deleted, so a checkpoint compares this too.
    pub birth_ns: Option<u64>,
}

impl FileId {
    /// Returns the identity of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> FileId {
        let birth_ns = metadata
            .created()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .and_then(|since| u64::try_from(since.as_nanos()).ok());
        FileId { dev: metadata.dev(), ino: metadata.ino(), birth_ns }
    }

    /// Returns whether `other` is the same file. A creation time missing
    /// on either side does not count against it.
    pub fn same_file(&self, other: &FileId) -> bool {
        let births_agree = match (self.birth_ns, other.birth_ns) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.dev == other.dev && self.ino == other.ino && births_agree
    }
}

/// The way a followed file was rotated, as the `rotation` metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The file was renamed and a new one took its path (logrotate's
    /// `create`).
    Rename,
    /// The file was cut to a shorter length in place (logrotate's
    /// `copytruncate`).
    Truncate,
    /// The file was deleted and a new one took its path.
    Recreate,
}

impl Rotation {
    /// Returns the label value.
    pub fn id(self) -> &'static str {
        match self {
            Rotation::Rename => "rename",
            Rotation::Truncate => "truncate",
            Rotation::Recreate => "recreate",
        }
    }
}

/// A digest of the bytes just before an offset, stored in the checkpoint
/// in place of the bytes themselves, which may hold part of a credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Number of bytes covered, ending at the offset: [`TAIL_LEN`], or
    /// fewer when the offset is nearer the start of the file.
    pub len: u32,
    /// SHA-256 of those bytes, in lowercase hex.
    pub sha256: String,
}

impl Fingerprint {
    /// Returns the fingerprint of `bytes`.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(bytes);
        let sha256 = digest.iter().map(|b| format!("{b:02x}")).collect();
        Fingerprint { len: bytes.len() as u32, sha256 }
    }
}

/// The position [`OpenFile::resume`] starts reading at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumed {
    /// At the offset asked for.
    AtOffset,
    /// At the start, because the bytes before the offset changed.
    Rewritten,
    /// At the start, because the offset is inside a line, as after a line
    /// longer than `LONG_LINE` was written out in pieces.
    InsideLine,
}

/// An open file of a followed path, read from where the last read ended.
#[derive(Debug)]
pub struct OpenFile {
    file: File,
    /// The identity when it was opened.
    pub id: FileId,
    /// The path it was opened by. After a rename the file may have another
    /// name, or none.
    pub path: PathBuf,
    /// Offset of the next byte to read.
    pub position: u64,
    /// When a read last returned data, or when the file was opened: a
    /// deleted file that stays idle is closed.
    pub last_data: Instant,
    /// The last bytes before `position`, up to [`TAIL_LEN`], as they were
    /// read: if the file no longer has them there, it was rewritten.
    tail: Vec<u8>,
}

impl OpenFile {
    /// Opens `path` for reading at `position`, or at its end when
    /// `position` is `None`. A position past the end reads from the start,
    /// because the file was truncated since that position was recorded.
    pub fn open(path: &Path, position: Option<u64>) -> io::Result<OpenFile> {
        let file = File::open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = metadata.len();
        let position = match position {
            Some(at) if at <= len => at,
            Some(_) => 0,
            None => len,
        };
        let mut open = OpenFile {
            file,
            id: FileId::of(&metadata),
            path: path.to_owned(),
            position: 0,
            last_data: Instant::now(),
            tail: Vec::new(),
        };
        open.seek(position)?;
        open.tail = open.bytes_before(position)?;
        Ok(open)
    }

    /// Opens `path` to go on at `offset`, where an earlier run stopped, or
    /// at its start when that is not safe, and returns the file and where
    /// it starts.
    ///
    /// With `expected`, the bytes before `offset` must have that
    /// fingerprint, or else the file was rewritten since. The byte before
    /// `offset` must also be a newline, with or without a fingerprint: a
    /// new run starting inside a line would hand the engine the rest of a
    /// credential without its prefix, which it cannot recognize.
    pub fn resume(
        path: &Path,
        offset: u64,
        expected: Option<&Fingerprint>,
    ) -> io::Result<(OpenFile, Resumed)> {
        let mut open = OpenFile::open(path, Some(offset))?;
        if open.position != offset {
            // Shorter than the offset: truncated.
            return Ok((open, Resumed::Rewritten));
        }
        let same_bytes = expected.is_none_or(|expected| {
            let covered = usize::try_from(expected.len).unwrap_or(0);
            let tail = open
                .tail
                .len()
                .checked_sub(covered)
                .map(|start| &open.tail[start..]);
            tail.is_some_and(|tail| Fingerprint::of(tail) == *expected)
        });
        let line_start = offset == 0 || open.tail.last() == Some(&b'\n');
        // Without a fingerprint, an offset inside a line most likely means
        // a rewrite too: older versions recorded one only after a piece of
        // a line longer than `LONG_LINE`.
        let resumed = if !same_bytes || (!line_start && expected.is_none()) {
            Resumed::Rewritten
        } else if !line_start {
            Resumed::InsideLine
        } else {
            return Ok((open, Resumed::AtOffset));
        };
        open.seek(0)?;
        Ok((open, resumed))
    }

    /// Moves the next read to `position`.
    pub fn seek(&mut self, position: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(position))?;
        self.position = position;
        self.tail.clear();
        Ok(())
    }

    /// Returns the fingerprint of the bytes before the read position.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.tail)
    }

    /// Reads the up to [`TAIL_LEN`] bytes before `position` with one
    /// positioned read, which leaves the read offset where it is.
    fn bytes_before(&self, position: u64) -> io::Result<Vec<u8>> {
        let len = position.min(TAIL_LEN as u64) as usize;
        let mut bytes = vec![0; len];
        let mut filled = 0;
        while filled < len {
            let at = position - (len - filled) as u64;
            match self.file.read_at(&mut bytes[filled..], at) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        Ok(bytes)
    }

    /// Returns the current length of the file, through the open handle.
    pub fn current_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// Returns whether the file still has a name: false once it was
    /// deleted, even while it stays open here.
    pub fn is_linked(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.nlink() > 0)
    }

    /// Returns whether the file was truncated since the last read, and if
    /// so moves the next read to its start.
    ///
    /// A file shorter than the read position was truncated. A longer one
    /// may have been truncated and written past the position since: only
    /// then are the bytes before the position read again, with one small
    /// positioned read, and compared with those read before. A file that
    /// did not grow costs no read here.
    pub fn rewind_if_truncated(&mut self) -> io::Result<bool> {
        let len = self.current_len()?;
        if len == self.position {
            return Ok(false);
        }
        if len > self.position {
            let now = self.bytes_before(self.position)?;
            if now == self.tail {
                return Ok(false);
            }
        }
        self.seek(0)?;
        Ok(true)
    }

    /// Reads the next bytes into `buf`, retrying when interrupted by a
    /// signal. Returns 0 at the current end of the file.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read(buf) {
                Ok(len) => {
                    self.position += len as u64;
                    if len > 0 {
                        self.last_data = Instant::now();
                        self.keep_tail(&buf[..len]);
                    }
                    return Ok(len);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl OpenFile {
    /// Keeps the last [`TAIL_LEN`] bytes read, `read` being the newest.
    fn keep_tail(&mut self, read: &[u8]) {
        if read.len() >= TAIL_LEN {
            self.tail.clear();
            self.tail.extend_from_slice(&read[read.len() - TAIL_LEN..]);
            return;
        }
        let excess = (self.tail.len() + read.len()).saturating_sub(TAIL_LEN);
        self.tail.drain(..excess);
        self.tail.extend_from_slice(read);
    }
}

/// Returns the identity of the file at `path`, or `None` when nothing is
/// there.
pub fn identity_at(path: &Path) -> io::Result<Option<FileId>> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(Some(FileId::of(&metadata))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Looks in `dir`, not in its subdirectories, for a regular file with
/// identity `id`: where a rotated file went while cfscrub was not
/// running.
pub fn find_in_dir(dir: &Path, id: &FileId) -> io::Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // Comparing the inode of the directory entry first keeps this to
        // one stat for the match instead of one per file.
        let Ok(ino) = entry.metadata().map(|m| m.ino()) else {
            continue;
        };
        if ino != id.ino {
            continue;
        }
        let path = entry.path();
        let found = identity_at(&path)?;
        if found.is_some_and(|found| found.same_file(id)) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("cfscrub-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn rename_keeps_identity() {
        let dir = temp_dir("rename");
        let path = dir.join("app.log");
        std::fs::write(&path, b"one\n").unwrap();
        let before = identity_at(&path).unwrap().unwrap();
        let rotated = dir.join("app.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        std::fs::write(&path, b"two\n").unwrap();
        let after = identity_at(&rotated).unwrap().unwrap();
        let new = identity_at(&path).unwrap().unwrap();
        assert!(before.same_file(&after));
        assert!(!before.same_file(&new));
        assert_eq!(find_in_dir(&dir, &before).unwrap(), Some(rotated));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn open_past_end_reads_from_start() {
        let dir = temp_dir("past-end");
        let path = dir.join("app.log");
        std::fs::write(&path, b"short\n").unwrap();
        let open = OpenFile::open(&path, Some(100)).unwrap();
        assert_eq!(open.position, 0);
        let at_end = OpenFile::open(&path, None).unwrap();
        assert_eq!(at_end.position, 6);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncation_rewinds_to_start() {
        let dir = temp_dir("truncate");
        let path = dir.join("app.log");
        std::fs::write(&path, b"first line\n").unwrap();
        let mut open = OpenFile::open(&path, None).unwrap();
        assert!(!open.rewind_if_truncated().unwrap());
        std::fs::write(&path, b"x\n").unwrap();
        assert!(open.rewind_if_truncated().unwrap());
        let mut buf = [0u8; 16];
        assert_eq!(open.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"x\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rewrite_past_position_rewinds() {
        let dir = temp_dir("rewrite");
        let path = dir.join("app.log");
        std::fs::write(&path, b"first line\n").unwrap();
        let mut open = OpenFile::open(&path, Some(0)).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(open.read(&mut buf).unwrap(), 11);
        let mut log =
            std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut log, b"appended\n").unwrap();
        assert!(!open.rewind_if_truncated().unwrap(), "append is no rewrite");
        assert_eq!(open.read(&mut buf).unwrap(), 9);
        std::fs::write(&path, b"a longer line than before, past it\n")
            .unwrap();
        assert!(open.rewind_if_truncated().unwrap());
        assert_eq!(open.position, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resume_checks_bytes_before_offset() {
        let dir = temp_dir("resume");
        let path = dir.join("app.log");
        std::fs::write(&path, b"one\ntwo\nthree\n").unwrap();
        let same = Fingerprint::of(b"one\n");
        let (open, resumed) = OpenFile::resume(&path, 4, Some(&same)).unwrap();
        assert_eq!(resumed, Resumed::AtOffset);
        assert_eq!(open.position, 4);
        assert_eq!(open.fingerprint(), same);

        let other = Fingerprint::of(b"uno\n");
        let (open, resumed) =
            OpenFile::resume(&path, 4, Some(&other)).unwrap();
        assert_eq!(resumed, Resumed::Rewritten);
        assert_eq!(open.position, 0);

        let inside = Fingerprint::of(b"one\ntw");
        let (open, resumed) =
            OpenFile::resume(&path, 6, Some(&inside)).unwrap();
        assert_eq!(resumed, Resumed::InsideLine);
        assert_eq!(open.position, 0);

        // Without a fingerprint, only an offset at a line start is
        // trusted.
        let (open, resumed) = OpenFile::resume(&path, 8, None).unwrap();
        assert_eq!(resumed, Resumed::AtOffset);
        assert_eq!(open.position, 8);
        let (open, resumed) = OpenFile::resume(&path, 6, None).unwrap();
        assert_eq!(resumed, Resumed::Rewritten);
        assert_eq!(open.position, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tail_keeps_last_bytes_read() {
        let dir = temp_dir("tail");
        let path = dir.join("app.log");
        let text: Vec<u8> = (0..200u8).collect();
        std::fs::write(&path, &text).unwrap();
        let mut open = OpenFile::open(&path, Some(0)).unwrap();
        let mut buf = [0u8; 30];
        while open.read(&mut buf).unwrap() > 0 {}
        let expected = Fingerprint::of(&text[200 - TAIL_LEN..]);
        assert_eq!(open.fingerprint(), expected);
        let at_end = OpenFile::open(&path, None).unwrap();
        assert_eq!(at_end.fingerprint(), expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
