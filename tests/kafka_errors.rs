//! What `cfscrub kafka` does when it cannot do its job: a one-line error
//! naming the value and the fix, exit status 2, and no offset committed
//! past a record that was not delivered.

mod kafka_common;
mod metrics_common;

use kafka_common::*;

/// Runs a member that is expected to stop on its own and returns its exit
/// code and last stderr line.
fn run_to_failure(
    name: &str,
    args: &[String],
) -> (Option<i32>, String, String) {
    let dir = TestDir::new(name);
    let mut member = Member::start(dir.path(), name, args);
    let status = member.wait();
    (status.code(), member.last_line(), member.stderr_text())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unreachable_broker_named() {
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let mut args = member_args(&brokers, "group", "logs", "{topic}.redacted");
    args.extend(strings(&["--connect-timeout", "1"]));
    let (code, line, _) = run_to_failure("unreachable", &args);
    assert_eq!(code, Some(2), "{line}");
    let expected =
        format!("cfscrub: cannot reach the Kafka brokers {brokers}: ");
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("check --brokers"), "{line}");
}

#[test]
fn invalid_setting_named() {
    let mut args = member_args("127.0.0.1:1", "group", "logs", "out");
    args.extend(strings(&["-X", "no.such.setting=1"]));
    let (code, line, _) = run_to_failure("setting", &args);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with("cfscrub: invalid -X no.such.setting:"),
        "{line}"
    );
}

#[test]
fn secret_setting_value_never_printed() {
    let mut args = member_args("127.0.0.1:1", "group", "logs", "out");
    args.extend(strings(&["-X", "sasl.password=hunter2-test"]));
    args.extend(strings(&[
        "-X",
        "sasl.mechanism=NONE",
        "--connect-timeout",
        "1",
    ]));
    let (code, _, stderr) = run_to_failure("secret", &args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("hunter2-test"), "stderr shows the password");
}

/// SASL settings for the user of the broker's SASL listener, as
/// `scripts/kafka.sh` creates it.
fn sasl_args(password: &str) -> Vec<String> {
    let mut args = Vec::new();
    for setting in [
        "security.protocol=SASL_PLAINTEXT".to_owned(),
        "sasl.mechanism=PLAIN".to_owned(),
        "sasl.username=cfscrub-test".to_owned(),
        format!("sasl.password={password}"),
    ] {
        args.extend(["-X".to_owned(), setting]);
    }
    args
}

/// Returns the address of the broker's SASL listener: the plaintext port
/// plus 2, unless `CFSCRUB_TEST_KAFKA_SASL` sets another address.
fn sasl_broker(broker: &str) -> String {
    if let Ok(address) = std::env::var("CFSCRUB_TEST_KAFKA_SASL") {
        return address;
    }
    let (host, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let port: u16 = port.parse().expect("numeric port");
    format!("{host}:{}", port + 2)
}

#[test]
fn wrong_password_rejected() {
    let Some(broker) = broker() else { return };
    let input = unique("sasl");
    create_topic(&broker, &input, 1, &[]);
    create_topic(&broker, &format!("{input}.redacted"), 1, &[]);
    let sasl = sasl_broker(&broker);
    let group = unique("group");

    // The right password works, so the failure below is the password's.
    let dir = TestDir::new("sasl-right");
    let mut args = member_args(&sasl, &group, &input, "{topic}.redacted");
    args.extend(sasl_args("cfscrub-test-password"));
    let mut member = Member::start(dir.path(), "right", &args);
    member.wait_ready();
    member.terminate();
    assert!(member.wait().success(), "{}", member.stderr_text());

    let mut args = member_args(&sasl, &group, &input, "{topic}.redacted");
    args.extend(sasl_args("wrong-test-password"));
    args.extend(strings(&["--connect-timeout", "3"]));
    let (code, line, stderr) = run_to_failure("sasl-wrong", &args);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(
            "cfscrub: authentication with the Kafka brokers failed:"
        ),
        "{line}"
    );
    assert!(line.contains("sasl"), "{line}");
    assert!(
        !stderr.contains("wrong-test-password"),
        "stderr shows the password"
    );
}

#[test]
fn unknown_input_topic_named() {
    let Some(broker) = broker() else { return };
    let input = unique("missing");
    let args =
        member_args(&broker, &unique("group"), &input, "{topic}.redacted");
    let (code, line, _) = run_to_failure("missing-input", &args);
    assert_eq!(code, Some(2), "{line}");
    let expected =
        format!("cfscrub: input topic {input} not found: create it first");
    assert!(line.starts_with(&expected), "{line}");
}

