//! Checks of the input and output topics against the cluster's metadata.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::error::{Error, Role};
use super::group::GroupConsumer;
use super::settings::{Partitioning, Settings};
use crate::observe::Stage;

/// Time spent serving the producer's queued error events after a failed
/// start-up request.
const EVENT_WAIT: Duration = Duration::from_millis(100);

/// Checks, before joining the group, that a broker responds, that each
/// input topic given by name exists, and that its output topic exists
/// with enough partitions.
pub fn check_startup(
    consumer: &GroupConsumer,
    settings: &Settings,
) -> Result<(), Error> {
    let metrics = &consumer.context().metrics;
    let metadata = consumer
        .fetch_metadata(None, settings.connect_timeout)
        .map_err(|error| {
            metrics.error(Stage::Consume);
            unreachable(consumer, settings, &error)
        })?;
    let counts = partition_counts(&metadata);
    let result = settings.named_inputs().try_for_each(|input| {
        let Some(&partitions) = counts.get(input) else {
            return Err(Error::UnknownTopic {
                topic: input.to_owned(),
                role: Role::Input,
            });
        };
        check_output(settings, &counts, input, partitions)
    });
    let result = result.and_then(|()| {
        let fixed = settings.output.output_for("");
        if settings.output.is_fixed() && !counts.contains_key(fixed.as_str()) {
            return Err(Error::UnknownTopic {
                topic: fixed,
                role: Role::Output,
            });
        }
        Ok(())
    });
    if result.is_err() {
        metrics.error(Stage::Consume);
    }
    result
}

/// Checks the output topic of each newly assigned input topic, which
/// covers the topics that a pattern subscription matches.
///
/// When the metadata cannot be fetched (a broker restarting), the check
/// is skipped: a missing output topic or partition then fails the
/// delivery of the first record, which stops the pipeline as well.
pub fn check_assignment(
    consumer: &GroupConsumer,
    settings: &Settings,
    partitions: &TopicPartitionList,
) -> Result<(), Error> {
    let elements = partitions.elements();
    let topics: BTreeSet<&str> = elements.iter().map(|e| e.topic()).collect();
    if topics.is_empty() {
        return Ok(());
    }
    let metadata =
        match consumer.fetch_metadata(None, settings.connect_timeout) {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::warn!(%error, "output topic check skipped");
                return Ok(());
            }
        };
    let counts = partition_counts(&metadata);
    for input in topics {
        let output = settings.output.output_for(input);
        if output == input {
            return Err(Error::Config {
                option: format!("--output-topic {}", settings.output),
                detail: format!(
                    "the output topic of {input} is {input} itself, so \
                     cfscrub would read its own output"
                ),
            });
        }
        let Some(&partitions) = counts.get(input) else { continue };
        check_output(settings, &counts, input, partitions)?;
    }
    Ok(())
}

fn check_output(
    settings: &Settings,
    counts: &HashMap<&str, usize>,
    input: &str,
    input_partitions: usize,
) -> Result<(), Error> {
    let output = settings.output.output_for(input);
    let Some(&output_partitions) = counts.get(output.as_str()) else {
        return Err(Error::UnknownTopic { topic: output, role: Role::Output });
    };
    if settings.partitioning == Partitioning::Same
        && output_partitions < input_partitions
    {
        return Err(Error::TooFewPartitions {
            input: input.to_owned(),
            input_partitions,
            output,
            output_partitions,
        });
    }
    Ok(())
}

fn partition_counts(metadata: &Metadata) -> HashMap<&str, usize> {
    metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().is_none())
        .map(|topic| (topic.name(), topic.partitions().len()))
        .collect()
}

/// Explains a failed first metadata request from the errors the clients
/// reported meanwhile.
fn unreachable(
    consumer: &GroupConsumer,
    settings: &Settings,
    error: &KafkaError,
) -> Error {
    let context = consumer.context();
    // Serve the error events queued meanwhile: the producer's carry their
    // reasons to `last_error`, the consumer's come back from `poll` with
    // a code only.
    context.producer.poll(EVENT_WAIT);
    let mut authentication = false;
    while let Some(result) = consumer.poll(Duration::ZERO) {
        if let Err(error) = result {
            tracing::debug!(%error, "consumer error during start-up");
            let code = error.rdkafka_error_code();
            authentication |= code == Some(RDKafkaErrorCode::Authentication);
        }
    }
    match context.last_error() {
        Some((RDKafkaErrorCode::Authentication, reason)) => {
            Error::Authentication { detail: reason }
        }
        _ if authentication => Error::Authentication {
            detail: "the brokers rejected the SASL credentials".to_owned(),
        },
        Some((_, reason)) => Error::Connect {
            brokers: settings.brokers.clone(),
            detail: reason,
        },
        None => Error::Connect {
            brokers: settings.brokers.clone(),
            detail: format!(
                "no answer within {} s ({error})",
                settings.connect_timeout.as_secs_f64()
            ),
        },
    }
}
