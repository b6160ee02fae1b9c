//! The never-leaks audit: every mode of cfscrub runs over input with
//! planted credentials of every kind and level, with logs at trace level,
//! findings, the metrics endpoint and the metrics text file on. Then
//! everything cfscrub wrote is searched for the planted secrets. That is
//! stdout, stderr, the findings and every scrape of the endpoint. It is
//! also every file in its output directory (the text file, the
//! checkpoint, their temporary files, the follow output), and the output
//! topics read back with kcat.
//!
//! A secret is searched for as the whole credential, its body without the
//! prefix, each half of the body, its checksum, its bytes in hex and as a
//! Rust `Debug` byte list, all ignoring ASCII case. Each mode must also
//! report every planted credential as redacted, in its findings, its
//! metrics and its output, so that a run that wrote nothing cannot pass.
//!
//! The Kafka modes need the broker of `CFSCRUB_TEST_KAFKA`: without it
//! they are skipped with a message, or fail when `CI=true`.

mod kafka_common;
mod metrics_common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use cfscrub::engine::{Kind, Scanner, sample};
use kafka_common::{TestProducer, TestRecord, create_topic, unique};
use metrics_common::{TempDir, request, sample_value, wait_until};

/// Bound on every wait for cfscrub or the broker: a guard against a hang,
/// not a speed requirement.
const WAIT: Duration = Duration::from_secs(90);

/// Exit status of cfscrub after a panic.
const EXIT_PANIC: i32 = cfscrub::cli::EXIT_PANIC as i32;

/// One planted credential: the text written into the input and how it
/// must be reported.
struct Plant {
    kind: Kind,
    level: &'static str,
    /// The credential with the text that makes it a finding before it.
    text: String,
    /// Strings that no output may contain, each with a name that says
    /// what it is without showing it.
    needles: Vec<(String, String)>,
}

/// Returns a credential of every kind, and for the prefixed kinds one at
/// every level, each with its needles.
fn plant_every_kind() -> Vec<Plant> {
    let mut rng = rand::rng();
    let mut plants = Vec::new();
    for kind in [Kind::UserToken, Kind::AccountToken, Kind::GlobalKey] {
        let valid = sample::prefixed(&mut rng, kind);
        plants.push(plant(kind, "checksum_valid", "auth=", valid));
        let wrong = sample::wrong_checksum(&mut rng, kind);
        plants.push(plant(kind, "checksum_invalid", "auth=", wrong));
        let cut = sample::cut_off(&mut rng, kind, 3);
        plants.push(plant(kind, "checksum_missing", "auth=", cut));
    }
    let token = sample::legacy_token(&mut rng);
    plants.push(plant(
        Kind::LegacyToken,
        "contextual",
        "CF_API_TOKEN=",
        token,
    ));
    let key = sample::legacy_global_key(&mut rng);
    let level = "contextual";
    plants.push(plant(Kind::LegacyGlobalKey, level, "X-Auth-Key: ", key));
    let origin = sample::origin_ca_key(&mut rng);
    plants.push(plant(Kind::OriginCaKey, level, "origin=", origin));
    plants
}

