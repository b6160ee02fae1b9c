//! The stream filter's metrics, run as the real binary: the endpoint
//! through the phases of the input, lingering for a last scrape, exact
//! counts, the text file, and start-up errors.

mod metrics_common;

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use metrics_common::{
    Cfscrub, TempDir, assert_no_secret, get, planted_log, sample_value,
    wait_until,
};

/// Bound on every wait for the child process.
const WAIT: Duration = Duration::from_secs(60);

/// Polls `path` on `addr` until it returns `status`, or panics.
fn wait_for_status(addr: SocketAddr, path: &str, status: u16, phase: &str) {
    let seen =
        wait_until(WAIT, || (get(addr, path).status == status).then_some(()));
    assert!(
        seen.is_some(),
        "{path} did not return {status} {phase} within {WAIT:?}"
    );
}

/// Creates a named pipe at `path` with mkfifo(1).
fn make_fifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status();
    assert!(status.is_ok_and(|status| status.success()), "mkfifo failed");
}

#[test]
fn readyz_tracks_input_phases() {
    let dir = TempDir::new("readyz");
    let fifo = dir.path.join("input.fifo");
    make_fifo(&fifo);
    let fifo_arg = fifo.to_str().unwrap();
    let mut cfscrub = Cfscrub::spawn(&[
        fifo_arg,
        "--metrics-listen=127.0.0.1:0",
        "--metrics-linger=600",
    ]);
    let addr = cfscrub.metrics_addr(WAIT);

    // cfscrub blocks opening the FIFO until a writer opens it.
    assert_eq!(get(addr, "/healthz").status, 200, "healthz before input");
    assert_eq!(get(addr, "/readyz").status, 503, "readyz before input");

    let mut writer = OpenOptions::new().write(true).open(&fifo).unwrap();
    writer.write_all(b"first line\n").unwrap();
    wait_for_status(addr, "/readyz", 200, "while reading");
    assert_eq!(get(addr, "/healthz").status, 200, "healthz while reading");

    drop(writer);
    wait_for_status(addr, "/readyz", 503, "after end of input");
    assert_eq!(get(addr, "/healthz").status, 200, "healthz after input");

    // The scrape that the linger waits for.
    let text = get(addr, "/metrics").text();
    assert_eq!(sample_value(&text, "cfscrub_ready"), Some(0.0));
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert_eq!(exit.stdout, b"first line\n");
}

#[test]
fn linger_times_out_without_scrape() {
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-listen=127.0.0.1:0",
        "--metrics-linger=1",
    ]);
    cfscrub.metrics_addr(WAIT);
    cfscrub.feed(b"one line\n");
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert!(
        exit.stderr.contains("no scrape came before --metrics-linger"),
        "stderr: {}",
        exit.stderr
    );
}

#[test]
fn metrics_count_planted_credentials() {
    let log = planted_log();
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-listen=127.0.0.1:0",
        "--metrics-linger=600",
        "--count-lines",
    ]);
    let addr = cfscrub.metrics_addr(WAIT);
    cfscrub.feed(&log.text);
    cfscrub.close_stdin();
    wait_for_status(addr, "/readyz", 503, "after end of input");

    let text = get(addr, "/metrics").text();
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert_no_secret(text.as_bytes(), &log.secrets, "/metrics");
    assert_no_secret(&exit.stdout, &log.secrets, "stdout");
    assert_no_secret(exit.stderr.as_bytes(), &log.secrets, "stderr");

    for kind in cfscrub::engine::Kind::ALL {
        for level in cfscrub::engine::Level::ALL {
            let series = format!(
                "cfscrub_detections_total{{kind=\"{}\",level=\"{}\"}}",
                kind.id(),
                level.id()
            );
            let expected = log.count(kind.id(), level.id()) as f64;
            assert_eq!(
                sample_value(&text, &series),
                Some(expected),
                "{series}"
            );
        }
    }
    let redactions: f64 = cfscrub::engine::Kind::ALL
        .iter()
        .map(|kind| {
            let series =
                format!("cfscrub_redactions_total{{kind=\"{}\"}}", kind.id());
            sample_value(&text, &series).unwrap()
        })
        .sum();
    assert_eq!(redactions, log.total() as f64, "redactions");
    let lines = log.lines as f64;
    let read_records = "cfscrub_read_records_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, read_records), Some(lines));
    let written_records = "cfscrub_written_records_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, written_records), Some(lines));
    let read_bytes = "cfscrub_read_bytes_total{source=\"stdin\"}";
    let read = log.text.len() as f64;
    assert_eq!(sample_value(&text, read_bytes), Some(read));
    let written_bytes = "cfscrub_written_bytes_total{source=\"stdin\"}";
    let written = exit.stdout.len() as f64;
    assert_eq!(sample_value(&text, written_bytes), Some(written));
    let scans = sample_value(&text, "cfscrub_scan_duration_seconds_count");
    assert!(scans.is_some_and(|count| count >= 1.0), "scan count {scans:?}");
}

