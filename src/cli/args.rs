//! Definitions of the command-line arguments.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::engine::{
    DEFAULT_KEYWORDS, DEFAULT_WINDOW, Kind, KindSet, Level, Scanner, Style,
};
use crate::observe::{DEFAULT_METRICS_ADDR, DEFAULT_RUNBOOK_URL};

const KINDS_HELP: &str = "\
Kinds, by id:
  user_token         user API token, cfut_ prefix and CRC-32
  account_token      account API token, cfat_ prefix and CRC-32
  global_key         Global API key, cfk_ prefix and CRC-32
  legacy_token       API token issued before 2026, found after a keyword
  legacy_global_key  Global API key issued before 2026, found after a keyword
  origin_ca_key      Origin CA key, v1.0- prefix

Levels, weakest first:
  checksum_invalid   prefix, body and checksum, but the CRC-32 does not match
  contextual         no checksum: found by a keyword or by a fixed shape
  checksum_missing   prefix and 40-character body, checksum absent or cut off
  checksum_valid     the CRC-32 matches: a confirmed credential

Exit status: 0 on success, 1 when something was redacted and
--fail-on-find is set, 2 on a usage error or a failed read or write, 101
after an internal error (a panic), whose message is not printed.";

/// Finds Cloudflare API credentials in log streams and redacts them.
///
/// Without a subcommand, cfscrub is a filter: it reads each FILE in order,
/// or standard input, and writes it to standard output with every
/// credential replaced. Everything else passes through byte for byte.
#[derive(Debug, Parser)]
#[command(
    name = "cfscrub",
    version,
    args_conflicts_with_subcommands = true,
    after_long_help = KINDS_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Log level for cfscrub's own messages on stderr: error, warn, info,
    /// debug or trace. RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,
}

/// The modes other than the filter.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Redacts a generated log with planted credentials of every kind and
    /// prints the result and a summary.
    Demo(DemoArgs),

    /// Follows log files across rotation, as `tail -F` does, and writes
    /// their lines, redacted, to one output.
    ///
    /// Files that exist at start are read from their end, or with
    /// --checkpoint from their start (see --from-start and --from-end);
    /// files that appear later are read from their start. Rotation by
    /// rename, by copy and truncate, and by delete and recreate is
    /// followed. SIGTERM or SIGINT writes the checkpoint and exits with
    /// status 0. SIGHUP reopens --output, for logrotate.
    Follow(Box<FollowArgs>),

    /// Consumes Kafka topics as a member of a consumer group and produces
    /// each record, redacted, to an output topic.
    Kafka(Box<super::kafka::KafkaArgs>),
}

/// Arguments of the stream filter.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Files to read in order, as one stream; `-` or none means standard
    /// input.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,

    /// Writes one JSON object per finding to PATH (`-` for stderr): kind,
    /// level, offset, length, line, source and fingerprint, never the
    /// credential.
    #[arg(long, value_name = "PATH")]
    pub findings: Option<String>,

    /// Base of the `doc_url` field of each finding: where the
    /// leaked-credential runbook is. `#` and the kind id are appended.
    #[arg(long, default_value = DEFAULT_RUNBOOK_URL, value_name = "URL")]
    pub runbook_url: String,

    /// Exits with status 1 when anything was redacted.
    #[arg(long)]
    pub fail_on_find: bool,

    /// Counts lines, for cfscrub_read_records_total and
    /// cfscrub_written_records_total, which are left out without it. Off by
    /// default because it reads every byte a second time, which costs about
    /// 8% more CPU time on clean logs (see BENCHMARKS.md). --findings counts
    /// lines for its line numbers, so it turns this on too. Needs
    /// --metrics-listen or --metrics-textfile.
    #[arg(long)]
    pub count_lines: bool,

    /// After input ends, keeps serving --metrics-listen until one scrape
    /// has read the final counts, or for at most SECONDS, a whole number;
    /// 0 exits at once. SIGTERM or SIGINT ends the wait.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "SECONDS",
        requires = "metrics_listen"
    )]
    pub metrics_linger: u64,

    #[command(flatten)]
    pub metrics: MetricsArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Metrics exporters, shared by every mode. Without either option no
/// metrics are kept.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Serves /metrics, /healthz and /readyz over HTTP on ADDR, which is
    /// IP:PORT or a PORT alone for 127.0.0.1:PORT. 0.0.0.0:PORT listens on
    /// every interface, and port 0 on a free port that the system picks
    /// and the info log names.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Writes the metrics in the Prometheus text format to PATH at start,
    /// every --metrics-textfile-interval and at exit, replacing the file
    /// atomically, for node_exporter's textfile collector.
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,

    /// Seconds between rewrites of --metrics-textfile; fractions allowed.
    #[arg(
        long,
        default_value = "5",
        value_name = "SECONDS",
        value_parser = parse_interval,
        requires = "metrics_textfile"
    )]
    pub metrics_textfile_interval: Duration,
}

