//! Offset commits in at-least-once mode.

use rdkafka::Offset;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::group::GroupConsumer;

/// Commits, for each tracked partition (or only those in `only`), the
/// offset after its delivered prefix: the next record to consume is then
/// the oldest one the broker has not acknowledged.
///
/// The commit is synchronous, one round trip to the group coordinator.
///
/// NOTE: an asynchronous commit would not block the loop, but rdkafka
/// 0.39 never calls `ConsumerContext::commit_callback` for one
/// (<https://github.com/fede1024/rust-rdkafka/issues/856>), so its outcome
/// would stay unknown. Once that is fixed, interval commits can become
/// asynchronous and be confirmed in the callback.
pub fn commit_delivered(
    consumer: &GroupConsumer,
    only: Option<&TopicPartitionList>,
) -> Result<(), KafkaError> {
    let mut offsets = TopicPartitionList::new();
    {
        let tracker = consumer.context().delivery().tracker();
        for log in tracker.logs() {
            let selected = only.is_none_or(|only| {
                only.find_partition(&log.topic, log.partition).is_some()
            });
            if let (true, Some(next)) = (selected, log.pending_commit()) {
                offsets.add_partition_offset(
                    &log.topic,
                    log.partition,
                    Offset::Offset(next),
                )?;
            }
        }
    }
    if offsets.count() == 0 {
        return Ok(());
    }
    consumer.commit(&offsets, CommitMode::Sync)?;
    tracing::debug!(partitions = offsets.count(), "offsets committed");
    let context = consumer.context();
    context.metrics.kafka_commits.inc();
    let mut tracker = context.delivery().tracker();
    for element in offsets.elements() {
        if let Offset::Offset(offset) = element.offset() {
            tracker.committed(element.topic(), element.partition(), offset);
        }
    }
    Ok(())
}