#[test]
fn unknown_output_topic_named() {
    let Some(broker) = broker() else { return };
    let input = unique("no-output");
    create_topic(&broker, &input, 1, &[]);
    let args =
        member_args(&broker, &unique("group"), &input, "{topic}.redacted");
    let (code, line, _) = run_to_failure("missing-output", &args);
    assert_eq!(code, Some(2), "{line}");
    let expected = format!("cfscrub: output topic {input}.redacted not found");
    assert!(line.starts_with(&expected), "{line}");
}

#[test]
fn too_few_output_partitions() {
    let Some(broker) = broker() else { return };
    let input = unique("narrow");
    create_topic(&broker, &input, 3, &[]);
    create_topic(&broker, &format!("{input}.redacted"), 2, &[]);
    let args =
        member_args(&broker, &unique("group"), &input, "{topic}.redacted");
    let (code, line, _) = run_to_failure("narrow", &args);
    assert_eq!(code, Some(2), "{line}");
    let expected = format!(
        "cfscrub: output topic {input}.redacted has fewer partitions than \
         input topic {input} (2 < 3)"
    );
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("--partitioner key"), "{line}");
}

#[test]
fn pattern_matching_own_output_rejected() {
    let Some(broker) = broker() else { return };
    let topic = unique("loop");
    create_topic(&broker, &topic, 1, &[]);
    let pattern = format!("^{topic}$");
    let args = member_args(&broker, &unique("group"), &pattern, &topic);
    let (code, line, _) = run_to_failure("loop", &args);
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("cfscrub would read its own output"), "{line}");
}

/// Writes five small records, one of `large` bytes, and five small ones
/// to partition 0 of a new topic, and returns its name.
fn topic_with_large_record(
    broker: &str,
    large: usize,
    output_config: &[(&str, &str)],
) -> String {
    let input = unique("large");
    create_topic(broker, &input, 1, &[]);
    create_topic(broker, &format!("{input}.redacted"), 1, output_config);
    let mut records: Vec<TestRecord> = (0..5)
        .map(|n| TestRecord::value(0, format!("rec={n} small")))
        .collect();
    records.push(TestRecord::value(0, format!("rec=5 {}", "x".repeat(large))));
    records.extend(
        (6..11).map(|n| TestRecord::value(0, format!("rec={n} small"))),
    );
    produce(broker, &input, &records);
    input
}

#[test]
fn oversized_record_stops_before_it() {
    let Some(broker) = broker() else { return };
    let input = topic_with_large_record(&broker, 3_000, &[]);
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    args.extend(strings(&["-X", "producer.message.max.bytes=2000"]));
    let (code, line, _) = run_to_failure("oversized", &args);
    assert_eq!(code, Some(2), "{line}");
    let expected =
        format!("cfscrub: record {input}/0@5 is 3006 bytes after redaction");
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.contains("message.max.bytes"), "{line}");
    let committed = committed_offsets(&broker, &group, &input, 1);
    assert_eq!(committed.get(&0), Some(&5), "committed offset");
    let output = format!("{input}.redacted");
    assert_eq!(end_offsets(&broker, &output)[&0], 5, "records delivered");
}

#[test]
fn broker_rejected_record_not_committed() {
    let Some(broker) = broker() else { return };
    let input = topic_with_large_record(
        &broker,
        5_000,
        &[("max.message.bytes", "2000")],
    );
    let group = unique("group");
    let args = member_args(&broker, &group, &input, "{topic}.redacted");
    let (code, line, _) = run_to_failure("rejected", &args);
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with(&format!("cfscrub: record {input}/0@")),
        "{line}"
    );
    assert!(line.contains("bytes after redaction"), "{line}");
    // The broker rejects a whole batch, which may hold records before the
    // large one, and records after it may be delivered before the
    // rejection arrives. The commit never passes the rejected record, and
    // every committed record is in the output.
    let committed = committed_offsets(&broker, &group, &input, 1);
    let committed = committed.get(&0).copied().unwrap_or(0);
    assert!(committed <= 5, "committed past the rejected record: {committed}");
    let output = read_all(&broker, &format!("{input}.redacted"), false);
    let ids = id_counts(&output);
    for id in 0..committed as u64 {
        assert!(ids.contains_key(&id), "committed record {id} not delivered");
    }
    assert!(!ids.contains_key(&5), "the rejected record was delivered");
}
