//! `cfscrub follow` as an operator meets it: wrong paths, start-up errors
//! with one clear line, and SIGHUP from logrotate.

mod follow_support;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use follow_support::{
    Follow, Line, WAIT, append, assert_lines, http_get, line, metric,
    open_log, temp_dir, wait_for_lines,
};

/// Runs `cfscrub follow ARGS...` in `dir`, which is expected to exit on
/// its own, and returns its status and stderr.
fn run_to_exit(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cfscrub"))
        .current_dir(dir)
        .arg("follow")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cfscrub starts");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("cfscrub follow {args:?} did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Checks that `stderr` is one line, the error, and that it contains
/// `text` once.
fn assert_one_line_error(stderr: &str, text: &str) {
    assert_eq!(stderr.lines().count(), 1, "stderr:\n{stderr}");
    assert!(stderr.starts_with("cfscrub: "), "stderr:\n{stderr}");
    assert_eq!(stderr.matches(text).count(), 1, "stderr:\n{stderr}");
}

#[test]
fn missing_paths_are_warned() {
    let dir = temp_dir("missing-paths");
    std::fs::create_dir(dir.join("empty")).unwrap();
    let args = ["none.log", "empty/*.log"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let metrics = http_get(&follow.metrics_addr(), "/metrics");
    let (status, stderr) = follow.stop();
    assert!(status.success(), "exit status {status}");
    let missing = "a followed file does not exist yet";
    assert_eq!(stderr.matches(missing).count(), 1, "stderr:\n{stderr}");
    assert!(stderr.contains("path=none.log"), "stderr:\n{stderr}");
    let no_match = "no file matches a followed glob yet";
    assert_eq!(stderr.matches(no_match).count(), 1, "stderr:\n{stderr}");
    assert_eq!(metric(&metrics, "cfscrub_follow_files"), Some(0.0));
}

#[test]
fn directory_path_is_rejected() {
    let dir = temp_dir("directory-path");
    std::fs::create_dir(dir.join("logs")).unwrap();
    let (status, stderr) = run_to_exit(&dir, &["--no-metrics", "logs"]);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_one_line_error(&stderr, "cannot follow logs: it is a directory");
    assert!(stderr.contains("'logs/*.log'"), "stderr:\n{stderr}");
}

#[test]
fn metrics_address_in_use_is_explained() {
    let dir = temp_dir("metrics-in-use");
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = occupied.local_addr().unwrap().to_string();
    let args = ["--metrics-listen", addr.as_str(), "app.log"];
    let (status, stderr) = run_to_exit(&dir, &args);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    let expected = format!(
        "--metrics-listen: cannot listen on {addr}: address already in use"
    );
    assert_one_line_error(&stderr, &expected);
    assert!(stderr.contains("choose another port"), "stderr:\n{stderr}");
}

/// A second follow process on a host meets the first one's default port,
/// and the message names the default and the options that avoid it.
#[test]
fn default_metrics_port_in_use_explained() {
    let dir = temp_dir("default-port-in-use");
    // Held by this test, or else by another process: in use either way.
    let _listener = std::net::TcpListener::bind("127.0.0.1:9898");
    let (status, stderr) = run_to_exit(&dir, &["app.log"]);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_one_line_error(
        &stderr,
        "cannot listen on 127.0.0.1:9898, the default --metrics-listen: \
         address already in use",
    );
    assert!(stderr.contains("--no-metrics"), "stderr:\n{stderr}");
}

#[test]
fn corrupt_checkpoint_is_reported_once() {
    let dir = temp_dir("corrupt-checkpoint");
    std::fs::write(dir.join("follow.checkpoint"), "not json").unwrap();
    let args =
        ["--no-metrics", "--checkpoint", "follow.checkpoint", "app.log"];
    let (status, stderr) = run_to_exit(&dir, &args);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_one_line_error(&stderr, "invalid checkpoint follow.checkpoint");
    assert!(stderr.contains("delete it to start over"), "stderr:\n{stderr}");
}

#[test]
fn checkpoint_in_missing_directory_fails_at_start() {
    let dir = temp_dir("checkpoint-missing-dir");
    std::fs::write(dir.join("app.log"), line("a", 0).text).unwrap();
    let args = [
        "--no-metrics",
        "--output",
        "out",
        "--checkpoint",
        "missing/follow.checkpoint",
        "app.log",
    ];
    let (status, stderr) = run_to_exit(&dir, &args);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_one_line_error(
        &stderr,
        "cannot write checkpoint missing/follow.checkpoint: its directory \
         does not exist",
    );
    let output = std::fs::read_to_string(dir.join("out")).unwrap();
    assert_eq!(output, "", "lines were read before the error");
}

fn send_hangup(follow: &Follow) {
    let pid = libc::pid_t::try_from(follow.pid()).unwrap();
    // SAFETY: kill has no memory effects; the pid is a child of this
    // process that was not waited for yet, so it was not reused.
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
    assert_eq!(sent, 0, "SIGHUP not sent");
}

#[test]
fn sighup_reopens_the_output() {
    let dir = temp_dir("sighup");
    let path = dir.join("app.log");
    let out = dir.join("out");
    std::fs::write(&path, "").unwrap();
    let follow = Follow::start(&dir, &out, &["app.log"]);
    let lines: Vec<Line> = (0..4).map(|seq| line("a", seq)).collect();
    let mut log = open_log(&path);
    for line in &lines[..2] {
        append(&mut log, &line.text);
    }
    wait_for_lines(&follow, 2);

    // What logrotate does with `create` and a postrotate of kill -HUP.
    let rotated = dir.join("out.1");
    std::fs::rename(&out, &rotated).unwrap();
    send_hangup(&follow);
    follow.wait_for_log("reopened the output");
    for line in &lines[2..] {
        append(&mut log, &line.text);
    }
    let after = wait_for_lines(&follow, 2);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    let before = std::fs::read_to_string(&rotated).unwrap();
    assert_lines(&before, "a", &lines[..2]);
    assert_lines(&after, "a", &lines[2..]);
}

/// A checkpoint that cannot be written while following is retried every
/// interval and counted each time, but logged once per 10 s.
#[test]
fn checkpoint_failures_logged_once() {
    let dir = temp_dir("checkpoint-write-fails");
    let state = dir.join("state");
    std::fs::create_dir(&state).unwrap();
    let path = dir.join("app.log");
    std::fs::write(&path, "").unwrap();
    let args = [
        "--checkpoint",
        "state/follow.checkpoint",
        "--checkpoint-interval",
        "0.05",
        "app.log",
    ];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let addr = follow.metrics_addr();
    std::fs::remove_dir_all(&state).unwrap();
    append(&mut open_log(&path), &line("a", 0).text);
    wait_for_lines(&follow, 1);

    let errors = "cfscrub_errors_total{stage=\"checkpoint\"}";
    let deadline = Instant::now() + WAIT;
    while metric(&http_get(&addr, "/metrics"), errors).unwrap_or(0.0) < 5.0 {
        assert!(Instant::now() < deadline, "fewer than 5 failures counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged =
        follow.stderr().matches("writing the checkpoint failed").count();
    follow.kill();
    assert_eq!(logged, 1, "failures logged {logged} times");
}

/// A file that follow mode writes cannot be one it follows: the output
/// among the plain paths, or a metrics text file or findings file among
/// the plain paths or the matches of a glob.
#[test]
fn written_file_as_followed_rejected() {
    let dir = temp_dir("written-followed");
    std::fs::write(dir.join("app.log"), "").unwrap();
    let cases: [(&[&str], &str); 4] = [
        (&["--output", "app.log", "app.log"], "--output to app.log"),
        (
            &["--metrics-textfile", "app.log", "app.log"],
            "--metrics-textfile to app.log",
        ),
        (
            &["--metrics-textfile", "metrics.log", "*.log"],
            "--metrics-textfile to metrics.log",
        ),
        (&["--findings", "found.log", "*.log"], "--findings to found.log"),
    ];
    for (args, target) in cases {
        let mut all = vec!["--no-metrics"];
        all.extend_from_slice(args);
        let (status, stderr) = run_to_exit(&dir, &all);
        assert_eq!(status.code(), Some(2), "{args:?}: stderr:\n{stderr}");
        let expected = format!("cannot write {target}, because it is also");
        assert_one_line_error(&stderr, &expected);
    }
    let content = std::fs::read(dir.join("app.log")).unwrap();
    assert!(content.is_empty(), "the followed file was written");
}
