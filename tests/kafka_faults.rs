//! Faults around a running `cfscrub kafka` member, with the real broker:
//! a header name that is not UTF-8, the output topic deleted, and a member
//! paused past its session timeout. Each has a defined outcome: no record
//! lost, none unredacted, and no offset committed past a record that was
//! not delivered.

mod kafka_common;
mod metrics_common;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use cfscrub::engine::Kind;
use kafka_common::*;

/// A header name that is not UTF-8 (0xff and 0xfe never occur in UTF-8),
/// as a producer other than the Java client may write it.
const BAD_NAME: &[u8] = b"trace\xff\xfe-id";

/// The value of that header, not UTF-8 either.
const BAD_VALUE: &[u8] = b"v\x80\x01";

/// Produces one record with `value` and the header `name`=`value` to
/// partition 0 of `topic` with kcat, which takes the header's bytes as
/// they are.
fn kcat_produce_header(broker: &str, topic: &str, header: &[u8], value: &str) {
    let mut child = Command::new("kcat")
        .args(["-P", "-b", broker, "-t", topic, "-p", "0", "-H"])
        .arg(OsStr::from_bytes(header))
        .stdin(Stdio::piped())
        .spawn()
        .expect("start kcat -P");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{value}").unwrap();
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "kcat -P -H exited with {status}");
}

/// Returns what kcat prints for the record at `offset` of partition 0 of
/// `topic` with the output format `format`.
fn kcat_format(
    broker: &str,
    topic: &str,
    offset: i64,
    format: &str,
) -> Vec<u8> {
    let output = Command::new("kcat")
        .args(["-C", "-b", broker, "-t", topic, "-p", "0", "-e", "-q"])
        .args(["-o", &offset.to_string(), "-c", "1", "-f", format])
        .output()
        .expect("run kcat -C");
    assert!(output.status.success(), "kcat -C exited with {}", output.status);
    output.stdout
}

/// Writes three records to a new single-partition topic, the second with
/// a credential in its value and the header [`BAD_NAME`]. Returns the
/// topic's name and that record's value.
fn topic_with_unreadable_header(
    broker: &str,
    planted: &mut Planted,
) -> (String, String) {
    let input = unique("header-name");
    create_topic(broker, &input, 1, &[]);
    create_topic(broker, &format!("{input}.redacted"), 1, &[]);
    produce(broker, &input, &[TestRecord::value(0, "rec=0 before\n")]);
    let value = format!("rec=1 {}", planted.credential(Kind::UserToken));
    let mut header = BAD_NAME.to_vec();
    header.push(b'=');
    header.extend_from_slice(BAD_VALUE);
    kcat_produce_header(broker, &input, &header, &value);
    produce(broker, &input, &[TestRecord::value(0, "rec=2 after\n")]);
    (input, value)
}

#[test]
fn header_name_bytes_pass_through() {
    let Some(broker) = broker() else { return };
    if !kcat_available() {
        return;
    }
    let mut planted = Planted::default();
    let (input, value) = topic_with_unreadable_header(&broker, &mut planted);
    let output = format!("{input}.redacted");

    let dir = TestDir::new("header-name");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(["--commit-interval".into(), "0.5".into()]);
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    wait_all_committed(&broker, &group, &input);
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());
    assert!(
        !member.stderr_text().contains("panicked"),
        "{}",
        member.stderr_text()
    );

    assert_eq!(end_offsets(&broker, &output)[&0], 3, "records copied");
    let mut expected = BAD_NAME.to_vec();
    expected.push(b'=');
    expected.extend_from_slice(BAD_VALUE);
    let sent = kcat_format(&broker, &input, 1, "%h");
    assert_eq!(sent, expected, "kcat reads the header as it was written");
    let copied = kcat_format(&broker, &output, 1, "%h");
    assert_eq!(copied, expected, "header bytes of the copy");
    let copied_value = kcat_format(&broker, &output, 1, "%s");
    assert!(!planted.finder().leaks(&copied_value), "the value leaks");
    let want = redacted(&default_scanner(), value.as_bytes());
    assert_eq!(copied_value, want, "value differs beyond redaction");
}

