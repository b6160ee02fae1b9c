//! `cfscrub follow` against real files: where it starts, files that
//! appear, disappear and match a glob, polling, and restarts from a
//! checkpoint, and the metrics of follow mode.

mod follow_support;

use std::time::{Duration, Instant};

use follow_support::{
    Follow, Line, WAIT, append, assert_lines, assert_no_mixed_lines, http_get,
    line, metric, open_log, temp_dir, wait_for_lines,
};

#[test]
fn starts_at_end_by_default() {
    let dir = temp_dir("starts-at-end");
    let log = dir.join("app.log");
    let old = line("a", 0);
    std::fs::write(&log, &old.text).unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);
    let new = line("a", 1);
    append(&mut open_log(&log), &new.text);
    let output = wait_for_lines(&follow, 1);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_eq!(output, new.expected);
}

#[test]
fn from_start_reads_existing_lines() {
    let dir = temp_dir("from-start");
    let log = dir.join("app.log");
    let lines: Vec<Line> = (0..3).map(|seq| line("a", seq)).collect();
    let text: String = lines.iter().map(|l| l.text.as_str()).collect();
    std::fs::write(&log, text).unwrap();
    let follow =
        Follow::start(&dir, &dir.join("out"), &["--from-start", "app.log"]);
    let output = wait_for_lines(&follow, 3);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &lines);
}

#[test]
fn file_appearing_later_is_read() {
    let dir = temp_dir("appears-later");
    let follow = Follow::start(&dir, &dir.join("out"), &["later.log"]);
    std::thread::sleep(Duration::from_millis(300));
    let lines: Vec<Line> = (0..3).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&dir.join("later.log"));
    for line in &lines {
        append(&mut log, &line.text);
    }
    let output = wait_for_lines(&follow, 3);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &lines);
}

#[test]
fn deleted_and_recreated_file_is_followed() {
    let dir = temp_dir("recreate");
    let path = dir.join("app.log");
    let first = line("a", 0);
    let second = line("a", 1);
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);
    append(&mut open_log(&path), &first.text);
    wait_for_lines(&follow, 1);
    std::fs::remove_file(&path).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    append(&mut open_log(&path), &second.text);
    let output = wait_for_lines(&follow, 2);
    let (status, stderr) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &[first, second]);
    assert!(stderr.contains("rotation=\"recreate\""), "stderr:\n{stderr}");
}

#[test]
fn glob_picks_up_new_files() {
    let dir = temp_dir("glob");
    std::fs::write(dir.join("a.log"), "").unwrap();
    std::fs::write(dir.join("ignored.txt"), "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["*.log"]);
    let a: Vec<Line> = (0..3).map(|seq| line("a", seq)).collect();
    let b: Vec<Line> = (0..3).map(|seq| line("b", seq)).collect();
    let mut a_log = open_log(&dir.join("a.log"));
    append(&mut a_log, &a[0].text);
    wait_for_lines(&follow, 1);
    let mut b_log = open_log(&dir.join("b.log"));
    let mut ignored = open_log(&dir.join("ignored.txt"));
    append(&mut ignored, &line("c", 0).text);
    for (a_line, b_line) in a[1..].iter().zip(&b) {
        append(&mut a_log, &a_line.text);
        append(&mut b_log, &b_line.text);
    }
    append(&mut b_log, &b[2].text);
    let output = wait_for_lines(&follow, 6);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &a);
    assert_lines(&output, "b", &b);
    assert!(!output.contains("c 000000"), "ignored.txt was followed");
}

#[test]
fn polling_mode_follows_rotation() {
    let dir = temp_dir("polling");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["--poll", "app.log"]);
    assert!(follow.stderr().contains("polling=true"), "not polling");
    let lines: Vec<Line> = (0..4).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    append(&mut log, &lines[0].text);
    wait_for_lines(&follow, 1);
    std::fs::rename(&path, dir.join("app.log.1")).unwrap();
    append(&mut log, &lines[1].text);
    let mut log = open_log(&path);
    append(&mut log, &lines[2].text);
    append(&mut log, &lines[3].text);
    let output = wait_for_lines(&follow, 4);
    let (status, stderr) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &lines);
    assert!(stderr.contains("rotation=\"rename\""), "stderr:\n{stderr}");
}

