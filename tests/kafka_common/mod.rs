//! Helpers shared by the Kafka tests: the broker under test, topics, an
//! independent producer and reader, running `cfscrub kafka` as a child
//! process, and planted credentials.
//!
//! The broker's address comes from `CFSCRUB_TEST_KAFKA` (set by
//! `scripts/test.sh`). Without it a test skips with a message, unless
//! `CI=true`, where it fails.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cfscrub::engine::{Kind, Scanner, sample};
use rand::Rng;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{
    BaseRecord, DefaultProducerContext, Producer, ThreadedProducer,
};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::{ClientConfig, Offset};

/// Bound on every wait of a test for the broker or a child process.
pub const WAIT: Duration = Duration::from_secs(90);

/// Session timeout for members that a test kills: the broker's minimum
/// (`group.min.session.timeout.ms`, 6 s by default), so that a killed
/// member's partitions move on soon.
pub const SESSION_TIMEOUT_MS: &str = "6000";

/// Returns the broker address, or `None` (after saying why) when the
/// tests run without one outside CI.
///
/// # Panics
///
/// Panics when `CI=true` and `CFSCRUB_TEST_KAFKA` is unset.
pub fn broker() -> Option<String> {
    match std::env::var("CFSCRUB_TEST_KAFKA") {
        Ok(address) if !address.is_empty() => Some(address),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!(
                "CFSCRUB_TEST_KAFKA is not set, so no Kafka broker runs; \
                 run the tests through scripts/test.sh"
            )
        }
        _ => {
            eprintln!(
                "skipped: no Kafka broker (set CFSCRUB_TEST_KAFKA=HOST:PORT, \
                 or run scripts/test.sh)"
            );
            None
        }
    }
}

/// Returns a name no other test or run uses, for topics and groups.
pub fn unique(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag: u32 = rand::rng().random();
    format!("{name}-{}-{n}-{tag:08x}", std::process::id())
}

/// Creates `name` with `partitions` partitions and topic `configs`.
pub fn create_topic(
    broker: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let mut topic =
        NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let results = runtime()
        .block_on(admin.create_topics([&topic], &options))
        .unwrap_or_else(|error| panic!("create topic {name}: {error}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("create topic {topic}: {code}");
        }
    }
}

/// Deletes topic `name`, and waits until the broker no longer lists it.
pub fn delete_topic(broker: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("admin client");
    let options = AdminOptions::new().operation_timeout(Some(WAIT));
    let results = runtime()
        .block_on(admin.delete_topics(&[name], &options))
        .unwrap_or_else(|error| panic!("delete topic {name}: {error}"));
    for result in results {
        if let Err((topic, code)) = result {
            panic!("delete topic {topic}: {code}");
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// One record as a test writes or reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRecord {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl TestRecord {
    /// Returns a record with only a value.
    pub fn value(partition: i32, value: impl Into<Vec<u8>>) -> TestRecord {
        TestRecord {
            partition,
            key: None,
            value: Some(value.into()),
            headers: Vec::new(),
            timestamp: None,
        }
    }
}

/// A producer that writes test input, idempotent so that its own retries
/// through a broker restart neither lose nor duplicate records.
pub struct TestProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
}

impl TestProducer {
    /// Returns a producer with extra librdkafka `settings`.
    pub fn new(broker: &str, settings: &[(&str, &str)]) -> TestProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", broker)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "120000")
            .set("linger.ms", "5");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        let producer = config.create().expect("test producer");
        TestProducer { producer }
    }

    /// Queues `record` for `topic`, waiting while the queue is full.
    pub fn send(&self, topic: &str, record: &TestRecord) {
        let mut headers =
            OwnedHeaders::new_with_capacity(record.headers.len());
        for (key, value) in &record.headers {
            headers = headers.insert(Header { key, value: value.as_deref() });
        }
        let mut base: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).partition(record.partition).headers(headers);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        if let Some(timestamp) = record.timestamp {
            base = base.timestamp(timestamp);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => return,
                Err((error, returned)) => {
                    assert_eq!(
                        error.rdkafka_error_code(),
                        Some(rdkafka::error::RDKafkaErrorCode::QueueFull),
                        "producing test input failed: {error}"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                    base = returned;
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self) {
        self.producer.flush(WAIT).expect("flushing test input");
    }
}

/// Produces `records` to `topic` and waits for every acknowledgement.
pub fn produce(broker: &str, topic: &str, records: &[TestRecord]) {
    let producer = TestProducer::new(broker, &[]);
    for record in records {
        producer.send(topic, record);
    }
    producer.flush();
}

/// Reads every partition of `topic` from the start until `expected`
/// records arrived, and returns them in the order read. With
/// `read_committed`, records of open or aborted transactions are skipped.
///
/// # Panics
///
/// Panics when fewer than `expected` records arrive within [`WAIT`].
pub fn read_topic(
    broker: &str,
    topic: &str,
    expected: usize,
    read_committed: bool,
) -> Vec<TestRecord> {
    let mut seen = Vec::new();
    read_until(broker, topic, read_committed, |record| {
        seen.push(record);
        seen.len() >= expected
    });
    assert!(
        seen.len() >= expected,
        "{topic}: {} records within {WAIT:?}, expected {expected}",
        seen.len()
    );
    seen
}

/// Reads every partition of `topic` from the start, calling `done` with
/// each record until it returns true or [`WAIT`] passes.
pub fn read_until(
    broker: &str,
    topic: &str,
    read_committed: bool,
    mut done: impl FnMut(TestRecord) -> bool,
) {
    let (consumer, _) = reader(broker, topic, read_committed, false);
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) if done(test_record(&message)) => return,
            Some(Ok(_)) | None => {}
            Some(Err(error)) => panic!("reading {topic}: {error}"),
        }
    }
}

