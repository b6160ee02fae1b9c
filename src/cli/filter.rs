//! The stream filter: files or stdin in, redacted stream on stdout.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::args::FilterArgs;
use super::export::Exporters;
use super::stream_metrics::{ChunkCounts, StreamMetrics};
use super::{EXIT_ERROR, EXIT_FOUND, open_error, print_error};
use crate::engine::{Finding, Redactor, Sink};
use crate::observe::{FindingRecord, FindingsWriter, SourceType, Stage};
use crate::source::{
    ChunkWriter, Input, StopSignal, describe, open_stdout, same_file,
};

/// Bytes asked for by each read. A pipe returns at most what it holds, so
/// small inputs still come out at once. On a cached 1 GiB file (corpus
/// `per_64k` of `benches/compare.sh`, median CPU time of 9 runs under a
/// load of 4.6 to 5 on 2 cores) 64 KiB reads took 267 ms, against 295 ms
/// for 32 KiB, 299 ms for 128 KiB and 297 ms for 256 KiB.
const READ_SIZE: usize = 64 * 1024;

/// Size an input pipe is grown to, so that the writer can stay several
/// reads ahead and is woken less often than once per read.
const PIPE_SIZE: usize = 256 * 1024;

/// Offset of the read buffer from a page boundary, in bytes.
///
/// The speed of the kernel's copy of a cached file into the buffer depends
/// on the buffer's address. Reading 1 GiB of the `clean` corpus from the
/// page cache took 3 to 4% more CPU time into a buffer at a multiple of 64
/// bytes than into one 8, 16, 32 or 48 bytes past it. That is the median
/// of 7 and of 9 alternating runs of `perf stat -e task-clock` on a 2-core
/// Intel Xeon VM. Through a pipe the address made no difference. Left to the
/// allocator, the address moved with the allocations made before it, so
/// turning metrics on changed the speed of every read.
// NOTE: measured on one CPU model only; another may copy fastest into an
// aligned buffer.
const READ_BUFFER_OFFSET: usize = 16;

/// Page size assumed for [`READ_BUFFER_OFFSET`]. A larger page only moves
/// the buffer within its page.
const PAGE_SIZE: usize = 4096;

/// Returns `len` bytes of `storage` that start [`READ_BUFFER_OFFSET`] bytes
/// past a multiple of [`PAGE_SIZE`]. `storage` must be at least
/// `len + 2 * PAGE_SIZE` bytes long.
fn read_buffer(storage: &mut [u8], len: usize) -> &mut [u8] {
    let start = storage.as_ptr().align_offset(PAGE_SIZE) + READ_BUFFER_OFFSET;
    &mut storage[start..start + len]
}

