//! `cfscrub kafka` against a real broker: what a record keeps and loses,
//! what SIGTERM commits, and compressed and large input.

mod kafka_common;
mod metrics_common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cfscrub::engine::Kind;
use kafka_common::*;

const RECORDS: u64 = 100_000;
const PARTITIONS: i32 = 4;

/// Record `n` of the metadata test: every kind of credential in values,
/// some in keys and headers, tombstones, null header values, and a
/// timestamp of its own.
fn planted_record(n: u64, planted: &mut Planted) -> TestRecord {
    let mut key = format!("k{n}");
    if n % 7 == 0 {
        key.push(':');
        key.push_str(&planted.credential(Kind::AccountToken));
    }
    let value = (n % 50 != 0).then(|| {
        let mut value = format!("rec={n} level=info msg=\"request done\"");
        if n % 3 == 0 {
            let kind = Kind::ALL[(n / 3) as usize % Kind::ALL.len()];
            value.push_str(" auth=");
            value.push_str(&planted.credential(kind));
        }
        value.push_str(" status=200\n");
        value.into_bytes()
    });
    let mut headers =
        vec![("trace".to_owned(), Some(format!("t{n}").into_bytes()))];
    if n % 5 == 0 {
        let token = planted.credential(Kind::UserToken);
        headers.push((
            "authorization".into(),
            Some(format!("Bearer {token}").into()),
        ));
    }
    if n % 11 == 0 {
        headers.push(("empty".into(), None));
    }
    TestRecord {
        partition: (n % PARTITIONS as u64) as i32,
        key: Some(key.into_bytes()),
        value,
        headers,
        timestamp: Some(1_700_000_000_000 + n as i64),
    }
}

#[test]
fn records_keep_metadata_lose_credentials() {
    let Some(broker) = broker() else { return };
    let input = unique("metadata");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, PARTITIONS, &[]);
    create_topic(&broker, &output, PARTITIONS, &[]);
    let mut planted = Planted::default();
    let records: Vec<TestRecord> =
        (0..RECORDS).map(|n| planted_record(n, &mut planted)).collect();
    produce(&broker, &input, &records);

    let dir = TestDir::new("metadata");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(["--redact-keys".into(), "--redact-headers".into()]);
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    let copies = read_topic(&broker, &output, RECORDS as usize, false);
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());

    let total: i64 = end_offsets(&broker, &output).values().sum();
    assert_eq!(total, RECORDS as i64, "records in the output topic");
    let scanner = default_scanner();
    let finder = planted.finder();
    let mut seen = HashMap::new();
    for copy in &copies {
        let id = record_id(copy.key.as_deref().expect("key kept"))
            .expect("key starts with the record id");
        assert!(seen.insert(id, ()).is_none(), "record {id} twice");
        let original = &records[id as usize];
        assert!(!finder.record_leaks(copy), "record {id} leaks a credential");
        assert_eq!(
            copy.partition, original.partition,
            "record {id} partition"
        );
        assert_eq!(
            copy.timestamp, original.timestamp,
            "record {id} timestamp"
        );
        let key = original.key.as_deref().map(|k| redacted(&scanner, k));
        assert!(copy.key == key, "record {id}: key differs beyond redaction");
        let value = original.value.as_deref().map(|v| redacted(&scanner, v));
        assert!(
            copy.value == value,
            "record {id}: value differs beyond redaction"
        );
        let names: Vec<&str> =
            copy.headers.iter().map(|(name, _)| name.as_str()).collect();
        let original_names: Vec<&str> =
            original.headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, original_names, "record {id} header names");
        for ((_, got), (name, sent)) in
            copy.headers.iter().zip(&original.headers)
        {
            let want = sent.as_deref().map(|v| redacted(&scanner, v));
            assert!(*got == want, "record {id}: header {name} differs");
        }
    }
    assert_eq!(seen.len(), RECORDS as usize, "distinct records in output");
    let tombstones = copies.iter().filter(|c| c.value.is_none()).count();
    assert_eq!(tombstones, (RECORDS / 50) as usize, "tombstones passed");
}

/// Members started and stopped by each random-stop test.
const STOP_ROUNDS: usize = 3;

/// Partitions of the input and output topics of a random-stop round.
const STOP_PARTITIONS: i32 = 3;