#[test]
fn last_line_without_newline_counts() {
    let dir = TempDir::new("records");
    let textfile = dir.path.join("cfscrub.prom");
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-textfile",
        textfile.to_str().unwrap(),
        "--count-lines",
    ]);
    cfscrub.feed(b"one\ntwo\nthree");
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let read_records = "cfscrub_read_records_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, read_records), Some(3.0));
    let written_records = "cfscrub_written_records_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, written_records), Some(3.0));
}

#[test]
fn records_absent_without_count_lines() {
    let dir = TempDir::new("no-records");
    let textfile = dir.path.join("cfscrub.prom");
    let mut cfscrub =
        Cfscrub::spawn(&["--metrics-textfile", textfile.to_str().unwrap()]);
    cfscrub.feed(b"one\ntwo\n");
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let read_bytes = "cfscrub_read_bytes_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, read_bytes), Some(8.0));
    for name in ["cfscrub_read_records_total", "cfscrub_written_records_total"]
    {
        let series = format!("{name}{{source=\"stdin\"}}");
        assert_eq!(sample_value(&text, &series), None, "{series} exported");
    }
}

#[test]
fn findings_turn_on_line_count() {
    let dir = TempDir::new("findings-records");
    let textfile = dir.path.join("cfscrub.prom");
    let findings = dir.path.join("findings.jsonl");
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-textfile",
        textfile.to_str().unwrap(),
        "--findings",
        findings.to_str().unwrap(),
    ]);
    cfscrub.feed(b"one\ntwo\n");
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let read_records = "cfscrub_read_records_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, read_records), Some(2.0));
}

#[test]
fn count_lines_needs_metrics() {
    let mut cfscrub = Cfscrub::spawn(&["--count-lines"]);
    cfscrub.feed(b"line\n");
    let exit = cfscrub.wait(WAIT);
    assert_eq!(exit.status.code(), Some(2), "stderr: {}", exit.stderr);
    assert!(
        exit.stderr.contains(
            "--count-lines needs --metrics-listen or --metrics-textfile"
        ),
        "stderr: {}",
        exit.stderr
    );
    assert!(exit.stdout.is_empty(), "input was read despite the error");
}

#[test]
fn idle_input_publishes_counts() {
    let log = planted_log();
    let mut cfscrub = Cfscrub::spawn(&["--metrics-listen=127.0.0.1:0"]);
    let addr = cfscrub.metrics_addr(WAIT);
    // Far less than one batch of reads, and stdin stays open: the counts
    // must be published while the filter waits for more input.
    cfscrub.feed(&log.text);
    let read_bytes = "cfscrub_read_bytes_total{source=\"stdin\"}";
    let expected = log.text.len() as f64;
    let seen = wait_until(WAIT, || {
        let text = get(addr, "/metrics").text();
        (sample_value(&text, read_bytes) == Some(expected)).then_some(text)
    });
    let text = seen.unwrap_or_else(|| {
        panic!("{read_bytes} did not reach {expected} while input idled")
    });
    let series = "cfscrub_detections_total{kind=\"user_token\",\
                  level=\"checksum_valid\"}";
    let planted = log.count("user_token", "checksum_valid") as f64;
    assert_eq!(sample_value(&text, series), Some(planted));
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
}

