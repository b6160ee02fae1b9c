//! The checkpoint file: how far each followed file was read and written
//! out, so that a restart goes on from there.
//!
//! Files are recorded by device and inode, so a file renamed by rotation
//! while cfscrub was stopped is still found. The file is replaced
//! atomically: written to a temporary file in the same directory, synced,
//! then renamed over the old one.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::file::{FileId, Fingerprint};
use crate::observe::os_message;

/// Version of the format, stored in the file.
const FORMAT_VERSION: u32 = 1;

/// One followed file in a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The path the file was followed by.
    pub path: PathBuf,
    /// Device number of the file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Creation time in nanoseconds since the Unix epoch, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_ns: Option<u64>,
    /// Offset after the last byte written out: the start of the first
    /// line that was not written yet.
    pub offset: u64,
    /// The bytes before `offset`, to tell on restart whether the file
    /// still has them there. Checkpoints of older versions have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
}

impl Entry {
    /// Returns the identity of the recorded file.
    pub fn id(&self) -> FileId {
        FileId { dev: self.dev, ino: self.ino, birth_ns: self.birth_ns }
    }
}

/// The contents of a checkpoint file. Entries of one path are in the
/// order their files are read: a rotated file before its successor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    version: u32,
    /// The followed files.
    pub files: Vec<Entry>,
}

/// A checkpoint that could not be read or written.
#[derive(Debug)]
pub enum CheckpointError {
    /// Reading the file failed.
    Read { path: PathBuf, source: io::Error },
    /// The file is not a checkpoint of this version.
    Invalid { path: PathBuf, detail: String },
    /// Writing or renaming the file failed.
    Write { path: PathBuf, source: io::Error },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Read { path, source } => write!(
                f,
                "cannot read checkpoint {}: {}",
                path.display(),
                os_message(source)
            ),
            CheckpointError::Invalid { path, detail } => write!(
                f,
                "invalid checkpoint {}: {detail}; delete it to start over",
                path.display()
            ),
            CheckpointError::Write { path, source }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                write!(
                    f,
                    "cannot write checkpoint {}: its directory does not \
                     exist; create it or choose another --checkpoint",
                    path.display()
                )
            }
            CheckpointError::Write { path, source } => write!(
                f,
                "cannot write checkpoint {}: {}",
                path.display(),
                os_message(source)
            ),
        }
    }
}

// The messages above contain the I/O error, so it is not also returned as
// the source: the binary prints the whole chain, which would repeat it.
impl std::error::Error for CheckpointError {}

impl Checkpoint {
    /// Returns a checkpoint of `files`.
    pub fn new(files: Vec<Entry>) -> Checkpoint {
        Checkpoint { version: FORMAT_VERSION, files }
    }

    /// Reads the checkpoint at `path`, or returns `None` when there is no
    /// file there yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CheckpointError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let invalid = |detail: String| CheckpointError::Invalid {
            path: path.to_owned(),
            detail,
        };
        let checkpoint: Checkpoint = serde_json::from_slice(&text)
            .map_err(|e| invalid(e.to_string()))?;
        if checkpoint.version != FORMAT_VERSION {
            return Err(invalid(format!(
                "version {}, expected {FORMAT_VERSION}",
                checkpoint.version
            )));
        }
        Ok(Some(checkpoint))
    }

    /// Checks that a checkpoint can be written at `path`, by creating and
    /// removing the temporary file that [`Checkpoint::save`] uses.
    pub fn check_writable(path: &Path) -> Result<(), CheckpointError> {
        let temp = temp_path(path);
        File::create(&temp).and_then(|_| std::fs::remove_file(&temp)).map_err(
            |source| CheckpointError::Write { path: path.to_owned(), source },
        )
    }

    /// Replaces the file at `path` with this checkpoint, atomically: after
    /// a crash, or to a reader, the file has the old contents or the new,
    /// never a mix.
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let error =
            |source| CheckpointError::Write { path: path.to_owned(), source };
        let temp = temp_path(path);
        let result = write_synced(&temp, self)
            .and_then(|()| std::fs::rename(&temp, path))
            .and_then(|()| sync_parent(path));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map_err(error)
    }
}

/// Returns the temporary file beside `path`. The process id keeps two
/// processes that were given the same checkpoint by mistake from writing
/// one temporary file.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn write_synced(path: &Path, checkpoint: &Checkpoint) -> io::Result<()> {
    let mut file = File::create(path)?;
    let mut text = serde_json::to_vec_pretty(checkpoint)?;
    text.push(b'\n');
    file.write_all(&text)?;
    file.sync_all()
}

/// Syncs the directory that contains `path`, so the rename survives a
/// crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("cfscrub-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = temp_dir("round-trip");
        let path = dir.join("follow.checkpoint");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let checkpoint = Checkpoint::new(vec![Entry {
            path: "/var/log/app.log".into(),
            dev: 7,
            ino: 42,
            birth_ns: Some(1),
            offset: 1024,
            fingerprint: Some(Fingerprint::of(b"line\n")),
        }]);
        checkpoint.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(checkpoint));
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["follow.checkpoint"], "temporary file left over");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_rejects_other_content() {
        let dir = temp_dir("invalid");
        let path = dir.join("follow.checkpoint");
        std::fs::write(&path, b"not json").unwrap();
        let error = Checkpoint::load(&path).unwrap_err();
        assert!(matches!(error, CheckpointError::Invalid { .. }));
        assert!(error.to_string().contains("delete it to start over"));
        std::fs::write(&path, br#"{"version":9,"files":[]}"#).unwrap();
        let error = Checkpoint::load(&path).unwrap_err();
        assert!(error.to_string().contains("version 9, expected 1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