/// Returns the seed of the random stops: `CFSCRUB_TEST_SEED`, or a new
/// one. It is printed, so a failing run can be replayed.
fn stop_seed() -> u64 {
    let seed = match std::env::var("CFSCRUB_TEST_SEED") {
        Ok(text) => text.parse().expect("CFSCRUB_TEST_SEED is a number"),
        Err(_) => rand::random(),
    };
    eprintln!("random stops: seed {seed} (replay with CFSCRUB_TEST_SEED)");
    seed
}

/// Starts a member on new topics that a feeder writes to, sends it
/// SIGTERM or SIGINT at a random moment after it joined, and checks that
/// it exits 0 (the watchdog would exit 2 past the grace period) and that
/// each output partition holds the records of its input partition in
/// order, whole, once each, up to the committed offset.
fn stop_at_random_moment(broker: &str, exactly_once: bool, seed: u64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..STOP_ROUNDS {
        let delay = Duration::from_millis(rng.random_range(0..2_500));
        let interrupt = rng.random_bool(0.5);
        let signal = if interrupt { "SIGINT" } else { "SIGTERM" };
        let case = format!(
            "seed {seed}, round {round}: {signal} {delay:?} after joining"
        );
        let name = if exactly_once { "stop-eos" } else { "stop" };
        let input = unique(name);
        let output = format!("{input}.redacted");
        create_topic(broker, &input, STOP_PARTITIONS, &[]);
        create_topic(broker, &output, STOP_PARTITIONS, &[]);
        let feeder = Feeder::start(broker, &input, STOP_PARTITIONS);

        let dir = TestDir::new(name);
        let group = unique("group");
        let mut args = member_args(broker, &group, &input, "{topic}.redacted");
        if exactly_once {
            args.extend([
                "--exactly-once".into(),
                "--transactional-id".into(),
            ]);
            args.push(unique("txn"));
        }
        let mut member = Member::start(dir.path(), "member", &args);
        member.wait_ready();
        std::thread::sleep(delay);
        if interrupt {
            member.interrupt();
        } else {
            member.terminate();
        }
        let status = member.wait();
        let (_, planted) = feeder.stop();
        assert!(
            status.success(),
            "{case}: exit {status}: {}",
            member.stderr_text()
        );

        let committed =
            committed_offsets(broker, &group, &input, STOP_PARTITIONS);
        let copies = read_all(broker, &output, exactly_once);
        let finder = planted.finder();
        for partition in 0..STOP_PARTITIONS {
            let ids: Vec<Option<u64>> = copies
                .iter()
                .filter(|copy| copy.partition == partition)
                .map(|copy| copy.value.as_deref().and_then(record_id))
                .collect();
            let want: Vec<Option<u64>> = (0..ids.len() as i64)
                .map(|offset| {
                    let n = offset * i64::from(STOP_PARTITIONS)
                        + i64::from(partition);
                    Some(n as u64)
                })
                .collect();
            assert!(
                ids == want,
                "{case}: partition {partition} holds other records than \
                 the first {} of its input, in order",
                ids.len()
            );
            assert_eq!(
                committed.get(&partition).copied().unwrap_or(0),
                ids.len() as i64,
                "{case}: partition {partition}: committed offset against \
                 records delivered"
            );
        }
        for copy in &copies {
            assert!(!finder.record_leaks(copy), "{case}: a copy leaks");
            let value = copy.value.as_deref().unwrap_or_default();
            assert!(value.ends_with(b"\n"), "{case}: a copy is cut short");
        }
    }
}

#[test]
fn sigterm_commits_what_was_delivered() {
    let Some(broker) = broker() else { return };
    stop_at_random_moment(&broker, false, stop_seed());
}

#[test]
fn random_stop_keeps_exactly_once() {
    let Some(broker) = broker() else { return };
    stop_at_random_moment(&broker, true, stop_seed());
}

/// Lines for kcat, each a record: an id, the codec and a credential.
fn codec_lines(codec: &str, first: u64, planted: &mut Planted) -> Vec<String> {
    (first..first + 300)
        .map(|n| {
            let kind = Kind::ALL[n as usize % Kind::ALL.len()];
            let credential = planted.credential(kind);
            format!("rec={n} codec={codec} secret {credential} end")
        })
        .collect()
}

