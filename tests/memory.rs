//! Memory stays bounded on input without a newline: 1 GiB in one line,
//! with credentials planted across read boundaries, streams through the
//! binary in a small peak resident set, and comes out correct.
//!
//! This is its own test binary so that no other test's child processes
//! run beside it.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc;

use cfscrub::engine::{Kind, sample};
use rand::Rng;
use sha2::{Digest, Sha256};

use common::{HANG_GUARD, binary, label};

const STREAM_LEN: usize = 1 << 30;
const PEAK_RSS_LIMIT_KIB: i64 = 32 << 10;
/// Size of the writes into cfscrub's stdin, which is also the capacity
/// of a Linux pipe, so its reads tend to end at multiples of it.
const WRITE_LEN: usize = 64 << 10;
/// Bytes cfscrub requests in each read of a file or pipe (`READ_SIZE` in
/// the filter).
const READ_LEN: usize = 64 << 10;

/// A credential written over the noise at `offset`.
struct Plant {
    offset: usize,
    bytes: Vec<u8>,
    replaced: Vec<u8>,
}

/// Returns 1 MiB of words of `[a-z0-9]`, at most 12 long, between spaces
/// and punctuation: no newline, no prefix, no keyword, and no run long
/// enough to be a legacy credential.
fn noise_block() -> Vec<u8> {
    let mut rng = common::rng(256);
    let mut block = Vec::with_capacity(1 << 20);
    while block.len() < 1 << 20 {
        let word_len = rng.random_range(1..=12);
        for _ in 0..word_len {
            let byte = b"abcdefghijklmnopqrstuvwxyz0123456789"
                [rng.random_range(0..36)];
            block.push(byte);
        }
        block.push(b" ,;:= "[rng.random_range(0..6)]);
    }
    block.truncate(1 << 20);
    block
}

/// Plants a credential of every kind across write and read boundaries,
/// legacy ones after a keyword.
fn plants() -> Vec<Plant> {
    let mut rng = common::rng(257);
    let mut plants = Vec::new();
    // The last ones are near the end of the stream, far past any buffer.
    let boundaries = (1..=8)
        .map(|i| i * 29 * WRITE_LEN)
        .chain((1..=4).map(|i| i * 251 * READ_LEN))
        .chain((1..=3).map(|i| i * 5003 * READ_LEN));
    for (index, boundary) in boundaries.enumerate() {
        let kind = Kind::ALL[index % Kind::ALL.len()];
        let credential = sample::credential(&mut rng, kind);
        let context = match kind {
            Kind::LegacyToken => "CF_API_TOKEN=",
            Kind::LegacyGlobalKey => "X-Auth-Key: ",
            _ => "",
        };
        let bytes = format!(" {context}{credential} ").into_bytes();
        let replaced = [b" ", context.as_bytes(), &label(kind), b" "].concat();
        // The boundary falls inside the credential.
        let offset = boundary - context.len() - credential.len() / 2;
        plants.push(Plant { offset, bytes, replaced });
    }
    plants.sort_by_key(|plant| plant.offset);
    let last = plants.last().unwrap();
    assert!(last.offset + last.bytes.len() < STREAM_LEN, "plant past the end");
    plants
}

/// Writes the stream to `out` in [`WRITE_LEN`] pieces: the noise block
/// repeated, with each plant written over it.
fn write_stream(out: &mut impl Write, block: &[u8], plants: &[Plant]) {
    let mut piece = vec![0u8; WRITE_LEN];
    for start in (0..STREAM_LEN).step_by(WRITE_LEN) {
        let end = start + WRITE_LEN;
        for (i, byte) in piece.iter_mut().enumerate() {
            *byte = block[(start + i) % block.len()];
        }
        for plant in plants {
            for (i, byte) in plant.bytes.iter().enumerate() {
                let at = plant.offset + i;
                if (start..end).contains(&at) {
                    piece[at - start] = *byte;
                }
            }
        }
        if out.write_all(&piece).is_err() {
            // cfscrub exited early; the status check reports why.
            return;
        }
    }
}

/// Feeds the repeated noise between two stream offsets to `hash`.
fn hash_noise(hash: &mut Sha256, block: &[u8], from: usize, to: usize) {
    let mut at = from;
    while at < to {
        let in_block = at % block.len();
        let len = (block.len() - in_block).min(to - at);
        hash.update(&block[in_block..in_block + len]);
        at += len;
    }
}

/// Returns the SHA-256 and length of the output cfscrub must write: the
/// stream with each plant's credential replaced by its label.
fn expected_output(block: &[u8], plants: &[Plant]) -> ([u8; 32], u64) {
    let mut hash = Sha256::new();
    let mut len = 0;
    let mut clean_from = 0;
    for plant in plants {
        hash_noise(&mut hash, block, clean_from, plant.offset);
        hash.update(&plant.replaced);
        len += plant.offset - clean_from + plant.replaced.len();
        clean_from = plant.offset + plant.bytes.len();
    }
    hash_noise(&mut hash, block, clean_from, STREAM_LEN);
    len += STREAM_LEN - clean_from;
    (hash.finalize().into(), len as u64)
}

/// Waits for the child `pid` and returns its exit status and peak
/// resident set size in KiB.
fn wait_with_peak_rss(pid: u32) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: `rusage` is a C struct of integers, for which all zeros
    // is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = pid as libc::pid_t;
    // SAFETY: both pointers point to live locals for the whole call, and
    // `pid` is a child of this process that nothing else waits for.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(
        reaped,
        pid,
        "wait4 failed: {}",
        std::io::Error::last_os_error()
    );
    assert!(libc::WIFEXITED(status), "cfscrub did not exit: status {status}");
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which reports its peak memory"
)]
fn long_line_streams_in_bounded_memory() {
    let block = noise_block();
    let plants = plants();
    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cfscrub starts");
    let pid = child.id();

    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let mut hash = Sha256::new();
        let mut len = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hash.update(&buf[..n]);
                    len += n as u64;
                }
            }
        }
        let digest: [u8; 32] = hash.finalize().into();
        let _ = done.send((digest, len));
    });

    write_stream(&mut stdin, &block, &plants);
    drop(stdin);
    let (digest, len) = result
        .recv_timeout(HANG_GUARD * 5)
        .expect("cfscrub's output ends after its input does");

    let (code, peak_kib) = wait_with_peak_rss(pid);
    let (expected, expected_len) = expected_output(&block, &plants);
    assert_eq!(code, 0, "exit status");
    assert_eq!(len, expected_len, "output length");
    assert!(digest == expected, "output differs from the expected output");
    assert!(peak_kib > 0, "wait4 reported no resident set size");
    assert!(
        peak_kib < PEAK_RSS_LIMIT_KIB,
        "peak resident set {peak_kib} KiB, the limit is {PEAK_RSS_LIMIT_KIB} KiB"
    );
    eprintln!("peak resident set of cfscrub: {peak_kib} KiB");
}
