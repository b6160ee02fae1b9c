//! Faults and input extremes in follow mode, run as the real binary:
//! SIGTERM and SIGINT at random moments, a closed or full stdout, a file
//! unlinked while it is read, and a file that stays empty and then grows
//! by one byte at a time.

mod follow_support;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cfscrub::engine::Scanner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use follow_support::{
    Follow, Line, append, assert_lines, line, open_log, temp_dir,
    wait_for_lines,
};

/// Rounds of the random-signal test. Each starts cfscrub once.
const SIGNAL_ROUNDS: usize = 8;

fn redacted(input: &[u8]) -> Vec<u8> {
    let scanner = Arc::new(Scanner::builder().build().unwrap());
    let mut out = Vec::new();
    scanner.redact(input, &mut out);
    out
}

/// Returns the seed of a random test: `CFSCRUB_TEST_SEED` when set, so a
/// failure can be repeated, or else one from the clock.
fn test_seed() -> u64 {
    match std::env::var("CFSCRUB_TEST_SEED") {
        Ok(text) => text.parse().expect("CFSCRUB_TEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_nanos() as u64,
    }
}

/// Returns the `n` for which `output` is the redaction of the first `n`
/// bytes of `content`, if there is one: the bytes cfscrub read.
fn bytes_behind(output: &[u8], content: &[u8]) -> Option<usize> {
    // Only whole lines are written before the stop, so the search is over
    // the line after the last newline in the output.
    let lines = output.iter().filter(|b| **b == b'\n').count();
    let start = match lines.checked_sub(1) {
        None => 0,
        Some(last) => memchr::memchr_iter(b'\n', content).nth(last)? + 1,
    };
    let end = content[start..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(content.len(), |at| start + at);
    (start..=end).find(|n| redacted(&content[..*n]) == output)
}

/// Runs one round of the random-signal test: a logger appends lines, some
/// in two writes cut anywhere, and a signal comes at a random moment. The output must be the redaction of exactly the bytes read,
/// with the unfinished last line written out, and the status 0.
fn signal_round(rng: &mut StdRng, round: usize, case: &str) {
    let signal = if round % 2 == 0 { libc::SIGTERM } else { libc::SIGINT };
    let dir = temp_dir(&format!("follow-signal-{round}"));
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);

    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let seed: u64 = rng.random();
    let logger_path = path.clone();
    let logger = std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut file = open_log(&logger_path);
        let mut lines = Vec::new();
        for seq in 0.. {
            if stopped.load(Ordering::SeqCst) {
                break;
            }
            let line = line("a", seq);
            let cut = rng.random_range(0..line.text.len());
            let (head, tail) = line.text.split_at(cut);
            append(&mut file, head);
            if rng.random_range(0..4) == 0 {
                std::thread::sleep(Duration::from_micros(
                    rng.random_range(0..3000),
                ));
            }
            append(&mut file, tail);
            lines.push(line);
            std::thread::sleep(Duration::from_micros(500));
        }
        lines
    });

    wait_for_lines(&follow, 1);
    std::thread::sleep(Duration::from_micros(rng.random_range(0..200_000)));
    let (status, stderr) = follow.stop_with(signal);
    stop.store(true, Ordering::SeqCst);
    let lines: Vec<Line> = logger.join().expect("logger does not panic");

    assert!(status.success(), "{case}: status {status}; stderr:\n{stderr}");
    let content = std::fs::read(&path).unwrap();
    let output = std::fs::read(dir.join("out")).unwrap();
    let read = bytes_behind(&output, &content);
    assert!(
        read.is_some(),
        "{case}: the output ({} bytes, {} lines) is not the redaction of \
         the first bytes of the file",
        output.len(),
        output.iter().filter(|b| **b == b'\n').count()
    );
    for line in &lines {
        let body = &line.credential[5..45];
        assert!(
            memchr::memmem::find(&output, body.as_bytes()).is_none(),
            "{case}: a credential body is in the output"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn signal_at_random_keeps_lines() {
    let seed = test_seed();
    eprintln!("seed {seed}; set CFSCRUB_TEST_SEED={seed} to repeat");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..SIGNAL_ROUNDS {
        let case = format!("seed {seed}, round {round}");
        signal_round(&mut rng, round, &case);
    }
}

/// A file unlinked while it is followed, with no new file at its path,
/// is read to its end through the open descriptor, including what the
/// application writes to it after the unlink.
#[test]
fn unlinked_file_read_to_end() {
    let dir = temp_dir("follow-unlinked");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    // The poll interval is also how long a deleted file may stay idle
    // before it is closed; 2 s covers the test's own pauses.
    let args = ["app.log", "--poll-interval", "2"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let lines: Vec<Line> = (0..10).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..5] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, 5);
    std::fs::remove_file(&path).unwrap();
    for line in &lines[5..] {
        append(&mut log, &line.text);
    }
    let output = wait_for_lines(&follow, 10);
    let (status, stderr) = follow.stop();
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    assert_lines(&output, "a", &lines);
}

/// A file that stays empty for several poll intervals and then grows one
/// byte at a time comes out line by line, exactly.
#[test]
fn byte_by_byte_growth_is_exact() {
    let dir = temp_dir("follow-bytes");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);
    // Empty for five poll intervals: reads that return nothing.
    std::thread::sleep(Duration::from_millis(1000));
    let lines: Vec<Line> = (0..6).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for (index, byte) in lines.iter().flat_map(|l| l.text.bytes()).enumerate()
    {
        log.write_all(&[byte]).unwrap();
        // Now and then cfscrub catches up, so some reads take one byte.
        if index % 7 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let output = wait_for_lines(&follow, lines.len());
    let (status, stderr) = follow.stop();
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    let expected: String = lines.iter().map(|l| l.expected.as_str()).collect();
    assert_eq!(output, expected);
}

/// A reader of stdout that goes away ends follow mode quietly, with
/// status 0, at the next line written.
#[test]
fn closed_stdout_ends_quietly() {
    let dir = temp_dir("follow-closed-stdout");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let mut follow =
        Follow::start_to_stdout(&dir, Stdio::piped(), &["app.log"]);
    let stdout = follow.take_stdout().unwrap();
    let first = line("a", 0);
    let mut log = open_log(&path);
    append(&mut log, &first.text);
    let mut reader = BufReader::new(stdout);
    let mut echoed = String::new();
    reader.read_line(&mut echoed).unwrap();
    assert_eq!(echoed, first.expected);
    drop(reader);
    append(&mut log, &line("a", 1).text);
    let (status, stderr) = follow.wait_exit();
    assert!(status.success(), "status {status}; stderr:\n{stderr}");
    assert!(!stderr.contains("cfscrub:"), "an error reported: {stderr}");
    assert!(!stderr.contains("ERROR"), "an error logged: {stderr}");
}

/// Stdout on a full disk ends follow mode with one error line and
/// status 2.
#[test]
fn full_stdout_exits_with_error() {
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full")
    else {
        assert!(!follow_support::in_ci(), "/dev/full is missing");
        eprintln!("skipping: /dev/full is missing");
        return;
    };
    let dir = temp_dir("follow-full-stdout");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start_to_stdout(&dir, full.into(), &["app.log"]);
    append(&mut open_log(&path), &line("a", 0).text);
    let (status, stderr) = follow.wait_exit();
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    let errors: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with("cfscrub:")).collect();
    assert_eq!(
        errors,
        ["cfscrub: write to stdout failed: No space left on device"],
        "stderr:\n{stderr}"
    );
}
