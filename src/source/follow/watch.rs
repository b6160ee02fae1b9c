//! Watching: which paths the patterns name, and when to look at them
//! again.
//!
//! inotify, through `notify`, wakes the follower as soon as a watched
//! directory changes. Where it is not available, or delivers no events
//! (some network and overlay file systems), the follower still looks at
//! every path once per poll interval, so polling is the fallback without
//! any switch.

use std::collections::HashSet;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// The reason the follow loop wakes up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A file in a watched directory was written to or truncated: the open
    /// files have news, the paths do not.
    Data,
    /// A file in a watched directory was created, renamed or deleted, or
    /// events were lost: every path must be looked at again.
    Names,
    /// The process was asked to stop.
    Stop,
}

/// A path to follow, as given on the command line: a file name, or a
/// glob such as `/var/log/app/*.log`.
#[derive(Clone, Debug)]
pub struct Pattern {
    text: String,
    glob: Option<glob::Pattern>,
    /// The deepest directory without a wildcard that contains every match.
    base: PathBuf,
}

/// A pattern that is not a valid glob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// The problem found in it.
    pub detail: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pattern {:?}: {}", self.pattern, self.detail)
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Parses `text`. It is a glob when it contains `*`, `?` or `[`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let error =
            |detail: String| PatternError { pattern: text.to_owned(), detail };
        if text.is_empty() {
            return Err(error("empty path".to_owned()));
        }
        let path = Path::new(text);
        if !has_wildcard(text) {
            if text.ends_with('/') {
                return Err(error("names a directory, not a file".to_owned()));
            }
            let base = parent_dir(path);
            return Ok(Pattern { text: text.to_owned(), glob: None, base });
        }
        let glob = glob::Pattern::new(text)
            .map_err(|e| error(format!("{} at byte {}", e.msg, e.pos)))?;
        let mut base = PathBuf::new();
        for component in path.components() {
            let part = component.as_os_str().to_string_lossy();
            if has_wildcard(&part) {
                break;
            }
            base.push(component);
        }
        if base.as_os_str().is_empty() {
            base.push(Component::CurDir);
        }
        Ok(Pattern { text: text.to_owned(), glob: Some(glob), base })
    }

    /// Returns the pattern as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Returns whether the pattern is a glob.
    pub fn is_glob(&self) -> bool {
        self.glob.is_some()
    }

    /// Returns whether `path` is a file this pattern names: the same file
    /// as a plain path, or a name that the glob matches, compared as given
    /// and as an absolute path.
    pub fn names(&self, path: &Path) -> bool {
        let Some(glob) = &self.glob else {
            return crate::source::same_file(Path::new(&self.text), path);
        };
        // As the directory walk of `expand` matches: a wildcard matches
        // neither `/` nor a leading `.`.
        let options = glob::MatchOptions {
            require_literal_separator: true,
            require_literal_leading_dot: true,
            ..glob::MatchOptions::new()
        };
        if glob.matches_path_with(path, options) {
            return true;
        }
        std::path::absolute(path)
            .is_ok_and(|absolute| glob.matches_path_with(&absolute, options))
    }

    /// Returns the directory to watch for changes of the matches.
    pub fn watch_dir(&self) -> &Path {
        &self.base
    }

    /// Returns the regular files the pattern names now. A plain path is
    /// returned even while no file is there, so it is followed once one
    /// appears.
    pub fn expand(&self) -> Vec<PathBuf> {
        let Some(glob) = &self.glob else {
            return vec![PathBuf::from(&self.text)];
        };
        // glob 0.3.4 panics on a name that is not UTF-8 in a listed
        // directory when require_literal_leading_dot is set, so hidden
        // names are left out by `is_hidden_match` instead. Names that are
        // not UTF-8 never match.
        let Ok(paths) =
            glob::glob_with(glob.as_str(), glob::MatchOptions::new())
        else {
            return Vec::new();
        };
        // Entries that vanish or cannot be read between the listing and
        // the check are left for the next look.
        paths
            .filter_map(Result::ok)
            .filter(|path| !self.is_hidden_match(path) && path.is_file())
            .collect()
    }

    /// Reports whether a wildcard matched a name that starts with `.`
    /// below the base directory: a pattern matches a hidden file or
    /// directory only where its own component starts with `.`.
    ///
    /// NOTE: components are paired by position, so below a `**` a hidden
    /// name is left out even where a later pattern component starts with
    /// `.`.
    fn is_hidden_match(&self, path: &Path) -> bool {
        let Ok(below) = path.strip_prefix(&self.base) else {
            return false;
        };
        let pattern = Path::new(&self.text);
        let pattern_below =
            pattern.strip_prefix(&self.base).unwrap_or(pattern);
        let mut pattern_parts = pattern_below.components();
        below.components().any(|component| {
            let literal_dot = pattern_parts.next().is_some_and(|part| {
                part.as_os_str().as_bytes().starts_with(b".")
            });
            component.as_os_str().as_bytes().starts_with(b".") && !literal_dot
        })
    }
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Watches directories with inotify and sends [`Wake::Data`] or
/// [`Wake::Names`] when one changes.
pub struct DirWatcher {
    watcher: Option<RecommendedWatcher>,
    watched: HashSet<PathBuf>,
}

