//! The stream filter end to end: the real binary, real pipes and files.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::mpsc;

use cfscrub::engine::{Kind, sample};
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{HANG_GUARD, TestDir, assert_same, binary, contains, label, run};

fn stderr_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Reads lines from the child's stdout on another thread, so the test can
/// wait for each one with a bound.
fn line_reader(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if send.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    lines
}

/// `(echo a; sleep 5; echo b) | cfscrub` prints `a` before `b` exists:
/// each line is read back before the next one is written.
#[test]
fn line_written_before_next_arrives() {
    let mut rng = common::rng(1);
    let credential = sample::prefixed(&mut rng, Kind::UserToken);
    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut stdin = child.stdin.take().unwrap();
    let lines = line_reader(child.stdout.take().unwrap());

    let steps = [
        ("a\n".to_owned(), "a\n".to_owned()),
        (
            format!("token={credential}\n"),
            "token=[REDACTED:user_token]\n".into(),
        ),
        (
            format!("CF_API_TOKEN={}\n", sample::legacy_token(&mut rng)),
            "CF_API_TOKEN=[REDACTED:legacy_token]\n".to_owned(),
        ),
    ];
    for (index, (line, expected)) in steps.iter().enumerate() {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let echoed = lines.recv_timeout(HANG_GUARD).unwrap_or_else(|_| {
            panic!("line {index} not written while stdin stays open")
        });
        assert!(echoed == *expected, "line {index} written differently");
    }

    stdin.write_all(b"b\n").unwrap();
    drop(stdin);
    let last = lines.recv_timeout(HANG_GUARD).expect("last line written");
    assert_eq!(last, "b\n");
    let output = common::wait_output(child);
    assert!(output.status.success(), "status {}", output.status);
}