#[test]
fn files_count_as_file_source() {
    let dir = TempDir::new("files");
    let input = dir.path.join("app.log");
    std::fs::write(&input, b"a\nb\n").unwrap();
    let textfile = dir.path.join("cfscrub.prom");
    let cfscrub = Cfscrub::spawn(&[
        input.to_str().unwrap(),
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ]);
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let file_bytes = "cfscrub_read_bytes_total{source=\"file\"}";
    assert_eq!(sample_value(&text, file_bytes), Some(4.0));
    let stdin_bytes = "cfscrub_read_bytes_total{source=\"stdin\"}";
    assert_eq!(sample_value(&text, stdin_bytes), Some(0.0));
}

#[test]
fn missing_file_counts_read_error() {
    let dir = TempDir::new("read-error");
    let textfile = dir.path.join("cfscrub.prom");
    let missing = dir.path.join("missing.log");
    let cfscrub = Cfscrub::spawn(&[
        missing.to_str().unwrap(),
        "--metrics-textfile",
        textfile.to_str().unwrap(),
    ]);
    let exit = cfscrub.wait(WAIT);
    assert_eq!(exit.status.code(), Some(2), "stderr: {}", exit.stderr);
    let text = std::fs::read_to_string(&textfile).unwrap();
    let errors = "cfscrub_errors_total{stage=\"read\"}";
    assert_eq!(sample_value(&text, errors), Some(1.0));
}

#[test]
fn textfile_is_always_complete() {
    let dir = TempDir::new("textfile");
    let textfile = dir.path.join("cfscrub.prom");
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-textfile",
        textfile.to_str().unwrap(),
        "--metrics-textfile-interval=0.002",
    ]);
    let created = wait_until(WAIT, || textfile.exists().then_some(()));
    assert!(created.is_some(), "no text file within {WAIT:?}");
    let families = family_names(&cfscrub::observe::Metrics::new().unwrap());

    let series = "cfscrub_detections_total{kind=\"user_token\",\
                  level=\"checksum_valid\"}";
    let mut rng = rand::rng();
    let mut reads = 0;
    let mut distinct = std::collections::HashSet::new();
    let mut last_count = 0.0;
    const ROUNDS: usize = 400;
    for round in 0..ROUNDS {
        let token = cfscrub::engine::sample::prefixed(
            &mut rng,
            cfscrub::engine::Kind::UserToken,
        );
        cfscrub.feed(format!("round {round} token={token}\n").as_bytes());
        for _ in 0..5 {
            let text = std::fs::read_to_string(&textfile)
                .expect("the text file, once written, always exists");
            reads += 1;
            assert!(text.ends_with('\n'), "read {reads}: no final newline");
            assert_eq!(
                family_names_in(&text),
                families,
                "read {reads}: families differ"
            );
            let count = sample_value(&text, series)
                .unwrap_or_else(|| panic!("read {reads}: no {series}"));
            assert!(count >= last_count, "read {reads}: count went down");
            last_count = count;
            distinct.insert(text);
        }
    }

    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert!(distinct.len() > 1, "the file was never rewritten while read");
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert_eq!(sample_value(&text, series), Some(ROUNDS as f64));
    let leftovers: Vec<_> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "cfscrub.prom")
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Returns the `# TYPE` family names of an exposition, sorted.
fn family_names_in(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn family_names(metrics: &cfscrub::observe::Metrics) -> Vec<String> {
    let text = String::from_utf8(metrics.encode()).unwrap();
    family_names_in(&text)
}

#[test]
fn address_in_use_fails_startup() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = occupied.local_addr().unwrap();
    let cfscrub = Cfscrub::spawn(&[&format!("--metrics-listen={addr}")]);
    let exit = cfscrub.wait(WAIT);
    assert_eq!(exit.status.code(), Some(2), "stderr: {}", exit.stderr);
    let expected = format!(
        "cfscrub: --metrics-listen: cannot listen on {addr}: address \
         already in use"
    );
    assert!(exit.stderr.contains(&expected), "stderr: {}", exit.stderr);
    assert!(exit.stdout.is_empty(), "input was read despite the error");
}

#[test]
fn unwritable_textfile_fails_startup() {
    let dir = TempDir::new("unwritable");
    let textfile = dir.path.join("missing-dir").join("cfscrub.prom");
    let cfscrub =
        Cfscrub::spawn(&["--metrics-textfile", textfile.to_str().unwrap()]);
    let exit = cfscrub.wait(WAIT);
    assert_eq!(exit.status.code(), Some(2), "stderr: {}", exit.stderr);
    let expected = format!(
        "cfscrub: --metrics-textfile: cannot write metrics to {}: no such \
         file or directory",
        textfile.display()
    );
    assert!(exit.stderr.contains(&expected), "stderr: {}", exit.stderr);
}

