//! Support shared by the integration tests: planting generated
//! credentials, feeding the engine in chunks, running the binary and
//! comparing outputs without printing them.
//!
//! Each test binary uses only part of this module.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use cfscrub::engine::{Finding, Kind, Redactor, Scanner, Sink, sample};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Returns a seeded random number generator, so a failing case can be
/// repeated.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Returns a scanner with the default configuration.
pub fn default_scanner() -> Arc<Scanner> {
    Arc::new(Scanner::builder().build().expect("defaults are valid"))
}

/// Returns the label that the default style writes for `kind`.
pub fn label(kind: Kind) -> Vec<u8> {
    format!("[REDACTED:{}]", kind.id()).into_bytes()
}

/// A sink that keeps the output and the findings.
#[derive(Default)]
pub struct Collect {
    pub out: Vec<u8>,
    pub findings: Vec<Finding>,
}

impl Sink for Collect {
    type Error = std::convert::Infallible;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finding(&mut self, finding: &Finding) -> Result<(), Self::Error> {
        self.findings.push(*finding);
        Ok(())
    }
}

/// Feeds `input` to a new redactor in chunks of the given sizes, cycling
/// through them, and returns the output and the findings.
///
/// After every push it checks that the redactor holds back fewer than
/// [`Scanner::max_hold`] bytes.
pub fn redact_chunked(
    scanner: &Arc<Scanner>,
    input: &[u8],
    sizes: &[usize],
) -> Collect {
    let mut redactor = scanner.redactor();
    redactor.count_lines(true);
    let mut sink = Collect::default();
    let mut rest = input;
    let mut sizes = sizes.iter().copied().filter(|s| *s > 0).cycle();
    while !rest.is_empty() {
        let len = sizes.next().unwrap_or(rest.len()).min(rest.len());
        push(&mut redactor, &rest[..len], &mut sink);
        assert!(
            redactor.pending_len() < scanner.max_hold(),
            "redactor holds {} bytes, the bound is {}",
            redactor.pending_len(),
            scanner.max_hold()
        );
        rest = &rest[len..];
    }
    let Ok(()) = redactor.finish(&mut sink);
    sink
}

/// Feeds `input` to a new redactor split in two at `at`.
pub fn redact_split(
    scanner: &Arc<Scanner>,
    input: &[u8],
    at: usize,
) -> Collect {
    let mut redactor = scanner.redactor();
    redactor.count_lines(true);
    let mut sink = Collect::default();
    push(&mut redactor, &input[..at], &mut sink);
    push(&mut redactor, &input[at..], &mut sink);
    let Ok(()) = redactor.finish(&mut sink);
    sink
}

fn push(redactor: &mut Redactor, chunk: &[u8], sink: &mut Collect) {
    let Ok(()) = redactor.push(chunk, sink);
}

/// Describes how `actual` differs from `expected` by lengths and the first
/// differing offset, never by content, because either may hold a
/// credential. Returns `None` when they are equal.
pub fn difference(actual: &[u8], expected: &[u8]) -> Option<String> {
    if actual == expected {
        return None;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    Some(format!(
        "output differs from the expected output at byte {first}: \
         {} bytes, expected {}",
        actual.len(),
        expected.len()
    ))
}

/// Panics with [`difference`] unless `actual` equals `expected`.
pub fn assert_same(actual: &[u8], expected: &[u8], case: &str) {
    if let Some(difference) = difference(actual, expected) {
        panic!("{case}: {difference}");
    }
}

/// Reports whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// A credential of every kind, generated from `seed`, with the text that
/// must stand before it to be found: a keyword for the legacy kinds,
/// nothing for the others.
pub fn every_kind(seed: u64) -> Vec<(Kind, &'static str, String)> {
    let mut rng = rng(seed);
    Kind::ALL
        .into_iter()
        .map(|kind| {
            let context = match kind {
                Kind::LegacyToken => "CF_API_TOKEN=",
                Kind::LegacyGlobalKey => "X-Auth-Key: ",
                _ => "",
            };
            (kind, context, sample::credential(&mut rng, kind))
        })
        .collect()
}

/// Returns a command that runs the cfscrub binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cfscrub"))
}

/// Reports whether the tests run in CI, where a missing component is a
/// failure and not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Returns the directory of the real log samples, which sits beside the
/// repository, or `None` outside CI when it is missing. In CI a missing
/// corpus fails the test.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/loghub");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "corpus directory {} not found: CI needs a copy of shared/ beside \
         the clone",
        dir.display()
    );
    eprintln!("skipping: corpus directory {} not found", dir.display());
    None
}

/// Returns the sorted paths of the `.log` files in the corpus.
pub fn corpus_logs(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .map(|entry| entry.expect("corpus entry is readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}

/// A fresh directory for one test's files, under Cargo's temporary
/// directory for integration tests. Removed when dropped.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    /// Creates an empty directory named after `test`.
    pub fn new(test: &str) -> TestDir {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("test directory is created");
        TestDir { path }
    }

    /// Writes `contents` to the file `name` in the directory and returns
    /// its path.
    pub fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).expect("test file is written");
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Runs the binary with `args`, writes `stdin` to it from another thread
/// and returns what it printed, waiting at most `HANG_GUARD`.
pub fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;

    let mut child = binary()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    // A closed pipe only means cfscrub stopped reading, which the caller
    // checks through the status.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let output = wait_output(child);
    writer.join().expect("stdin writer does not panic");
    output
}

/// Maximum time a test waits for the binary before it fails: a bound on
/// a hang, not a measure of speed.
pub const HANG_GUARD: std::time::Duration = std::time::Duration::from_secs(60);

/// Collects the output of `child` in the background and waits for it to
/// exit, killing it and failing when it runs longer than [`HANG_GUARD`].
pub fn wait_output(child: std::process::Child) -> std::process::Output {
    let pid = child.id();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match result.recv_timeout(HANG_GUARD) {
        Ok(output) => output.expect("cfscrub's output is read"),
        Err(_) => {
            // The child is owned by the waiting thread, so it is ended by
            // its id.
            let _ =
                Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("cfscrub (pid {pid}) still running after {HANG_GUARD:?}");
        }
    }
}
