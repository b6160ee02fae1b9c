//! The producer's side: delivery reports and client errors.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::error::{Error, RecordId};
use super::tracker::{PartitionId, Tracker};
use crate::observe::throttle::Throttle;
use crate::observe::{Metrics, Stage};

/// The input record behind one produced record, returned with its
/// delivery report.
#[derive(Debug)]
pub struct Sent {
    /// The input partition's id in the [`Tracker`].
    pub partition: PartitionId,
    /// The input offset.
    pub offset: i64,
}

/// State the producer's callbacks share with the pipeline.
pub struct DeliveryContext {
    tracker: Mutex<Tracker>,
    failure: Mutex<Option<Error>>,
    last_error: Mutex<Option<(RDKafkaErrorCode, String)>>,
    metrics: Metrics,
    transactional_id: Option<String>,
    throttle: Throttle,
    /// Rate limit of the log lines of failed deliveries.
    failures: Throttle,
}

impl DeliveryContext {
    /// Returns a context with an empty tracker, for a producer with
    /// `transactional_id` when there is one.
    pub fn new(
        metrics: Metrics,
        transactional_id: Option<String>,
    ) -> DeliveryContext {
        DeliveryContext {
            tracker: Mutex::new(Tracker::new()),
            failure: Mutex::new(None),
            last_error: Mutex::new(None),
            metrics,
            transactional_id,
            throttle: Throttle::new(),
            failures: Throttle::new(),
        }
    }

    /// Locks the tracker. The lock must not be held across a call that
    /// serves delivery reports (`poll`, `flush`, transaction commits),
    /// because the report callback takes it too.
    pub fn tracker(&self) -> MutexGuard<'_, Tracker> {
        lock(&self.tracker)
    }

    /// Takes the first delivery failure, which stops the pipeline.
    pub fn take_failure(&self) -> Option<Error> {
        lock(&self.failure).take()
    }

    /// Records a failure that stops the pipeline, keeping the first one.
    pub fn fail(&self, error: Error) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
    }

    /// Returns the last client error librdkafka reported, to explain a
    /// failed request.
    pub fn last_error(&self) -> Option<(RDKafkaErrorCode, String)> {
        lock(&self.last_error).clone()
    }
}

/// Locks `mutex`. A panic while it was held cannot leave the tracker or
/// the failure half-updated in a way that matters here, because the
/// pipeline stops on the panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        super::group::log_client(level, "producer", facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.error(Stage::Produce);
        let code = error.rdkafka_error_code();
        if let Some(code) = code {
            let mut last = lock(&self.last_error);
            // "1/1 brokers are down" follows the reason a broker is down,
            // which is more specific.
            if code != RDKafkaErrorCode::AllBrokersDown || last.is_none() {
                *last = Some((code, reason.to_owned()));
            }
        }
        let fenced = matches!(code, Some(c) if is_fencing(c))
            || (code == Some(RDKafkaErrorCode::Fatal)
                && reason.contains("fenced"));
        match &self.transactional_id {
            Some(id) if fenced => self.fail(Error::Fenced {
                transactional_id: id.clone(),
                detail: reason.to_owned(),
            }),
            _ if fenced || code == Some(RDKafkaErrorCode::Fatal) => {
                self.fail(Error::Produce { detail: reason.to_owned() })
            }
            _ => {}
        }
        if self.throttle.allow() {
            tracing::warn!(%error, reason, "producer error");
        }
    }

    fn stats_raw(&self, _: &[u8]) {}
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        let (error, message) = match result {
            Ok(_) => {
                self.tracker().delivered(sent.partition, sent.offset);
                return;
            }
            Err((error, message)) => (error, message),
        };
        let input = {
            let mut tracker = self.tracker();
            tracker.failed(sent.partition, sent.offset);
            tracker.name(sent.partition)
        };
        let code = error.rdkafka_error_code();
        // Purged records are those of an aborted transaction or of a
        // shutdown past its grace period: their offsets are not committed
        // and the records are consumed again.
        let purged = matches!(
            code,
            Some(
                RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight
            )
        );
        if purged {
            return;
        }

        self.metrics.error(Stage::Produce);
        let output = message.topic().to_owned();
        if code == Some(RDKafkaErrorCode::Fatal) {
            // A fatal error fails every record in flight, and librdkafka
            // also reports its cause to `error`, which names it (such as
            // a fencing by a newer member), so that callback stops the
            // member. The record stays failed in the tracker.
            if self.failures.allow() {
                tracing::warn!(output, %error, "delivery failed: fatal error");
            }
            return;
        }
        let Some((topic, partition)) = input else {
            // The partition moved to another member, which consumes the
            // record again from the last commit.
            if self.failures.allow() {
                tracing::warn!(
                    output,
                    %error,
                    "delivery failed for a revoked partition"
                );
            }
            return;
        };
        let record = RecordId {
            topic: topic.to_string(),
            partition,
            offset: sent.offset,
        };
        // Every record in flight to a deleted topic fails at once, so
        // the log is rate-limited; the metric counts each.
        if self.failures.allow() {
            tracing::error!(input = %record, output, %error, "delivery failed");
        }
        let size =
            message.payload_len() + message.key().map_or(0, <[u8]>::len);
        let code = code.unwrap_or(RDKafkaErrorCode::Fail);
        let failure = Error::undelivered(record, output, size, code);
        self.fail(failure);
    }
}

/// Returns whether `code` means that another producer took over this
/// producer's transactional id.
pub(crate) fn is_fencing(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::ProducerFenced
            | RDKafkaErrorCode::InvalidProducerEpoch
            | RDKafkaErrorCode::Fenced
    )
}