fn plant(
    kind: Kind,
    level: &'static str,
    before: &str,
    credential: String,
) -> Plant {
    let name = |part: &str| format!("{} {level} {part}", kind.id());
    let mut needles = vec![(name("credential"), credential.clone())];
    let (secret, checksum) = match kind {
        Kind::UserToken | Kind::AccountToken | Kind::GlobalKey => {
            let prefix = kind.prefix().expect("prefixed kind").len();
            let body = &credential[prefix..prefix + 40];
            let checksum = &credential[prefix + 40..];
            (body.to_owned(), (checksum.len() == 8).then_some(checksum))
        }
        // The 146 hex digits after the second dash are the key's secret.
        Kind::OriginCaKey => (credential[30..].to_owned(), None),
        Kind::LegacyToken | Kind::LegacyGlobalKey => {
            (credential.clone(), None)
        }
    };
    let half = secret.len() / 2;
    needles.push((name("secret"), secret.clone()));
    needles.push((name("first half"), secret[..half].to_owned()));
    needles.push((name("second half"), secret[half..].to_owned()));
    if let Some(checksum) = checksum {
        needles.push((name("checksum"), checksum.to_owned()));
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    needles.push((name("hex"), hex));
    // What `{:?}` of a byte slice holding the secret prints.
    let listed: Vec<String> =
        secret.bytes().take(16).map(|b| b.to_string()).collect();
    needles.push((name("debug bytes"), listed.join(", ")));
    Plant { kind, level, text: format!("{before}{credential}"), needles }
}

/// Searches bytes for every needle of a set of plants.
struct Search {
    automaton: AhoCorasick,
    names: Vec<String>,
}

impl Search {
    fn new(plants: &[Plant]) -> Search {
        let (names, needles): (Vec<String>, Vec<String>) =
            plants.iter().flat_map(|plant| plant.needles.clone()).unzip();
        let automaton = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&needles)
            .expect("needle automaton");
        Search { automaton, names }
    }

    /// Returns a line for each needle found in `bytes`, naming `what` and
    /// the offset, never the bytes.
    fn leaks(&self, what: &str, bytes: &[u8]) -> Vec<String> {
        self.automaton
            .find_overlapping_iter(bytes)
            .map(|hit| {
                let name = &self.names[hit.pattern().as_usize()];
                format!("{what}: {name} at byte {}", hit.start())
            })
            .collect()
    }
}

/// Everything one run of cfscrub wrote outside its output directory:
/// scrapes of the endpoint and records read back from Kafka.
#[derive(Default)]
struct Written {
    parts: Vec<(String, Vec<u8>)>,
}

impl Written {
    fn add(&mut self, what: impl Into<String>, bytes: Vec<u8>) {
        self.parts.push((what.into(), bytes));
    }

    /// Adds every file under `dir` and returns their names relative to
    /// it.
    fn add_dir(&mut self, dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            let entries = std::fs::read_dir(&next).expect("read output dir");
            for entry in entries {
                let path = entry.expect("output dir entry").path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let name = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .display()
                    .to_string();
                let bytes = std::fs::read(&path).expect("read output file");
                self.add(format!("file {name}"), bytes);
                names.push(name);
            }
        }
        names.sort();
        names
    }

    /// Panics, listing where, when any part contains a needle.
    fn assert_no_leak(&self, search: &Search, mode: &str) {
        let leaks: Vec<String> = self
            .parts
            .iter()
            .flat_map(|(what, bytes)| search.leaks(what, bytes))
            .collect();
        assert!(
            leaks.is_empty(),
            "{mode}: planted secrets found in what cfscrub wrote:\n{}",
            leaks.join("\n")
        );
    }
}

/// Returns the planted count by kind and level, each plant counted
/// `copies` times.
fn expected_counts(
    plants: &[Plant],
    copies: u64,
) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut counts = BTreeMap::new();
    for plant in plants {
        *counts.entry((plant.kind.id(), plant.level)).or_insert(0) += copies;
    }
    counts
}

/// Checks that the findings report every planted credential as redacted,
/// at its kind and level, and nothing else.
fn check_findings(
    findings: &[u8],
    expected: &BTreeMap<(&'static str, &'static str), u64>,
    mode: &str,
) {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    let text = std::str::from_utf8(findings).expect("findings are UTF-8");
    for line in text.lines() {
        let finding: serde_json::Value =
            serde_json::from_str(line).expect("a finding is JSON");
        assert_eq!(
            finding["redacted"],
            serde_json::Value::Bool(true),
            "{mode}: a finding was not redacted"
        );
        let kind = finding["kind"].as_str().expect("kind").to_owned();
        let level = finding["level"].as_str().expect("level").to_owned();
        *counts.entry((kind, level)).or_insert(0) += 1;
    }
    let expected: BTreeMap<(String, String), u64> = expected
        .iter()
        .map(|((kind, level), n)| ((kind.to_string(), level.to_string()), *n))
        .collect();
    assert_eq!(counts, expected, "{mode}: findings by kind and level");
}

