//! File identity and rotation: which file a path names, and how it
//! changed since it was last looked at.

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

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
        };
        open.seek(position)?;
        Ok(open)
    }

    /// Moves the next read to `position`.
    pub fn seek(&mut self, position: u64) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(position))?;
        self.position = position;
        Ok(())
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

    /// Returns whether the file is now shorter than the read position,
    /// which means it was truncated, and if so moves the next read to its
    /// start.
    pub fn rewind_if_truncated(&mut self) -> io::Result<bool> {
        if self.current_len()? >= self.position {
            return Ok(false);
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
                    }
                    return Ok(len);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
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
}