#[test]
fn header_name_stops_header_redaction() {
    let Some(broker) = broker() else { return };
    if !kcat_available() {
        return;
    }
    let mut planted = Planted::default();
    let (input, _) = topic_with_unreadable_header(&broker, &mut planted);
    let output = format!("{input}.redacted");

    let dir = TestDir::new("header-stop");
    let textfile = dir.path().join("metrics.prom");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(["--redact-headers".into(), "--metrics-textfile".into()]);
    args.push(textfile.display().to_string());
    let mut member = Member::start(dir.path(), "member", &args);
    let status = member.wait();
    let stderr = member.stderr_text();
    assert_eq!(status.code(), Some(2), "exit {status}: {stderr}");
    let line = member.last_line();
    let expected = format!(
        "cfscrub: record {input}/0@1: the name of header 0 is not UTF-8"
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("without --redact-headers"), "{line}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let committed = committed_offsets(&broker, &group, &input, 1);
    assert_eq!(committed.get(&0), Some(&1), "committed offset");
    assert_eq!(end_offsets(&broker, &output)[&0], 1, "records delivered");
    let errors =
        textfile_metric(&textfile, "cfscrub_errors_total{stage=\"consume\"}");
    assert!(errors.is_some_and(|n| n >= 1.0), "consume errors: {errors:?}");
}

/// Returns the record id that the feeder wrote at `offset` of `partition`
/// of a topic with `partitions` partitions: it writes record `n` to
/// partition `n % partitions`, in order, and loses none.
fn fed_id(partition: i32, offset: i64, partitions: i32) -> u64 {
    (offset * i64::from(partitions) + i64::from(partition)) as u64
}

#[test]
fn output_topic_deleted_stops_member() {
    let Some(broker) = broker() else { return };
    let input = unique("deleted");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, 2, &[]);
    create_topic(&broker, &output, 2, &[]);
    let feeder = Feeder::start(&broker, &input, 2);

    let dir = TestDir::new("deleted");
    let textfile = dir.path().join("metrics.prom");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(["--commit-interval".into(), "0.5".into()]);
    // librdkafka waits this long (30 s by default) before it takes a
    // topic missing from the metadata for deleted.
    let propagation = "producer.topic.metadata.propagation.max.ms=3000";
    args.extend(["-X".into(), propagation.into()]);
    args.extend(["--metrics-textfile".into()]);
    args.push(textfile.display().to_string());
    let mut member = Member::start(dir.path(), "member", &args);
    member.wait_ready();
    let written = "cfscrub_written_records_total{source=\"kafka\"}";
    wait_metric(&member, written, 2_000.0);
    delete_topic(&broker, &output);
    let status = member.wait();
    let stderr = member.stderr_text();
    assert_eq!(status.code(), Some(2), "exit {status}: {stderr}");
    let line = member.last_line();
    let expected = format!(
        "cfscrub: output topic {output} not found while delivering record \
         {input}/"
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("create it again and restart"), "{line}");
    let failures = stderr.matches("delivery failed").count();
    assert!(failures <= 2, "{failures} log lines of failed deliveries");
    let errors =
        textfile_metric(&textfile, "cfscrub_errors_total{stage=\"produce\"}");
    assert!(errors.is_some_and(|n| n >= 1.0), "produce errors: {errors:?}");
    let committed = committed_offsets(&broker, &group, &input, 2);

    // A new member, once the topic is back, delivers every record after
    // the committed offsets: none was committed without being delivered.
    create_topic(&broker, &output, 2, &[]);
    let mut member = Member::start(dir.path(), "after", &args);
    member.wait_ready();
    let (sent, planted) = feeder.stop();
    wait_all_committed(&broker, &group, &input);
    member.terminate();
    let status = member.wait();
    assert!(status.success(), "exit {status}: {}", member.stderr_text());

    let copies = read_all(&broker, &output, false);
    let finder = planted.finder();
    for copy in &copies {
        assert!(!finder.record_leaks(copy), "a copy leaks a credential");
    }
    let counts = id_counts(&copies);
    let ends = end_offsets(&broker, &input);
    let mut expected = 0;
    for (partition, end) in ends {
        let from = committed.get(&partition).copied().unwrap_or(0);
        for offset in from..end {
            let id = fed_id(partition, offset, 2);
            assert!(id < sent, "record {id} was not fed");
            assert!(
                counts.contains_key(&id),
                "record {id} after the commit of partition {partition} \
                 at {from} is missing"
            );
            expected += 1;
        }
    }
    assert!(expected > 0, "no record was left to deliver after the fault");
}

