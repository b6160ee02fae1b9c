//! Input extremes through the stream filter, run as the real binary:
//! empty input, input made only of prefixes and keywords, and a writer
//! that trickles one byte at a time through an often idle pipe.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use cfscrub::engine::{Kind, sample};

use common::{TestDir, assert_same, binary, contains, run};

fn redacted(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    common::default_scanner().redact(input, &mut out);
    out
}

/// Empty stdin, an empty file, and both with findings: no output, no
/// finding, nothing on stderr, status 0.
#[test]
fn empty_input_empty_output() {
    let dir = TestDir::new("empty-input");
    let empty = dir.file("empty.log", b"");
    let findings = dir.path.join("findings.jsonl");
    let cases: [Vec<&str>; 3] = [
        vec![],
        vec![empty.to_str().unwrap()],
        vec![
            "--findings",
            findings.to_str().unwrap(),
            empty.to_str().unwrap(),
            "-",
        ],
    ];
    for args in cases {
        let output = run(&args, b"");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: output");
        assert!(stderr.is_empty(), "{args:?}: stderr: {stderr}");
    }
    let written = std::fs::read(&findings).expect("findings file created");
    assert!(written.is_empty(), "findings of empty input");
}

/// Input made only of prefixes and keywords, each repeated for 4 MiB on
/// one line and on many, contains no credential and passes through
/// exactly.
#[test]
fn only_prefixes_pass_through() {
    let units: [&[u8]; 9] = [
        b"cfut_",
        b"cfat_",
        b"cfk_",
        b"cfut_cfat_cfk_",
        b"cf",
        b"v1.0-",
        b"cloudflare ",
        b"X-Auth-Key: ",
        b"CF_API_TOKEN=",
    ];
    for unit in units {
        let name = String::from_utf8_lossy(unit);
        let count = (4 << 20) / unit.len();
        let one_line = unit.repeat(count);
        let output = run(&["--findings", "-"], &one_line);
        assert_eq!(output.status.code(), Some(0), "{name} on one line");
        assert_same(&output.stdout, &one_line, &format!("{name} on one line"));
        assert!(output.stderr.is_empty(), "{name}: a finding on one line");

        let mut lines = Vec::with_capacity(one_line.len() + count / 64);
        for (index, piece) in one_line.chunks(unit.len() * 64).enumerate() {
            lines.extend_from_slice(piece);
            if index % 2 == 0 {
                lines.push(b'\n');
            }
        }
        let output = run(&["--findings", "-"], &lines);
        assert_eq!(output.status.code(), Some(0), "{name} on lines");
        assert_same(&output.stdout, &lines, &format!("{name} on lines"));
        assert!(output.stderr.is_empty(), "{name}: a finding on lines");
    }
}

/// A writer that sends one byte per write, pausing often so that the
/// filter waits on an empty pipe and reads single bytes, gets the same
/// output as one whole write, with every credential redacted.
#[test]
fn one_byte_writes_same_output() {
    let mut input = Vec::new();
    let mut secrets = Vec::new();
    for (kind, context, credential) in common::every_kind(45) {
        let line = format!("{} {context}{credential} end\n", kind.id());
        input.extend_from_slice(line.as_bytes());
        let body = match kind.prefix() {
            Some(prefix) => &credential[prefix.len()..prefix.len() + 40],
            None => &credential,
        };
        secrets.push(body.to_owned());
    }
    let mut rng = common::rng(46);
    let cut = sample::cut_off(&mut rng, Kind::GlobalKey, 3);
    input.extend_from_slice(format!("no newline at the end {cut}").as_bytes());
    secrets.push(cut[4..44].to_owned());

    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    for (index, byte) in input.iter().enumerate() {
        stdin.write_all(&[*byte]).unwrap();
        if index % 5 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    drop(stdin);
    let output = common::wait_output(child);
    let out = reader.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert_same(&out, &redacted(&input), "one byte per write");
    for secret in &secrets {
        assert!(!contains(&out, secret.as_bytes()), "a secret in the output");
    }
}
