//! The stream filter's stall gauge, run as the real binary: with its
//! stdout a pipe that the test does not read, `/metrics` shows when the blocked
//! write began; once the pipe is read and the input is idle, the gauge
//! is back at 0.

mod metrics_common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use metrics_common::{Cfscrub, get, sample_value, wait_until};

/// Bound on every wait for the child process.
const WAIT: Duration = Duration::from_secs(60);

const GAUGE: &str = "cfscrub_output_write_start_time_seconds";
const READ_BYTES: &str = "cfscrub_read_bytes_total{source=\"stdin\"}";

/// Returns the value of `series` on the endpoint at `addr`.
fn scrape(addr: SocketAddr, series: &str) -> f64 {
    let text = get(addr, "/metrics").text();
    sample_value(&text, series)
        .unwrap_or_else(|| panic!("/metrics has no {series}"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Returns clean log lines, many times what the pipes between the test
/// and cfscrub hold (64 KiB for stdout, 256 KiB for the grown stdin).
fn clean_lines() -> Vec<u8> {
    let mut text = Vec::new();
    let mut line = 0;
    while text.len() < 4 << 20 {
        let entry = format!("2026-05-01T10:00:00Z INFO request {line} ok\n");
        text.extend_from_slice(entry.as_bytes());
        line += 1;
    }
    text
}

#[test]
fn stall_gauge_tracks_blocked_stdout() {
    let mut cfscrub =
        Cfscrub::spawn_unread_stdout(&["--metrics-listen=127.0.0.1:0"]);
    let addr = cfscrub.metrics_addr(WAIT);
    assert_eq!(scrape(addr, GAUGE), 0.0, "gauge before input");

    let input = clean_lines();
    let before = unix_now();
    let mut stdin = cfscrub.stdin.take().unwrap();
    let feeder = std::thread::spawn({
        let input = input.clone();
        // The write returns once cfscrub has read everything, and the
        // pipe is handed back so the input stays open, but idle.
        move || stdin.write_all(&input).map(|()| stdin)
    });

    // The same start in two scrapes in a row is one write that did not
    // return in between: stdout is full.
    let mut last = 0.0;
    let blocked = wait_until(WAIT, || {
        let seen = scrape(addr, GAUGE);
        let same = seen > 0.0 && seen == last;
        last = seen;
        same.then_some(seen)
    });
    let Some(started) = blocked else {
        panic!("{GAUGE} never held one blocked write within {WAIT:?}")
    };
    assert!(started >= before - 1.0, "write began {started}, before {before}");
    assert!(started <= unix_now(), "write began {started}, in the future");
    let read = scrape(addr, READ_BYTES);
    assert!(read < input.len() as f64, "read {read} bytes while blocked");

    let mut stdout = cfscrub.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).map(|_| bytes)
    });
    let stdin = feeder.join().unwrap().expect("write to cfscrub's stdin");

    let total = input.len() as f64;
    let drained = wait_until(WAIT, || {
        let done = scrape(addr, READ_BYTES) == total;
        (done && scrape(addr, GAUGE) == 0.0).then_some(())
    });
    assert!(
        drained.is_some(),
        "{GAUGE} not back at 0 with the input read and idle within {WAIT:?}"
    );

    drop(stdin);
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    let output = reader.join().unwrap().expect("read cfscrub's stdout");
    assert!(output == input, "stdout differs from the clean input");
}