#[test]
fn lines_of_two_files_stay_whole() {
    let dir = temp_dir("two-files");
    std::fs::write(dir.join("a.log"), "").unwrap();
    std::fs::write(dir.join("b.log"), "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["a.log", "b.log"]);
    let a: Vec<Line> = (0..20).map(|seq| line("a", seq)).collect();
    let b: Vec<Line> = (0..20).map(|seq| line("b", seq)).collect();
    let mut a_log = open_log(&dir.join("a.log"));
    let mut b_log = open_log(&dir.join("b.log"));
    for (a_line, b_line) in a.iter().zip(&b) {
        // Each line of a is written in two parts, with a whole line of b
        // and a pause between them. A cfscrub that wrote what it read at
        // once would put the line of b inside the line of a.
        let (head, tail) = a_line.text.split_at(a_line.text.len() / 2);
        append(&mut a_log, head);
        append(&mut b_log, &b_line.text);
        std::thread::sleep(Duration::from_millis(20));
        append(&mut a_log, tail);
    }
    let output = wait_for_lines(&follow, 40);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_no_mixed_lines(&output, &["a", "b"]);
    assert_lines(&output, "a", &a);
    assert_lines(&output, "b", &b);
}

#[test]
fn restart_from_checkpoint_loses_nothing() {
    let dir = temp_dir("checkpoint");
    let path = dir.join("app.log");
    let out = dir.join("out");
    let args =
        ["--from-start", "--checkpoint", "follow.checkpoint", "app.log"];
    let lines: Vec<Line> = (0..12).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..3] {
        append(&mut log, &line.text);
    }
    // A line whose end comes only after the restart: the first run must
    // leave it for the second.
    let (head, tail) = lines[3].text.split_at(30);
    append(&mut log, head);
    let follow = Follow::start(&dir, &out, &args);
    wait_for_lines(&follow, 3);
    follow.wait_until_read(&path);
    let (status, _) = follow.stop();
    assert!(status.success(), "first run exit status {status}");
    assert!(dir.join("follow.checkpoint").exists(), "no checkpoint written");

    // While cfscrub is stopped: the line is finished, more are written,
    // the file is rotated by rename and its successor gets lines too.
    append(&mut log, tail);
    for line in &lines[4..7] {
        append(&mut log, &line.text);
    }
    std::fs::rename(&path, dir.join("app.log.1")).unwrap();
    append(&mut log, &lines[7].text);
    let mut log = open_log(&path);
    for line in &lines[8..10] {
        append(&mut log, &line.text);
    }

    let follow = Follow::start(&dir, &out, &args);
    for line in &lines[10..] {
        append(&mut log, &line.text);
    }
    let output = wait_for_lines(&follow, lines.len());
    let (status, stderr) = follow.stop();
    assert!(status.success(), "second run exit status {status}");
    assert!(
        stderr.contains("resuming a file rotated while stopped"),
        "stderr:\n{stderr}"
    );
    assert_lines(&output, "a", &lines);
}

#[test]
fn sigterm_without_checkpoint_writes_last_line() {
    let dir = temp_dir("sigterm-flush");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);
    let whole = line("a", 0);
    append(&mut open_log(&path), &whole.text);
    append(&mut open_log(&path), "a 000001 unfinished");
    wait_for_lines(&follow, 1);
    follow.wait_until_read(&path);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    let output = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(output, format!("{}a 000001 unfinished", whole.expected));
}

