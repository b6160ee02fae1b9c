//! Every metric cfscrub exports, defined in this one place.
//!
//! Names carry the `cfscrub_` prefix, base units and `_total` on counters.
//! Label values come from small closed sets: a kind, a level, a stage, a
//! source type, and for Kafka a topic and a partition. A credential, a
//! line, a fingerprint or a file path is never a label.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::{Kind, Level, Stats};

/// Where the bytes of a stream come from, as the `source` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// Standard input of the filter.
    Stdin,
    /// A named file of the filter.
    File,
    /// A file followed by `cfscrub follow`.
    Follow,
    /// Kafka records.
    Kafka,
}

impl SourceType {
    /// Every source type, so each label value exists from the start.
    pub const ALL: [SourceType; 4] = [
        SourceType::Stdin,
        SourceType::File,
        SourceType::Follow,
        SourceType::Kafka,
    ];

    /// Returns the label value.
    pub fn id(self) -> &'static str {
        match self {
            SourceType::Stdin => "stdin",
            SourceType::File => "file",
            SourceType::Follow => "follow",
            SourceType::Kafka => "kafka",
        }
    }
}

/// The stage at which an error happened, as the `stage` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Opening or reading input.
    Read,
    /// Writing output.
    Write,
    /// Writing findings.
    Findings,
    /// Consuming from Kafka.
    Consume,
    /// Producing to Kafka.
    Produce,
    /// Committing Kafka offsets or transactions.
    Commit,
    /// Reading or writing a follow checkpoint.
    Checkpoint,
    /// Writing the metrics text file.
    Textfile,
}

impl Stage {
    /// Every stage, so each label value exists from the start.
    pub const ALL: [Stage; 8] = [
        Stage::Read,
        Stage::Write,
        Stage::Findings,
        Stage::Consume,
        Stage::Produce,
        Stage::Commit,
        Stage::Checkpoint,
        Stage::Textfile,
    ];

    /// Returns the label value.
    pub fn id(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Write => "write",
            Stage::Findings => "findings",
            Stage::Consume => "consume",
            Stage::Produce => "produce",
            Stage::Commit => "commit",
            Stage::Checkpoint => "checkpoint",
            Stage::Textfile => "textfile",
        }
    }
}

/// The byte counters of one source type, resolved once so that
/// publishing a chunk skips the label lookup.
#[derive(Clone)]
pub struct SourceCounters {
    /// `cfscrub_read_bytes_total` of this source type.
    pub read_bytes: IntCounter,
    /// `cfscrub_written_bytes_total` of this source type.
    pub written_bytes: IntCounter,
}

/// The record counters of one source type, from [`Metrics::records`].
#[derive(Clone)]
pub struct RecordCounters {
    /// `cfscrub_read_records_total` of this source type.
    pub read: IntCounter,
    /// `cfscrub_written_records_total` of this source type.
    pub written: IntCounter,
}

/// The metrics of one cfscrub process and the registry that exports them.
///
/// Built once at start-up and shared by reference. Hot loops count in a
/// [`Stats`] and publish the difference per chunk or batch with
/// [`Metrics::publish`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Bytes read, by source type.
    pub read_bytes: IntCounterVec,
    /// Bytes written, by source type.
    pub written_bytes: IntCounterVec,
    /// Records read (lines, or Kafka records), by source type.
    pub read_records: IntCounterVec,
    /// Records written, by source type.
    pub written_records: IntCounterVec,
    /// Prefilter hits that were checked.
    pub candidates: IntCounter,
    /// Detections, by kind and level.
    pub detections: IntCounterVec,
    /// Detections that were replaced, by kind.
    pub redactions: IntCounterVec,
    /// Errors, by stage.
    pub errors: IntCounterVec,
    /// Time spent scanning one chunk or batch.
    pub scan_duration: Histogram,
    /// 1 while input is being read (the filter and follow modes) or while
    /// the consumer is in its group (Kafka).
    pub ready: IntGauge,
    /// Start of the write to the output that has not returned yet, in
    /// seconds since the Unix epoch, or 0 while none is in progress. The
    /// stream filter and follow mode set it, so that a stopped reader of
    /// their output can be distinguished from an idle input.
    pub write_start_time: Gauge,
    /// Kafka records consumed, by topic and partition.
    pub kafka_consumed: IntCounterVec,
    /// Kafka records produced and acknowledged, by input topic and
    /// partition.
    pub kafka_produced: IntCounterVec,
    /// Offset commits, or committed transactions in exactly-once mode.
    pub kafka_commits: IntCounter,
    /// Consumer group rebalances seen.
    pub kafka_rebalances: IntCounter,
    /// Records behind the end of each assigned partition.
    pub kafka_lag: IntGaugeVec,
    /// Records consumed but not yet acknowledged by the output topic.
    pub kafka_in_flight: IntGauge,
    /// Rotations of followed files, by how they were rotated.
    pub follow_rotations: IntCounterVec,
    /// Files being followed.
    pub follow_files: IntGauge,
    /// The stream counters of each source type, in [`SourceType::ALL`]
    /// order.
    sources: Vec<SourceCounters>,
}