/// Runs the filter and returns the exit status.
///
/// SIGTERM and SIGINT end the input early, but not the output: every byte
/// read comes out, redacted, as if the input had ended there.
pub(super) fn run(args: &FilterArgs) -> anyhow::Result<ExitCode> {
    // First, so that a signal during start-up stops the filter before its
    // first read instead of killing it.
    let stop = StopSignal::install(EXIT_ERROR.into())
        .context("cannot install the SIGTERM and SIGINT handlers")?;
    if args.count_lines && !args.metrics.enabled() {
        anyhow::bail!(
            "--count-lines needs --metrics-listen or --metrics-textfile: the \
             lines it counts are only exported as metrics"
        );
    }
    reject_written_inputs(args)?;
    let scanner = args.engine.scanner()?;
    let findings = match &args.findings {
        Some(path) => {
            let mut writer = FindingsWriter::create(path)
                .map_err(|error| open_error("--findings", path, &error))?;
            writer.set_runbook_url(&args.runbook_url);
            Some(writer)
        }
        None => None,
    };

    let exporters = Exporters::start(&args.metrics)?;
    let stdout = open_stdout().context("cannot open stdout")?;
    let mut redactor = scanner.redactor();
    redactor.count_lines(findings.is_some());
    // Findings carry their line, so with findings the lines are counted
    // anyway and the record metrics come at no extra cost.
    let count_lines = args.count_lines || findings.is_some();
    let mut sink = FilterSink {
        out: ChunkWriter::new(stdout),
        findings,
        sources: Vec::new(),
        count_lines,
        lines: 0,
        metrics: exporters.as_ref().map(|exporters| {
            StreamMetrics::new(exporters.metrics.clone(), count_lines)
        }),
    };

    let names = if args.files.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.files.clone()
    };
    let mut failed = false;
    let mut storage = vec![0u8; READ_SIZE + 2 * PAGE_SIZE];
    let buf = read_buffer(&mut storage, READ_SIZE);
    let mut result = Ok(());
    for name in &names {
        result = filter_one(name, &mut redactor, &mut sink, buf, &stop);
        // Opening the next input can block, as a FIFO does until a writer
        // opens it, so the counts of this one are published first.
        if let Some(metrics) = &mut sink.metrics {
            metrics.publish(redactor.stats());
        }
        match result {
            Ok(()) if stop.requested() => {
                let signal = stop.signal_name().unwrap_or("a signal");
                tracing::info!(signal, "stopping");
                break;
            }
            Ok(()) => {}
            Err(Failure::Input(error)) => {
                print_error(&format!("{name}: {}", describe(&error)));
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
        result =
            redactor.finish(&mut sink).and_then(|()| sink.flush(&[], None));
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
        stopped = stop.requested(),
        "input ended"
    );
    if let Some(exporters) = exporters {
        let linger = Duration::from_secs(args.metrics_linger);
        if let Err(error) = exporters.finish(linger, || stop.requested()) {
            print_error(&format!("{error:#}"));
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

/// Fails when the metrics text file or the findings file is also an input
/// file: the text file would replace the input before it is read, and
/// findings would be read back into the output.
fn reject_written_inputs(args: &FilterArgs) -> anyhow::Result<()> {
    let findings = args.findings.as_deref().filter(|path| *path != "-");
    let written = [
        ("--metrics-textfile", args.metrics.metrics_textfile.as_deref()),
        ("--findings", findings.map(Path::new)),
    ];
    let inputs = args.files.iter().filter(|name| *name != "-");
    for (option, path) in written {
        let Some(path) = path else { continue };
        for input in inputs.clone() {
            if same_file(path, Path::new(input)) {
                anyhow::bail!(
                    "cannot write {option} to {}, because it is also an \
                     input file; choose another path",
                    path.display()
                );
            }
        }
    }
    Ok(())
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
            print_error(&format!(
                "write to stdout failed: {}",
                describe(&error)
            ));
            sink.count_error(Stage::Write);
            true
        }
        Err(Failure::Findings(error)) => {
            let name = sink.findings.as_ref().map_or("", |f| &f.name);
            print_error(&format!(
                "write to findings {name} failed: {}",
                describe(&error)
            ));
            sink.count_error(Stage::Findings);
            true
        }
    }
}

/// Streams one input through the redactor, until its end or a stop.
fn filter_one(
    name: &str,
    redactor: &mut Redactor,
    sink: &mut FilterSink,
    buf: &mut [u8],
    stop: &StopSignal,
) -> Result<(), Failure> {
    if stop.requested() {
        return Ok(());
    }
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
    loop {
        // The metrics publish a batch of reads at a time. A read that has
        // to wait for input publishes the open batch first, so the
        // counters of an idle input are complete.
        let metrics = &mut sink.metrics;
        let stats = redactor.stats();
        let before_wait = || {
            if let Some(metrics) = metrics {
                metrics.publish(stats);
            }
        };
        let read = input.read_unless_stopped(buf, stop, before_wait);
        let len = match read.map_err(Failure::Input)? {
            None | Some(0) => return Ok(()),
            Some(len) => len,
        };
        let chunk = &buf[..len];
        let newlines =
            if sink.count_lines { count_newlines_in(chunk) } else { 0 };
        sink.lines += newlines;
        sink.out.begin(chunk);
        if sink.metrics.is_none() {
            redactor.push(chunk, sink)?;
            sink.flush(chunk, None)?;
            continue;
        }
        // The sink only gathers the output spans; the write is in `flush`,
        // so the time of `push` is the time spent scanning.
        let started = Instant::now();
        let pushed = redactor.push(chunk, sink);
        let scan_end = Instant::now();
        let written = pushed.and_then(|()| sink.flush(chunk, Some(scan_end)));
        if let Some(metrics) = &mut sink.metrics {
            let chunk_counts = ChunkCounts {
                newlines,
                last_byte: chunk[len - 1],
                scan_time: scan_end - started,
                scan_end,
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
    /// Whether newlines are counted: for findings, or for the record
    /// metrics.
    count_lines: bool,
    /// Newlines read so far, or 0 when they are not counted.
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
    /// `out.begin`, and the findings so far. `now`, when given, is the
    /// current time, read by the caller already.
    fn flush(
        &mut self,
        chunk: &[u8],
        now: Option<Instant>,
    ) -> Result<(), Failure> {
        if let Some(metrics) = &mut self.metrics {
            metrics.write_started(now.unwrap_or_else(Instant::now));
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
