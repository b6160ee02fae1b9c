//! The stream filter's reads and writes, through real pipes and files: the
//! output matches a whole-buffer redaction whatever the read sizes, and a
//! line comes out before the input ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cfscrub::engine::{Kind, Scanner, sample};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bound on waiting for output that should come at once.
const OUTPUT_WAIT: Duration = Duration::from_secs(20);

fn cfscrub() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cfscrub"))
}

/// Returns about `len` bytes of log lines. One line in five ends with a
/// credential of a random kind and level, or with a near-miss.
fn planted_log(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut log = Vec::with_capacity(len + 1024);
    let mut line = 0u64;
    while log.len() < len {
        line += 1;
        let text = format!(
            "2026-12-04T09:12:{:02}Z INFO api: GET /v1/items/{line} 200 \
             request_id={} ",
            line % 60,
            sample::hex(rng, 32)
        );
        log.extend_from_slice(text.as_bytes());
        let planted = match rng.random_range(0..45) {
            0 => sample::prefixed(rng, Kind::UserToken),
            1 => sample::prefixed(rng, Kind::AccountToken),
            2 => sample::prefixed(rng, Kind::GlobalKey),
            3 => sample::wrong_checksum(rng, Kind::UserToken),
            4 => sample::cut_off(rng, Kind::AccountToken, 3),
            5 => format!("CF_API_TOKEN={}", sample::legacy_token(rng)),
            6 => format!("X-Auth-Key: {}", sample::legacy_global_key(rng)),
            7 => sample::origin_ca_key(rng),
            8 => "cfut_tooShort".to_owned(),
            _ => String::new(),
        };
        log.extend_from_slice(planted.as_bytes());
        // A long line now and then, longer than one read.
        if rng.random_range(0..500) == 0 {
            log.extend(std::iter::repeat_n(b'x', 300 * 1024));
        }
        log.push(b'\n');
    }
    log
}

fn reference(input: &[u8]) -> (Vec<u8>, usize) {
    let scanner = Arc::new(Scanner::builder().build().unwrap());
    let mut out = Vec::new();
    let findings = scanner.redact(input, &mut out);
    (out, findings.len())
}

/// Writes `input` to the child's stdin in random-sized pieces from a
/// thread, and returns the child's whole stdout.
fn feed_in_pieces(mut child: Child, input: Vec<u8>, seed: u64) -> Vec<u8> {
    let mut stdin = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let len = rng.random_range(1..=96 * 1024).min(rest.len());
            stdin.write_all(&rest[..len]).unwrap();
            rest = &rest[len..];
        }
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "cfscrub exited with {status}");
    out
}

#[test]
fn pipe_output_matches_reference() {
    let mut rng = StdRng::seed_from_u64(7);
    let input = planted_log(&mut rng, 6 << 20);
    let (expected, findings) = reference(&input);
    assert!(findings > 100, "too few planted findings: {findings}");
    let child = cfscrub()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = feed_in_pieces(child, input, 8);
    assert_eq!(out.len(), expected.len(), "output length");
    assert!(out == expected, "output differs from the reference");
}

#[test]
fn file_output_matches_reference() {
    let mut rng = StdRng::seed_from_u64(9);
    let first = planted_log(&mut rng, 3 << 20);
    let second = planted_log(&mut rng, 1 << 20);
    let dir = std::env::temp_dir()
        .join(format!("cfscrub-stream-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let paths = [dir.join("first.log"), dir.join("second.log")];
    std::fs::write(&paths[0], &first).unwrap();
    std::fs::write(&paths[1], &second).unwrap();
    let output = cfscrub().args(&paths).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(output.status.success(), "cfscrub exited with {}", output.status);
    let joined = [first, second].concat();
    let (expected, _) = reference(&joined);
    assert_eq!(output.stdout.len(), expected.len(), "output length");
    assert!(output.stdout == expected, "output differs from the reference");
}

#[test]
fn line_comes_out_before_input_ends() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut child = cfscrub()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    for round in 0..3 {
        let credential = sample::prefixed(&mut rng, Kind::UserToken);
        writeln!(stdin, "round {round} token={credential}").unwrap();
        stdin.flush().unwrap();
        let line = lines_rx.recv_timeout(OUTPUT_WAIT).unwrap_or_else(|_| {
            panic!("no output line {round} within {OUTPUT_WAIT:?}")
        });
        assert_eq!(line, format!("round {round} token=[REDACTED:user_token]"));
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
}
