//! Exactly-once mode: the redacted records and the input offsets are
//! committed in one Kafka transaction.
//!
//! A reader with `isolation.level=read_committed` never sees a record of
//! an aborted or unfinished transaction, and the offsets move only with a
//! committed transaction, so each record reaches that reader exactly
//! once. Since Kafka 2.5 (KIP-447) the group coordinator also
//! rejects offsets from a member of an older group generation, which
//! fences a member that lost its partitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::delivery::is_fencing;
use super::error::Error;
use super::group::{GroupConsumer, GroupContext};
use super::pipeline::publish_partition;
use crate::observe::Stage;

/// Maximum wait for one seek back to the start of an aborted transaction.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between two attempts of a transaction call, some of which fail
/// at once while no coordinator is known.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Maximum wait of one call to abort a transaction; see [`abort_until`].
const ABORT_STEP: Duration = Duration::from_millis(100);

/// Time spent serving delivery reports between two steps of an abort.
const REPORT_SERVE: Duration = Duration::from_millis(10);

/// The open transaction and the input records in it.
#[derive(Debug, Default)]
pub struct Transaction {
    open: bool,
    started: Option<Instant>,
    records: usize,
    /// First and next offset of each input partition in the transaction.
    offsets: HashMap<Arc<str>, HashMap<i32, (i64, i64)>>,
}

impl Transaction {
    /// Returns the state before the first transaction.
    pub fn new() -> Transaction {
        Transaction::default()
    }

    /// Returns whether a transaction is open.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Returns whether the transaction should be committed now: it is
    /// older than `interval`.
    ///
    /// Its size needs no bound of its own, because records are
    /// acknowledged while the transaction is open, so the in-flight limit
    /// bounds the records held. A larger transaction costs no more to
    /// commit: one commit per 10,000 records ran at a third of the rate of
    /// one per 0.1 s over the 1,000,000 records of benches/kafka.sh (one
    /// run each).
    pub fn is_due(&self, interval: Duration) -> bool {
        self.open && self.started.is_some_and(|at| at.elapsed() >= interval)
    }

    /// Begins a transaction unless one is open.
    pub fn begin(&mut self, context: &GroupContext) -> Result<(), Error> {
        if self.open {
            return Ok(());
        }
        context.producer.begin_transaction().map_err(|error| {
            fatal(context, "beginning a transaction", error)
        })?;
        self.open = true;
        self.started = Some(Instant::now());
        Ok(())
    }

    /// Adds a record that was handed to the producer.
    pub fn add(&mut self, topic: &str, partition: i32, offset: i64) {
        self.records += 1;
        let partitions = match self.offsets.get_mut(topic) {
            Some(partitions) => partitions,
            None => self.offsets.entry(Arc::from(topic)).or_default(),
        };
        partitions
            .entry(partition)
            .and_modify(|(_, next)| *next = offset + 1)
            .or_insert((offset, offset + 1));
    }

    /// Commits the open transaction with the offsets after its records.
    ///
    /// A commit that fails in a way that needs an abort is aborted and
    /// its partitions are rewound, so the records are consumed again.
    /// Only a fatal error (such as fencing) or a failed abort is returned.
    pub fn commit(
        &mut self,
        context: &GroupContext,
        consumer: &GroupConsumer,
    ) -> Result<(), Error> {
        if !self.open {
            return Ok(());
        }
        let start = Instant::now();
        let result = retry(context, start, |timeout| {
            self.send_offsets(context, consumer, timeout)
        })
        .and_then(|()| {
            retry(context, start, |timeout| {
                context.producer.commit_transaction(timeout)
            })
        });
        match result {
            Ok(()) => {
                context.metrics.kafka_commits.inc();
                tracing::debug!(
                    records = self.records,
                    "transaction committed"
                );
                self.clear();
                Ok(())
            }
            Err(error) if is_fatal(&error) => {
                Err(fatal(context, "committing the transaction", error))
            }
            Err(error) => {
                context.metrics.error(Stage::Commit);
                tracing::warn!(
                    %error,
                    records = self.records,
                    "transaction commit failed; aborting it and consuming \
                     its records again"
                );
                self.abort(context, consumer, None)
            }
        }
    }

    fn send_offsets(
        &self,
        context: &GroupContext,
        consumer: &GroupConsumer,
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let mut offsets = TopicPartitionList::new();
        for (topic, partitions) in &self.offsets {
            for (partition, (_, next)) in partitions {
                offsets.add_partition_offset(
                    topic,
                    *partition,
                    Offset::Offset(*next),
                )?;
            }
        }
        let Some(group) = consumer.group_metadata() else {
            // Only a consumer outside any group lacks group metadata.
            return Err(KafkaError::Global(RDKafkaErrorCode::State));
        };
        context.producer.send_offsets_to_transaction(&offsets, &group, timeout)
    }