/// Upper bounds of the scan-time buckets, in seconds: 10 µs to 1 s.
const SCAN_BUCKETS: &[f64] =
    &[1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0];

impl Metrics {
    /// Creates every metric in a new registry.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let mut metrics = Metrics {
            read_bytes: counter_vec(
                &registry,
                "cfscrub_read_bytes_total",
                "Bytes read, by source type.",
                &["source"],
            )?,
            written_bytes: counter_vec(
                &registry,
                "cfscrub_written_bytes_total",
                "Bytes written, by source type.",
                &["source"],
            )?,
            read_records: counter_vec(
                &registry,
                "cfscrub_read_records_total",
                "Records read: lines, or Kafka records, by source type.",
                &["source"],
            )?,
            written_records: counter_vec(
                &registry,
                "cfscrub_written_records_total",
                "Records written, by source type.",
                &["source"],
            )?,
            candidates: counter(
                &registry,
                "cfscrub_prefilter_candidates_total",
                "Prefilter hits that were checked against a format.",
            )?,
            detections: counter_vec(
                &registry,
                "cfscrub_detections_total",
                "Credentials detected, by kind and confirmation level.",
                &["kind", "level"],
            )?,
            redactions: counter_vec(
                &registry,
                "cfscrub_redactions_total",
                "Credentials replaced in the output, by kind.",
                &["kind"],
            )?,
            errors: counter_vec(
                &registry,
                "cfscrub_errors_total",
                "Errors, by stage.",
                &["stage"],
            )?,
            scan_duration: {
                let opts = HistogramOpts::new(
                    "cfscrub_scan_duration_seconds",
                    "Time spent scanning one chunk or batch.",
                )
                .buckets(SCAN_BUCKETS.to_vec());
                let histogram = Histogram::with_opts(opts)?;
                registry.register(Box::new(histogram.clone()))?;
                histogram
            },
            ready: gauge(
                &registry,
                "cfscrub_ready",
                "1 while input is read or the Kafka consumer is in its group.",
            )?,
            write_start_time: {
                let gauge = Gauge::new(
                    "cfscrub_output_write_start_time_seconds",
                    "Start of the write to the output in progress, in \
                     seconds since the Unix epoch; 0 when none is.",
                )?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            kafka_consumed: counter_vec(
                &registry,
                "cfscrub_kafka_consumed_records_total",
                "Kafka records consumed, by topic and partition.",
                &["topic", "partition"],
            )?,
            kafka_produced: counter_vec(
                &registry,
                "cfscrub_kafka_produced_records_total",
                "Redacted Kafka records acknowledged by the broker, by input \
                 topic and partition.",
                &["topic", "partition"],
            )?,
            kafka_commits: counter(
                &registry,
                "cfscrub_kafka_commits_total",
                "Offset commits, or committed transactions.",
            )?,
            kafka_rebalances: counter(
                &registry,
                "cfscrub_kafka_rebalances_total",
                "Consumer group rebalances.",
            )?,
            kafka_lag: {
                let opts = Opts::new(
                    "cfscrub_kafka_consumer_lag_records",
                    "Records between the consumer position and the end of \
                     each assigned partition.",
                );
                let gauge = IntGaugeVec::new(opts, &["topic", "partition"])?;
                registry.register(Box::new(gauge.clone()))?;
                gauge
            },
            kafka_in_flight: gauge(
                &registry,
                "cfscrub_kafka_in_flight_records",
                "Records consumed but not yet acknowledged by the output.",
            )?,
            follow_rotations: counter_vec(
                &registry,
                "cfscrub_follow_rotations_total",
                "Rotations of followed files: rename, truncate or recreate.",
                &["rotation"],
            )?,
            follow_files: gauge(
                &registry,
                "cfscrub_follow_files",
                "Files being followed.",
            )?,
            sources: Vec::new(),
            registry,
        };
        metrics.register_process_info()?;
        metrics.touch_label_values();
        metrics.sources = SourceType::ALL
            .iter()
            .map(|source| {
                let label = [source.id()];
                SourceCounters {
                    read_bytes: metrics.read_bytes.with_label_values(&label),
                    written_bytes: metrics
                        .written_bytes
                        .with_label_values(&label),
                }
            })
            .collect();
        // The filter counts lines only when asked, so its record series
        // are created by the filter, and only then.
        metrics.records(SourceType::Follow);
        metrics.records(SourceType::Kafka);
        Ok(metrics)
    }

    fn register_process_info(&self) -> Result<(), prometheus::Error> {
        let build = IntGaugeVec::new(
            Opts::new(
                "cfscrub_build_info",
                "Always 1, labelled with the version.",
            ),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        self.registry.register(Box::new(build))?;
        let start = Gauge::new(
            "cfscrub_start_time_seconds",
            "Start time of the process, in seconds since the Unix epoch.",
        )?;
        start.set(unix_seconds_now());
        self.registry.register(Box::new(start))?;
        Ok(())
    }

    /// Creates every kind, level and stage series at 0, so an alert on an
    /// increase fires for the first detection too.
    fn touch_label_values(&self) {
        for kind in Kind::ALL {
            for level in Level::ALL {
                self.detections.with_label_values(&[kind.id(), level.id()]);
            }
            self.redactions.with_label_values(&[kind.id()]);
        }
        for stage in Stage::ALL {
            self.errors.with_label_values(&[stage.id()]);
        }
    }

    /// Returns the registry, for tests and custom exporters.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns the byte counters of `source`.
    pub fn source(&self, source: SourceType) -> &SourceCounters {
        let index = match source {
            SourceType::Stdin => 0,
            SourceType::File => 1,
            SourceType::Follow => 2,
            SourceType::Kafka => 3,
        };
        debug_assert_eq!(SourceType::ALL[index], source);
        &self.sources[index]
    }

    /// Returns the record counters of `source`, creating their series at
    /// 0 on the first call. This looks the labels up, so a hot loop keeps
    /// the returned counters instead of calling it again.
    pub fn records(&self, source: SourceType) -> RecordCounters {
        let label = [source.id()];
        RecordCounters {
            read: self.read_records.with_label_values(&label),
            written: self.written_records.with_label_values(&label),
        }
    }

    /// Adds what `now` counted since `before` to the engine counters, for
    /// bytes from `source`. Records are not in [`Stats`], so the caller
    /// counts them with [`Metrics::records`].
    pub fn publish(&self, source: SourceType, before: &Stats, now: &Stats) {
        let counters = self.source(source);
        counters.read_bytes.inc_by(now.bytes_in - before.bytes_in);
        counters.written_bytes.inc_by(now.bytes_out - before.bytes_out);
        self.candidates.inc_by(now.candidates - before.candidates);
        // A redaction is always counted with its finding, so no new finding
        // means nothing else to add, which is the case of most chunks.
        if now.findings == before.findings {
            return;
        }
        for (k, kind) in Kind::ALL.iter().enumerate() {
            for (l, level) in Level::ALL.iter().enumerate() {
                let added = now.findings[k][l] - before.findings[k][l];
                if added > 0 {
                    self.detections
                        .with_label_values(&[kind.id(), level.id()])
                        .inc_by(added);
                }
            }
            let added = now.redactions[k] - before.redactions[k];
            if added > 0 {
                self.redactions.with_label_values(&[kind.id()]).inc_by(added);
            }
        }
    }

    /// Sets the stall gauge to now, before a write to the output that may
    /// block. [`Metrics::output_write_ended`] resets it.
    pub fn output_write_started(&self) {
        self.write_start_time.set(unix_seconds_now());
    }

    /// Resets the stall gauge after a write to the output returned.
    pub fn output_write_ended(&self) {
        self.write_start_time.set(0.0);
    }

    /// Counts one error at `stage`.
    pub fn error(&self, stage: Stage) {
        self.errors.with_label_values(&[stage.id()]).inc();
    }

    /// Returns every metric in the Prometheus text format.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let families = self.registry.gather();
        // Encoding to a Vec fails only on a metric the registry rejected
        // at registration, which `Metrics::new` would have returned.
        if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}

/// Returns the current time in seconds since the Unix epoch, or 0 for a
/// system clock set before it.
pub fn unix_seconds_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<IntCounter, prometheus::Error> {
    let counter = IntCounter::new(name, help)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(counter.clone()))?;
    Ok(counter)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
) -> Result<IntGauge, prometheus::Error> {
    let gauge = IntGauge::new(name, help)?;
    registry.register(Box::new(gauge.clone()))?;
    Ok(gauge)
}
