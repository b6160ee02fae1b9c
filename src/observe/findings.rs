//! Findings as JSON lines: one object per detection, never the credential
//! or the bytes around it.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use serde::Serialize;

use crate::engine::{Finding, Kind};

/// Location of the leaked-credential runbook when the operator gives
/// none: its path relative to the root of the repository.
pub const DEFAULT_RUNBOOK_URL: &str = "docs/runbook-leaked-credential.md";

/// Returns the link to the runbook section for `kind`: `base`, `#` and
/// the kind id, which is also the section's anchor.
pub fn runbook_link(base: &str, kind: &str) -> String {
    format!("{base}#{kind}")
}

/// One line of the findings output.
#[derive(Debug, Serialize)]
pub struct FindingRecord<'a> {
    /// Kind id, such as `user_token`.
    pub kind: &'static str,
    /// Level id, such as `checksum_valid`.
    pub level: &'static str,
    /// Byte offset of the credential in the whole stream.
    pub offset: u64,
    /// Length of the credential in bytes.
    pub length: usize,
    /// Name of the input: a path, `-` for stdin, or a Kafka
    /// `topic/partition@offset`.
    pub source: &'a str,
    /// Byte offset of the credential within its source.
    pub source_offset: u64,
    /// 1-based line number within the source, when lines are counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// First 12 hex digits of the SHA-256 of the credential.
    pub fingerprint: String,
    /// Whether the credential was replaced in the output.
    pub redacted: bool,
}

impl<'a> FindingRecord<'a> {
    /// Describes `finding` found in `source`, which starts at stream offset
    /// `source_start` and after `source_lines` newlines of the stream.
    pub fn new(
        finding: &Finding,
        source: &'a str,
        source_start: u64,
        source_lines: u64,
    ) -> FindingRecord<'a> {
        FindingRecord {
            kind: finding.kind.id(),
            level: finding.level.id(),
            offset: finding.offset,
            length: finding.len,
            source,
            source_offset: finding.offset - source_start,
            line: (finding.line > 0).then(|| finding.line - source_lines),
            fingerprint: finding.fingerprint.to_string(),
            redacted: finding.redacted,
        }
    }
}

/// One line as written: the record and the link to the runbook section
/// of its kind.
#[derive(Serialize)]
struct FindingLine<'a, 'b> {
    #[serde(flatten)]
    record: &'b FindingRecord<'a>,
    doc_url: &'b str,
}

/// Writes findings as JSON lines to a file or to stderr.
///
/// Each line gains a `doc_url` field: the runbook section for the kind of
/// the finding (see [`FindingsWriter::set_runbook_url`]).
pub struct FindingsWriter {
    /// What to call the destination in error messages.
    pub name: String,
    out: Box<dyn Write + Send>,
    /// Link to each kind's runbook section, in [`Kind::ALL`] order.
    links: Vec<String>,
}

impl FindingsWriter {
    /// Opens `path` for writing, truncating it, or stderr when `path` is
    /// `-`.
    pub fn create(path: &str) -> io::Result<FindingsWriter> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stderr())
        } else {
            Box::new(BufWriter::new(File::create(path)?))
        };
        let name =
            if path == "-" { "stderr".to_owned() } else { path.to_owned() };
        let mut writer = FindingsWriter { name, out, links: Vec::new() };
        writer.set_runbook_url(DEFAULT_RUNBOOK_URL);
        Ok(writer)
    }

    /// Sets where the runbook is, such as the URL of
    /// `docs/runbook-leaked-credential.md` in the operator's copy of the
    /// repository (default: [`DEFAULT_RUNBOOK_URL`]).
    pub fn set_runbook_url(&mut self, base: &str) {
        self.links = Kind::ALL
            .iter()
            .map(|kind| runbook_link(base, kind.id()))
            .collect();
    }

    /// Writes one finding as a line of JSON.
    pub fn write(&mut self, record: &FindingRecord<'_>) -> io::Result<()> {
        let doc_url = Kind::ALL
            .iter()
            .position(|kind| kind.id() == record.kind)
            .map_or(DEFAULT_RUNBOOK_URL, |index| &self.links[index]);
        let line = FindingLine { record, doc_url };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    /// Writes out buffered findings.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