impl MetricsArgs {
    /// Returns whether metrics are asked for.
    pub fn enabled(&self) -> bool {
        self.metrics_listen.is_some() || self.metrics_textfile.is_some()
    }
}

/// Arguments of the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the generated log, to make a run repeatable; random when
    /// absent.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Prints the generated log as it is, credentials and all, instead of
    /// redacting it: input to try the other modes on, such as
    /// `cfscrub demo --print-input | cfscrub`. The credentials are random
    /// and pass their checksums, but belong to no account.
    #[arg(long)]
    pub print_input: bool,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Arguments of follow mode.
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Files or glob patterns to follow, such as '/var/log/app/*.log'.
    /// Quote a glob, so that files created later match it too.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<String>,

    /// Reads the files that exist at start from their beginning, not from
    /// their end. This is the default with --checkpoint.
    #[arg(long)]
    pub from_start: bool,

    /// Reads the files that exist at start and are not in the checkpoint
    /// from their end, skipping the lines they have.
    #[arg(long, conflicts_with = "from_start")]
    pub from_end: bool,

    /// Keeps in FILE how far each file was written out, by device and
    /// inode, and resumes from there on start. Files not in it, on the
    /// first run too, are read from their beginning unless --from-end is
    /// given. A file truncated while cfscrub was stopped is read from its
    /// beginning.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: Option<PathBuf>,

    /// Seconds between checkpoint writes; one is also written on exit.
    #[arg(
        long,
        default_value = "1",
        value_name = "SECONDS",
        value_parser = parse_interval,
        requires = "checkpoint"
    )]
    pub checkpoint_interval: Duration,

    /// Appends the redacted lines to FILE instead of standard output.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Seconds between looks at every path when no file system event
    /// comes; fractions such as 0.25 are allowed.
    #[arg(
        long,
        default_value = "1",
        value_name = "SECONDS",
        value_parser = parse_interval
    )]
    pub poll_interval: Duration,

    /// Finds changes by polling alone, without inotify, as on file
    /// systems that send no events.
    #[arg(long)]
    pub poll: bool,

    /// Address of the metrics endpoint (/metrics, /healthz, /readyz), or
    /// a port alone for that port on 127.0.0.1. Use 0.0.0.0:PORT in a
    /// pod, so that the kubelet's probes and Prometheus reach it.
    #[arg(
        long,
        default_value = DEFAULT_METRICS_ADDR,
        value_name = "ADDR",
        value_parser = parse_listen
    )]
    pub metrics_listen: SocketAddr,

    /// Serves no metrics endpoint.
    #[arg(
        long,
        visible_alias = "no-metrics-listen",
        conflicts_with = "metrics_listen"
    )]
    pub no_metrics: bool,

    /// Writes the metrics in the Prometheus text format to PATH at start,
    /// every --metrics-textfile-interval and at exit, replacing the file
    /// atomically, for node_exporter's textfile collector.
    #[arg(long, value_name = "PATH")]
    pub metrics_textfile: Option<PathBuf>,

    /// Seconds between rewrites of --metrics-textfile; fractions allowed.
    #[arg(
        long,
        default_value = "5",
        value_name = "SECONDS",
        value_parser = parse_interval,
        requires = "metrics_textfile"
    )]
    pub metrics_textfile_interval: Duration,

    /// Writes one JSON object per finding to PATH (`-` for stderr), with
    /// the followed file as source and the offset in that file, never the
    /// credential.
    #[arg(long, value_name = "PATH")]
    pub findings: Option<String>,

    /// Base of the `doc_url` field of each finding: where the
    /// leaked-credential runbook is. `#` and the kind id are appended.
    #[arg(long, default_value = DEFAULT_RUNBOOK_URL, value_name = "URL")]
    pub runbook_url: String,

    #[command(flatten)]
    pub engine: EngineArgs,
}

/// What to detect and how to replace it, shared by every mode.
#[derive(Debug, Args)]
pub struct EngineArgs {
    /// Replacement: `label` names the kind, `mask` keeps the prefix and
    /// length, `fingerprint` keeps the prefix and adds a short SHA-256.
    #[arg(long, default_value = "label", value_name = "STYLE")]
    pub style: Style,