impl DirWatcher {
    /// Starts a watcher that sends to `wake`, or none when `poll_only` is
    /// set or inotify cannot be used. Without a watcher the follower
    /// polls.
    pub fn new(wake: Sender<Wake>, poll_only: bool) -> DirWatcher {
        let watcher = if poll_only {
            None
        } else {
            let handler = move |event: notify::Result<notify::Event>| {
                let wake_up = match event {
                    Ok(event) => classify(&event.kind),
                    // A lost event or a queue overflow: look at everything.
                    Err(_) => Some(Wake::Names),
                };
                if let Some(wake_up) = wake_up {
                    let _ = wake.send(wake_up);
                }
            };
            match notify::recommended_watcher(handler) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        "file system events are not available, polling"
                    );
                    None
                }
            }
        };
        DirWatcher { watcher, watched: HashSet::new() }
    }

    /// Returns whether change events are off, so only polling finds
    /// changes.
    pub fn is_polling(&self) -> bool {
        self.watcher.is_none()
    }

    /// Watches `dir` unless it is watched already. A directory that does
    /// not exist yet is tried again on the next call. Any other failure,
    /// such as the inotify watch limit, turns events off for good.
    pub fn watch(&mut self, dir: &Path) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        if self.watched.contains(dir) {
            return;
        }
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                tracing::debug!(dir = %dir.display(), "watching directory");
                self.watched.insert(dir.to_owned());
            }
            Err(error) if is_missing(&error) => {}
            // NOTE: no test reaches this or the failed start above: they
            // would need the inotify limits lowered, which are settings of
            // the whole machine.
            Err(error) => {
                tracing::warn!(
                    dir = %dir.display(),
                    %error,
                    "watching a directory failed, polling from now on"
                );
                self.watcher = None;
            }
        }
    }

    /// Forgets `dir` when it no longer exists, so it is watched again
    /// once it is created anew.
    pub fn forget_missing(&mut self) {
        self.watched.retain(|dir| dir.is_dir());
    }
}

/// Returns what an event means to the follow loop, or `None` for events
/// it ignores, such as its own opens and reads.
fn classify(kind: &EventKind) -> Option<Wake> {
    match kind {
        EventKind::Access(_) => None,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => {
            Some(Wake::Data)
        }
        _ => Some(Wake::Names),
    }
}

fn is_missing(error: &notify::Error) -> bool {
    match &error.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_path_watches_its_directory() {
        let pattern = Pattern::parse("/var/log/app.log").unwrap();
        assert!(!pattern.is_glob());
        assert_eq!(pattern.watch_dir(), Path::new("/var/log"));
        assert_eq!(pattern.expand(), [PathBuf::from("/var/log/app.log")]);
        let relative = Pattern::parse("app.log").unwrap();
        assert_eq!(relative.watch_dir(), Path::new("."));
    }

    #[test]
    fn glob_watches_deepest_plain_directory() {
        let pattern = Pattern::parse("/var/log/app/*.log").unwrap();
        assert!(pattern.is_glob());
        assert_eq!(pattern.watch_dir(), Path::new("/var/log/app"));
        let nested = Pattern::parse("/var/log/*/app.log").unwrap();
        assert_eq!(nested.watch_dir(), Path::new("/var/log"));
    }

    #[test]
    fn glob_skips_names_not_utf8() {
        use std::ffi::OsStr;

        let dir = std::env::temp_dir()
            .join(format!("cfscrub-glob-utf8-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(OsStr::from_bytes(b"sub\xff")))
            .unwrap();
        for name in [&b"a.log"[..], b"\xff.log", b".hidden.log"] {
            std::fs::write(dir.join(OsStr::from_bytes(name)), b"x\n").unwrap();
        }
        std::fs::write(dir.join(OsStr::from_bytes(b"sub\xff/b.log")), b"")
            .unwrap();

        let text = format!("{}/*.log", dir.display());
        let files = Pattern::parse(&text).unwrap().expand();
        assert_eq!(files, [dir.join("a.log")]);
        let nested = format!("{}/*/*.log", dir.display());
        assert!(Pattern::parse(&nested).unwrap().expand().is_empty());
        let hidden = format!("{}/.*.log", dir.display());
        let files = Pattern::parse(&hidden).unwrap().expand();
        assert_eq!(files, [dir.join(".hidden.log")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn invalid_patterns_are_rejected() {
        let error = Pattern::parse("/var/log/[.log").unwrap_err();
        assert!(error.to_string().starts_with("invalid pattern"));
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("/var/log/").is_err());
    }
}