/// Returns a consumer outside any group, assigned every partition of
/// `topic` from its start, and the number of partitions.
fn reader(
    broker: &str,
    topic: &str,
    read_committed: bool,
    eof: bool,
) -> (BaseConsumer, usize) {
    let isolation =
        if read_committed { "read_committed" } else { "read_uncommitted" };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", if eof { "true" } else { "false" })
        .set("isolation.level", isolation)
        .set("fetch.message.max.bytes", "8388608")
        .create()
        .expect("reader");
    let metadata =
        consumer.fetch_metadata(Some(topic), WAIT).expect("reader metadata");
    let partitions = metadata.topics()[0].partitions().len();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions as i32 {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).expect("reader assign");
    (consumer, partitions)
}

fn test_record(message: &rdkafka::message::BorrowedMessage<'_>) -> TestRecord {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    TestRecord {
        partition: message.partition(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp: message.timestamp().to_millis(),
    }
}

/// Reads every partition of `topic` from the start to its end and returns
/// the records in the order read. With `read_committed` the end is the
/// last stable offset, so the topic should have no open transaction.
///
/// # Panics
///
/// Panics when the end is not reached within [`WAIT`].
pub fn read_all(
    broker: &str,
    topic: &str,
    read_committed: bool,
) -> Vec<TestRecord> {
    let (consumer, partitions) = reader(broker, topic, read_committed, true);
    let mut at_end = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + WAIT;
    while at_end.len() < partitions {
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {partitions} partitions read to the end within \
             {WAIT:?}",
            at_end.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => records.push(test_record(&message)),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    records
}

/// Returns the number of records in each partition of `topic`: the high
/// watermark, which counts transaction markers too.
pub fn end_offsets(broker: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .create()
        .expect("watermark client");
    let metadata =
        consumer.fetch_metadata(Some(topic), WAIT).expect("metadata");
    metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), WAIT)
                .expect("watermarks");
            (p.id(), high)
        })
        .collect()
}

/// Returns the offsets `group` committed for each partition of `topic`
/// that has one.
pub fn committed_offsets(
    broker: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .create()
        .expect("offsets client");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed =
        consumer.committed_offsets(list, WAIT).expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect()
}

/// Writes numbered records, a quarter of them with a planted credential,
/// to every partition of a topic from a thread, until stopped.
pub struct Feeder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(u64, Planted)>,
}

impl Feeder {
    /// Starts writing to the `partitions` partitions of `topic`, about
    /// 10,000 records a second.
    pub fn start(broker: &str, topic: &str, partitions: i32) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let (broker, topic) = (broker.to_owned(), topic.to_owned());
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let producer = TestProducer::new(&broker, &[]);
            let mut planted = Planted::default();
            let mut n = 0u64;
            while !flag.load(Ordering::Acquire) {
                let mut value = format!("rec={n} steady input");
                if n % 4 == 0 {
                    let kind = Kind::ALL[(n / 4) as usize % Kind::ALL.len()];
                    value.push(' ');
                    value.push_str(&planted.credential(kind));
                }
                value.push('\n');
                let partition = (n % partitions as u64) as i32;
                producer.send(&topic, &TestRecord::value(partition, value));
                n += 1;
                if n % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush();
            (n, planted)
        });
        Feeder { stop, thread }
    }

    /// Stops writing and returns how many records were written, with
    /// their credentials.
    pub fn stop(self) -> (u64, Planted) {
        self.stop.store(true, Ordering::Release);
        self.thread.join().expect("feeder thread")
    }
}