#[test]
fn invalid_arguments_are_rejected() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cfscrub"))
            .arg("follow")
            .args(args)
            .output()
            .unwrap()
    };
    let bad_glob = run(&["--no-metrics", "/tmp/[.log"]);
    assert_eq!(bad_glob.status.code(), Some(2));
    let message = String::from_utf8_lossy(&bad_glob.stderr);
    assert!(message.contains("invalid pattern"), "stderr: {message}");
    let bad_interval = run(&["--poll-interval", "0", "app.log"]);
    assert_eq!(bad_interval.status.code(), Some(2));
    let message = String::from_utf8_lossy(&bad_interval.stderr);
    assert!(message.contains("--poll-interval"), "stderr: {message}");
    assert!(message.contains("more than 0 seconds"), "stderr: {message}");
}

#[test]
fn metrics_count_lines_and_rotations() {
    let dir = temp_dir("metrics");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &dir.join("out"), &["app.log"]);
    let addr = follow.metrics_addr();
    let lines: Vec<Line> = (0..6).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..3] {
        append(&mut log, &line.text);
    }
    std::fs::rename(&path, dir.join("app.log.1")).unwrap();
    let mut log = open_log(&path);
    for line in &lines[3..] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, lines.len());

    let written = "cfscrub_written_records_total{source=\"follow\"}";
    let deadline = Instant::now() + WAIT;
    let text = loop {
        let text = http_get(&addr, "/metrics");
        if metric(&text, written) == Some(6.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "metrics never counted 6 lines");
        std::thread::sleep(Duration::from_millis(50));
    };
    let ready = http_get(&addr, "/readyz");
    let health = http_get(&addr, "/healthz");
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");

    let read = "cfscrub_read_records_total{source=\"follow\"}";
    assert_eq!(metric(&text, read), Some(6.0));
    let renames = "cfscrub_follow_rotations_total{rotation=\"rename\"}";
    assert_eq!(metric(&text, renames), Some(1.0));
    let truncations = "cfscrub_follow_rotations_total{rotation=\"truncate\"}";
    assert_eq!(metric(&text, truncations), Some(0.0));
    let user = "cfscrub_redactions_total{kind=\"user_token\"}";
    assert_eq!(metric(&text, user), Some(2.0));
    let bytes: usize = lines.iter().map(|l| l.text.len()).sum();
    let read_bytes = "cfscrub_read_bytes_total{source=\"follow\"}";
    assert_eq!(metric(&text, read_bytes), Some(bytes as f64));
    assert_eq!(metric(&text, "cfscrub_follow_files"), Some(1.0));
    assert_eq!(metric(&text, "cfscrub_ready"), Some(1.0));
    assert!(ready.starts_with("HTTP/1.1 200"), "readyz: {ready}");
    assert!(health.starts_with("HTTP/1.1 200"), "healthz: {health}");
}

#[test]
fn restart_after_kill_loses_nothing() {
    let dir = temp_dir("kill");
    let path = dir.join("app.log");
    let out = dir.join("out");
    let checkpoint = dir.join("follow.checkpoint");
    let args = [
        "--from-start",
        "--checkpoint",
        "follow.checkpoint",
        "--checkpoint-interval",
        "0.1",
        "app.log",
    ];
    let lines: Vec<Line> = (0..8).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..4] {
        append(&mut log, &line.text);
    }
    let follow = Follow::start(&dir, &out, &args);
    wait_for_lines(&follow, 4);
    let recorded: usize = lines[..4].iter().map(|l| l.text.len()).sum();
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(&checkpoint)
        .is_ok_and(|text| text.contains(&format!("\"offset\": {recorded}")))
    {
        assert!(Instant::now() < deadline, "checkpoint never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Two more lines, then a crash: the checkpoint may or may not have
    // recorded them yet.
    for line in &lines[4..6] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, 6);
    follow.kill();
    for line in &lines[6..] {
        append(&mut log, &line.text);
    }
    let follow = Follow::start(&dir, &out, &args);
    let mut output = wait_for_lines(&follow, lines.len());
    let last = &lines[7].expected;
    while !output.ends_with(last.as_str()) {
        output = wait_for_lines(&follow, output.lines().count() + 1);
    }
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");

    let written: Vec<&str> = output.split_inclusive('\n').collect();
    let expected: Vec<&str> =
        lines.iter().map(|line| line.expected.as_str()).collect();
    assert_eq!(written[..6], expected[..6], "first run");
    // The second run starts where the checkpoint was: after line 3 or 5.
    let restart = 6 + 8 - written.len();
    assert!((4..=6).contains(&restart), "{} lines written", written.len());
    assert_eq!(written[6..], expected[restart..], "second run");
}