/// Returns a value of exactly 1 MiB with credentials at its start, middle
/// and end, and no newline.
fn large_value(id: u64, planted: &mut Planted) -> Vec<u8> {
    const SIZE: usize = 1024 * 1024;
    let start = format!("rec={id} {} ", planted.credential(Kind::UserToken));
    let middle = format!(" {} ", planted.credential(Kind::GlobalKey));
    let end = format!(" {}", planted.credential(Kind::OriginCaKey));
    let filler = SIZE - start.len() - middle.len() - end.len();
    let mut value = start.into_bytes();
    value.extend(std::iter::repeat_n(b'a', filler / 2));
    value.extend(middle.bytes());
    value.extend(std::iter::repeat_n(b'b', filler - filler / 2));
    value.extend(end.bytes());
    assert_eq!(value.len(), SIZE);
    value
}

#[test]
fn compressed_and_large_records() {
    let Some(broker) = broker() else { return };
    if !kcat_available() {
        return;
    }
    let input = unique("codecs");
    let output = format!("{input}.redacted");
    let limit = [("max.message.bytes", "4194304")];
    create_topic(&broker, &input, 1, &limit);
    create_topic(&broker, &output, 1, &limit);
    let mut planted = Planted::default();
    let mut lines = HashMap::new();
    for (index, codec) in ["gzip", "snappy", "lz4", "zstd"].iter().enumerate()
    {
        let batch = codec_lines(codec, index as u64 * 1000, &mut planted);
        kcat_produce(&broker, &input, codec, &batch);
        for line in batch {
            lines.insert(
                record_id(line.as_bytes()).unwrap(),
                line.into_bytes(),
            );
        }
    }
    let large = large_value(9_999, &mut planted);
    let producer =
        TestProducer::new(&broker, &[("message.max.bytes", "5000000")]);
    producer.send(&input, &TestRecord::value(0, large.clone()));
    producer.flush();
    lines.insert(9_999, large);

    let dir = TestDir::new("codecs");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    for setting in [
        "producer.message.max.bytes=5000000",
        "producer.compression.type=zstd",
    ] {
        args.extend(["-X".into(), setting.into()]);
    }
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    let deadline = Instant::now() + WAIT;
    while end_offsets(&broker, &output)[&0] < lines.len() as i64 {
        assert!(Instant::now() < deadline, "output incomplete after {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());

    let copies = kcat_read(&broker, &output);
    assert_eq!(copies.len(), lines.len(), "records read back by kcat");
    let scanner = default_scanner();
    let finder = planted.finder();
    for copy in &copies {
        let id = record_id(copy).expect("record id");
        assert!(!finder.leaks(copy), "record {id} leaks a credential");
        let want = redacted(&scanner, &lines[&id]);
        assert!(*copy == want, "record {id} differs beyond redaction");
    }
}

/// Produces `lines` to partition 0 of `topic` with kcat, compressed with
/// `codec`.
fn kcat_produce(broker: &str, topic: &str, codec: &str, lines: &[String]) {
    let mut child = Command::new("kcat")
        .args(["-P", "-b", broker, "-t", topic, "-p", "0", "-z", codec])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start kcat -P");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "kcat -P -z {codec} exited with {status}");
}

/// Reads every value of partition 0 of `topic` with kcat, which writes
/// each as its length, a space, the bytes and a newline.
fn kcat_read(broker: &str, topic: &str) -> Vec<Vec<u8>> {
    let output = Command::new("kcat")
        .args(["-C", "-b", broker, "-t", topic, "-p", "0", "-o", "beginning"])
        .args(["-e", "-q", "-f", "%S %s\\n"])
        .args(["-X", "fetch.message.max.bytes=8388608"])
        .output()
        .expect("run kcat -C");
    assert!(output.status.success(), "kcat -C exited with {}", output.status);
    let mut values = Vec::new();
    let mut rest = output.stdout.as_slice();
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').expect("length");
        let len: usize = std::str::from_utf8(&rest[..space])
            .unwrap()
            .parse()
            .expect("numeric length");
        let start = space + 1;
        values.push(rest[start..start + len].to_vec());
        assert_eq!(rest[start + len], b'\n', "value ends with a newline");
        rest = &rest[start + len + 1..];
    }
    values
}

#[test]
fn pattern_subscription_follows_topics() {
    let Some(broker) = broker() else { return };
    let prefix = unique("pattern");
    let mut planted = Planted::default();
    let mut sent = HashMap::new();
    for (index, name) in ["a", "b"].iter().enumerate() {
        let input = format!("{prefix}-{name}");
        create_topic(&broker, &input, 2, &[]);
        create_topic(&broker, &format!("{input}.redacted"), 2, &[]);
        let records: Vec<TestRecord> = (0..50)
            .map(|n| {
                let id = index as u64 * 1000 + n;
                let credential = planted.credential(Kind::GlobalKey);
                TestRecord::value(
                    (n % 2) as i32,
                    format!("rec={id} {credential}"),
                )
            })
            .collect();
        produce(&broker, &input, &records);
        sent.insert(input, records);
    }
    // Matches both inputs but not their outputs, which end in .redacted.
    let pattern = format!("^{prefix}-[ab]$");
    let dir = TestDir::new("pattern");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &pattern, "{topic}.redacted");
    args.extend(["--commit-interval".into(), "0.5".into()]);
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    for input in sent.keys() {
        wait_all_committed(&broker, &group, input);
    }
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());

    let scanner = default_scanner();
    let finder = planted.finder();
    for (input, records) in &sent {
        let copies = read_all(&broker, &format!("{input}.redacted"), false);
        assert_eq!(copies.len(), records.len(), "{input}: records copied");
        let by_id: HashMap<u64, &TestRecord> = records
            .iter()
            .map(|r| (record_id(r.value.as_deref().unwrap()).unwrap(), r))
            .collect();
        for copy in &copies {
            let id = record_id(copy.value.as_deref().unwrap()).unwrap();
            assert!(!finder.record_leaks(copy), "{input}: record {id} leaks");
            let original = by_id[&id];
            assert_eq!(copy.partition, original.partition, "record {id}");
            let want = redacted(&scanner, original.value.as_deref().unwrap());
            assert!(copy.value.as_deref() == Some(&want[..]), "record {id}");
        }
    }
}