/// Checks the detections and redactions of the final metrics.
fn check_metrics(
    text: &str,
    expected: &BTreeMap<(&'static str, &'static str), u64>,
    what: &str,
) {
    let mut redactions: BTreeMap<&str, u64> = BTreeMap::new();
    for ((kind, level), count) in expected {
        let series = format!(
            "cfscrub_detections_total{{kind=\"{kind}\",level=\"{level}\"}}"
        );
        assert_eq!(
            sample_value(text, &series),
            Some(*count as f64),
            "{what}: {series}"
        );
        *redactions.entry(kind).or_insert(0) += count;
    }
    for (kind, count) in redactions {
        let series = format!("cfscrub_redactions_total{{kind=\"{kind}\"}}");
        assert_eq!(
            sample_value(text, &series),
            Some(count as f64),
            "{what}: {series}"
        );
    }
}

/// Returns the sum of `cfscrub_redactions_total` over every kind.
fn total_redactions(text: &str) -> f64 {
    Kind::ALL
        .iter()
        .filter_map(|kind| {
            let series =
                format!("cfscrub_redactions_total{{kind=\"{}\"}}", kind.id());
            sample_value(text, &series)
        })
        .sum()
}

/// Checks that `output` contains the label of each planted credential,
/// `copies` times.
fn check_labels(output: &[u8], plants: &[Plant], copies: usize, what: &str) {
    for kind in Kind::ALL {
        let planted = plants.iter().filter(|p| p.kind == kind).count();
        let label = format!("[REDACTED:{}]", kind.id());
        let found =
            memchr::memmem::find_iter(output, label.as_bytes()).count();
        assert_eq!(found, planted * copies, "{what}: {label} count");
    }
}

/// Returns log lines with the plants' texts, one a line, between clean
/// lines.
fn log_lines(plants: &[Plant]) -> Vec<u8> {
    let mut text = Vec::new();
    for (index, plant) in plants.iter().enumerate() {
        let line = format!(
            "2026-12-04T18:00:{:02}Z INFO request id={index} {} status=200\n\
             2026-12-04T18:00:{:02}Z INFO clean line id={index}\n",
            index % 60,
            plant.text,
            index % 60
        );
        text.extend_from_slice(line.as_bytes());
    }
    text
}

/// A cfscrub process with stdout and stderr in files of its output
/// directory.
struct Run {
    child: Child,
    stderr: PathBuf,
}