/// Returns the names of the threads of process `pid`, from /proc.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .filter_map(|task| {
            let comm = task.ok()?.path().join("comm");
            Some(std::fs::read_to_string(comm).ok()?.trim().to_owned())
        })
        .collect()
}

#[test]
fn no_metrics_means_one_thread() {
    let mut cfscrub = Cfscrub::spawn(&[]);
    cfscrub.feed(b"line\n");
    // Without metrics the filter starts no thread at any point; the pause
    // only lets it reach its read loop before the count.
    std::thread::sleep(Duration::from_millis(200));
    let names = thread_names(cfscrub.child.id());
    assert_eq!(names.len(), 1, "threads without metrics: {names:?}");
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success());
}

#[test]
fn metrics_listen_adds_server_thread() {
    let mut cfscrub = Cfscrub::spawn(&["--metrics-listen=127.0.0.1:0"]);
    cfscrub.metrics_addr(WAIT);
    let names = thread_names(cfscrub.child.id());
    assert!(
        names.iter().any(|name| name == "metrics-http"),
        "threads: {names:?}"
    );
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success());
}

/// Sends `signal` to the cfscrub child.
fn send_signal(cfscrub: &Cfscrub, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(cfscrub.child.id()).unwrap();
    // SAFETY: kill has no memory effects; the pid is a child of this
    // process that was not waited for yet, so it was not reused.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "signal not sent");
}

#[test]
fn sigterm_ends_linger() {
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-listen=127.0.0.1:0",
        "--metrics-linger=600",
    ]);
    let addr = cfscrub.metrics_addr(WAIT);
    cfscrub.feed(b"one line\n");
    cfscrub.close_stdin();
    wait_for_status(addr, "/readyz", 503, "after end of input");
    send_signal(&cfscrub, libc::SIGTERM);
    // Far less than the 600 s of the linger.
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert_eq!(exit.stdout, b"one line\n");
}

/// The counts of a file are published before the next input is opened,
/// which for a FIFO waits until a writer opens it.
#[test]
fn counts_published_before_next_open() {
    let dir = TempDir::new("fifo-next");
    let first = dir.path.join("first.log");
    std::fs::write(&first, b"first line\nsecond line\n").unwrap();
    let fifo = dir.path.join("next.fifo");
    make_fifo(&fifo);
    let textfile = dir.path.join("cfscrub.prom");
    let cfscrub = Cfscrub::spawn(&[
        first.to_str().unwrap(),
        fifo.to_str().unwrap(),
        "--metrics-textfile",
        textfile.to_str().unwrap(),
        "--metrics-textfile-interval=0.05",
    ]);
    let read_bytes = "cfscrub_read_bytes_total{source=\"file\"}";
    let published = wait_until(WAIT, || {
        let text = std::fs::read_to_string(&textfile).ok()?;
        (sample_value(&text, read_bytes) == Some(23.0)).then_some(())
    });
    // Lets cfscrub's open of the FIFO return, and end its input.
    let writer = OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(writer);
    let exit = cfscrub.wait(WAIT);
    assert!(published.is_some(), "{read_bytes} not 23 while opening FIFO");
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
}

#[test]
fn failed_write_counts_nothing_written() {
    let Ok(full) = std::fs::File::options().write(true).open("/dev/full")
    else {
        panic!("/dev/full is missing");
    };
    let dir = TempDir::new("full-written");
    let textfile = dir.path.join("cfscrub.prom");
    let input = dir.path.join("app.log");
    std::fs::write(&input, "line\n".repeat(1000)).unwrap();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_cfscrub"))
        .arg(&input)
        .arg("--metrics-textfile")
        .arg(&textfile)
        .stdout(full)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
    let text = std::fs::read_to_string(&textfile).unwrap();
    let written = "cfscrub_written_bytes_total{source=\"file\"}";
    assert_eq!(sample_value(&text, written), Some(0.0));
    let read = "cfscrub_read_bytes_total{source=\"file\"}";
    assert_eq!(sample_value(&text, read), Some(5000.0));
}
