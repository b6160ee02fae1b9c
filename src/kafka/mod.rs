//! The Kafka consumer-group mode: raw topics in, redacted topics out.
//!
//! Each member consumes its share of the input partitions, redacts each
//! record with the shared [`Scanner`](crate::engine::Scanner) and
//! produces the copy to the output topic, keeping key, headers, timestamp
//! and (by default) partition number. Members scale out by joining the
//! same group.
//!
//! At-least-once (the default): an input offset is committed only after
//! the broker acknowledged the copy of that record and of every earlier
//! record of its partition, on an interval, on revocation and at
//! shutdown. Exactly-once: records and offsets are committed in one
//! transaction, for readers with `isolation.level=read_committed`.
//!
//! The loop runs on one thread with librdkafka's polling API, so the
//! rebalance and delivery callbacks run on that thread as well.
//!
//! Without the `kafka` cargo feature only the settings and their parsers
//! are built, so the command line parses the same in every build and
//! nothing links librdkafka.

#[cfg(feature = "kafka")]
mod delivery;
#[cfg(feature = "kafka")]
mod error;
#[cfg(feature = "kafka")]
mod group;
#[cfg(feature = "kafka")]
mod offsets;
#[cfg(feature = "kafka")]
mod pipeline;
#[cfg(feature = "kafka")]
mod record;
mod settings;
#[cfg(feature = "kafka")]
mod shutdown;
#[cfg(feature = "kafka")]
mod topics;
mod tracker;
#[cfg(feature = "kafka")]
mod transaction;

#[cfg(feature = "kafka")]
use std::sync::Arc;

#[cfg(feature = "kafka")]
use rdkafka::consumer::Consumer;
#[cfg(feature = "kafka")]
use rdkafka::error::KafkaError;

#[cfg(feature = "kafka")]
pub use error::{Error, RecordId, Role};
#[cfg(feature = "kafka")]
pub use record::{Field, RecordRedactor, UnreadableHeader};
pub use settings::{
    ConfigError, Guarantee, OutputTemplate, Partitioning, Property, Scope,
    Settings,
};
#[cfg(feature = "kafka")]
pub use shutdown::Shutdown;
pub use tracker::{PartitionId, PartitionLog, Tracker};

#[cfg(feature = "kafka")]
use crate::engine::Scanner;
#[cfg(feature = "kafka")]
use crate::observe::{FindingsWriter, Metrics};
#[cfg(feature = "kafka")]
use delivery::DeliveryContext;
#[cfg(feature = "kafka")]
use group::{GroupConsumer, GroupContext};
#[cfg(feature = "kafka")]
use pipeline::Pipeline;

/// Runs one group member until `shutdown` is requested or an error stops
/// it.
///
/// Returns `Ok` after a requested stop, once what was in flight is
/// delivered and committed or the grace period ran out. Records not
/// committed by then are consumed again by the member that takes over.
#[cfg(feature = "kafka")]
pub fn run(
    settings: Settings,
    scanner: Arc<Scanner>,
    metrics: Metrics,
    findings: Option<FindingsWriter>,
    shutdown: Arc<Shutdown>,
) -> Result<(), Error> {
    settings.validate()?;
    let settings = Arc::new(settings);

    let transactional_id = match &settings.guarantee {
        Guarantee::ExactlyOnce { transactional_id } => {
            Some(transactional_id.clone())
        }
        Guarantee::AtLeastOnce => None,
    };
    let delivery = DeliveryContext::new(metrics.clone(), transactional_id);
    let producer = settings
        .producer_config()
        .create_with_context(delivery)
        .map_err(|error| client_error("creating the producer", error))?;
    let context =
        GroupContext::new(producer, Arc::clone(&settings), metrics, shutdown);
    let consumer: GroupConsumer = settings
        .consumer_config()
        .create_with_context(context)
        .map_err(|error| client_error("creating the consumer", error))?;

    topics::check_startup(&consumer, &settings)?;
    if settings.guarantee != Guarantee::AtLeastOnce {
        transaction::init(&consumer, settings.connect_timeout)?;
    }

    let inputs: Vec<&str> =
        settings.inputs.iter().map(String::as_str).collect();
    consumer.subscribe(&inputs).map_err(|error| {
        client_error("subscribing to the input topics", error)
    })?;
    tracing::info!(
        group = settings.group,
        inputs = settings.inputs.join(","),
        output = %settings.output,
        "consumer started"
    );
    Pipeline::new(&consumer, scanner, findings).run()
}

/// Turns a failed client creation into an error that names the `-X`
/// setting at fault.
#[cfg(feature = "kafka")]
fn client_error(action: &'static str, error: KafkaError) -> Error {
    match &error {
        KafkaError::ClientConfig(_, _, key, _) => Error::Config {
            option: format!("-X {key}"),
            detail: error::describe(&error),
        },
        _ => Error::Client { action, source: error },
    }
}
