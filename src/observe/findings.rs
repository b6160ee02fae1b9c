//! Findings as JSON lines: one object per detection, never the credential
//! or the bytes around it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::time::{SystemTime, UNIX_EPOCH};

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

/// One line as written: when it was found, the record and the link to
/// the runbook section of its kind.
#[derive(Serialize)]
struct FindingLine<'a, 'b> {
    time: String,
    #[serde(flatten)]
    record: &'b FindingRecord<'a>,
    doc_url: &'b str,
}

/// Formats `time` as RFC 3339 in UTC to the second, such as
/// `2026-12-04T18:40:00Z`, so a finding can be matched against an audit
/// log.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date, counting
/// in 400-year eras of 146,097 days that start on March 1st, so that the
/// leap day is the last day of an era's year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524
        - day_of_era / 146_096)
        / 365;
    let day_of_year =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month =
        if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 }
            as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    /// Opens `path` for appending, creating it if needed, or stderr when
    /// `path` is `-`. Appending keeps the findings of earlier runs, which
    /// may be the only record of a leak.
    pub fn create(path: &str) -> io::Result<FindingsWriter> {
        let out: Box<dyn Write + Send> = if path == "-" {
            Box::new(io::stderr())
        } else {
            let file: File =
                OpenOptions::new().append(true).create(true).open(path)?;
            Box::new(BufWriter::new(file))
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
        let time = rfc3339_utc(SystemTime::now());
        let line = FindingLine { time, record, doc_url };
        serde_json::to_writer(&mut self.out, &line)?;
        self.out.write_all(b"\n")
    }

    /// Writes out buffered findings.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> String {
        rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400`: the leap day of a year divisible by 400.
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        // `date -u -d @1798761599`: the last second of 2026.
        assert_eq!(at(1_798_761_599), "2026-12-31T23:59:59Z");
        // 2100 is not a leap year: February ends on the 28th.
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}
