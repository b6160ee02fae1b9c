//! The consumer's side: group membership, rebalances, commits and the
//! client's own reports.
//!
//! librdkafka runs these callbacks on the pipeline's thread, inside
//! `BaseConsumer::poll`, so the pipeline never holds a lock of this
//! context while it polls the consumer.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use super::delivery::{DeliveryContext, lock};
use super::error::Error;
use super::offsets;
use super::pipeline::publish_partition;
use super::settings::{Guarantee, Settings};
use super::shutdown::Shutdown;
use super::topics;
use super::transaction::Transaction;
use crate::observe::throttle::Throttle;
use crate::observe::{Metrics, Stage};

/// The consumer type of the pipeline.
pub type GroupConsumer = BaseConsumer<GroupContext>;

/// How long a transaction commit or abort is retried while running:
/// librdkafka's default `transaction.timeout.ms`, after which the broker
/// aborts the transaction anyway.
const TRANSACTION_RETRY: Duration = Duration::from_secs(60);

/// Part of the time left before a shutdown deadline that is kept for the
/// final commit, rather than spent waiting for acknowledgements.
const COMMIT_SHARE: u32 = 4;

/// State shared by the pipeline and the consumer's callbacks.
pub struct GroupContext {
    /// The producer that writes the redacted records.
    pub producer: BaseProducer<DeliveryContext>,
    /// The settings of the member.
    pub settings: Arc<Settings>,
    /// The metrics that counts are published to.
    pub metrics: Metrics,
    /// The stop request.
    pub shutdown: Arc<Shutdown>,
    state: Mutex<GroupState>,
    last_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
    throttle: Throttle,
    commit_throttle: Throttle,
}

/// State that the callbacks and the pipeline change together.
#[derive(Default)]
pub struct GroupState {
    /// Whether consumption is paused because too many records are in
    /// flight; partitions assigned meanwhile are paused too.
    pub paused: bool,
    /// The open transaction, in exactly-once mode.
    pub transaction: Option<Transaction>,
    /// The first error that stops the pipeline.
    pub failure: Option<Error>,
}

impl GroupContext {
    /// Returns a context around `producer`.
    pub fn new(
        producer: BaseProducer<DeliveryContext>,
        settings: Arc<Settings>,
        metrics: Metrics,
        shutdown: Arc<Shutdown>,
    ) -> GroupContext {
        let transaction = match settings.guarantee {
            Guarantee::ExactlyOnce { .. } => Some(Transaction::new()),
            Guarantee::AtLeastOnce => None,
        };
        GroupContext {
            producer,
            settings,
            metrics,
            shutdown,
            state: Mutex::new(GroupState {
                transaction,
                ..GroupState::default()
            }),
            last_error: Mutex::new(None),
            throttle: Throttle::new(),
            commit_throttle: Throttle::new(),
        }
    }

