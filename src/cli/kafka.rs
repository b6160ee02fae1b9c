//! `cfscrub kafka`: the consumer-group mode's arguments and wiring.

use std::process::ExitCode;
#[cfg(feature = "kafka")]
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "kafka")]
use anyhow::Context;
use clap::Args;

use super::args::{EngineArgs, MetricsArgs};
use crate::kafka::{
    Guarantee, OutputTemplate, Partitioning, Property, Settings,
};
use crate::observe::DEFAULT_RUNBOOK_URL;
#[cfg(feature = "kafka")]
use {
    super::EXIT_ERROR,
    super::export::Exporters,
    crate::kafka::Shutdown,
    crate::observe::{DEFAULT_METRICS_ADDR, FindingsWriter, Metrics},
};

/// Time after the grace period at which a shutdown that is still running
/// is cut short.
#[cfg(feature = "kafka")]
const WATCHDOG_MARGIN: Duration = Duration::from_secs(2);

/// Default time between offset commits in at-least-once mode.
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// Default longest time a transaction stays open in exactly-once mode:
/// short, because a `read_committed` reader sees nothing of a
/// transaction before its commit. Kafka Streams uses the same default.
const TRANSACTION_INTERVAL: Duration = Duration::from_millis(100);

/// Arguments of `cfscrub kafka`.
#[derive(Debug, Args)]
pub struct KafkaArgs {
    /// Bootstrap brokers (librdkafka's bootstrap.servers).
    #[arg(long, value_name = "HOST:PORT,...")]
    pub brokers: String,

    /// Consumer group id. Members with the same id share the input
    /// partitions.
    #[arg(long, value_name = "ID")]
    pub group: String,

    /// Input topic (repeatable), or a regular expression that starts with
    /// ^, such as ^logs-.* (librdkafka's regex syntax).
    #[arg(long = "input-topic", value_name = "NAME", required = true)]
    pub input_topics: Vec<String>,

    /// Output topic of each input topic; {topic} stands for the input
    /// topic's name, as in {topic}.redacted. The topic must exist.
    #[arg(long, value_name = "TEMPLATE")]
    pub output_topic: String,

    /// A librdkafka setting (repeatable), for both clients, or for one
    /// with a consumer. or producer. prefix: -X security.protocol=ssl,
    /// -X producer.compression.type=zstd.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = parse_property)]
    pub properties: Vec<Property>,

    /// Commits records and input offsets in Kafka transactions, for
    /// readers with isolation.level=read_committed.
    #[arg(long)]
    pub exactly_once: bool,

    /// The producer's transactional.id in exactly-once mode. Each member
    /// needs its own, kept across its restarts
    /// [default: cfscrub-GROUP-HOSTNAME].
    #[arg(long, value_name = "ID", requires = "exactly_once")]
    pub transactional_id: Option<String>,

    /// Redacts record keys too (values always are).
    #[arg(long)]
    pub redact_keys: bool,

    /// Redacts header values too (header names are kept).
    #[arg(long)]
    pub redact_headers: bool,

    /// Output partition: `same` keeps the input partition number, `key`
    /// hashes the output key.
    #[arg(long, value_enum, default_value = "same", value_name = "HOW")]
    pub partitioner: Partitioning,

    /// Seconds to deliver in-flight records and commit after SIGTERM or
    /// SIGINT, or before revoked partitions are given up.
    #[arg(
        long,
        default_value = "10",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub grace_period: Duration,

    /// Records consumed but not yet acknowledged by the broker at which
    /// consumption pauses.
    #[arg(long, default_value_t = 10_000, value_name = "RECORDS")]
    pub max_in_flight: usize,

    /// Seconds between offset commits, or the longest a transaction stays
    /// open [default: 5, or 0.1 with --exactly-once].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub commit_interval: Option<Duration>,

    /// Seconds to wait for the brokers at start-up.
    #[arg(
        long,
        default_value = "10",
        value_name = "SECONDS",
        value_parser = parse_seconds
    )]
    pub connect_timeout: Duration,

    /// Serves no metrics endpoint, which this mode otherwise serves on
    /// --metrics-listen or 127.0.0.1:9898.
    #[arg(
        long,
        visible_alias = "no-metrics",
        conflicts_with = "metrics_listen"
    )]
    pub no_metrics_listen: bool,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    /// Writes one JSON object per finding to PATH (`-` for stderr), with
    /// the record as topic/partition@offset, never the credential.
    #[arg(long, value_name = "PATH")]
    pub findings: Option<String>,

    /// Base of the `doc_url` field of each finding: where the
    /// leaked-credential runbook is. `#` and the kind id are appended.
    #[arg(long, default_value = DEFAULT_RUNBOOK_URL, value_name = "URL")]
    pub runbook_url: String,

    #[command(flatten)]
    pub engine: EngineArgs,
}