    /// Aborts the open transaction and seeks each of its partitions, but
    /// those in `revoked`, back to the transaction's first record.
    ///
    /// An abort that fails is retried as a commit is; when it still fails
    /// the error is returned, because no new transaction can begin.
    pub fn abort(
        &mut self,
        context: &GroupContext,
        consumer: &GroupConsumer,
        revoked: Option<&TopicPartitionList>,
    ) -> Result<(), Error> {
        if !self.open {
            return Ok(());
        }
        let result = abort_until(context, Instant::now());
        let mut tracker = context.delivery().tracker();
        for (topic, partitions) in &self.offsets {
            for (partition, (first, _)) in partitions {
                let gone = revoked.is_some_and(|revoked| {
                    revoked.find_partition(topic, *partition).is_some()
                });
                // A new tracker id drops the delivery reports of the
                // aborted records, which arrive as purged.
                if let Some(mut log) = tracker.revoke(topic, *partition) {
                    publish_partition(&context.metrics, &mut log);
                }
                if gone {
                    continue;
                }
                tracker.assign(topic, *partition);
                let offset = Offset::Offset(*first);
                if let Err(error) =
                    consumer.seek(topic, *partition, offset, SEEK_TIMEOUT)
                {
                    tracing::warn!(
                        %error,
                        topic = &**topic,
                        partition,
                        "seek to the aborted records failed"
                    );
                }
            }
        }
        drop(tracker);
        self.clear();
        result
    }

    fn clear(&mut self) {
        self.open = false;
        self.started = None;
        self.records = 0;
        self.offsets.clear();
    }
}

/// Registers the transactional id with the broker, which aborts what an
/// earlier producer with the same id left open.
pub fn init(consumer: &GroupConsumer, timeout: Duration) -> Result<(), Error> {
    let context = consumer.context();
    context
        .producer
        .init_transactions(timeout)
        .map_err(|error| fatal(context, "initialising transactions", error))
}

/// Calls `attempt` with the time left until it succeeds, fails with an
/// error that is not retriable, or the retry deadline of `start` passes.
fn retry(
    context: &GroupContext,
    start: Instant,
    mut attempt: impl FnMut(Duration) -> Result<(), KafkaError>,
) -> Result<(), KafkaError> {
    loop {
        let error = match attempt(left(context.retry_deadline(start))) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let retriable = match &error {
            KafkaError::Transaction(inner) => inner.is_retriable(),
            // rdkafka flushes before it commits, and a flush that times
            // out leaves the transaction as it was.
            KafkaError::Flush(_) => true,
            _ => false,
        };
        if !retriable || Instant::now() >= context.retry_deadline(start) {
            return Err(error);
        }
        tracing::debug!(%error, "transaction call failed, retrying");
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Aborts, retrying an abort that failed with an error that is not fatal
/// until the retry deadline of `start`.
///
/// librdkafka's abort purges the records of the transaction and waits
/// until their delivery reports are served. rdkafka 0.39's
/// `BaseProducer::abort_transaction`, unlike its `commit_transaction`,
/// serves none, and this thread is the only one that polls the producer,
/// so a single call with records in flight would wait out its whole
/// timeout. The abort is therefore called in steps of [`ABORT_STEP`],
/// which librdkafka allows (a timed-out abort resumes on the next call),
/// with the reports served in between.
fn abort_until(context: &GroupContext, start: Instant) -> Result<(), Error> {
    loop {
        let deadline = context.retry_deadline(start);
        let step = left(deadline).min(ABORT_STEP);
        let error = match context.producer.abort_transaction(step) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        if is_fatal(&error) {
            return Err(fatal(context, "aborting the transaction", error));
        }
        if Instant::now() >= deadline {
            context.metrics.error(Stage::Commit);
            return Err(Error::Client {
                action: "aborting the transaction",
                source: error,
            });
        }
        let timed_out = matches!(
            &error,
            KafkaError::Transaction(inner)
                if inner.code() == RDKafkaErrorCode::OperationTimedOut
        );
        if timed_out {
            context.producer.poll(REPORT_SERVE);
        } else {
            context.metrics.error(Stage::Commit);
            tracing::warn!(%error, "transaction abort failed, retrying");
            context.producer.poll(RETRY_PAUSE);
        }
    }
}

fn is_fatal(error: &KafkaError) -> bool {
    matches!(error, KafkaError::Transaction(inner) if inner.is_fatal())
}

/// Turns a transaction error that this member cannot recover from into
/// the error that stops it.
fn fatal(
    context: &GroupContext,
    action: &'static str,
    error: KafkaError,
) -> Error {
    context.metrics.error(Stage::Commit);
    let transactional_id = match &context.settings.guarantee {
        super::settings::Guarantee::ExactlyOnce { transactional_id } => {
            transactional_id.clone()
        }
        super::settings::Guarantee::AtLeastOnce => String::new(),
    };
    match &error {
        KafkaError::Transaction(inner)
            if is_fencing(inner.code())
                || (inner.is_fatal() && inner.string().contains("fenced")) =>
        {
            Error::Fenced { transactional_id, detail: inner.string() }
        }
        KafkaError::Transaction(inner) if inner.is_fatal() => {
            Error::Produce { detail: inner.string() }
        }
        _ => Error::Client { action, source: error },
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_span_first_to_next() {
        let mut transaction = Transaction::new();
        transaction.open = true;
        transaction.add("logs", 0, 5);
        transaction.add("logs", 0, 6);
        transaction.add("logs", 1, 9);
        assert_eq!(transaction.offsets["logs"][&0], (5, 7));
        assert_eq!(transaction.offsets["logs"][&1], (9, 10));
        assert_eq!(transaction.records, 3);
    }

    #[test]
    fn due_by_age() {
        let mut transaction = Transaction::new();
        transaction.open = true;
        transaction.started = Some(Instant::now());
        transaction.add("logs", 0, 0);
        assert!(!transaction.is_due(Duration::from_secs(60)));
        assert!(transaction.is_due(Duration::ZERO));
    }

    #[test]
    fn closed_transaction_never_due() {
        let transaction = Transaction::new();
        assert!(!transaction.is_due(Duration::ZERO));
    }
}