    /// Locks the shared state. Never held across `BaseConsumer::poll`.
    pub fn state(&self) -> MutexGuard<'_, GroupState> {
        lock(&self.state)
    }

    /// Returns the delivery side of the producer.
    pub fn delivery(&self) -> &DeliveryContext {
        self.producer.context()
    }

    /// Records an error that stops the pipeline, keeping the first one.
    pub fn fail(&self, error: Error) {
        let mut state = self.state();
        if state.failure.is_none() {
            state.failure = Some(error);
        }
    }

    /// Takes the error that stops the pipeline, from either client.
    pub fn take_failure(&self) -> Option<Error> {
        let failure = self.state().failure.take();
        failure.or_else(|| self.delivery().take_failure())
    }

    /// Returns the last client error either client reported, to explain
    /// a failed request.
    pub fn last_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        let own = lock(&self.last_error).clone();
        own.or_else(|| self.delivery().last_error())
    }

    /// Returns the time by which in-flight records must be acknowledged
    /// before partitions are given up: a share of the shutdown deadline
    /// when stopping, one grace period otherwise.
    pub fn drain_deadline(&self) -> Instant {
        let now = Instant::now();
        match self.shutdown.deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(now);
                now + left - left / COMMIT_SHARE
            }
            None => now + self.settings.grace_period,
        }
    }

    /// Returns the time by which the last commit and leaving the group
    /// must finish: the shutdown deadline when stopping, one grace period
    /// otherwise.
    pub fn commit_deadline(&self) -> Instant {
        match self.shutdown.deadline() {
            Some(deadline) => deadline,
            None => Instant::now() + self.settings.grace_period,
        }
    }

    /// Returns the time until which a transaction commit or abort is
    /// retried, starting at `start`: [`TRANSACTION_RETRY`] while running,
    /// so that a broker restart is waited out, and no later than the
    /// shutdown deadline once stopping.
    pub fn retry_deadline(&self, start: Instant) -> Instant {
        let running = start + TRANSACTION_RETRY;
        match self.shutdown.deadline() {
            Some(deadline) => deadline.min(running),
            None => running,
        }
    }

    /// Waits until every record handed to the producer is acknowledged or
    /// `deadline` passes, serving delivery reports meanwhile.
    pub fn drain(&self, deadline: Instant) {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if let Err(error) = self.producer.flush(timeout) {
            let left = self.delivery().tracker().in_flight();
            tracing::warn!(
                %error,
                in_flight = left,
                "records not acknowledged in time; they will be consumed \
                 again"
            );
        }
    }

    fn revoke(
        &self,
        consumer: &GroupConsumer,
        partitions: &TopicPartitionList,
    ) {
        let lost = consumer.assignment_lost();
        tracing::info!(
            partitions = partitions.count(),
            lost,
            "partitions revoked"
        );
        let mut state = self.state();
        if let Some(transaction) = &mut state.transaction {
            let result = if lost {
                transaction.abort(self, consumer, Some(partitions))
            } else {
                transaction.commit(self, consumer)
            };
            if let Err(error) = result {
                drop(state);
                self.fail(error);
            }
            return;
        }
        drop(state);
        if lost {
            // Another member owns these partitions already, so a commit
            // would be rejected; the records after the last commit are
            // consumed again there.
            return;
        }
        self.drain(self.drain_deadline());
        if let Err(error) =
            offsets::commit_delivered(consumer, Some(partitions))
        {
            self.commit_failed(&error);
        }
    }

    fn forget(&self, partitions: &TopicPartitionList) {
        let mut tracker = self.delivery().tracker();
        for element in partitions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            if let Some(mut log) = tracker.revoke(topic, partition) {
                publish_partition(&self.metrics, &mut log);
            }
            let label = [topic, &partition.to_string()];
            // The series may not exist yet, which is not an error here.
            let _ = self.metrics.kafka_lag.remove_label_values(&label);
        }
    }

    fn assign(
        &self,
        consumer: &GroupConsumer,
        partitions: &TopicPartitionList,
    ) {
        self.metrics.kafka_rebalances.inc();
        tracing::info!(partitions = partitions.count(), "partitions assigned");
        {
            let mut tracker = self.delivery().tracker();
            for element in partitions.elements() {
                tracker.assign(element.topic(), element.partition());
            }
        }
        if let Err(error) =
            topics::check_assignment(consumer, &self.settings, partitions)
        {
            self.metrics.error(Stage::Consume);
            self.fail(error);
        }
        if self.state().paused
            && let Err(error) = consumer.pause(partitions)
        {
            tracing::warn!(%error, "pausing newly assigned partitions failed");
        }
        self.metrics.ready.set(1);
    }

    /// Counts and logs a failed commit; the next commit retries it.
    pub fn commit_failed(&self, error: &KafkaError) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) {
            return;
        }
        self.metrics.error(Stage::Commit);
        if self.commit_throttle.allow() {
            tracing::warn!(%error, "offset commit failed");
        }
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_client(level, "consumer", facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.error(Stage::Consume);
        let code = error.rdkafka_error_code();
        if let Some(code) = code {
            *lock(&self.last_error) = Some((code, reason.to_owned()));
        }
        if code == Some(RDKafkaErrorCode::Fatal) {
            self.fail(Error::Consume { detail: reason.to_owned() });
        }
        if self.throttle.allow() {
            tracing::warn!(%error, reason, "consumer error");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let tracker = self.delivery().tracker();
        for (name, topic) in &statistics.topics {
            for (partition, stats) in &topic.partitions {
                let assigned = tracker.id(name, *partition).is_some();
                if *partition < 0 || stats.consumer_lag < 0 || !assigned {
                    continue;
                }
                self.metrics
                    .kafka_lag
                    .with_label_values(&[
                        name.as_str(),
                        &partition.to_string(),
                    ])
                    .set(stats.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(
        &self,
        consumer: &GroupConsumer,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(partitions) => self.revoke(consumer, partitions),
            Rebalance::Assign(_) => {}
            Rebalance::Error(error) => {
                self.metrics.error(Stage::Consume);
                tracing::error!(%error, "rebalance failed");
            }
        }
    }

    fn post_rebalance(
        &self,
        consumer: &GroupConsumer,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => self.assign(consumer, partitions),
            Rebalance::Revoke(partitions) => self.forget(partitions),
            Rebalance::Error(_) => {}
        }
    }

    fn main_queue_min_poll_interval(&self) -> rdkafka::util::Timeout {
        rdkafka::util::Timeout::After(Duration::from_millis(100))
    }
}

/// Sends a librdkafka log line to `tracing`, one level lower than
/// librdkafka rates it: the same conditions also arrive as client errors,
/// which are counted and logged there.
pub(crate) fn log_client(
    level: RDKafkaLogLevel,
    client: &'static str,
    facility: &str,
    message: &str,
) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::warn!(client, facility, message, "librdkafka")
        }
        RDKafkaLogLevel::Warning => {
            tracing::info!(client, facility, message, "librdkafka")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::debug!(client, facility, message, "librdkafka")
        }
        RDKafkaLogLevel::Debug => {
            tracing::trace!(client, facility, message, "librdkafka")
        }
    }
}
