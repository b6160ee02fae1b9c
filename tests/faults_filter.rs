//! Faults in the stream filter, run as the real binary: SIGTERM and
//! SIGINT at random moments, a second signal, a full disk under stdout
//! or the findings, a closed stdout, and an input file unlinked or
//! truncated while it is read.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cfscrub::engine::{Kind, Scanner, sample};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use common::{HANG_GUARD, TestDir, assert_same, binary, contains};

/// Rounds of the random-signal test. Each streams up to 2 MiB.
const SIGNAL_ROUNDS: usize = 16;

fn stderr_text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns the redacted form of `input` as one whole stream.
fn redacted(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    common::default_scanner().redact(input, &mut out);
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

/// Sends `signal` to the process `pid`.
fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill has no memory effects; the pid is a child of this test
    // that has not been waited for, so it cannot have been reused.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "signal {signal} not sent to {pid}");
}

fn signal_name(signal: libc::c_int) -> &'static str {
    match signal {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "another signal",
    }
}

/// Returns the `bytes=N` field of the filter's last log line, the number
/// of bytes it read.
fn bytes_read(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|line| line.contains("input ended"))
        .unwrap_or_else(|| panic!("no \"input ended\" line in: {stderr}"));
    let at = line.find("bytes=").expect("bytes field") + "bytes=".len();
    let digits: String =
        line[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("bytes is a number")
}

/// Returns the value of `series` in a Prometheus text file.
fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

fn errors_at(textfile: &Path, stage: &str) -> Option<f64> {
    let text = std::fs::read_to_string(textfile).expect("text file written");
    sample_value(&text, &format!("cfscrub_errors_total{{stage=\"{stage}\"}}"))
}

/// Test input: log lines, some with a planted credential of any kind, and
/// the secret part of each one planted, which must never be output.
struct Planted {
    input: Vec<u8>,
    secrets: Vec<String>,
    /// The kind of each secret, to name it in a failure.
    kinds: Vec<Kind>,
}

fn planted_lines(rng: &mut StdRng, len: usize) -> Planted {
    let mut input = Vec::with_capacity(len + 512);
    let mut secrets = Vec::new();
    let mut kinds = Vec::new();
    let mut seq = 0u64;
    while input.len() < len {
        seq += 1;
        let mut line = format!("2026-12-04 INFO line={seq} path=/v1/items");
        if rng.random_range(0..4) == 0 {
            let kind = Kind::ALL[rng.random_range(0..Kind::ALL.len())];
            let credential = sample::credential(rng, kind);
            let context = match kind {
                Kind::LegacyToken => " CF_API_TOKEN=",
                Kind::LegacyGlobalKey => " X-Auth-Key: ",
                _ => " token=",
            };
            line.push_str(context);
            line.push_str(&credential);
            secrets.push(secret_part(kind, &credential));
            kinds.push(kind);
        }
        line.push('\n');
        input.extend_from_slice(line.as_bytes());
    }
    Planted { input, secrets, kinds }
}

/// Returns the part of `credential` that is the secret: the 40-character
/// body of a token or key with a checksum, or the whole value.
fn secret_part(kind: Kind, credential: &str) -> String {
    match kind {
        Kind::UserToken | Kind::AccountToken | Kind::GlobalKey => {
            let prefix = kind.prefix().expect("prefixed kind").len();
            credential[prefix..prefix + 40].to_owned()
        }
        _ => credential.to_owned(),
    }
}

fn assert_no_secret(output: &[u8], secrets: &[String], what: &str) {
    let found = secrets.iter().filter(|s| contains(output, s.as_bytes()));
    assert_eq!(found.count(), 0, "{what} contains a planted secret");
}

/// Panics, naming the kinds and where each ends against `read`, when the
/// output contains a secret planted in the input.
fn assert_no_planted(
    output: &[u8],
    planted: &Planted,
    read: usize,
    case: &str,
) {
    let mut found = Vec::new();
    for (secret, kind) in planted.secrets.iter().zip(&planted.kinds) {
        if !contains(output, secret.as_bytes()) {
            continue;
        }
        let end = memchr::memmem::find(&planted.input, secret.as_bytes())
            .map(|at| at + secret.len());
        found.push(format!("{kind} ending at {end:?}"));
    }
    assert!(
        found.is_empty(),
        "{case}: the output of {read} bytes read contains secrets: {found:?}"
    );
}