/// `cfscrub big.log | head -1`: the reader goes away and cfscrub ends
/// quietly with status 0.
#[test]
fn closed_stdout_ends_quietly() {
    let dir = TestDir::new("closed-stdout");
    let line = b"2024-01-01 INFO request served in 3 ms\n";
    let big = dir.file("big.log", &line.repeat(400_000));
    let mut child = binary()
        .arg(&big)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first.as_bytes(), line);
    drop(stdout);
    let output = common::wait_output(child);
    let stderr = stderr_text(&output);
    assert!(output.status.success(), "status {}: {stderr}", output.status);
    assert!(!stderr.contains("Broken pipe"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}

/// A missing file between two good ones is reported, like `cat` does, and
/// the next file is still read.
#[test]
fn missing_file_reported_next_read() {
    let dir = TestDir::new("missing-file");
    let first = dir.file("first.log", b"first\n");
    let missing = dir.path.join("missing.log");
    let last = dir.file("last.log", b"last\n");
    let args = [
        first.to_str().unwrap(),
        missing.to_str().unwrap(),
        last.to_str().unwrap(),
    ];
    let output = run(&args, b"");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(output.stdout, b"first\nlast\n");
    let stderr = stderr_text(&output);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(missing.to_str().unwrap()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "cause: {stderr}");
}

/// A file name with a newline in it still gives a one-line error, with
/// the newline escaped.
#[test]
fn newline_in_name_stays_one_line() {
    let dir = TestDir::new("newline-name");
    let missing = dir.path.join("bad\nname.log");
    let output = run(&[missing.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_text(&output);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("bad\\nname.log"), "escaped: {stderr}");
}

/// A directory given as FILE is reported the same way.
#[test]
fn directory_as_file_reported() {
    let dir = TestDir::new("directory-file");
    let good = dir.file("good.log", b"good\n");
    let args = [dir.path.to_str().unwrap(), good.to_str().unwrap()];
    let output = run(&args, b"");
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(output.stdout, b"good\n");
    assert!(stderr_text(&output).contains("is a directory"));
}

/// A metrics text file or findings file that is also an input is
/// rejected before anything is written, so the input stays as it was.
#[test]
fn written_file_as_input_rejected() {
    let dir = TestDir::new("written-input");
    let input = dir.file("app.log", b"line one\nline two\n");
    let name = input.to_str().unwrap();
    for option in ["--metrics-textfile", "--findings"] {
        let output = run(&[option, name, name], b"");
        assert_eq!(output.status.code(), Some(2), "{option}");
        assert!(output.stdout.is_empty(), "{option}: input was read");
        let expected = format!(
            "cfscrub: cannot write {option} to {name}, because it is also \
             an input file; choose another path\n"
        );
        assert_eq!(stderr_text(&output), expected, "{option}");
        let content = std::fs::read(&input).unwrap();
        assert_eq!(
            content, b"line one\nline two\n",
            "{option}: input changed"
        );
    }
}

/// `-` between two files reads standard input there.
#[test]
fn dash_reads_stdin_in_order() {
    let dir = TestDir::new("dash-stdin");
    let first = dir.file("first.log", b"one\n");
    let last = dir.file("last.log", b"three\n");
    let args = [first.to_str().unwrap(), "-", last.to_str().unwrap()];
    let output = run(&args, b"two\n");
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert_eq!(output.stdout, b"one\ntwo\nthree\n");
}

#[test]
fn fail_on_find_exits_one() {
    let mut rng = common::rng(2);
    let credential = sample::prefixed(&mut rng, Kind::AccountToken);
    let input = format!("x {credential}\n");
    let found = run(&["--fail-on-find"], input.as_bytes());
    assert_eq!(found.status.code(), Some(1));
    assert_eq!(found.stdout, b"x [REDACTED:account_token]\n");
    let clean = run(&["--fail-on-find"], b"nothing here\n");
    assert_eq!(clean.status.code(), Some(0));
    let without_flag = run(&[], input.as_bytes());
    assert_eq!(without_flag.status.code(), Some(0));
}

/// Input that is not text passes through byte for byte, with the
/// credential in it replaced.
#[test]
fn binary_bytes_pass_through() {
    let mut rng = common::rng(3);
    let mut input: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let clean = input.clone();
    let output = run(&[], &input);
    assert!(output.status.success());
    assert_same(&output.stdout, &clean, "all byte values");
    let credential = sample::prefixed(&mut rng, Kind::GlobalKey);
    let at = 65_530;
    input.splice(at..at, credential.bytes());
    let output = run(&[], &input);
    let mut expected = clean.clone();
    expected.splice(at..at, label(Kind::GlobalKey));
    assert_same(&output.stdout, &expected, "credential among all byte values");
}

fn findings_of(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

fn fingerprint(credential: &str) -> String {
    let digest = Sha256::digest(credential.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// `--findings PATH` writes one JSON object per finding with its place
/// in the stream and in its source, and never the credential or the text
/// around it.
#[test]
fn findings_json_fields() {
    let mut rng = common::rng(4);
    let user = sample::prefixed(&mut rng, Kind::UserToken);
    let legacy = sample::legacy_token(&mut rng);
    let dir = TestDir::new("findings-json");
    let first = dir.file("first.log", b"one\ntwo\n");
    let second_text = format!(
        "alpha\nbeta\nbefore-marker {user} after-marker\nCF_API_TOKEN={legacy}\n"
    );
    let second = dir.file("second.log", second_text.as_bytes());
    let findings_path = dir.path.join("findings.jsonl");
    let args = [
        "--findings",
        findings_path.to_str().unwrap(),
        first.to_str().unwrap(),
        second.to_str().unwrap(),
    ];
    let output = run(&args, b"");
    assert!(output.status.success(), "{}", stderr_text(&output));
    let text = std::fs::read_to_string(&findings_path).unwrap();
    assert!(!text.contains(&user[5..]), "findings contain a credential");
    assert!(!text.contains(&legacy), "findings contain a credential");
    assert!(!text.contains("marker"), "findings contain the line");
    let findings = findings_of(&text);
    assert_eq!(findings.len(), 2, "{} findings", findings.len());

    let user_at = second_text.find(&user).unwrap() as u64;
    let finding = &findings[0];
    assert_eq!(finding["kind"], "user_token");
    assert_eq!(finding["level"], "checksum_valid");
    assert_eq!(finding["offset"], 8 + user_at);
    assert_eq!(finding["source_offset"], user_at);
    assert_eq!(finding["length"], 53);
    assert_eq!(finding["line"], 3);
    assert_eq!(finding["source"], second.to_str().unwrap());
    assert_eq!(finding["fingerprint"], fingerprint(&user));
    assert_eq!(finding["redacted"], true);

    let legacy_at = second_text.find(&legacy).unwrap() as u64;
    let finding = &findings[1];
    assert_eq!(finding["kind"], "legacy_token");
    assert_eq!(finding["level"], "contextual");
    assert_eq!(finding["offset"], 8 + legacy_at);
    assert_eq!(finding["length"], 40);
    assert_eq!(finding["line"], 4);
    assert_eq!(finding["fingerprint"], fingerprint(&legacy));
}

/// `--findings -` writes the findings to stderr.
#[test]
fn findings_to_stderr() {
    let mut rng = common::rng(5);
    let key = sample::legacy_global_key(&mut rng);
    let input = format!("X-Auth-Key: {key}\n");
    let output = run(&["--findings", "-"], input.as_bytes());
    assert!(output.status.success());
    let stderr = stderr_text(&output);
    assert!(!stderr.contains(&key), "stderr contains the credential");
    let findings = findings_of(&stderr);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["kind"], "legacy_global_key");
    assert_eq!(findings[0]["source"], "-");
    assert_eq!(findings[0]["line"], 1);
    assert_eq!(findings[0]["offset"], 12);
}

#[test]
fn mask_style_keeps_length() {
    for (kind, context, credential) in common::every_kind(6) {
        let input = format!("{context}{credential} tail\n");
        let output = run(&["--style", "mask"], input.as_bytes());
        assert!(output.status.success());
        let prefix = kind.prefix().unwrap_or_default();
        let mut expected = context.as_bytes().to_vec();
        expected.extend_from_slice(prefix);
        expected.resize(context.len() + credential.len(), b'*');
        expected.extend_from_slice(b" tail\n");
        assert_eq!(output.stdout.len(), input.len(), "{kind}: length");
        assert_same(&output.stdout, &expected, kind.id());
    }
}

/// `--style fingerprint` keeps the prefix and adds `[sha256:` and the
/// first 12 hex digits of the credential's SHA-256.
#[test]
fn fingerprint_style_prefix_and_hash() {
    for (kind, context, credential) in common::every_kind(7) {
        let input = format!("{context}{credential}\n");
        let output = run(&["--style", "fingerprint"], input.as_bytes());
        assert!(output.status.success());
        let prefix =
            std::str::from_utf8(kind.prefix().unwrap_or_default()).unwrap();
        let expected = format!(
            "{context}{prefix}[sha256:{}]\n",
            fingerprint(&credential)
        );
        assert_same(&output.stdout, expected.as_bytes(), kind.id());
    }
}

/// `--min-level checksum_valid` leaves an invalid checksum in place and
/// still reports it.
#[test]
fn min_level_leaves_weaker_reported() {
    let mut rng = common::rng(8);
    let valid = sample::prefixed(&mut rng, Kind::UserToken);
    let wrong = sample::wrong_checksum(&mut rng, Kind::UserToken);
    let input = format!("a={valid} b={wrong}\n");
    let args = ["--min-level", "checksum_valid", "--findings", "-"];
    let output = run(&args, input.as_bytes());
    assert!(output.status.success());
    let expected = format!("a=[REDACTED:user_token] b={wrong}\n");
    assert_same(&output.stdout, expected.as_bytes(), "min level");
    let findings = findings_of(&stderr_text(&output));
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["level"], "checksum_valid");
    assert_eq!(findings[0]["redacted"], true);
    assert_eq!(findings[1]["level"], "checksum_invalid");
    assert_eq!(findings[1]["redacted"], false);
    let status = run(
        &["--min-level", "checksum_valid", "--fail-on-find"],
        format!("{wrong}\n").as_bytes(),
    );
    assert_eq!(status.status.code(), Some(0), "nothing redacted");
}

/// A full disk on stdout is one line on stderr and status 2.
#[test]
fn full_stdout_one_line_error() {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let Ok(full) = full else {
        assert!(!common::in_ci(), "/dev/full is missing");
        eprintln!("skipping: /dev/full is missing");
        return;
    };
    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let output = common::wait_output(child);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("write to stdout failed"), "stderr: {stderr}");
    assert!(stderr.contains("No space left on device"), "stderr: {stderr}");
}

#[test]
fn kinds_and_skip_kinds_select() {
    let mut rng = common::rng(9);
    let user = sample::prefixed(&mut rng, Kind::UserToken);
    let account = sample::prefixed(&mut rng, Kind::AccountToken);
    let input = format!("{user} {account}\n");
    let only_user = run(&["--kinds", "user_token"], input.as_bytes());
    assert!(only_user.status.success());
    let expected = format!("[REDACTED:user_token] {account}\n");
    assert_same(&only_user.stdout, expected.as_bytes(), "--kinds");
    let list = run(&["--kinds", "user_token,account_token"], input.as_bytes());
    let both = b"[REDACTED:user_token] [REDACTED:account_token]\n";
    assert_same(&list.stdout, both, "--kinds with a list");
    let skip = run(&["--skip-kinds", "user_token"], input.as_bytes());
    let expected = format!("{user} [REDACTED:account_token]\n");
    assert_same(&skip.stdout, expected.as_bytes(), "--skip-kinds");
}

#[test]
fn bad_kind_id_rejected() {
    let output = run(&["--kinds", "user_tokens"], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_text(&output);
    assert!(stderr.contains("\"user_tokens\""), "names the value: {stderr}");
    for kind in Kind::ALL {
        assert!(stderr.contains(kind.id()), "lists {kind}: {stderr}");
    }
    let output = run(&["--skip-kinds", "origin_ca_key,nope"], b"");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_text(&output).contains("\"nope\""));
    let all = Kind::ALL.map(|k| k.id()).join(",");
    let output = run(&["--skip-kinds", &all], b"");
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_text(&output);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("no kind is left"), "stderr: {stderr}");
}

/// The help text lists every kind id.
#[test]
fn help_lists_kinds() {
    let output = run(&["--help"], b"");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for kind in Kind::ALL {
        assert!(help.contains(kind.id()), "help lists {kind}");
    }
}

/// Reading the output in small pieces while writing large ones checks
/// that nothing is lost when the pipe to the reader is full.
#[test]
fn slow_reader_gets_every_byte() {
    let mut rng = common::rng(10);
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20_000 {
        let line = format!("{i} some log text with no secret\n");
        input.extend_from_slice(line.as_bytes());
        expected.extend_from_slice(line.as_bytes());
        if i % 1000 == 0 {
            let credential = sample::prefixed(&mut rng, Kind::UserToken);
            input.extend_from_slice(format!("k={credential}\n").as_bytes());
            expected.extend_from_slice(b"k=[REDACTED:user_token]\n");
        }
    }

    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::new();
    let mut piece = [0u8; 1000];
    loop {
        let len = stdout.read(&mut piece).unwrap();
        if len == 0 {
            break;
        }
        out.extend_from_slice(&piece[..len]);
    }

    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    assert_same(&out, &expected, "slow reader");
    assert!(!contains(&out, b"cfut_"), "a prefix is left");
}

/// `cfscrub demo --print-input | cfscrub` redacts the demo's log exactly
/// as the demo itself does, so the printed log is a faithful trial input.
#[test]
fn demo_input_filters_like_demo() {
    let input = run(&["demo", "--seed", "7", "--print-input"], b"");
    assert!(input.status.success(), "{}", stderr_text(&input));
    let demo = run(&["demo", "--seed", "7"], b"");
    assert!(demo.status.success(), "{}", stderr_text(&demo));
    let filtered = run(&[], &input.stdout);
    assert!(filtered.status.success(), "{}", stderr_text(&filtered));

    let summary = b"\n--- cfscrub demo:";
    let end = demo
        .stdout
        .windows(summary.len())
        .position(|window| window == summary)
        .expect("the demo prints its summary");
    assert_same(&filtered.stdout, &demo.stdout[..end], "demo log");
    assert_ne!(filtered.stdout, input.stdout, "the demo log has credentials");
}

/// A findings file is appended to, so the findings of an earlier run stay,
/// and each line has the time of its finding.
#[test]
fn findings_file_keeps_earlier_runs() {
    let dir = TestDir::new("findings_file_keeps_earlier_runs");
    let mut rng = common::rng(8);
    let credential = sample::prefixed(&mut rng, Kind::AccountToken);
    let findings = dir.path.join("findings.jsonl");
    let path = findings.to_str().unwrap();
    for _ in 0..2 {
        let line = format!("auth={credential}\n");
        let output = run(&["--findings", path], line.as_bytes());
        assert!(output.status.success(), "{}", stderr_text(&output));
    }
    let text = std::fs::read_to_string(&findings).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "one finding per run, both kept: {text}");
    for line in &lines {
        let time = line["time"].as_str().expect("a time field");
        assert_eq!(time.len(), "2026-12-04T09:12:05Z".len(), "{time}");
        assert!(time.ends_with('Z'), "not in UTC: {time}");
        assert_eq!(&time[10..11], "T", "not RFC 3339: {time}");
    }
}
