//! `cfscrub follow` going on where it stopped reading. The cases: a file
//! truncated and written past the old offset before cfscrub looks again,
//! live and across a restart; checkpoints of the older format, without a
//! fingerprint; where the first run with a checkpoint starts.

mod follow_support;

use std::fs::OpenOptions;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cfscrub::engine::{Kind, sample};
use follow_support::{
    Follow, Line, append, assert_lines, http_get, line, metric, open_log,
    temp_dir, wait_for_lines,
};

/// The first line of each test file. The offset after it falls just after
/// the prefix of the credential in [`leak_line`].
const OLD_LINE: &str = "old line\n";

/// A line whose credential prefix ends at `OLD_LINE.len()`, so that
/// reading it from the old offset would start with the secret body.
struct LeakLine {
    text: String,
    expected: String,
    body: String,
}

fn leak_line() -> LeakLine {
    let credential = sample::prefixed(&mut rand::rng(), Kind::UserToken);
    let text = format!("new {credential} end\n");
    assert_eq!(text.find(&credential[5..]), Some(OLD_LINE.len()));
    LeakLine {
        text,
        expected: "new [REDACTED:user_token] end\n".to_owned(),
        body: credential[5..].to_owned(),
    }
}

/// Copies `path` aside and cuts it to nothing, as logrotate's
/// `copytruncate` does, then writes `text` to it.
fn copy_truncate_and_write(path: &Path, text: &str) {
    std::fs::copy(path, path.with_extension("log.1")).unwrap();
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(0).unwrap();
    drop(file);
    append(&mut open_log(path), text);
}

fn send_signal(follow: &Follow, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(follow.pid()).unwrap();
    // SAFETY: kill has no memory effects; the pid is a child of this
    // process that was not waited for yet, so it was not reused.
    let sent = unsafe { libc::kill(pid, signal) };
    assert_eq!(sent, 0, "signal {signal} not sent");
}

fn assert_no_leak(output: &str, line: &LeakLine) {
    assert!(
        !output.contains(&line.body),
        "credential body in output ({} bytes)",
        output.len()
    );
    assert!(
        output.contains(&line.expected),
        "redacted line missing from {} bytes of output",
        output.len()
    );
}

/// Truncates and rewrites the file while cfscrub is stopped by SIGSTOP,
/// so that the next look finds it longer than the read offset.
fn truncation_past_offset_live(name: &str, extra: &[&str]) {
    let dir = temp_dir(name);
    let path = dir.join("app.log");
    std::fs::write(&path, OLD_LINE).unwrap();
    let mut args = vec!["--from-start"];
    args.extend_from_slice(extra);
    args.push("app.log");
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    wait_for_lines(&follow, 1);
    follow.wait_until_read(&path);

    send_signal(&follow, libc::SIGSTOP);
    let leak = leak_line();
    copy_truncate_and_write(&path, &leak.text);
    send_signal(&follow, libc::SIGCONT);

    let output = wait_for_lines(&follow, 2);
    let metrics = http_get(&follow.metrics_addr(), "/metrics");
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_no_leak(&output, &leak);
    assert_eq!(output, format!("{OLD_LINE}{}", leak.expected));
    let truncations = "cfscrub_follow_rotations_total{rotation=\"truncate\"}";
    assert_eq!(metric(&metrics, truncations), Some(1.0));
}

#[test]
fn truncation_past_offset_with_inotify() {
    truncation_past_offset_live("past-offset-inotify", &[]);
}

#[test]
fn truncation_past_offset_with_polling() {
    truncation_past_offset_live("past-offset-poll", &["--poll"]);
}

