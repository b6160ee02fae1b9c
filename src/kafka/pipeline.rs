//! The consume-redact-produce loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, Producer};

use super::delivery::Sent;
use super::error::{Error, RecordId};
use super::group::{GroupConsumer, GroupContext};
use super::offsets;
use super::record::{Field, RecordRedactor};
use super::settings::{Guarantee, Partitioning};
use super::tracker::{PartitionId, PartitionLog};
use crate::engine::{Scanner, Stats};
use crate::observe::throttle::Throttle;
use crate::observe::{FindingRecord, FindingsWriter, SourceType, Stage};

/// Maximum wait for a record while consuming.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

/// Wait for delivery reports in one poll while consumption is paused.
const PAUSED_POLL: Duration = Duration::from_millis(20);

/// Wait for delivery reports in one poll at the in-flight limit, before
/// it is paused.
const FULL_POLL: Duration = Duration::from_millis(1);

/// Maximum number of delivery-report events served in a row between two
/// batches.
const MAX_REPORT_EVENTS: usize = 64;

/// Time at the in-flight limit after which consumption is paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// Records taken from the consumer between two polls of the producer.
const BATCH: usize = 512;

/// Time between two publications of the counts, and flushes of the
/// findings.
const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// Maximum wait for the consumer to leave its group at the end.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The next step of the loop, given the records in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// Below the limit: consume.
    Open,
    /// At the limit for a short while: wait for acknowledgements.
    Waiting,
    /// Paused: wait for acknowledgements and serve rebalances.
    Paused,
}

/// The input partition of the last record forwarded, so that the next
/// record of that partition needs no lookup.
struct Current {
    topic: String,
    partition: i32,
    id: PartitionId,
    /// The tracker's generation when `id` was looked up.
    generation: u64,
    output: String,
}

/// The loop of one group member and what it reuses from record to
/// record.
pub struct Pipeline<'c> {
    consumer: &'c GroupConsumer,
    redactor: RecordRedactor,
    findings: Option<FindingsWriter>,
    /// The partition of the last record, which the next record is most
    /// likely from too.
    current: Option<Current>,
    /// Whether the last record reached the in-flight limit.
    full: bool,
    /// Time spent redacting the records of the current batch.
    scan_time: Duration,
    published: Stats,
    last_commit: Instant,
    last_publish: Instant,
    /// When the in-flight limit was reached, while it lasts.
    full_since: Option<Instant>,
    consume_errors: Throttle,
}