/// What [`pause_first_member`] leaves for its test to check.
struct PausedRun {
    /// Records the feeder wrote.
    sent: u64,
    /// Their credentials.
    planted: Planted,
    /// The output topic.
    output: String,
    /// The paused member and the other one, both still running.
    members: Vec<Member>,
    /// The directory of the members' stderr, kept until the test ends.
    _dir: TestDir,
}

/// Pauses the first of two members past its session timeout while both
/// forward records, resumes it, and waits until the group committed
/// every record fed.
fn pause_first_member(
    broker: &str,
    name: &str,
    exactly_once: bool,
) -> PausedRun {
    let input = unique(name);
    let output = format!("{input}.redacted");
    create_topic(broker, &input, 4, &[]);
    create_topic(broker, &output, 4, &[]);
    let feeder = Feeder::start(broker, &input, 4);

    let dir = TestDir::new(name);
    let group = unique("group");
    let mut members = Vec::new();
    for member in ["paused", "other"] {
        let mut args = member_args(broker, &group, &input, "{topic}.redacted");
        quick_session(&mut args);
        if exactly_once {
            args.extend([
                "--exactly-once".into(),
                "--transactional-id".into(),
            ]);
            args.push(unique("txn"));
        } else {
            args.extend(["--commit-interval".into(), "0.5".into()]);
        }
        let mut started = Member::start(dir.path(), member, &args);
        started.wait_ready();
        members.push(started);
    }
    let written = "cfscrub_written_records_total{source=\"kafka\"}";
    for member in &members {
        let before = member.metric(written).unwrap_or(0.0);
        wait_metric(member, written, before + 500.0);
    }

    // Twice the session timeout: the group has removed the paused member
    // and given its partitions to the other one before it resumes.
    let session: u64 = SESSION_TIMEOUT_MS.parse().unwrap();
    members[0].pause();
    std::thread::sleep(Duration::from_millis(2 * session));
    members[0].resume();
    let before = members[1].metric(written).unwrap_or(0.0);
    wait_metric(&members[1], written, before + 1_000.0);
    let (sent, planted) = feeder.stop();
    wait_all_committed(broker, &group, &input);
    PausedRun { sent, planted, output, members, _dir: dir }
}

#[test]
fn paused_member_at_least_once() {
    let Some(broker) = broker() else { return };
    let mut run = pause_first_member(&broker, "pause", false);
    for member in &mut run.members {
        member.terminate();
        let status = member.wait();
        assert!(status.success(), "exit {status}: {}", member.stderr_text());
    }
    let copies = read_all(&broker, &run.output, false);
    check_copies(&copies, run.sent, &run.planted, false);
}

#[test]
fn paused_member_exactly_once() {
    let Some(broker) = broker() else { return };
    let mut run = pause_first_member(&broker, "pause-eos", true);
    for member in &mut run.members {
        member.terminate();
        let status = member.wait();
        assert!(status.success(), "exit {status}: {}", member.stderr_text());
    }
    let copies = read_all(&broker, &run.output, true);
    check_copies(&copies, run.sent, &run.planted, true);
}