/// Kafka's Java partitioner hash (`Utils.murmur2`), which librdkafka's
/// `murmur2_random` partitioner reproduces for keys that are not null.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

#[test]
fn key_partitioner_and_findings() {
    let Some(broker) = broker() else { return };
    let input = unique("keyed");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, 1, &[]);
    create_topic(&broker, &output, 3, &[]);
    let mut planted = Planted::default();
    let records: Vec<TestRecord> = (0..200u64)
        .map(|n| TestRecord {
            key: Some(format!("k{}", n % 20).into_bytes()),
            ..TestRecord::value(
                0,
                format!("rec={n} {}", planted.credential(Kind::UserToken)),
            )
        })
        .collect();
    produce(&broker, &input, &records);

    let dir = TestDir::new("keyed");
    let findings = dir.path().join("findings.jsonl");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(["--partitioner".into(), "key".into()]);
    args.extend(["--commit-interval".into(), "0.5".into()]);
    args.extend(["--findings".into(), findings.display().to_string()]);
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    wait_all_committed(&broker, &group, &input);
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());

    let copies = read_all(&broker, &output, false);
    assert_eq!(copies.len(), records.len(), "records copied");
    for copy in &copies {
        let key = copy.key.as_deref().expect("key kept");
        let expected = (murmur2(key) & 0x7fff_ffff) % 3;
        assert_eq!(copy.partition as u32, expected, "partition of a key");
    }
    let text = std::fs::read_to_string(&findings).expect("findings file");
    assert!(!planted.finder().leaks(text.as_bytes()), "findings leak");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), records.len(), "one finding per record");
    for (offset, line) in lines.iter().enumerate() {
        let finding: serde_json::Value = serde_json::from_str(line).unwrap();
        let source = format!("{input}/0@{offset}");
        assert_eq!(finding["source"], source.as_str(), "finding source");
        assert_eq!(finding["kind"], "user_token");
        assert_eq!(finding["level"], "checksum_valid");
        assert_eq!(finding["redacted"], true);
        let doc = "docs/runbook-leaked-credential.md#user_token";
        assert_eq!(finding["doc_url"], doc, "finding runbook link");
    }
}
