//! Several `cfscrub kafka` members of one group against a real broker:
//! partitions move to a survivor when a member is killed, and exactly-once
//! mode stays exactly-once through a SIGKILL and a zombie member.

mod kafka_common;
mod metrics_common;

use std::time::Duration;

use kafka_common::*;

#[test]
fn killed_member_partitions_taken_over() {
    let Some(broker) = broker() else { return };
    let input = unique("takeover");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, 4, &[]);
    create_topic(&broker, &output, 4, &[]);
    let feeder = Feeder::start(&broker, &input, 4);

    let dir = TestDir::new("takeover");
    let group = unique("group");
    let mut args = member_args(&broker, &group, &input, "{topic}.redacted");
    quick_session(&mut args);
    args.extend(["--commit-interval".into(), "0.5".into()]);
    // The incremental protocol: only the partitions that move are revoked,
    // which the other tests, on librdkafka's eager default, do not cover.
    let strategy = "consumer.partition.assignment.strategy=cooperative-sticky";
    args.extend(["-X".into(), strategy.into()]);
    let mut first = Member::start(dir.path(), "first", &args);
    first.wait_ready();
    let mut second = Member::start(dir.path(), "second", &args);
    second.wait_ready();
    let written = "cfscrub_written_records_total{source=\"kafka\"}";
    let before = first.metric(written).unwrap_or(0.0);
    // Both members forward records of their own partitions.
    wait_metric(&first, written, before + 1_000.0);
    wait_metric(&second, written, 1_000.0);
    first.kill();
    // Every partition committed to its end shows that the second member
    // took over the first one's partitions.
    std::thread::sleep(Duration::from_secs(1));
    let (sent, planted) = feeder.stop();
    wait_all_committed(&broker, &group, &input);
    second.terminate();
    let status = second.wait();
    assert!(status.success(), "exit {status}: {}", second.stderr_text());

    let copies = read_all(&broker, &output, false);
    check_copies(&copies, sent, &planted, false);
}

/// Arguments of an exactly-once member with transactional id `id`.
fn exactly_once_args(
    broker: &str,
    group: &str,
    input: &str,
    id: &str,
) -> Vec<String> {
    let mut args = member_args(broker, group, input, "{topic}.redacted");
    quick_session(&mut args);
    args.extend([
        "--exactly-once".into(),
        "--transactional-id".into(),
        id.into(),
    ]);
    args
}

#[test]
fn exactly_once_survives_sigkill() {
    let Some(broker) = broker() else { return };
    let input = unique("eos-kill");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, 3, &[]);
    create_topic(&broker, &output, 3, &[]);
    let feeder = Feeder::start(&broker, &input, 3);

    let dir = TestDir::new("eos-kill");
    let group = unique("group");
    let id = unique("txn");
    let mut args = exactly_once_args(&broker, &group, &input, &id);
    args.extend(["--commit-interval".into(), "1".into()]);
    let mut first = Member::start(dir.path(), "first", &args);
    first.wait_ready();
    // Records keep coming and each transaction stays open for a second, so
    // half a second after a commit the kill lands in an open transaction
    // with records already written.
    wait_metric(&first, "cfscrub_kafka_commits_total", 2.0);
    std::thread::sleep(Duration::from_millis(500));
    first.kill();
    let mut restarted = Member::start(dir.path(), "restarted", &args);
    restarted.wait_ready();
    wait_metric(&restarted, "cfscrub_kafka_commits_total", 2.0);
    let (sent, planted) = feeder.stop();
    wait_all_committed(&broker, &group, &input);
    restarted.terminate();
    let status = restarted.wait();
    assert!(status.success(), "exit {status}: {}", restarted.stderr_text());

    let copies = read_all(&broker, &output, true);
    check_copies(&copies, sent, &planted, true);
    // The killed member's open transaction was aborted: its records are
    // in the log, hidden from read_committed readers.
    let everything = read_all(&broker, &output, false);
    assert!(
        everything.len() > copies.len(),
        "no aborted records: the kill missed the open transaction"
    );
}

#[test]
fn zombie_member_fenced() {
    let Some(broker) = broker() else { return };
    let input = unique("eos-fence");
    let output = format!("{input}.redacted");
    create_topic(&broker, &input, 2, &[]);
    create_topic(&broker, &output, 2, &[]);
    let feeder = Feeder::start(&broker, &input, 2);

    let dir = TestDir::new("eos-fence");
    let group = unique("group");
    let id = unique("txn");
    let args = exactly_once_args(&broker, &group, &input, &id);
    let mut zombie = Member::start(dir.path(), "zombie", &args);
    zombie.wait_ready();
    wait_metric(&zombie, "cfscrub_kafka_commits_total", 3.0);
    // A second member with the same transactional id, as when a
    // replacement starts while the old member still runs.
    let mut successor = Member::start(dir.path(), "successor", &args);
    let status = zombie.wait();
    assert_eq!(
        status.code(),
        Some(2),
        "zombie exit: {}",
        zombie.stderr_text()
    );
    let message = zombie.last_line();
    assert!(message.starts_with("cfscrub: fenced:"), "{message}");
    assert!(message.contains(&id), "{message}");
    successor.wait_ready();
    wait_metric(&successor, "cfscrub_kafka_commits_total", 3.0);
    let (sent, planted) = feeder.stop();
    wait_all_committed(&broker, &group, &input);
    successor.terminate();
    let status = successor.wait();
    assert!(status.success(), "exit {status}: {}", successor.stderr_text());

    let copies = read_all(&broker, &output, true);
    check_copies(&copies, sent, &planted, true);
}