impl<'c> Pipeline<'c> {
    /// Returns a pipeline for a consumer that has subscribed.
    pub fn new(
        consumer: &'c GroupConsumer,
        scanner: Arc<Scanner>,
        findings: Option<FindingsWriter>,
    ) -> Pipeline<'c> {
        let settings = &consumer.context().settings;
        let redactor = RecordRedactor::new(
            scanner,
            settings.redact_keys,
            settings.redact_headers,
        );
        let now = Instant::now();
        Pipeline {
            consumer,
            redactor,
            findings,
            current: None,
            full: false,
            scan_time: Duration::ZERO,
            published: Stats::default(),
            last_commit: now,
            last_publish: now,
            full_since: None,
            consume_errors: Throttle::new(),
        }
    }

    fn context(&self) -> &'c GroupContext {
        self.consumer.context()
    }

    /// Consumes, redacts and produces until a stop is requested or an
    /// error stops the member, then delivers what is in flight, commits
    /// and leaves the group.
    pub fn run(&mut self) -> Result<(), Error> {
        let result = self.run_until_stopped();
        let result = self.finish(result);
        self.publish();
        self.context().metrics.ready.set(0);
        result
    }

    fn run_until_stopped(&mut self) -> Result<(), Error> {
        let context = self.context();
        while !context.shutdown.is_requested() {
            if let Some(failure) = context.take_failure() {
                return Err(failure);
            }
            match self.backpressure() {
                Flow::Open => {
                    self.consume(POLL_TIMEOUT)?;
                    self.serve_deliveries();
                }
                Flow::Waiting => {
                    context.producer.poll(FULL_POLL);
                    self.serve_deliveries();
                }
                Flow::Paused => {
                    context.producer.poll(PAUSED_POLL);
                    self.serve_deliveries();
                    // Serves rebalances; paused partitions return no
                    // records.
                    self.consume(Duration::ZERO)?;
                }
            }
            self.housekeeping()?;
        }
        Ok(())
    }

    /// Serves the delivery reports that are ready, without waiting.
    ///
    /// `BaseProducer::poll` with a timeout keeps polling until the timeout
    /// ends, and with none it serves at most one event, so it is called
    /// until the in-flight count stops falling.
    fn serve_deliveries(&self) {
        let context = self.context();
        let mut in_flight = context.delivery().tracker().in_flight();
        for _ in 0..MAX_REPORT_EVENTS {
            context.producer.poll(Duration::ZERO);
            let now = context.delivery().tracker().in_flight();
            if now == in_flight {
                return;
            }
            in_flight = now;
        }
    }

    /// Forwards up to [`BATCH`] records, waiting up to `timeout` for the
    /// first one, and records the time spent redacting them.
    fn consume(&mut self, timeout: Duration) -> Result<(), Error> {
        let result = self.consume_batch(timeout);
        if !self.scan_time.is_zero() {
            let seconds = self.scan_time.as_secs_f64();
            self.context().metrics.scan_duration.observe(seconds);
            self.scan_time = Duration::ZERO;
        }
        result
    }

    fn consume_batch(&mut self, timeout: Duration) -> Result<(), Error> {
        let mut timeout = timeout;
        for _ in 0..BATCH {
            match self.consumer.poll(timeout) {
                None => return Ok(()),
                Some(Ok(message)) => self.forward(&message)?,
                Some(Err(error)) => self.consume_failed(error)?,
            }
            timeout = Duration::ZERO;
            if self.full {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Redacts one record and hands its copy to the producer.
    fn forward(&mut self, message: &BorrowedMessage<'_>) -> Result<(), Error> {
        let context = self.context();
        let settings = &context.settings;
        let (topic, partition, offset) =
            (message.topic(), message.partition(), message.offset());
        let (id, in_flight) = self.track(topic, partition, offset);
        self.full = in_flight >= settings.max_in_flight;

        let started = Instant::now();
        let redacted = self.redactor.redact(message);
        self.scan_time += started.elapsed();
        let redacted = match redacted {
            Ok(redacted) => redacted,
            Err(header) => {
                context.delivery().tracker().failed(id, offset);
                context.metrics.error(Stage::Consume);
                let record =
                    RecordId { topic: topic.to_owned(), partition, offset };
                return Err(Error::HeaderName { record, index: header.index });
            }
        };
        if let Some(findings) = &mut self.findings {
            write_findings(findings, message, redacted.findings)?;
        }
        let size = redacted.size();
        let output = &self.current.as_ref().expect("set by track").output;
        let mut record = BaseRecord::with_opaque_to(
            output,
            Box::new(Sent { partition: id, offset }),
        );
        if let Some(value) = redacted.value {
            record = record.payload(value);
        }
        if let Some(key) = redacted.key {
            record = record.key(key);
        }
        if let Some(headers) = redacted.headers {
            record = record.headers(headers);
        }
        if let Some(timestamp) = redacted.timestamp {
            record = record.timestamp(timestamp);
        }
        if settings.partitioning == Partitioning::Same {
            record = record.partition(partition);
        }

        if settings.guarantee != Guarantee::AtLeastOnce
            && let Some(transaction) = &mut context.state().transaction
        {
            transaction.begin(context)?;
            transaction.add(topic, partition, offset);
        }
        send(context, record).map_err(|error| {
            context.delivery().tracker().failed(id, offset);
            context.metrics.error(Stage::Produce);
            // After a fatal error every send fails with `Fatal`. The
            // error callback records the cause, such as a fencing, but it
            // may not have been served yet, so the client is asked too.
            if let Some(failure) = context.take_failure() {
                return failure;
            }
            if let Some((code, reason)) =
                context.producer.client().fatal_error()
            {
                context.delivery().error(KafkaError::Global(code), &reason);
                if let Some(failure) = context.take_failure() {
                    return failure;
                }
            }
            let record =
                RecordId { topic: topic.to_owned(), partition, offset };
            match error.rdkafka_error_code() {
                Some(code) => {
                    Error::undelivered(record, output.clone(), size, code)
                }
                None => Error::Client { action: "producing", source: error },
            }
        })
    }

    /// Records a consumed record in the tracker, and returns its
    /// partition's id and the records in flight.
    fn track(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> (PartitionId, usize) {
        let context = self.context();
        let mut tracker = context.delivery().tracker();
        let generation = tracker.generation();
        let hit = self.current.as_ref().is_some_and(|current| {
            current.generation == generation
                && current.partition == partition
                && current.topic == topic
        });
        if !hit {
            let id = tracker.assign(topic, partition);
            self.current = Some(Current {
                topic: topic.to_owned(),
                partition,
                id,
                generation: tracker.generation(),
                output: context.settings.output.output_for(topic),
            });
        }
        let id = self.current.as_ref().expect("set above").id;
        (id, tracker.sent(id, offset))
    }

    fn consume_failed(&mut self, error: KafkaError) -> Result<(), Error> {
        let context = self.context();
        if let KafkaError::PartitionEOF(_) = error {
            return Ok(());
        }
        context.metrics.error(Stage::Consume);
        let detail = error.to_string();
        match error {
            KafkaError::MessageConsumptionFatal(_) => {
                return Err(Error::Consume { detail });
            }
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic,
            ) => {
                return Err(Error::Consume {
                    detail: format!("{detail}: an input topic was deleted"),
                });
            }
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed,
            ) => return Err(Error::Consume { detail }),
            _ => {}
        }
        if self.consume_errors.allow() {
            tracing::warn!(%error, "consumer error");
        }
        Ok(())
    }

    /// Decides whether to consume, given the records in flight.
    ///
    /// At the in-flight limit the loop first only waits for
    /// acknowledgements, which usually arrive within milliseconds. When
    /// the limit lasts [`PAUSE_AFTER`] (a slow or unavailable output), the
    /// partitions are paused, so the loop can serve rebalances without
    /// receiving records. They resume at half the limit. Pausing at once
    /// would cost more, because librdkafka drops the records it fetched
    /// ahead for a paused partition and fetches them again on resume.
    fn backpressure(&mut self) -> Flow {
        let context = self.context();
        let in_flight = context.delivery().tracker().in_flight();
        let limit = context.settings.max_in_flight;
        let paused = context.state().paused;
        if in_flight < limit {
            self.full_since = None;
        }
        if paused {
            if in_flight > limit / 2 || !self.set_paused(false) {
                return Flow::Paused;
            }
            return Flow::Open;
        }
        if in_flight < limit {
            return Flow::Open;
        }
        let since = *self.full_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= PAUSE_AFTER && self.set_paused(true) {
            tracing::info!(in_flight, "consumption paused: output is slow");
            return Flow::Paused;
        }
        Flow::Waiting
    }

    /// Pauses or resumes every assigned partition, and returns whether it
    /// worked.
    fn set_paused(&self, pause: bool) -> bool {
        let assignment = match self.consumer.assignment() {
            Ok(assignment) => assignment,
            Err(error) => {
                tracing::warn!(%error, "reading the assignment failed");
                return false;
            }
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(error) = result {
            tracing::warn!(%error, pause, "pause or resume failed");
            return false;
        }
        self.context().state().paused = pause;
        if !pause {
            tracing::info!("consumption resumed");
        }
        true
    }

    fn housekeeping(&mut self) -> Result<(), Error> {
        let context = self.context();
        let settings = &context.settings;
        let now = Instant::now();
        match &settings.guarantee {
            Guarantee::AtLeastOnce => {
                if now - self.last_commit >= settings.commit_interval {
                    self.last_commit = now;
                    if let Err(error) =
                        offsets::commit_delivered(self.consumer, None)
                    {
                        context.commit_failed(&error);
                    }
                }
            }
            Guarantee::ExactlyOnce { .. } => {
                let mut state = context.state();
                if let Some(transaction) = &mut state.transaction
                    && transaction.is_due(settings.commit_interval)
                {
                    transaction.commit(context, self.consumer)?;
                }
            }
        }
        if now - self.last_publish >= PUBLISH_INTERVAL {
            self.last_publish = now;
            self.publish();
            self.flush_findings()?;
        }
        Ok(())
    }

    /// Ends the loop: commits what was delivered (or aborts the open
    /// transaction after an error), then leaves the group.
    fn finish(&mut self, result: Result<(), Error>) -> Result<(), Error> {
        let context = self.context();
        let mut result = result;
        {
            let mut state = context.state();
            if let Some(transaction) = &mut state.transaction {
                if result.is_ok() {
                    result = transaction.commit(context, self.consumer);
                }
                if transaction.is_open() {
                    let aborted =
                        transaction.abort(context, self.consumer, None);
                    result = result.and(aborted);
                }
            }
        }
        // In at-least-once mode leaving the group revokes the partitions,
        // and the revocation delivers what is in flight and commits it.
        self.close();
        if let Err(error) = self.flush_findings() {
            result = result.and(Err(error));
        }
        result
    }

    /// Leaves the group: unsubscribing revokes every partition, and
    /// dropping the consumer afterwards sends the broker a quick leave.
    /// Closing the consumer here instead would make rdkafka's `Drop` try
    /// a second close and log an error.
    fn close(&mut self) {
        self.consumer.unsubscribe();
        let deadline = self.context().commit_deadline() + CLOSE_TIMEOUT;
        while Instant::now() < deadline {
            // Records that arrive now are not forwarded: their offsets are
            // not committed, so they are consumed again.
            let _ = self.consumer.poll(POLL_TIMEOUT);
            let assigned = self.consumer.assignment().map_or(0, |a| a.count());
            if assigned == 0 {
                break;
            }
        }
        tracing::info!("left the group");
    }

    fn flush_findings(&mut self) -> Result<(), Error> {
        let Some(findings) = &mut self.findings else {
            return Ok(());
        };
        findings.flush().map_err(|source| Error::Findings {
            path: findings.name.clone(),
            source,
        })
    }

    /// Adds what was counted since the last call to the metrics.
    fn publish(&mut self) {
        let context = self.context();
        let metrics = &context.metrics;
        let stats = *self.redactor.stats();
        metrics.publish(SourceType::Kafka, &self.published, &stats);
        self.published = stats;
        let mut tracker = context.delivery().tracker();
        for log in tracker.logs_mut() {
            publish_partition(metrics, log);
        }
        metrics.kafka_in_flight.set(tracker.in_flight() as i64);
    }
}

/// Hands `record` to the producer, waiting while its queue is full,
/// unless the shutdown deadline has passed.
fn send(
    context: &GroupContext,
    record: BaseRecord<'_, [u8], [u8], Box<Sent>>,
) -> Result<(), KafkaError> {
    let mut record = record;
    loop {
        let (error, returned) = match context.producer.send(record) {
            Ok(()) => return Ok(()),
            Err(failed) => failed,
        };
        let waiting = context
            .shutdown
            .deadline()
            .is_none_or(|deadline| Instant::now() < deadline);
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::QueueFull)
            || !waiting
        {
            return Err(error);
        }
        // The producer's queue is full: its delivery reports free room.
        context.producer.poll(POLL_TIMEOUT);
        record = returned;
    }
}

/// Adds the records one partition counted since the last call to the
/// metrics, and resets its counts.
pub fn publish_partition(
    metrics: &crate::observe::Metrics,
    log: &mut PartitionLog,
) {
    if log.consumed > 0 || log.delivered > 0 {
        let labels = [&*log.topic, &log.partition.to_string()];
        metrics.kafka_consumed.with_label_values(&labels).inc_by(log.consumed);
        metrics
            .kafka_produced
            .with_label_values(&labels)
            .inc_by(log.delivered);
        let records = metrics.records(SourceType::Kafka);
        records.read.inc_by(log.consumed);
        records.written.inc_by(log.delivered);
    }
    log.consumed = 0;
    log.delivered = 0;
}

fn write_findings(
    findings: &mut FindingsWriter,
    message: &BorrowedMessage<'_>,
    found: &[(Field, crate::engine::Finding)],
) -> Result<(), Error> {
    for (field, finding) in found {
        let mut source = format!(
            "{}/{}@{}",
            message.topic(),
            message.partition(),
            message.offset()
        );
        if *field != Field::Value {
            source = format!("{source}/{field}");
        }
        let record = FindingRecord::new(finding, &source, 0, 0);
        findings.write(&record).map_err(|error| Error::Findings {
            path: findings.name.clone(),
            source: error,
        })?;
    }
    Ok(())
}
