//! Helpers shared by the metrics tests: a minimal HTTP/1.1 client for
//! loopback endpoints, so the tests need no HTTP client library.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Bound on connecting to, and on each read from, a loopback endpoint.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status code, headers with lowercase names, and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Returns the value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Returns the body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("body is UTF-8")
    }
}

/// Sends `method path` to `addr` with `Connection: close` and returns the
/// response, or the I/O error.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(parse(&raw))
}

/// Sends `GET path` to `addr` and returns the response.
///
/// # Panics
///
/// Panics with the address and path when the request fails.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path)
        .unwrap_or_else(|error| panic!("GET http://{addr}{path}: {error}"))
}

fn parse(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("response has a header section");
    let head = std::str::from_utf8(&raw[..end]).expect("headers are ASCII");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| {
            (key.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(key, value)| key == "transfer-encoding" && value == "chunked");
    if chunked {
        body = dechunk(&body);
    }
    Response { status, headers, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.trim(), 16)
            .expect("chunk size is hex");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// Creates an empty directory whose name starts with `cfscrub-` and
    /// `name`, unique to this process and call.
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir()
            .join(format!("cfscrub-{name}-{}-{unique}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|error| {
            panic!("create {}: {error}", path.display())
        });
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A running `cfscrub` with piped stdin, stdout and stderr. Stdout and
/// stderr are read by threads; the child is killed on drop if it still
/// runs.
pub struct Cfscrub {
    pub child: std::process::Child,
    pub stdin: Option<std::process::ChildStdin>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
    stderr_lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr: Option<std::thread::JoinHandle<()>>,
}

/// How the child process ended, with everything it wrote.
pub struct Exit {
    pub status: std::process::ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Cfscrub {
    /// Starts cfscrub with `args` and `--log-level info`, so that it logs
    /// the address of its metrics endpoint.
    pub fn spawn(args: &[&str]) -> Cfscrub {
        let mut cfscrub = Cfscrub::spawn_unread_stdout(args);
        let mut out = cfscrub.child.stdout.take().unwrap();
        cfscrub.stdout = Some(std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        }));
        cfscrub
    }

    /// Starts cfscrub as [`Cfscrub::spawn`] does, but leaves its stdout in
    /// `child.stdout` for the caller to read, or not. [`Cfscrub::wait`]
    /// then returns an empty stdout.
    pub fn spawn_unread_stdout(args: &[&str]) -> Cfscrub {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_cfscrub"))
            .args(args)
            .arg("--log-level=info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cfscrub");
        let stdin = child.stdin.take();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let sink = lines.clone();
        let stderr = std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Cfscrub {
            child,
            stdin,
            stdout: None,
            stderr_lines: lines,
            stderr: Some(stderr),
        }
    }

    /// Returns the stderr lines read so far, joined.
    pub fn stderr_so_far(&self) -> String {
        self.stderr_lines.lock().unwrap().join("\n")
    }

    /// Waits, up to `timeout`, for the log line that gives the address of
    /// the metrics endpoint and returns the address.
    ///
    /// # Panics
    ///
    /// Panics with the stderr read so far when no such line comes.
    pub fn metrics_addr(&mut self, timeout: Duration) -> SocketAddr {
        let found = wait_until(timeout, || {
            let lines = self.stderr_lines.lock().unwrap();
            lines
                .iter()
                .filter(|line| line.contains("metrics endpoint listening"))
                .find_map(|line| line.split("addr=").nth(1))
                .and_then(|addr| addr.split_whitespace().next())
                .and_then(|addr| addr.parse().ok())
        });
        found.unwrap_or_else(|| {
            let status = self.child.try_wait().ok().flatten();
            panic!(
                "cfscrub logged no metrics address within {timeout:?} \
                 (exit status {status:?}); stderr:\n{}",
                self.stderr_so_far()
            )
        })
    }

    /// Writes `bytes` to cfscrub's stdin.
    pub fn feed(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("write to cfscrub's stdin");
        stdin.flush().expect("flush cfscrub's stdin");
    }

    /// Closes cfscrub's stdin, which ends its input.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits, up to `timeout`, for cfscrub to exit, and returns how it
    /// ended.
    ///
    /// # Panics
    ///
    /// Panics, after killing it, when cfscrub still runs at the timeout.
    pub fn wait(mut self, timeout: Duration) -> Exit {
        self.close_stdin();
        let status = wait_until(timeout, || self.child.try_wait().unwrap());
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "cfscrub did not exit within {timeout:?}; stderr:\n{}",
                self.stderr_so_far()
            );
        };
        let stdout = self
            .stdout
            .take()
            .map_or_else(Vec::new, |reader| reader.join().unwrap());
        self.stderr.take().unwrap().join().unwrap();
        Exit { status, stdout, stderr: self.stderr_so_far() }
    }
}