impl Run {
    /// Starts cfscrub with `args` in `out`, with logs at trace level and
    /// backtraces on, and with `env` added to its environment.
    fn start(
        out: &Path,
        args: &[String],
        env: &[(&str, &str)],
        stdin: Stdio,
    ) -> Run {
        let stderr = out.join("stderr");
        let tmp = out.join("tmp");
        std::fs::create_dir_all(&tmp).expect("create TMPDIR");
        let child = Command::new(env!("CARGO_BIN_EXE_cfscrub"))
            .args(args)
            .args(["--log-level", "trace"])
            .current_dir(out)
            .env("RUST_LOG", "trace")
            .env("RUST_BACKTRACE", "full")
            .env("RUST_LIB_BACKTRACE", "1")
            .env("TMPDIR", &tmp)
            .envs(env.iter().copied())
            .stdin(stdin)
            .stdout(File::create(out.join("stdout")).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start cfscrub");
        Run { child, stderr }
    }

    fn stderr_text(&self) -> String {
        let bytes = std::fs::read(&self.stderr).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits for the address that the endpoint logs at start-up.
    fn metrics_addr(&mut self) -> SocketAddr {
        let found = wait_until(WAIT, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cfscrub exited with {status} before listening");
            }
            self.stderr_text()
                .lines()
                .filter(|line| line.contains("metrics endpoint listening"))
                .find_map(|line| line.split("addr=").nth(1))
                .and_then(|addr| addr.split_whitespace().next())
                .and_then(|addr| addr.parse().ok())
        });
        found.expect("cfscrub logs its metrics address")
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    fn wait(&mut self) -> ExitStatus {
        let status = wait_until(WAIT, || self.child.try_wait().unwrap());
        match status {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("cfscrub still running after {WAIT:?}");
            }
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Checks that the run logged at debug level or finer, so the audit
/// searched verbose logs and not an empty stderr.
fn check_verbose_log(out: &Path, mode: &str) {
    let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
    assert!(stderr.contains(" DEBUG "), "{mode}: no debug line on stderr");
}

/// Scrapes /metrics, /healthz and /readyz, adds the responses to
/// `written` and returns the metrics text.
fn scrape(addr: SocketAddr, written: &mut Written, when: &str) -> String {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = request(addr, "GET", path)
            .unwrap_or_else(|error| panic!("GET {path} {when}: {error}"));
        written.add(format!("GET {path} {when}"), response.body);
    }
    let (_, metrics) = written.parts.last().expect("metrics scraped");
    String::from_utf8(metrics.clone()).expect("metrics are UTF-8")
}

/// Waits until the metrics at `addr` count at least `count` redactions.
fn wait_for_redactions(addr: SocketAddr, count: usize, what: &str) {
    let reached = wait_until(WAIT, || {
        let response = request(addr, "GET", "/metrics").ok()?;
        let text = String::from_utf8(response.body).ok()?;
        (total_redactions(&text) >= count as f64).then_some(())
    });
    assert!(reached.is_some(), "{what}: {count} redactions within {WAIT:?}");
}

/// The files that the filter and the Kafka modes leave in their
/// directory: no temporary file stays.
const FILTER_FILES: &[&str] =
    &["findings.jsonl", "metrics.prom", "stderr", "stdout"];

/// Runs the filter over the plants and checks what it wrote. With
/// `file_first` the first half comes from a file argument and the rest
/// from stdin, else all of it from stdin.
fn audit_filter(file_first: bool) {
    let mode = if file_first { "filter, file and stdin" } else { "filter" };
    let plants = plant_every_kind();
    let (first, second) = plants.split_at(plants.len() / 2);
    let dir = TempDir::new("never-leaks-filter");
    let out = dir.path.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut args: Vec<String> = [
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-linger",
        "60",
        "--metrics-textfile",
        "metrics.prom",
        "--metrics-textfile-interval",
        "0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if file_first {
        let input = dir.path.join("input.log");
        std::fs::write(&input, log_lines(first)).unwrap();
        args.push(input.display().to_string());
        args.push("-".to_owned());
    }
    let mut run = Run::start(&out, &args, &[], Stdio::piped());
    let mut stdin = run.child.stdin.take().expect("stdin piped");
    let addr = run.metrics_addr();
    let mut written = Written::default();

    if !file_first {
        stdin.write_all(&log_lines(first)).expect("write stdin");
        stdin.flush().unwrap();
    }
    wait_for_redactions(addr, first.len(), mode);
    scrape(addr, &mut written, "during the run");
    stdin.write_all(&log_lines(second)).expect("write stdin");
    drop(stdin);

    // The filter lingers until one scrape of /metrics after input ended,
    // so /readyz and /healthz come first.
    let ended = wait_until(WAIT, || {
        let response = request(addr, "GET", "/readyz").ok()?;
        (response.status == 503).then_some(())
    });
    assert!(ended.is_some(), "{mode}: /readyz never turned 503");
    let metrics = scrape(addr, &mut written, "after input ended");
    let status = run.wait();
    assert!(status.success(), "{mode}: exit {status}");

    let files = written.add_dir(&out);
    assert_eq!(files, FILTER_FILES, "{mode}: files left in its directory");
    written.assert_no_leak(&Search::new(&plants), mode);
    check_verbose_log(&out, mode);

    let expected = expected_counts(&plants, 1);
    check_metrics(&metrics, &expected, &format!("{mode}: /metrics"));
    let textfile = std::fs::read_to_string(out.join("metrics.prom")).unwrap();
    check_metrics(&textfile, &expected, &format!("{mode}: text file"));
    check_findings(
        &std::fs::read(out.join("findings.jsonl")).unwrap(),
        &expected,
        mode,
    );
    let stdout = std::fs::read(out.join("stdout")).unwrap();
    check_labels(&stdout, &plants, 1, &format!("{mode}: stdout"));
}

/// Runs follow mode over a file that is appended to and rotated, and
/// checks what it wrote.
fn audit_follow() {
    let mode = "follow";
    let plants = plant_every_kind();
    let third = plants.len() / 3;
    let (first, rest) = plants.split_at(third);
    let (second, last) = rest.split_at(third);
    let dir = TempDir::new("never-leaks-follow");
    let input = dir.path.join("in");
    let out = dir.path.join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let log = input.join("app.log");
    std::fs::write(&log, log_lines(first)).unwrap();

    let args: Vec<String> = [
        "follow",
        "--from-start",
        "--checkpoint",
        "follow.checkpoint",
        "--checkpoint-interval",
        "0.1",
        "--poll-interval",
        "0.1",
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-textfile",
        "metrics.prom",
        "--metrics-textfile-interval",
        "0.1",
        "--output",
        "clean.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([input.join("*.log").display().to_string()])
    .collect();
    let mut run = Run::start(&out, &args, &[], Stdio::null());
    let addr = run.metrics_addr();
    let mut written = Written::default();
    wait_for_redactions(addr, first.len(), mode);
    scrape(addr, &mut written, "during the run");

    // Appends, then rotates by rename and goes on in a new file.
    let mut file =
        std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    file.write_all(&log_lines(second)).unwrap();
    drop(file);
    std::fs::rename(&log, input.join("app.log.1")).unwrap();
    std::fs::write(&log, log_lines(last)).unwrap();
    wait_for_redactions(addr, plants.len(), mode);
    let metrics = scrape(addr, &mut written, "after the input was read");

    run.terminate();
    let status = run.wait();
    assert!(status.success(), "{mode}: exit {status} after SIGTERM");
    let files = written.add_dir(&out);
    let expected_files = [
        "clean.log",
        "findings.jsonl",
        "follow.checkpoint",
        "metrics.prom",
        "stderr",
        "stdout",
    ];
    assert_eq!(files, expected_files, "{mode}: files left in its directory");
    written.assert_no_leak(&Search::new(&plants), mode);
    check_verbose_log(&out, mode);

    let expected = expected_counts(&plants, 1);
    check_metrics(&metrics, &expected, "follow: /metrics");
    let textfile = std::fs::read_to_string(out.join("metrics.prom")).unwrap();
    check_metrics(&textfile, &expected, "follow: text file");
    check_findings(
        &std::fs::read(out.join("findings.jsonl")).unwrap(),
        &expected,
        mode,
    );
    let clean = std::fs::read(out.join("clean.log")).unwrap();
    check_labels(&clean, &plants, 1, "follow: --output");
}

/// Returns a record with a plant in its value, its key and a header.
fn planted_record(index: usize, plant: &Plant) -> TestRecord {
    let value = format!("rec={index} level=info {} status=200\n", plant.text);
    TestRecord {
        partition: (index % 2) as i32,
        key: Some(format!("k{index}:{}", plant.text).into_bytes()),
        value: Some(value.into_bytes()),
        headers: vec![
            (
                "authorization".to_owned(),
                Some(plant.text.clone().into_bytes()),
            ),
            ("request-id".to_owned(), Some(format!("r{index}").into_bytes())),
        ],
        timestamp: None,
    }
}

/// Reads the key, headers and value of every record of `topic` with
/// kcat, as a `read_committed` reader when `read_committed` is set.
fn kcat_read(broker: &str, topic: &str, read_committed: bool) -> Vec<u8> {
    let isolation = if read_committed {
        "isolation.level=read_committed"
    } else {
        "isolation.level=read_uncommitted"
    };
    let output = Command::new("kcat")
        .args(["-C", "-b", broker, "-t", topic, "-o", "beginning", "-e", "-q"])
        .args(["-X", isolation])
        .args(["-f", "record partition=%p key=%k headers=%h value=%s\\n"])
        .output()
        .expect("run kcat -C");
    assert!(output.status.success(), "kcat -C exited with {}", output.status);
    output.stdout
}

/// Runs a Kafka group member over records with plants in values, keys
/// and headers, and checks what it wrote.
fn audit_kafka(broker: &str, exactly_once: bool) {
    let mode = if exactly_once { "kafka exactly-once" } else { "kafka" };
    let plants = plant_every_kind();
    let (first, second) = plants.split_at(plants.len() / 2);
    let input = unique("never-leaks-in");
    let output = unique("never-leaks-out");
    create_topic(broker, &input, 2, &[]);
    create_topic(broker, &output, 2, &[]);
    let producer = TestProducer::new(broker, &[]);
    for (index, plant) in first.iter().enumerate() {
        producer.send(&input, &planted_record(index, plant));
    }
    producer.flush();

    let dir = TempDir::new("never-leaks-kafka");
    let out = dir.path.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = kafka_common::free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let group = unique("never-leaks-group");
    let mut args = kafka_common::member_args(broker, &group, &input, &output);
    args.insert(0, "kafka".to_owned());
    let more = [
        "--redact-keys",
        "--redact-headers",
        // librdkafka's own debug logs reach stderr at trace level too.
        "-X",
        "debug=all",
        "--commit-interval",
        "0.2",
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        &addr.to_string(),
        "--metrics-textfile",
        "metrics.prom",
        "--metrics-textfile-interval",
        "0.1",
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    if exactly_once {
        args.push("--exactly-once".to_owned());
        args.push("--transactional-id".to_owned());
        args.push(unique("never-leaks-tx"));
    }
    let mut run = Run::start(&out, &args, &[], Stdio::null());
    let ready = wait_until(WAIT, || {
        if let Ok(Some(status)) = run.child.try_wait() {
            panic!("{mode}: exited with {status}: {}", run.stderr_text());
        }
        let response = request(addr, "GET", "/readyz").ok()?;
        (response.status == 200).then_some(())
    });
    assert!(ready.is_some(), "{mode}: not ready within {WAIT:?}");
    let mut written = Written::default();
    // Each plant is in a value, a key and a header.
    wait_for_redactions(addr, first.len() * 3, mode);
    scrape(addr, &mut written, "during the run");

    for (index, plant) in second.iter().enumerate() {
        producer.send(&input, &planted_record(first.len() + index, plant));
    }
    producer.flush();
    wait_for_redactions(addr, plants.len() * 3, mode);
    kafka_common::wait_all_committed(broker, &group, &input);
    let metrics = scrape(addr, &mut written, "after every record");
    run.terminate();
    let status = run.wait();
    assert!(status.success(), "{mode}: exit {status} after SIGTERM");

    let topic = kcat_read(broker, &output, exactly_once);
    let records =
        memchr::memmem::find_iter(&topic, b"record partition=").count();
    assert_eq!(records, plants.len(), "{mode}: records read back by kcat");
    check_labels(&topic, &plants, 3, &format!("{mode}: output topic"));
    written.add("output topic read by kcat", topic);
    let files = written.add_dir(&out);
    assert_eq!(files, FILTER_FILES, "{mode}: files left in its directory");
    written.assert_no_leak(&Search::new(&plants), mode);
    check_verbose_log(&out, mode);
    let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
    assert!(stderr.contains("librdkafka"), "{mode}: no librdkafka log line");

    let expected = expected_counts(&plants, 3);
    check_metrics(&metrics, &expected, &format!("{mode}: /metrics"));
    let textfile = std::fs::read_to_string(out.join("metrics.prom")).unwrap();
    check_metrics(&textfile, &expected, &format!("{mode}: text file"));
    check_findings(
        &std::fs::read(out.join("findings.jsonl")).unwrap(),
        &expected,
        mode,
    );
}

#[test]
fn every_mode_never_leaks() {
    audit_filter(false);
    audit_filter(true);
    audit_follow();
    let Some(broker) = kafka_common::broker() else {
        return;
    };
    if !metrics_common::require_program("kcat") {
        return;
    }
    audit_kafka(&broker, false);
    audit_kafka(&broker, true);
}

/// Checks a run that the test hook made panic: status 101, one fixed
/// line on stderr without a backtrace, and no planted secret in anything
/// cfscrub wrote.
fn check_panic(
    mode: &str,
    status: ExitStatus,
    out: &Path,
    plants: &[Plant],
    mut written: Written,
) {
    assert_eq!(status.code(), Some(EXIT_PANIC), "{mode}: exit {status}");
    let stderr = std::fs::read_to_string(out.join("stderr")).unwrap();
    assert!(
        stderr.contains("cfscrub: internal error: thread "),
        "{mode}: no panic line on stderr"
    );
    assert!(
        stderr.contains("the panic message is not shown"),
        "{mode}: the panic line does not say the message is hidden"
    );
    assert!(
        !stderr.contains("stack backtrace"),
        "{mode}: a backtrace was printed"
    );
    written.add_dir(out);
    written.assert_no_leak(&Search::new(plants), mode);
}

/// Environment of a run whose scan panics at the first finding.
const PANIC_ENV: &[(&str, &str)] = &[(cfscrub::cli::TEST_PANIC_VARIABLE, "1")];

fn panic_in_filter() {
    let plants = plant_every_kind();
    let dir = TempDir::new("never-leaks-panic-filter");
    let args: Vec<String> = [
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-textfile",
        "metrics.prom",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut run = Run::start(&dir.path, &args, PANIC_ENV, Stdio::piped());
    let mut stdin = run.child.stdin.take().expect("stdin piped");
    // The filter may exit before it has read everything.
    let _ = stdin.write_all(&log_lines(&plants));
    drop(stdin);
    let status = run.wait();
    check_panic("filter", status, &dir.path, &plants, Written::default());
}

fn panic_in_follow() {
    let plants = plant_every_kind();
    let dir = TempDir::new("never-leaks-panic-follow");
    let input = dir.path.join("in");
    let out = dir.path.join("out");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(input.join("app.log"), log_lines(&plants)).unwrap();
    let args: Vec<String> = [
        "follow",
        "--from-start",
        "--checkpoint",
        "follow.checkpoint",
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-textfile",
        "metrics.prom",
        "--output",
        "clean.log",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([input.join("*.log").display().to_string()])
    .collect();
    let mut run = Run::start(&out, &args, PANIC_ENV, Stdio::null());
    let status = run.wait();
    check_panic("follow", status, &out, &plants, Written::default());
}

fn panic_in_kafka(broker: &str, exactly_once: bool) {
    let mode = if exactly_once { "kafka exactly-once" } else { "kafka" };
    let plants = plant_every_kind();
    let input = unique("never-leaks-panic-in");
    let output = unique("never-leaks-panic-out");
    create_topic(broker, &input, 2, &[]);
    create_topic(broker, &output, 2, &[]);
    let producer = TestProducer::new(broker, &[]);
    for (index, plant) in plants.iter().enumerate() {
        producer.send(&input, &planted_record(index, plant));
    }
    producer.flush();

    let dir = TempDir::new("never-leaks-panic-kafka");
    let group = unique("never-leaks-panic-group");
    let mut args = kafka_common::member_args(broker, &group, &input, &output);
    args.insert(0, "kafka".to_owned());
    let more = [
        "--redact-keys",
        "--redact-headers",
        "--findings",
        "findings.jsonl",
        "--metrics-listen",
        "127.0.0.1:0",
        "--metrics-textfile",
        "metrics.prom",
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    if exactly_once {
        args.push("--exactly-once".to_owned());
        args.push("--transactional-id".to_owned());
        args.push(unique("never-leaks-panic-tx"));
    }

    let mut run = Run::start(&dir.path, &args, PANIC_ENV, Stdio::null());
    let status = run.wait();
    let mut written = Written::default();
    let topic = kcat_read(broker, &output, false);
    written.add("output topic read by kcat", topic);
    check_panic(mode, status, &dir.path, &plants, written);
}

#[test]
fn panic_hides_input_bytes() {
    panic_in_filter();
    panic_in_follow();
    let Some(broker) = kafka_common::broker() else {
        return;
    };
    if !metrics_common::require_program("kcat") {
        return;
    }
    panic_in_kafka(&broker, false);
    panic_in_kafka(&broker, true);
}

/// Without the binary's hook, the test panic's message quotes the scanned
/// bytes, so the runs above prove that the hook hides them.
#[test]
fn test_panic_message_quotes_input() {
    const PROBE: &str = "panic-probe";
    // Silences only the probe thread, so no credential reaches the test's
    // output; other threads keep the previous hook.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(PROBE) {
            previous(info);
        }
    }));
    let probe = std::thread::Builder::new().name(PROBE.to_owned());
    let quoted = probe
        .spawn(|| {
            let credential =
                sample::prefixed(&mut rand::rng(), Kind::UserToken);
            let scanner = Arc::new(
                Scanner::builder()
                    .panic_on_finding(true)
                    .build()
                    .expect("scanner"),
            );
            let input = format!("auth={credential}\n");
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let mut out = Vec::new();
                    scanner.redact(input.as_bytes(), &mut out);
                }));
            let payload = caught.expect_err("the scan panics");
            let message = payload.downcast_ref::<String>().cloned();
            message.is_some_and(|message| message.contains(&credential[5..]))
        })
        .expect("start probe thread")
        .join()
        .expect("probe thread returns");
    assert!(quoted, "the test panic's message does not quote the input");
}

/// The search must find each form of a planted secret that a careless
/// print could produce, or the audit above could not fail.
#[test]
fn search_finds_every_secret_form() {
    let plants = plant_every_kind();
    let search = Search::new(&plants);
    for plant in &plants {
        let what = format!("{} {}", plant.kind.id(), plant.level);
        let text = &plant.text;
        let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
        let forms = [
            ("as planted", text.clone()),
            ("in upper case", text.to_uppercase()),
            ("in lower case", text.to_lowercase()),
            ("as Debug bytes", format!("{:?}", text.as_bytes())),
            ("in hex", hex),
            ("quoted by Debug", format!("{text:?}")),
        ];
        for (form, printed) in forms {
            let line = format!("log line: {printed} end\n");
            let hits = search.leaks(form, line.as_bytes());
            assert!(!hits.is_empty(), "{what} not found {form}");
        }
    }
    let clean =
        b"2026-12-04T18:00:00Z INFO clean line id=1 [REDACTED:user_token]\n";
    assert!(search.leaks("clean", clean).is_empty(), "a clean line matched");
}
