//! Helpers for the follow-mode tests: the real binary in a temporary
//! directory, lines with planted credentials, and checks of the output.

#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfscrub::engine::{Kind, sample};

/// Bound on every wait for cfscrub, so a broken build fails instead of
/// hanging. It is not a speed requirement.
pub const WAIT: Duration = Duration::from_secs(60);

/// Creates an empty directory under the system temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("cfscrub-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `cfscrub follow`, its stderr collected by a thread.
pub struct Follow {
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The file it appends its output to.
    pub output: PathBuf,
}

impl Follow {
    /// Starts `cfscrub follow -o OUTPUT ARGS...` in `dir` and waits until
    /// it has opened the files that exist.
    pub fn start(dir: &Path, output: &Path, args: &[&str]) -> Follow {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cfscrub"));
        command.arg("follow").arg("--output").arg(output);
        command.stdout(Stdio::null());
        Follow::spawn(command, dir, output, args)
    }

    /// Starts `cfscrub follow ARGS...` in `dir`, writing to `stdout`, and
    /// waits until it has opened the files that exist.
    pub fn start_to_stdout(
        dir: &Path,
        stdout: Stdio,
        args: &[&str],
    ) -> Follow {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cfscrub"));
        command.arg("follow").stdout(stdout);
        Follow::spawn(command, dir, Path::new(""), args)
    }