    /// Lowest level that is redacted; weaker findings are reported but
    /// left in place. `cfscrub --help` lists the levels.
    #[arg(
        long,
        default_value = "checksum_invalid",
        value_name = "LEVEL",
        value_parser = parse_level
    )]
    pub min_level: Level,

    /// Comma-separated kinds to detect (default: all). `cfscrub --help`
    /// lists the kinds.
    #[arg(
        long,
        value_name = "KIND,...",
        value_delimiter = ',',
        value_parser = parse_kind
    )]
    pub kinds: Vec<Kind>,

    /// Comma-separated kinds not to detect.
    #[arg(
        long,
        value_name = "KIND,...",
        value_delimiter = ',',
        value_parser = parse_kind
    )]
    pub skip_kinds: Vec<Kind>,

    /// Adds a context keyword (repeatable), matched ignoring ASCII case,
    /// after which a legacy token or key is a finding. The defaults stay.
    #[arg(long = "keyword", value_name = "WORD")]
    pub keywords: Vec<String>,

    /// Bytes after a keyword, on the same line, in which a legacy token or
    /// key must start.
    #[arg(long, default_value_t = DEFAULT_WINDOW, value_name = "BYTES")]
    pub context_window: usize,
}

impl EngineArgs {
    /// Builds the scanner these arguments describe.
    pub fn scanner(&self) -> anyhow::Result<Arc<Scanner>> {
        let mut kinds = if self.kinds.is_empty() {
            KindSet::all()
        } else {
            self.kinds.iter().copied().collect()
        };
        for kind in &self.skip_kinds {
            kinds.remove(*kind);
        }
        if kinds.is_empty() {
            anyhow::bail!(
                "invalid --kinds/--skip-kinds: no kind is left to detect"
            );
        }
        let mut builder = Scanner::builder();
        builder
            .kinds(kinds)
            .style(self.style)
            .min_level(self.min_level)
            .window(self.context_window)
            .panic_on_finding(super::panic::test_panic_requested());
        for keyword in &self.keywords {
            builder.keyword(keyword.as_bytes());
        }
        let scanner = builder.build().with_context(|| {
            format!(
                "invalid --keyword or --context-window (defaults: {})",
                DEFAULT_KEYWORDS.join(", ")
            )
        })?;
        Ok(Arc::new(scanner))
    }
}

fn parse_kind(id: &str) -> Result<Kind, String> {
    Kind::from_id(id).ok_or_else(|| {
        let ids: Vec<_> = Kind::ALL.iter().map(|k| k.id()).collect();
        format!("invalid kind {id:?}: expected one of {}", ids.join(", "))
    })
}

fn parse_level(id: &str) -> Result<Level, String> {
    Level::from_id(id).ok_or_else(|| {
        let ids: Vec<_> = Level::ALL.iter().map(|l| l.id()).collect();
        format!("invalid level {id:?}: expected one of {}", ids.join(", "))
    })
}

/// Parses `PORT`, `:PORT` or `IP:PORT` (`[IPV6]:PORT`); a port alone
/// means loopback.
fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let port_only = value.strip_prefix(':').unwrap_or(value);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = value.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
    }
    value.parse().map_err(|_| {
        "expected PORT or IP:PORT with a port from 0 to 65535, such as \
         9898, 127.0.0.1:9898 or [::1]:9898 (0.0.0.0:PORT listens on \
         every interface)"
            .to_owned()
    })
}

/// Parses a positive number of seconds, such as `5` or `0.5`.
fn parse_interval(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| {
        "expected a number of seconds, such as 5 or 0.5".to_owned()
    })?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err("expected more than 0 seconds".to_owned());
    }
    // A shorter interval turns the loop that waits for it into a busy
    // loop, and rounds to 0 below 1 ns.
    if seconds < 0.001 {
        return Err("expected at least 0.001 seconds".to_owned());
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| "expected at most 1e15 seconds".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_port_alone_is_loopback() {
        let expected: SocketAddr = "127.0.0.1:9898".parse().unwrap();
        assert_eq!(parse_listen("9898"), Ok(expected));
        assert_eq!(parse_listen(":9898"), Ok(expected));
        assert_eq!(parse_listen("localhost:9898"), Ok(expected));
    }

    #[test]
    fn listen_keeps_explicit_address() {
        let cases = ["0.0.0.0:9898", "127.0.0.2:1", "[::1]:9898", "[::]:80"];
        for case in cases {
            assert_eq!(parse_listen(case), Ok(case.parse().unwrap()));
        }
    }

    #[test]
    fn listen_rejects_bad_address() {
        for case in ["", "x", "99999", "host:9898", "127.0.0.1", ":"] {
            assert!(parse_listen(case).is_err(), "accepted {case:?}");
        }
    }

    #[test]
    fn interval_accepts_fractions() {
        assert_eq!(parse_interval("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_interval("0.25"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn interval_rejects_zero_and_junk() {
        for case in ["0", "-1", "NaN", "inf", "soon", ""] {
            assert!(parse_interval(case).is_err(), "accepted {case:?}");
        }
    }
}