/// Reads `stdout` to its end on a thread. The returned counter is the
/// number of bytes read so far, and the receiver gets the whole output.
fn collect_output(
    mut stdout: impl Read + Send + 'static,
) -> (Arc<AtomicUsize>, mpsc::Receiver<Vec<u8>>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let (done, output) = mpsc::channel();
    let counter = seen.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(len @ 1..) = stdout.read(&mut buf) {
            out.extend_from_slice(&buf[..len]);
            counter.store(out.len(), Ordering::SeqCst);
        }
        let _ = done.send(out);
    });
    (seen, output)
}

/// Writes `input` to `stdin` in random pieces, cut anywhere, with short
/// pauses, so that a signal finds the filter reading, writing or waiting
/// on an idle pipe. Keeps stdin open until `release` fires, so the input
/// never ends before the signal.
fn stream_in_pieces(
    mut stdin: ChildStdin,
    input: Vec<u8>,
    seed: u64,
    release: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let len = rng.random_range(1..=8192).min(rest.len());
            if stdin.write_all(&rest[..len]).is_err() {
                // cfscrub stopped reading, as the signal asked.
                break;
            }
            rest = &rest[len..];
            if rng.random_range(0..16) == 0 {
                let pause = rng.random_range(0..3000);
                std::thread::sleep(Duration::from_micros(pause));
            }
        }
        let _ = release.recv();
    })
}