    fn spawn(
        mut command: Command,
        dir: &Path,
        output: &Path,
        args: &[&str],
    ) -> Follow {
        // A short poll interval unless the test sets its own, which clap
        // does not let it give twice.
        if !args.contains(&"--poll-interval") {
            command.args(["--poll-interval", "0.2"]);
        }
        let mut child = command
            .current_dir(dir)
            .args(["--log-level", "info"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cfscrub starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = collected.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        let follow = Follow { child, stderr, output: output.to_owned() };
        follow.wait_for_log("following files");
        follow
    }

    /// Takes the pipe of cfscrub's stdout, when it was started with one.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Returns what cfscrub wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `text`.
    pub fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "cfscrub logged no {text:?} within {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Returns the address of the metrics endpoint, from the log.
    pub fn metrics_addr(&self) -> String {
        self.wait_for_log("metrics endpoint listening");
        let stderr = self.stderr();
        let line = stderr
            .lines()
            .find(|line| line.contains("metrics endpoint listening"))
            .unwrap();
        let at = line.find("addr=").expect("addr field") + "addr=".len();
        line[at..].split_whitespace().next().unwrap().to_owned()
    }

    /// Returns the process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(self) -> (ExitStatus, String) {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop_with(self, signal: libc::c_int) -> (ExitStatus, String) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory effects; the pid is our own child,
        // which has not been waited for, so it cannot have been reused.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} not sent");
        self.wait_exit()
    }

    /// Waits for the exit, which something else has caused.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread see the end of the pipe.
                std::thread::sleep(Duration::from_millis(50));
                return (status, self.stderr());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!(
                    "cfscrub did not exit within {WAIT:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process with SIGKILL, as a crash would end it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Returns the offset of cfscrub's open descriptor of the file at
    /// `path`, read from /proc, or `None` when it has none open.
    pub fn read_position(&self, path: &Path) -> Option<u64> {
        let want = std::fs::metadata(path).ok()?;
        let fds = format!("/proc/{}/fd", self.pid());
        for entry in std::fs::read_dir(&fds).ok()? {
            let entry = entry.ok()?;
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            if meta.ino() != want.ino() || meta.dev() != want.dev() {
                continue;
            }
            let info = format!(
                "/proc/{}/fdinfo/{}",
                self.pid(),
                entry.file_name().to_string_lossy()
            );
            let text = std::fs::read_to_string(info).ok()?;
            let pos = text.lines().find_map(|l| l.strip_prefix("pos:"))?;
            return pos.trim().parse().ok();
        }
        None
    }

    /// Waits until cfscrub has read the file at `path` to its end, and no
    /// further: after a truncation, until it went back to the start.
    pub fn wait_until_read(&self, path: &Path) {
        let deadline = Instant::now() + WAIT;
        loop {
            let len = std::fs::metadata(path).unwrap().len();
            if self.read_position(path).is_some_and(|pos| pos == len) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cfscrub did not read {} to its end ({len} bytes) within \
                 {WAIT:?}; stderr:\n{}",
                path.display(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a GET request for `path` to `addr` and returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Returns the value of the sample named `series` (name and labels, as
/// printed) in a Prometheus text response.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The prefixed kinds planted in test lines, and their labels in the
/// output.
const KINDS: [(Kind, &str); 3] = [
    (Kind::UserToken, "[REDACTED:user_token]"),
    (Kind::AccountToken, "[REDACTED:account_token]"),
    (Kind::GlobalKey, "[REDACTED:global_key]"),
];

/// One line of test input, with the credential it carries.
pub struct Line {
    /// The line as written, with its newline.
    pub text: String,
    /// The planted credential.
    pub credential: String,
    /// The line as cfscrub must write it, with its newline.
    pub expected: String,
}

/// Returns line `seq` of source `name`, with a freshly generated
/// credential of a kind that changes with `seq`.
pub fn line(name: &str, seq: usize) -> Line {
    let (kind, label) = KINDS[seq % KINDS.len()];
    let credential = sample::prefixed(&mut rand::rng(), kind);
    Line {
        text: format!("{name} {seq:06} token={credential} end\n"),
        expected: format!("{name} {seq:06} token={label} end\n"),
        credential,
    }
}

/// Opens `path` for appending, as a logger does, creating it if needed.
pub fn open_log(path: &Path) -> File {
    OpenOptions::new().create(true).append(true).open(path).unwrap()
}

/// Writes `text` to `file` in one write.
pub fn append(file: &mut File, text: &str) {
    file.write_all(text.as_bytes()).unwrap();
}

/// Waits until the output contains at least `count` complete lines, and
/// returns the whole file.
pub fn wait_for_lines(follow: &Follow, count: usize) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&follow.output).unwrap_or_default();
        let lines = text.bytes().filter(|b| *b == b'\n').count();
        if lines >= count {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "output has {lines} of {count} lines after {WAIT:?}; stderr:\n{}",
            follow.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks that the lines of source `name` in `output` are exactly
/// `expected`, in order, and that no credential reached the output.
pub fn assert_lines(output: &str, name: &str, expected: &[Line]) {
    for line in expected {
        assert!(
            !output.contains(&line.credential[5..]),
            "credential body of {name} line {:?} in output",
            line.expected.trim_end()
        );
    }
    let prefix = format!("{name} ");
    let got: Vec<&str> = output
        .split_inclusive('\n')
        .filter(|line| line.starts_with(&prefix))
        .collect();
    let want: Vec<&str> =
        expected.iter().map(|l| l.expected.as_str()).collect();
    let missing = want.iter().filter(|w| !got.contains(w)).count();
    let mut seen = std::collections::HashSet::new();
    let repeated = got.iter().filter(|g| !seen.insert(**g)).count();
    assert_eq!(missing, 0, "lines of {name} missing from output");
    assert_eq!(repeated, 0, "lines of {name} written more than once");
    assert_eq!(got, want, "lines of {name} out of order or changed");
}

/// Checks that every line of `output` is a whole line of one of `names`.
pub fn assert_no_mixed_lines(output: &str, names: &[&str]) {
    for (index, line) in output.split_inclusive('\n').enumerate() {
        let whole = line.ends_with(" end\n")
            && names.iter().any(|name| line.starts_with(&format!("{name} ")))
            && line.matches(" end").count() == 1;
        // Only the start of the line is shown, because the rest may
        // contain a credential that was not redacted.
        let start: String = line.chars().take(9).collect();
        assert!(
            whole,
            "output line {index} is not one whole input line: it starts \
             with {start:?} and has {} bytes",
            line.len()
        );
    }
}

/// Reports whether the tests run in CI, where a missing component is a
/// failure and not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}