/// Waits until `group` has committed every record of `topic`.
///
/// # Panics
///
/// Panics when it has not within [`WAIT`].
pub fn wait_all_committed(broker: &str, group: &str, topic: &str) {
    let ends = end_offsets(broker, topic);
    let partitions = ends.len() as i32;
    let deadline = Instant::now() + WAIT;
    loop {
        let committed = committed_offsets(broker, group, topic, partitions);
        let done = ends
            .iter()
            .all(|(p, end)| committed.get(p).is_some_and(|c| c >= end));
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{group} committed {committed:?} of {topic}, whose ends are \
             {ends:?}, within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Returns whether kcat is on PATH; without it the test skips, or fails
/// in CI.
pub fn kcat_available() -> bool {
    let found = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "kcat not found; run scripts/setup-test-deps.sh"
        );
        eprintln!("skipped: kcat not found (run scripts/setup-test-deps.sh)");
    }
    found
}

/// Returns the value of the first line of a Prometheus text file that
/// starts with `series`.
pub fn textfile_metric(path: &Path, series: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

/// A `cfscrub kafka` process.
pub struct Member {
    child: Option<Child>,
    stderr: PathBuf,
    /// Address of its metrics endpoint.
    pub metrics: SocketAddr,
}

impl Member {
    /// Starts `cfscrub kafka` with `args`, a metrics endpoint on a free
    /// loopback port, and stderr in a file under `dir`.
    pub fn start(dir: &Path, name: &str, args: &[String]) -> Member {
        let port = free_port();
        let metrics: SocketAddr = ([127, 0, 0, 1], port).into();
        let stderr = dir.join(format!("{name}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_cfscrub"))
            .arg("kafka")
            .args(args)
            .args(["--metrics-listen", &metrics.to_string()])
            .args(["--log-level", "info"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start cfscrub kafka");
        Member { child: Some(child), stderr, metrics }
    }

    /// Waits until `/readyz` returns 200: the member joined its group.
    ///
    /// # Panics
    ///
    /// Panics when the member exits or is not ready within [`WAIT`].
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                panic!("member exited with {status}: {}", self.stderr_text());
            }
            if crate::metrics_common::request(self.metrics, "GET", "/readyz")
                .is_ok_and(|response| response.status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("member not ready within {WAIT:?}: {}", self.stderr_text());
    }

    /// Returns the value of the metric line that starts with `series`, such
    /// as `cfscrub_kafka_commits_total`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let response =
            crate::metrics_common::request(self.metrics, "GET", "/metrics")
                .ok()?;
        let text = response.text();
        text.lines()
            .find(|line| line.starts_with(series))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGINT, as Ctrl-C in a terminal does.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    /// Stops the process with SIGSTOP: every thread halts, heartbeats
    /// included, as in a long garbage-collection or scheduling pause.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Continues a process stopped by [`Member::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Sends the signal `name`, such as `-TERM`, with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running member").id();
        let status = Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {name} {pid} failed");
    }

    /// Kills the member with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running member");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Waits for the member to exit and returns its status.
    ///
    /// # Panics
    ///
    /// Panics when it still runs after [`WAIT`].
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "member still runs after {WAIT:?}: {}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns what the member wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.stderr) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Returns the last line of stderr: the error message of a member that
    /// stopped on an error.
    pub fn last_line(&self) -> String {
        self.stderr_text().lines().last().unwrap_or("").to_owned()
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("running member")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A directory for one test's files, removed at the end unless the test
/// failed, so that the members' stderr stays for reading.
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates a new directory for the test `name`.
    pub fn new(name: &str) -> TestDir {
        let path =
            std::env::temp_dir().join(unique(&format!("cfscrub-{name}")));
        std::fs::create_dir_all(&path).expect("test directory");
        TestDir { path }
    }

    /// Returns its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("member logs kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Returns the arguments every member of a test shares.
pub fn member_args(
    broker: &str,
    group: &str,
    input: &str,
    output: &str,
) -> Vec<String> {
    [
        "--brokers",
        broker,
        "--group",
        group,
        "--input-topic",
        input,
        "--output-topic",
        output,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Credentials planted in test input, and the secret part of each, which
/// must not reach any output.
#[derive(Default)]
pub struct Planted {
    secrets: Vec<String>,
}

impl Planted {
    /// Returns a new credential of `kind`, with the text that makes it a
    /// finding for the legacy kinds, and remembers its secret part.
    pub fn credential(&mut self, kind: Kind) -> String {
        let mut rng = rand::rng();
        let credential = sample::credential(&mut rng, kind);
        let text = match kind {
            Kind::LegacyToken => format!("CF_API_TOKEN={credential}"),
            Kind::LegacyGlobalKey => format!("X-Auth-Key: {credential}"),
            _ => credential.clone(),
        };
        self.secrets.push(secret_part(kind, &credential));
        text
    }

    /// Returns a searcher for every planted secret.
    pub fn finder(&self) -> Finder {
        let automaton = aho_corasick::AhoCorasick::new(&self.secrets)
            .expect("secret automaton");
        Finder { automaton }
    }
}

/// Finds planted secrets in output.
pub struct Finder {
    automaton: aho_corasick::AhoCorasick,
}

impl Finder {
    /// Returns whether `bytes` contains a planted secret.
    pub fn leaks(&self, bytes: &[u8]) -> bool {
        self.automaton.is_match(bytes)
    }

    /// Returns whether any key, value or header value of `record`
    /// contains a planted secret.
    pub fn record_leaks(&self, record: &TestRecord) -> bool {
        let fields = record
            .headers
            .iter()
            .filter_map(|(_, value)| value.as_deref())
            .chain(record.key.as_deref())
            .chain(record.value.as_deref());
        fields.into_iter().any(|bytes| self.leaks(bytes))
    }
}

/// Returns the part of a credential that alone is the secret: the body of a
/// prefixed credential, the whole of the others.
fn secret_part(kind: Kind, credential: &str) -> String {
    match kind.prefix() {
        Some(prefix) if kind != Kind::OriginCaKey => {
            credential[prefix.len()..prefix.len() + 40].to_owned()
        }
        _ => credential.to_owned(),
    }
}

/// Returns the default scanner, the one `cfscrub kafka` builds without
/// engine options.
pub fn default_scanner() -> std::sync::Arc<Scanner> {
    std::sync::Arc::new(Scanner::builder().build().expect("scanner"))
}

/// Returns what the default scanner makes of `input`.
pub fn redacted(scanner: &std::sync::Arc<Scanner>, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    scanner.redact(input, &mut out);
    out
}

/// Returns the record id that a test wrote at the start of a value or key,
/// as `rec=ID ` or `kID:`.
pub fn record_id(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix("rec=").or_else(|| text.strip_prefix('k'))?;
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Counts how often each record id appears in `records`' values.
pub fn id_counts(records: &[TestRecord]) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for record in records {
        if let Some(id) = record.value.as_deref().and_then(record_id) {
            *counts.entry(id).or_insert(0) += 1;
        }
    }
    counts
}

/// Settings that let the group notice a killed member within seconds.
pub fn quick_session(args: &mut Vec<String>) {
    for setting in [
        format!("consumer.session.timeout.ms={SESSION_TIMEOUT_MS}"),
        "consumer.heartbeat.interval.ms=1000".to_owned(),
    ] {
        args.extend(["-X".to_owned(), setting]);
    }
}

/// Waits until `member`'s metric `series` reaches `value`.
pub fn wait_metric(member: &Member, series: &str, value: f64) {
    let deadline = Instant::now() + WAIT;
    while member.metric(series).is_none_or(|v| v < value) {
        assert!(
            Instant::now() < deadline,
            "{series} below {value} after {WAIT:?}: {}",
            member.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks that every record up to `sent` appears in `copies` at least
/// once (exactly once when `exactly` is set) and that none leaks.
pub fn check_copies(
    copies: &[TestRecord],
    sent: u64,
    planted: &Planted,
    exactly: bool,
) {
    let finder = planted.finder();
    for copy in copies {
        assert!(!finder.record_leaks(copy), "a copy leaks a credential");
    }
    let counts = id_counts(copies);
    for id in 0..sent {
        let count = counts.get(&id).copied().unwrap_or(0);
        assert!(count >= 1, "record {id} missing from the output");
        if exactly {
            assert_eq!(count, 1, "record {id} seen {count} times");
        }
    }
    assert_eq!(counts.len() as u64, sent, "distinct records in the output");
}