#[test]
fn truncation_while_stopped_reads_from_start() {
    let dir = temp_dir("past-offset-restart");
    let path = dir.join("app.log");
    let out = dir.join("out");
    let args =
        ["--from-start", "--checkpoint", "follow.checkpoint", "app.log"];
    std::fs::write(&path, OLD_LINE).unwrap();
    let follow = Follow::start(&dir, &out, &args);
    wait_for_lines(&follow, 1);
    follow.wait_until_read(&path);
    let (status, _) = follow.stop();
    assert!(status.success(), "first run exit status {status}");
    let checkpoint =
        std::fs::read_to_string(dir.join("follow.checkpoint")).unwrap();
    assert!(checkpoint.contains("\"fingerprint\""), "{checkpoint}");

    let leak = leak_line();
    copy_truncate_and_write(&path, &leak.text);
    let follow = Follow::start(&dir, &out, &args);
    let output = wait_for_lines(&follow, 2);
    let (status, stderr) = follow.stop();
    assert!(status.success(), "second run exit status {status}");
    assert_no_leak(&output, &leak);
    assert_eq!(output, format!("{OLD_LINE}{}", leak.expected));
    assert!(
        stderr.contains("file truncated while stopped"),
        "stderr:\n{stderr}"
    );
}

/// Writes a checkpoint in the format of older versions, which had no
/// fingerprint, for the file at `path`.
fn write_old_checkpoint(dir: &Path, path: &Path, offset: usize) {
    let meta = std::fs::metadata(path).unwrap();
    let text = format!(
        "{{\"version\":1,\"files\":[{{\"path\":\"app.log\",\"dev\":{},\
         \"ino\":{},\"offset\":{offset}}}]}}",
        meta.dev(),
        meta.ino()
    );
    std::fs::write(dir.join("follow.checkpoint"), text).unwrap();
}

#[test]
fn old_checkpoint_mid_line_reads_from_start() {
    let dir = temp_dir("old-checkpoint-mid-line");
    let path = dir.join("app.log");
    let leak = leak_line();
    std::fs::write(&path, &leak.text).unwrap();
    write_old_checkpoint(&dir, &path, OLD_LINE.len());
    let args = ["--checkpoint", "follow.checkpoint", "app.log"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let output = wait_for_lines(&follow, 1);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_no_leak(&output, &leak);
    assert_eq!(output, leak.expected);
}

#[test]
fn old_checkpoint_at_line_start_resumes() {
    let dir = temp_dir("old-checkpoint-line-start");
    let path = dir.join("app.log");
    let lines: Vec<Line> = (0..3).map(|seq| line("a", seq)).collect();
    let text: String = lines.iter().map(|l| l.text.as_str()).collect();
    std::fs::write(&path, text).unwrap();
    write_old_checkpoint(&dir, &path, lines[0].text.len());
    let args = ["--checkpoint", "follow.checkpoint", "app.log"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let output = wait_for_lines(&follow, 2);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &lines[1..]);
}

#[test]
fn first_checkpoint_run_reads_from_start() {
    let dir = temp_dir("first-checkpoint-run");
    let path = dir.join("app.log");
    let lines: Vec<Line> = (0..4).map(|seq| line("a", seq)).collect();
    let text: String = lines[..3].iter().map(|l| l.text.as_str()).collect();
    std::fs::write(&path, text).unwrap();
    let args = ["--checkpoint", "follow.checkpoint", "app.log"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    append(&mut open_log(&path), &lines[3].text);
    let output = wait_for_lines(&follow, 4);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_lines(&output, "a", &lines);
}

#[test]
fn from_end_with_checkpoint_skips_existing() {
    let dir = temp_dir("checkpoint-from-end");
    let path = dir.join("app.log");
    let old = line("a", 0);
    std::fs::write(&path, &old.text).unwrap();
    let args = ["--from-end", "--checkpoint", "follow.checkpoint", "app.log"];
    let follow = Follow::start(&dir, &dir.join("out"), &args);
    let new = line("a", 1);
    append(&mut open_log(&path), &new.text);
    let output = wait_for_lines(&follow, 1);
    let (status, _) = follow.stop();
    assert!(status.success(), "exit status {status}");
    assert_eq!(output, new.expected);
}