impl Drop for Cfscrub {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Calls `probe` every 20 ms until it returns `Some`, or until `timeout`
/// has passed, and returns its last result.
pub fn wait_until<T>(
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Returns the value of the sample `series` (name and labels, exactly as
/// the text format writes them) in a text exposition, if present.
pub fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// Returns whether a component that a test needs is on PATH. Outside CI a
/// missing one skips the test with a message; with `CI=true` it fails.
///
/// # Panics
///
/// Panics when `program` is missing and `CI` is `true`.
pub fn require_program(program: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    if found {
        return true;
    }
    let in_ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !in_ci,
        "{program} is not on PATH and CI=true: install it with \
         scripts/setup-test-deps.sh"
    );
    eprintln!(
        "skipping: {program} is not on PATH; install it with \
         scripts/setup-test-deps.sh"
    );
    false
}

/// A generated log with a known number of planted credentials.
pub struct PlantedLog {
    /// The log, one credential on some of its lines.
    pub text: Vec<u8>,
    /// Lines in the log, each ending with a newline.
    pub lines: u64,
    /// Every planted credential and, for prefixed ones, its body: none of
    /// them may appear in any output.
    pub secrets: Vec<String>,
    /// Planted detections by kind id and level id, with their count.
    pub expected: Vec<(&'static str, &'static str, u64)>,
}

impl PlantedLog {
    /// Returns the planted count of `kind` at `level`, 0 when none.
    pub fn count(&self, kind: &str, level: &str) -> u64 {
        self.expected
            .iter()
            .find(|(k, l, _)| *k == kind && *l == level)
            .map_or(0, |(_, _, count)| *count)
    }

    /// Returns the number of planted credentials.
    pub fn total(&self) -> u64 {
        self.expected.iter().map(|(_, _, count)| count).sum()
    }
}

/// Builds a log with credentials of every kind and level planted between
/// clean lines, generated at run time.
pub fn planted_log() -> PlantedLog {
    use cfscrub::engine::{Kind, sample};
    let mut rng = rand::rng();
    let mut log = PlantedLog {
        text: Vec::new(),
        lines: 0,
        secrets: Vec::new(),
        expected: Vec::new(),
    };
    let plant = |log: &mut PlantedLog,
                 kind: Kind,
                 level: &'static str,
                 before: &str,
                 credential: String| {
        let line = format!(
            "2026-05-01T10:00:00Z INFO request id=42 {before}{credential} \
             status=200\n"
        );
        log.text.extend_from_slice(line.as_bytes());
        log.text.extend_from_slice(b"2026-05-01T10:00:01Z INFO clean line\n");
        log.lines += 2;
        if let Some(prefix) = kind.prefix() {
            let body = &credential[prefix.len()..prefix.len() + 40];
            log.secrets.push(body.to_owned());
        }
        log.secrets.push(credential);
        match log
            .expected
            .iter_mut()
            .find(|(k, l, _)| *k == kind.id() && *l == level)
        {
            Some(entry) => entry.2 += 1,
            None => log.expected.push((kind.id(), level, 1)),
        }
    };

    for _ in 0..3 {
        let token = sample::prefixed(&mut rng, Kind::UserToken);
        plant(&mut log, Kind::UserToken, "checksum_valid", "auth=", token);
    }
    for _ in 0..2 {
        let token = sample::prefixed(&mut rng, Kind::AccountToken);
        plant(&mut log, Kind::AccountToken, "checksum_valid", "t=", token);
    }
    let key = sample::prefixed(&mut rng, Kind::GlobalKey);
    plant(&mut log, Kind::GlobalKey, "checksum_valid", "key=", key);

    let cut = sample::cut_off(&mut rng, Kind::UserToken, 8);
    plant(&mut log, Kind::UserToken, "checksum_missing", "auth=", cut);
    let wrong = sample::wrong_checksum(&mut rng, Kind::AccountToken);
    plant(&mut log, Kind::AccountToken, "checksum_invalid", "t=", wrong);

    let legacy = sample::legacy_token(&mut rng);
    plant(&mut log, Kind::LegacyToken, "contextual", "CF_API_TOKEN=", legacy);
    let legacy_key = sample::legacy_global_key(&mut rng);
    plant(
        &mut log,
        Kind::LegacyGlobalKey,
        "contextual",
        "X-Auth-Key: ",
        legacy_key,
    );
    let origin = sample::origin_ca_key(&mut rng);
    plant(&mut log, Kind::OriginCaKey, "contextual", "origin=", origin);
    log
}

/// Panics, without printing the secret, when `text` contains any of
/// `secrets`.
pub fn assert_no_secret(text: &[u8], secrets: &[String], what: &str) {
    for (index, secret) in secrets.iter().enumerate() {
        let found = text
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(!found, "{what} contains planted secret number {index}");
    }
}
