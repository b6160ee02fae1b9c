//! The stream filter: files or stdin in, redacted stream on stdout.

use std::fs::File;
use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;

use super::args::FilterArgs;
use super::export::Exporters;
use super::{EXIT_ERROR, EXIT_FOUND};
use crate::engine::{Finding, Redactor, Sink, Stats};
use crate::observe::{
    FindingRecord, FindingsWriter, Metrics, SourceType, Stage,
};
use crate::source::{ChunkWriter, Input, open_stdout};

/// Bytes asked for by each read. A pipe returns at most what it holds, so
/// small inputs still come out at once. On a cached 1 GiB file (corpus
/// `per_64k` of `benches/compare.sh`, median CPU time of 9 runs under a
/// load of 4.6 to 5 on 2 cores) 64 KiB reads took 267 ms, against 295 ms
/// for 32 KiB, 299 ms for 128 KiB and 297 ms for 256 KiB.
const READ_SIZE: usize = 64 * 1024;

/// Size an input pipe is grown to, so that the writer can stay several
/// reads ahead and is woken less often than once per read.
const PIPE_SIZE: usize = 256 * 1024;

/// Runs the filter and returns the exit status.
pub(super) fn run(args: &FilterArgs) -> anyhow::Result<ExitCode> {
    let scanner = args.engine.scanner()?;
    let findings = match &args.findings {
        Some(path) => {
            let mut writer = FindingsWriter::create(path)
                .with_context(|| format!("cannot open --findings {path}"))?;
            writer.set_runbook_url(&args.runbook_url);
            Some(writer)
        }
        None => None,
    };

    let exporters = Exporters::start(&args.metrics)?;
    let stdout = open_stdout().context("cannot open stdout")?;
    let mut redactor = scanner.redactor();
    redactor.count_lines(findings.is_some());
    let mut sink = FilterSink {
        out: ChunkWriter::new(stdout),
        findings,
        sources: Vec::new(),
        lines: 0,
        metrics: exporters
            .as_ref()
            .map(|exporters| StreamMetrics::new(exporters.metrics.clone())),
    };

    let names = if args.files.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.files.clone()
    };
    let mut failed = false;
    let mut buf = vec![0u8; READ_SIZE];
    let mut result = Ok(());
    for name in &names {
        result = filter_one(name, &mut redactor, &mut sink, &mut buf);
        match result {
            Ok(()) => {}
            Err(Failure::Input(error)) => {
                eprintln!("cfscrub: {name}: {}", describe(&error));
                sink.count_error(Stage::Read);
                failed = true;
            }
            Err(_) => break,
        }
        result = Ok(());
    }

    if result.is_ok() {
        // The bytes held back at the end are the redactor's own, so the
        // last output is not a part of any read.
        sink.out.begin(&[]);
        result = redactor.finish(&mut sink).and_then(|()| sink.flush(&[]));
    }
    if let Some(metrics) = &mut sink.metrics {
        metrics.end(redactor.stats(), result.is_ok());
    }
    if report_failure(result, &sink) {
        failed = true;
    }

    let stats = redactor.stats();
    tracing::info!(
        bytes = stats.bytes_in,
        findings = stats.total_findings(),
        redactions = stats.total_redactions(),
        "input ended"
    );
    if let Some(exporters) = exporters {
        let linger = Duration::from_secs(args.metrics_linger);
        if let Err(error) = exporters.finish(linger) {
            eprintln!("cfscrub: {error:#}");
            failed = true;
        }
    }
    if failed {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if args.fail_on_find && stats.total_redactions() > 0 {
        return Ok(ExitCode::from(EXIT_FOUND));
    }
    Ok(ExitCode::SUCCESS)
}

/// Reports why the output ended early, if it did, and returns whether that
/// is a failure. A closed stdout is a normal end, as for `head`.
fn report_failure(result: Result<(), Failure>, sink: &FilterSink) -> bool {
    match result {
        Ok(()) | Err(Failure::Input(_)) => false,
        Err(Failure::Output(error)) if is_closed_pipe(&error) => {
            tracing::debug!("stdout closed, stopping");
            false
        }
        Err(Failure::Output(error)) => {
            eprintln!("cfscrub: write to stdout failed: {}", describe(&error));
            sink.count_error(Stage::Write);
            true
        }
        Err(Failure::Findings(error)) => {
            let name = sink.findings.as_ref().map_or("", |f| &f.name);
            eprintln!(
                "cfscrub: write to findings {name} failed: {}",
                describe(&error)
            );
            sink.count_error(Stage::Findings);
            true
        }
    }
}

/// Streams one input through the redactor.
fn filter_one(
    name: &str,
    redactor: &mut Redactor,
    sink: &mut FilterSink,
    buf: &mut [u8],
) -> Result<(), Failure> {
    let mut input = Input::open(name).map_err(Failure::Input)?;
    input.grow_pipe(PIPE_SIZE);
    sink.sources.push(SourceMark {
        name: input.name.clone(),
        start: redactor.stats().bytes_in,
        lines: sink.lines,
    });
    let source =
        if name == "-" { SourceType::Stdin } else { SourceType::File };
    if let Some(metrics) = &mut sink.metrics {
        metrics.start_source(source);
    }
    let count_newlines = sink.findings.is_some() || sink.metrics.is_some();
    loop {
        let len = input.read(buf).map_err(Failure::Input)?;
        if len == 0 {
            return Ok(());
        }
        let chunk = &buf[..len];
        let newlines =
            if count_newlines { count_newlines_in(chunk) } else { 0 };
        sink.lines += newlines;
        sink.out.begin(chunk);
        if sink.metrics.is_none() {
            redactor.push(chunk, sink)?;
            sink.flush(chunk)?;
            continue;
        }
        // The sink only gathers the output spans; the write is in `flush`,
        // so the time of `push` is the time spent scanning.
        let started = Instant::now();
        let pushed = redactor.push(chunk, sink);
        let scan_time = started.elapsed();
        let written = pushed.and_then(|()| sink.flush(chunk));
        if let Some(metrics) = &mut sink.metrics {
            let chunk_counts = ChunkCounts {
                newlines,
                last_byte: chunk[len - 1],
                scan_time,
                written: written.is_ok(),
            };
            metrics.chunk(redactor.stats(), &chunk_counts);
        }
        written?;
    }
}