/// Waits until `counter` is at least `min`, failing after [`HANG_GUARD`].
fn wait_for_count(counter: &AtomicUsize, min: usize, what: &str) {
    let deadline = Instant::now() + HANG_GUARD;
    while counter.load(Ordering::SeqCst) < min {
        assert!(Instant::now() < deadline, "{what} within {HANG_GUARD:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs one round of the random-signal test, named `case` in failures.
fn signal_round(rng: &mut StdRng, round: usize, case: &str) {
    let signal = if round % 2 == 0 { libc::SIGTERM } else { libc::SIGINT };
    let dir = TestDir::new(&format!("signal-round-{round}"));
    let textfile = dir.path.join("cfscrub.prom");
    let len = rng.random_range(1..=2 << 20);
    let planted = planted_lines(rng, len);
    let mut command = binary();
    command.args(["--log-level", "info"]);
    // The text file starts a thread, on which the signal may land.
    let with_textfile = round % 3 == 0;
    if with_textfile {
        command.arg("--metrics-textfile").arg(&textfile);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let (seen, output) = collect_output(child.stdout.take().unwrap());
    let (release, released) = mpsc::channel();
    let writer = stream_in_pieces(
        child.stdin.take().unwrap(),
        planted.input.clone(),
        rng.random(),
        released,
    );

    // Output means the handlers are in place, so the signal cannot meet
    // the default action.
    wait_for_count(&seen, 1, &format!("{case}: no output"));
    let delay = rng.random_range(0..40_000);
    std::thread::sleep(Duration::from_micros(delay));
    send_signal(child.id(), signal);
    let exit = common::wait_output(child);
    let _ = release.send(());
    writer.join().expect("writer does not panic");
    let out = output.recv_timeout(HANG_GUARD).expect("stdout read to end");

    let stderr = stderr_text(&exit);
    let case = format!("{case}, {}", signal_name(signal));
    assert_eq!(exit.status.code(), Some(0), "{case}: stderr: {stderr}");
    assert!(stderr.contains("stopped=true"), "{case}: not stopped: {stderr}");
    let read = bytes_read(&stderr);
    assert!(read <= planted.input.len(), "{case}: read past the input");
    let expected = redacted(&planted.input[..read]);
    assert_same(&out, &expected, &format!("{case}: {read} bytes read"));
    let read_ends_line = read == 0 || planted.input[read - 1] == b'\n';
    if read_ends_line {
        assert!(
            out.is_empty() || out.ends_with(b"\n"),
            "{case}: output ends inside a line"
        );
    }
    assert_no_planted(&out, &planted, read, &case);
    assert_no_secret(stderr.as_bytes(), &planted.secrets, &case);
    if with_textfile {
        let text = std::fs::read_to_string(&textfile).unwrap();
        let series = "cfscrub_read_bytes_total{source=\"stdin\"}";
        assert_eq!(
            sample_value(&text, series),
            Some(read as f64),
            "{case}: the text file has the final count"
        );
    }
}

/// SIGTERM or SIGINT at a random moment ends the filter with status 0,
/// and every byte it read comes out, redacted: the output is the
/// redaction of exactly the bytes read, as if the input had ended there.
#[test]
fn signal_keeps_every_byte_read() {
    let seed = test_seed();
    eprintln!("seed {seed}; set CFSCRUB_TEST_SEED={seed} to repeat");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..SIGNAL_ROUNDS {
        let case = format!("seed {seed}, round {round}");
        signal_round(&mut rng, round, &case);
    }
}

/// A signal while the filter waits on an idle pipe stops it at once, and
/// the bytes held back for an unfinished credential come out redacted.
#[test]
fn idle_pipe_stops_on_signal() {
    let mut rng = common::rng(40);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let credential = sample::prefixed(&mut rng, Kind::UserToken);
        // The body and three checksum digits: held back, waiting for the
        // rest of the checksum.
        let input = format!("first line\nlast token={}", &credential[..48]);
        let mut child = binary()
            .args(["--log-level", "info"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cfscrub starts");
        let mut stdin = child.stdin.take().unwrap();
        let (seen, output) = collect_output(child.stdout.take().unwrap());
        // One write, smaller than a pipe's atomic size, so one read takes
        // it whole and the first line's output means the rest was read.
        stdin.write_all(input.as_bytes()).unwrap();
        wait_for_count(&seen, "first line\n".len(), "first line not output");
        send_signal(child.id(), signal);
        let exit = common::wait_output(child);
        drop(stdin);
        let out = output.recv_timeout(HANG_GUARD).unwrap();
        let name = signal_name(signal);
        let stderr = stderr_text(&exit);
        assert_eq!(exit.status.code(), Some(0), "{name}: stderr: {stderr}");
        assert!(stderr.contains(&format!("signal=\"{name}\"")), "{stderr}");
        assert_eq!(bytes_read(&stderr), input.len(), "{name}: bytes read");
        let expected = b"first line\nlast token=[REDACTED:user_token]";
        assert_same(&out, expected, name);
        assert_no_secret(&out, &[credential[5..45].to_owned()], name);
    }
}

/// A signal during start-up, before the first read, is a stop too: no
/// output and status 0. The input, which never ends, is not read.
#[test]
fn signal_before_input_stops() {
    let mut child = binary()
        .args(["--log-level", "info"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let stdin = child.stdin.take().unwrap();
    // Waiting in poll means the handlers are in place: a signal before
    // them would kill the process, which the status would show.
    wait_for_wchan(child.id(), "poll");
    send_signal(child.id(), libc::SIGTERM);
    let exit = common::wait_output(child);
    drop(stdin);
    let stderr = stderr_text(&exit);
    assert_eq!(exit.status.code(), Some(0), "stderr: {stderr}");
    assert!(exit.stdout.is_empty(), "output without input");
    assert_eq!(bytes_read(&stderr), 0);
}

/// Waits until process `pid` sleeps in a kernel function whose name
/// contains `function`, such as `poll` while its input pipe is empty or
/// `pipe_write` while its stdout pipe is full.
fn wait_for_wchan(pid: u32, function: &str) {
    let wchan = format!("/proc/{pid}/wchan");
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let now = std::fs::read_to_string(&wchan).unwrap_or_default();
        if now.contains(function) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cfscrub not waiting in {function} within {HANG_GUARD:?}: \
             {now:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A second signal, while the stop waits on a stdout that nobody reads,
/// exits at once with status 2.
#[test]
fn second_signal_exits_at_once() {
    let mut child = binary()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"a line of a log that nobody reads\n".repeat(100);
        while stdin.write_all(&line).is_ok() {}
    });
    // Blocked on the full stdout pipe with output in hand, so the stop
    // that the first signal starts waits there too.
    wait_for_wchan(child.id(), "pipe_write");
    send_signal(child.id(), libc::SIGTERM);
    // Another signal number, so the kernel cannot merge the two.
    send_signal(child.id(), libc::SIGINT);
    let stdout = child.stdout.take().unwrap();
    let exit = common::wait_output(child);
    drop(stdout);
    writer.join().unwrap();
    assert_eq!(exit.status.code(), Some(2), "{}", stderr_text(&exit));
}

/// Spawns the filter on `args` with stdout piped and returns it with its
/// stdout, not yet read.
fn spawn_with_stdout(args: &[&str]) -> (Child, std::process::ChildStdout) {
    let mut child = binary()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let stdout = child.stdout.take().unwrap();
    (child, stdout)
}

/// Returns the offset of process `pid`'s open descriptor of `path`, from
/// /proc, or `None` while it has none.
fn read_offset(pid: u32, path: &Path) -> Option<u64> {
    let want = std::fs::metadata(path).ok()?;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
        let entry = entry.ok()?;
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if meta.ino() != want.ino() || meta.dev() != want.dev() {
            continue;
        }
        let fd = entry.file_name();
        let info = format!("/proc/{pid}/fdinfo/{}", fd.to_string_lossy());
        let text = std::fs::read_to_string(info).ok()?;
        let pos = text.lines().find_map(|l| l.strip_prefix("pos:"))?;
        return pos.trim().parse().ok();
    }
    None
}

/// Waits until the filter has read part of `path`, but not all of it,
/// and stays there because nobody reads its stdout.
fn wait_mid_file(pid: u32, path: &Path, len: u64) -> u64 {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        if let Some(offset) = read_offset(pid, path).filter(|o| *o > 0) {
            assert!(offset < len, "cfscrub read the whole file");
            return offset;
        }
        assert!(
            Instant::now() < deadline,
            "cfscrub did not start reading within {HANG_GUARD:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An input file unlinked while the filter reads it is read to its end
/// through the open descriptor, as `cat` does.
#[test]
fn unlinked_input_read_to_end() {
    let mut rng = common::rng(41);
    let dir = TestDir::new("unlinked-input");
    let planted = planted_lines(&mut rng, 8 << 20);
    let path = dir.file("app.log", &planted.input);
    let (child, stdout) = spawn_with_stdout(&[path.to_str().unwrap()]);
    wait_mid_file(child.id(), &path, planted.input.len() as u64);
    std::fs::remove_file(&path).unwrap();
    let (_, output) = collect_output(stdout);
    let exit = common::wait_output(child);
    let out = output.recv_timeout(HANG_GUARD).unwrap();
    assert_eq!(exit.status.code(), Some(0), "{}", stderr_text(&exit));
    assert_same(&out, &redacted(&planted.input), "unlinked input");
    assert_no_secret(&out, &planted.secrets, "output");
}

/// An input file truncated while the filter reads it ends there, and
/// the loss is reported: one line naming the file and the offset, status
/// 2, and a read error in the metrics. Every byte read comes out.
#[test]
fn truncated_input_reported() {
    let mut rng = common::rng(42);
    let dir = TestDir::new("truncated-input");
    let planted = planted_lines(&mut rng, 8 << 20);
    let path = dir.file("app.log", &planted.input);
    let textfile = dir.path.join("cfscrub.prom");
    let args = [
        path.to_str().unwrap(),
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ];
    let (child, stdout) = spawn_with_stdout(&args);
    wait_mid_file(child.id(), &path, planted.input.len() as u64);
    File::options().write(true).open(&path).unwrap().set_len(0).unwrap();
    let (_, output) = collect_output(stdout);
    let exit = common::wait_output(child);
    let out = output.recv_timeout(HANG_GUARD).unwrap();

    let stderr = stderr_text(&exit);
    assert_eq!(exit.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let prefix = format!(
        "cfscrub: {}: truncated to 0 bytes while being read at offset ",
        path.display()
    );
    let offset: usize = stderr
        .trim_end()
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("message: {stderr}"))
        .parse()
        .expect("the offset is a number");
    assert_same(&out, &redacted(&planted.input[..offset]), "truncated input");
    assert_eq!(errors_at(&textfile, "read"), Some(1.0));
    assert_no_secret(&out, &planted.secrets, "output");
}

/// The findings file on a full disk: one line naming it, status 2 and a
/// findings error in the metrics. The output written so far stays.
#[test]
fn full_findings_file_reported() {
    if !Path::new("/dev/full").exists() {
        assert!(!common::in_ci(), "/dev/full is missing");
        eprintln!("skipping: /dev/full is missing");
        return;
    }
    let mut rng = common::rng(43);
    let credential = sample::prefixed(&mut rng, Kind::AccountToken);
    let input = format!("one\nkey={credential}\nthree\n");
    let dir = TestDir::new("full-findings");
    let textfile = dir.path.join("cfscrub.prom");
    let args = [
        "--findings",
        "/dev/full",
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ];
    let exit = common::run(&args, input.as_bytes());
    let stderr = stderr_text(&exit);
    assert_eq!(exit.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        "cfscrub: write to findings /dev/full failed: No space left on device"
    );
    assert_same(&exit.stdout, &redacted(input.as_bytes()), "output");
    assert_eq!(errors_at(&textfile, "findings"), Some(1.0));
    assert_eq!(errors_at(&textfile, "write"), Some(0.0));
}

/// Stdout on a full disk counts a write error in the metrics.
#[test]
fn full_stdout_counts_write_error() {
    let Ok(full) = File::options().write(true).open("/dev/full") else {
        assert!(!common::in_ci(), "/dev/full is missing");
        eprintln!("skipping: /dev/full is missing");
        return;
    };
    let dir = TestDir::new("full-stdout");
    let textfile = dir.path.join("cfscrub.prom");
    let input = dir.file("app.log", b"hello\n");
    let exit = binary()
        .arg(&input)
        .arg("--metrics-textfile")
        .arg(&textfile)
        .stdout(full)
        .output()
        .expect("cfscrub runs");
    let stderr = stderr_text(&exit);
    assert_eq!(exit.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(
        stderr.trim_end(),
        "cfscrub: write to stdout failed: No space left on device"
    );
    assert_eq!(errors_at(&textfile, "write"), Some(1.0));
}

/// A reader that goes away early is a normal end: status 0, nothing on
/// stderr, and no error in the metrics.
#[test]
fn closed_stdout_counts_no_error() {
    let dir = TestDir::new("closed-stdout-metrics");
    let textfile = dir.path.join("cfscrub.prom");
    let big = dir.file("big.log", &b"a line of log text\n".repeat(1 << 20));
    let args = [
        big.to_str().unwrap(),
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ];
    let (child, mut stdout) = spawn_with_stdout(&args);
    let mut first = [0u8; 19];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"a line of log text\n");
    drop(stdout);
    let exit = common::wait_output(child);
    let stderr = stderr_text(&exit);
    assert_eq!(exit.status.code(), Some(0), "stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    assert_eq!(errors_at(&textfile, "write"), Some(0.0));
}

/// The scanner the filter runs with by default finds what the tests plant.
#[test]
fn planted_lines_are_found() {
    let mut rng = common::rng(44);
    let planted = planted_lines(&mut rng, 64 * 1024);
    let scanner = Arc::new(Scanner::builder().build().unwrap());
    let mut out = Vec::new();
    let findings = scanner.redact(&planted.input, &mut out);
    assert_eq!(findings.len(), planted.secrets.len());
    assert_no_secret(&out, &planted.secrets, "redacted lines");
}