#[test]
fn glob_skips_own_output_and_checkpoint() {
    let dir = temp_dir("own-files");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let args = [
        "--checkpoint",
        "follow.checkpoint",
        "--checkpoint-interval",
        "0.1",
        "*",
    ];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let lines: Vec<Line> = (0..6).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..3] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, 3);
    // Long enough for checkpoint writes and a look at the directory, which
    // a cfscrub that followed its own files would then read.
    std::thread::sleep(Duration::from_millis(500));
    for line in &lines[3..] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, 6);
    std::thread::sleep(Duration::from_millis(500));
    let (status, stderr) = follow.stop();
    assert!(status.success(), "exit status {status}");
    let output = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_lines(&output, "a", &lines);
    assert!(!output.contains("\"version\""), "checkpoint was followed");
    assert!(!stderr.contains("path=out "), "output was followed:\n{stderr}");
    assert!(!stderr.contains("stopped following"), "stderr:\n{stderr}");
}

/// Returns the current time in seconds since the Unix epoch.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// With stdout a pipe that the test does not read, the stall gauge holds
/// the start of the blocked write. Once the pipe is read, it is back at 0.
#[test]
fn stall_gauge_tracks_blocked_stdout() {
    const GAUGE: &str = "cfscrub_output_write_start_time_seconds";
    let dir = temp_dir("follow-stall");
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let mut follow = Follow::start_to_stdout(
        &dir,
        std::process::Stdio::piped(),
        &["app.log"],
    );
    let addr = follow.metrics_addr();
    let scrape = |series: &str| {
        metric(&http_get(&addr, "/metrics"), series)
            .unwrap_or_else(|| panic!("/metrics has no {series}"))
    };
    assert_eq!(scrape(GAUGE), 0.0, "gauge before input");

    // Many times the 64 KiB that the stdout pipe holds.
    let mut text = String::new();
    let mut seq = 0;
    while text.len() < 4 << 20 {
        text.push_str(&format!("2026-05-01T10:00:00Z request {seq} ok\n"));
        seq += 1;
    }
    let before = unix_now();
    append(&mut open_log(&path), &text);

    // The same start in two scrapes in a row is one write that did not
    // return in between.
    let deadline = Instant::now() + WAIT;
    let mut last = 0.0;
    let started = loop {
        let seen = scrape(GAUGE);
        if seen > 0.0 && seen == last {
            break seen;
        }
        last = seen;
        assert!(Instant::now() < deadline, "{GAUGE} never held one write");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(started >= before - 1.0, "write began {started}, before {before}");
    assert!(started <= unix_now(), "write began {started}, in the future");

    let mut stdout = follow.take_stdout().unwrap();
    let expected = text.len();
    let reader = std::thread::spawn(move || {
        let mut bytes = vec![0; expected];
        std::io::Read::read_exact(&mut stdout, &mut bytes).map(|()| bytes)
    });
    let output = reader.join().unwrap().expect("read cfscrub's stdout");
    assert!(output == text.as_bytes(), "stdout differs from the clean lines");
    let deadline = Instant::now() + WAIT;
    while scrape(GAUGE) != 0.0 {
        assert!(Instant::now() < deadline, "{GAUGE} not back at 0");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
}