/// Returns the number of newlines in `chunk`.
fn count_newlines_in(chunk: &[u8]) -> u64 {
    crate::engine::count_newlines(chunk)
}

/// Counts the filter takes of one chunk, beside the redactor's [`Stats`].
struct ChunkCounts {
    newlines: u64,
    last_byte: u8,
    /// Time in the redactor, without the time spent writing to stdout.
    scan_time: Duration,
    /// Whether the chunk's output was written.
    written: bool,
}

/// Publishes the filter's counts to the metrics once per chunk, so the
/// read loop only adds to local counters.
struct StreamMetrics {
    metrics: Metrics,
    source: SourceType,
    /// The redactor's totals at the last publish.
    published: Stats,
    /// Whether the last byte read was a newline, or nothing was read.
    at_line_start: bool,
}

impl StreamMetrics {
    fn new(metrics: Metrics) -> StreamMetrics {
        StreamMetrics {
            metrics,
            source: SourceType::Stdin,
            published: Stats::default(),
            at_line_start: true,
        }
    }

    /// Marks an input as open and being read.
    fn start_source(&mut self, source: SourceType) {
        self.source = source;
        self.metrics.ready.set(1);
    }

    fn chunk(&mut self, stats: &Stats, counts: &ChunkCounts) {
        self.publish(stats);
        let counters = self.metrics.source(self.source);
        counters.read_records.inc_by(counts.newlines);
        if counts.written {
            counters.written_records.inc_by(counts.newlines);
        }
        self.metrics.scan_duration.observe(counts.scan_time.as_secs_f64());
        self.at_line_start = counts.last_byte == b'\n';
    }

    /// Publishes the last counts at the end of input. A last line without
    /// a newline is a record too, and `written` is whether it was written.
    fn end(&mut self, stats: &Stats, written: bool) {
        self.publish(stats);
        if !self.at_line_start {
            let counters = self.metrics.source(self.source);
            counters.read_records.inc();
            if written {
                counters.written_records.inc();
            }
        }
        self.metrics.ready.set(0);
    }

    fn publish(&mut self, stats: &Stats) {
        self.metrics.publish(self.source, &self.published, stats);
        self.published = *stats;
    }

    /// Sets the stall gauge to the start of a write to stdout, which blocks
    /// while the reader of stdout reads nothing.
    fn write_started(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        self.metrics.write_start_time.set(now);
    }

    fn write_ended(&self) {
        self.metrics.write_start_time.set(0.0);
    }
}

/// Where each input starts in the stream, to give findings their source.
struct SourceMark {
    name: String,
    start: u64,
    lines: u64,
}

/// Why the filter stopped reading an input.
enum Failure {
    /// Opening or reading the input failed; the next one is still read.
    Input(io::Error),
    /// Writing stdout failed.
    Output(io::Error),
    /// Writing the findings failed.
    Findings(io::Error),
}

struct FilterSink {
    out: ChunkWriter<File>,
    findings: Option<FindingsWriter>,
    sources: Vec<SourceMark>,
    /// Newlines read so far, counted only when findings are written or
    /// metrics are kept.
    lines: u64,
    metrics: Option<StreamMetrics>,
}

impl FilterSink {
    fn count_error(&self, stage: Stage) {
        if let Some(metrics) = &self.metrics {
            metrics.metrics.error(stage);
        }
    }

    /// Writes the output of `chunk`, the input given to the last
    /// `out.begin`, and the findings so far.
    fn flush(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        if let Some(metrics) = &self.metrics {
            metrics.write_started();
        }
        let written = self.out.flush(chunk).map_err(Failure::Output);
        if let Some(metrics) = &self.metrics {
            metrics.write_ended();
        }
        written?;
        if let Some(findings) = &mut self.findings {
            findings.flush().map_err(Failure::Findings)?;
        }
        Ok(())
    }
}

impl Sink for FilterSink {
    type Error = Failure;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.out.write(bytes);
        Ok(())
    }

    fn finding(&mut self, finding: &Finding) -> Result<(), Failure> {
        let Some(findings) = &mut self.findings else {
            return Ok(());
        };
        let index = self
            .sources
            .partition_point(|mark| mark.start <= finding.offset)
            .saturating_sub(1);
        let mark = &self.sources[index];
        let record =
            FindingRecord::new(finding, &mark.name, mark.start, mark.lines);
        findings.write(&record).map_err(Failure::Findings)
    }
}

fn is_closed_pipe(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::BrokenPipe
}

/// Returns the error's message without the "(os error N)" suffix.
fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newline_count_matches_naive_count() {
        let mut text = Vec::new();
        for i in 0..40_000u32 {
            text.push(if i % 7 == 0 || i % 13 == 0 { b'\n' } else { b'x' });
        }
        for len in [0, 1, 31, 32, 8159, 8160, 8161, 20_000, text.len()] {
            let chunk = &text[..len];
            let naive = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            assert_eq!(count_newlines_in(chunk), naive, "length {len}");
        }
    }

    #[test]
    fn newline_count_of_only_newlines() {
        let chunk = vec![b'\n'; 32 * 255 * 3 + 5];
        assert_eq!(count_newlines_in(&chunk), chunk.len() as u64);
    }
}
