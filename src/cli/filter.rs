//! The stream filter: files or stdin in, redacted stream on stdout.

use std::fs::File;
use std::io;
use std::process::ExitCode;

use anyhow::Context;

use super::args::FilterArgs;
use super::{EXIT_ERROR, EXIT_FOUND};
use crate::engine::{Finding, Redactor, Sink};
use crate::observe::{FindingRecord, FindingsWriter};
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
        Some(path) => Some(
            FindingsWriter::create(path)
                .with_context(|| format!("cannot open --findings {path}"))?,
        ),
        None => None,
    };
    let stdout = open_stdout().context("cannot open stdout")?;
    let mut redactor = scanner.redactor();
    redactor.count_lines(findings.is_some());
    let mut sink = FilterSink {
        out: ChunkWriter::new(stdout),
        findings,
        sources: Vec::new(),
        lines: 0,
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
    match result {
        Ok(()) | Err(Failure::Input(_)) => {}
        Err(Failure::Output(error)) if is_closed_pipe(&error) => {
            tracing::debug!("stdout closed, stopping");
        }
        Err(Failure::Output(error)) => {
            eprintln!("cfscrub: write to stdout failed: {}", describe(&error));
            failed = true;
        }
        Err(Failure::Findings(error)) => {
            let name = sink.findings.as_ref().map_or("", |f| &f.name);
            eprintln!(
                "cfscrub: write to findings {name} failed: {}",
                describe(&error)
            );
            failed = true;
        }
    }
    let stats = redactor.stats();
    tracing::info!(
        bytes = stats.bytes_in,
        findings = stats.total_findings(),
        redactions = stats.total_redactions(),
        "input ended"
    );
    if failed {
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    if args.fail_on_find && stats.total_redactions() > 0 {
        return Ok(ExitCode::from(EXIT_FOUND));
    }
    Ok(ExitCode::SUCCESS)
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
    loop {
        let len = input.read(buf).map_err(Failure::Input)?;
        if len == 0 {
            return Ok(());
        }
        let chunk = &buf[..len];
        if sink.findings.is_some() {
            sink.lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        }
        sink.out.begin(chunk);
        redactor.push(chunk, sink)?;
        sink.flush(chunk)?;
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
    /// Newlines read so far, counted only when findings are written.
    lines: u64,
}

impl FilterSink {
    /// Writes the output of `chunk`, the input given to the last
    /// `out.begin`, and the findings so far.
    fn flush(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        self.out.flush(chunk).map_err(Failure::Output)?;
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
