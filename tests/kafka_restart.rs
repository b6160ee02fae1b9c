//! A broker restarted mid-stream under both delivery guarantees, first
//! cleanly and then after SIGKILL: the members recover, at-least-once
//! loses nothing and exactly-once still delivers each record once.
//!
//! This test stops the shared broker, so it lives in a test binary of its
//! own: cargo runs test binaries one after another, so no other test sees
//! the broker go away.

mod kafka_common;
mod metrics_common;

use std::process::Command;
use std::time::{Duration, Instant};

use kafka_common::*;

/// Runs `scripts/kafka.sh COMMAND` for the broker at `broker`.
fn kafka_script(broker: &str, command: &str) {
    let (_, port) = broker.rsplit_once(':').expect("HOST:PORT");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh");
    let status = Command::new(script)
        .arg(command)
        .env("KAFKA_PORT", port)
        .status()
        .unwrap_or_else(|error| panic!("run scripts/kafka.sh: {error}"));
    assert!(
        status.success(),
        "scripts/kafka.sh {command} exited with {status}"
    );
}

/// Waits until `member` has written `count` more records than `from`.
///
/// NOTE: in one run on a loaded 2-core machine, a feeder stopped writing
/// after the clean restart (its input topic stopped growing and the member
/// had forwarded all of it), so this wait timed out; one more timeout of
/// this wait was not examined. Why the feeder's idempotent producer
/// stalled is not known.
fn wait_written(member: &Member, from: f64, count: f64) {
    let series = "cfscrub_written_records_total{source=\"kafka\"}";
    let deadline = Instant::now() + WAIT;
    while member.metric(series).is_none_or(|v| v < from + count) {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} records written after {WAIT:?}: {}",
            member.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn written(member: &Member) -> f64 {
    member
        .metric("cfscrub_written_records_total{source=\"kafka\"}")
        .unwrap_or(0.0)
}

/// Returns the member's errors of the Kafka stages. Which client reports
/// an outage varies: librdkafka reports a connection error that repeats
/// the last one on the same connection only once, so a second outage may
/// reach only the other client.
fn errors(member: &Member) -> f64 {
    ["consume", "produce", "commit"]
        .iter()
        .map(|stage| {
            let series = format!("cfscrub_errors_total{{stage=\"{stage}\"}}");
            member.metric(&series).unwrap_or(0.0)
        })
        .sum()
}

#[test]
fn broker_restart_loses_nothing() {
    let Some(broker) = broker() else { return };
    let dir = TestDir::new("restart");
    let mut members = Vec::new();
    let mut feeders = Vec::new();
    let mut topics = Vec::new();
    for exactly_once in [false, true] {
        let input =
            unique(if exactly_once { "restart-eos" } else { "restart" });
        let output = format!("{input}.redacted");
        create_topic(&broker, &input, 3, &[]);
        create_topic(&broker, &output, 3, &[]);
        let group = unique("group");
        let mut args =
            member_args(&broker, &group, &input, "{topic}.redacted");
        if exactly_once {
            args.extend([
                "--exactly-once".into(),
                "--transactional-id".into(),
            ]);
            args.push(unique("txn"));
        }
        let name = if exactly_once { "exactly-once" } else { "at-least-once" };
        let mut member = Member::start(dir.path(), name, &args);
        member.wait_ready();
        feeders.push(Feeder::start(&broker, &input, 3));
        members.push(member);
        topics.push((input, output, group, exactly_once));
    }
    for member in &members {
        wait_written(member, 0.0, 2_000.0);
    }

    // A clean restart, then a crash: SIGKILL leaves the broker no time to
    // close connections, finish writes or hand over its coordinators.
    for commands in [&["restart"][..], &["kill", "restart"][..]] {
        let errors_before: Vec<f64> = members.iter().map(errors).collect();
        for command in commands {
            kafka_script(&broker, command);
        }
        for (member, before) in members.iter().zip(errors_before) {
            let progress = written(member);
            wait_written(member, progress, 2_000.0);
            assert!(
                errors(member) > before,
                "scripts/kafka.sh {commands:?}: the outage was not counted \
                 as an error"
            );
        }
    }
    let fed: Vec<_> = feeders.into_iter().map(Feeder::stop).collect();
    for ((input, _, group, _), member) in topics.iter().zip(&members) {
        let _ = member;
        wait_all_committed(&broker, group, input);
    }
    for member in &mut members {
        member.terminate();
        let status = member.wait();
        assert!(status.success(), "exit {status}: {}", member.stderr_text());
    }

    for ((_, output, _, exactly_once), (sent, planted)) in
        topics.iter().zip(&fed)
    {
        let copies = read_all(&broker, output, *exactly_once);
        let finder = planted.finder();
        for copy in &copies {
            assert!(!finder.record_leaks(copy), "{output}: a copy leaks");
        }
        let counts = id_counts(&copies);
        for id in 0..*sent {
            let count = counts.get(&id).copied().unwrap_or(0);
            assert!(count >= 1, "{output}: record {id} lost");
            if *exactly_once {
                assert_eq!(
                    count, 1,
                    "{output}: record {id} seen {count} times"
                );
            }
        }
    }
}