impl KafkaArgs {
    /// Returns the settings these arguments describe.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let guarantee = if self.exactly_once {
            let transactional_id = match &self.transactional_id {
                Some(id) => id.clone(),
                None => default_transactional_id(&self.group)?,
            };
            Guarantee::ExactlyOnce { transactional_id }
        } else {
            Guarantee::AtLeastOnce
        };
        let commit_interval =
            self.commit_interval.unwrap_or(if self.exactly_once {
                TRANSACTION_INTERVAL
            } else {
                COMMIT_INTERVAL
            });
        let settings = Settings {
            brokers: self.brokers.clone(),
            group: self.group.clone(),
            inputs: self.input_topics.clone(),
            output: OutputTemplate::parse(&self.output_topic)?,
            properties: self.properties.clone(),
            guarantee,
            redact_keys: self.redact_keys,
            redact_headers: self.redact_headers,
            partitioning: self.partitioner,
            grace_period: self.grace_period,
            max_in_flight: self.max_in_flight,
            commit_interval,
            connect_timeout: self.connect_timeout,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// Stops with an error, because this build has no Kafka client.
#[cfg(not(feature = "kafka"))]
pub(super) fn run(_args: &KafkaArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!(
        "kafka mode unavailable: this cfscrub was built without the kafka \
         feature; build it with default features"
    )
}

/// Runs one group member and returns the exit status.
#[cfg(feature = "kafka")]
pub(super) fn run(args: &KafkaArgs) -> anyhow::Result<ExitCode> {
    let scanner = args.engine.scanner()?;
    let settings = args.settings()?;
    let findings = match &args.findings {
        Some(path) => {
            let mut writer =
                FindingsWriter::create(path).map_err(|error| {
                    super::open_error("--findings", path, &error)
                })?;
            writer.set_runbook_url(&args.runbook_url);
            Some(writer)
        }
        None => None,
    };
    let exporters = Exporters::start(&exporter_args(args)?)?;
    let metrics = match &exporters {
        Some(exporters) => exporters.metrics.clone(),
        None => Metrics::new().context("cannot create the metrics")?,
    };
    let shutdown = Arc::new(Shutdown::new());
    watch_signals(Arc::clone(&shutdown), settings.grace_period)?;
    let result =
        crate::kafka::run(settings, scanner, metrics, findings, shutdown);
    if let Some(exporters) = exporters {
        exporters.finish(Duration::ZERO, || false)?;
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            super::print_error(&error.to_string());
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// Starts a thread that requests a stop on the first SIGTERM or SIGINT,
/// and exits the process when a second one arrives or the stop outlasts
/// the grace period.
///
/// The handlers are installed before this returns, so a signal that
/// arrives during start-up stops the member too.
#[cfg(feature = "kafka")]
fn watch_signals(
    shutdown: Arc<Shutdown>,
    grace: Duration,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the signal handler runtime")?;
    let (mut terminate, mut interrupt) = {
        let _entered = runtime.enter();
        let terminate = signal(SignalKind::terminate())
            .context("cannot handle SIGTERM")?;
        let interrupt =
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        (terminate, interrupt)
    };
    let watch = async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            grace_seconds = grace.as_secs_f64(),
            "stopping"
        );
        shutdown.request(grace);
        let cut = tokio::select! {
            _ = terminate.recv() => "a second signal arrived",
            _ = interrupt.recv() => "a second signal arrived",
            () = tokio::time::sleep(grace + WATCHDOG_MARGIN) => {
                "the grace period ran out"
            }
        };
        eprintln!(
            "cfscrub: stopping cut short: {cut}; records not committed are \
             consumed again by the next member"
        );
        std::process::exit(i32::from(EXIT_ERROR));
    };
    std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || runtime.block_on(watch))
        .context("cannot start the signal handler thread")?;
    Ok(())
}

fn parse_property(text: &str) -> Result<Property, String> {
    Property::parse(text).map_err(|error| error.to_string())
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("invalid seconds {text:?}: expected a number"))?;
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("invalid seconds {text:?}: expected 0 or more"))
}

/// Returns the exporters to start: the endpoint on by default, unlike in
/// the filter, because a group member is a service that Prometheus
/// scrapes.
#[cfg(feature = "kafka")]
fn exporter_args(args: &KafkaArgs) -> anyhow::Result<MetricsArgs> {
    let listen = match args.metrics.metrics_listen {
        _ if args.no_metrics_listen => None,
        Some(addr) => Some(addr),
        None => Some(DEFAULT_METRICS_ADDR.parse().with_context(|| {
            format!("invalid default address {DEFAULT_METRICS_ADDR}")
        })?),
    };
    Ok(MetricsArgs {
        metrics_listen: listen,
        metrics_textfile: args.metrics.metrics_textfile.clone(),
        metrics_textfile_interval: args.metrics.metrics_textfile_interval,
    })
}

/// Returns `cfscrub-GROUP-HOSTNAME`: unique per host, and the same after
/// a restart on that host, so the restarted member aborts what its
/// predecessor left open.
fn default_transactional_id(group: &str) -> anyhow::Result<String> {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    let Some(hostname) = hostname else {
        anyhow::bail!(
            "invalid --exactly-once: the host name is unknown, so pass \
             --transactional-id"
        );
    };
    Ok(format!("cfscrub-{group}-{hostname}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_accept_fractions() {
        assert_eq!(parse_seconds("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
