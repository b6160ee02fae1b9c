//! The redacted copy of one consumed record.

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Once};

use rdkafka::message::{
    BorrowedHeaders, BorrowedMessage, Header, Headers, Message, OwnedHeaders,
};

use crate::engine::{Finding, Scanner, Sink, Stats};

/// The part of a record a finding is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The value.
    Value,
    /// The key.
    Key,
    /// The value of the header at this index. Header names are not
    /// scanned, and a name is never used as a label or a source.
    Header(usize),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Value => f.write_str("value"),
            Field::Key => f.write_str("key"),
            Field::Header(index) => write!(f, "header{index}"),
        }
    }
}

/// Redacts records one at a time, reusing its buffers.
///
/// Each field of a record is scanned on its own: the end of a value, key
/// or header is a hard boundary, so a credential is never stitched
/// together from two records or two fields.
pub struct RecordRedactor {
    scanner: Arc<Scanner>,
    redact_keys: bool,
    redact_headers: bool,
    value: Vec<u8>,
    key: Vec<u8>,
    scratch: Vec<u8>,
    findings: Vec<(Field, Finding)>,
    stats: Stats,
}

/// The redacted copy of a record, borrowing the redactor's buffers and
/// the consumed message.
pub struct Redacted<'a> {
    /// The value; `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The headers, in their order, with the same names.
    pub headers: Option<OwnedHeaders>,
    /// The record's timestamp in milliseconds since the Unix epoch.
    pub timestamp: Option<i64>,
    /// The findings, each with the field it is in.
    pub findings: &'a [(Field, Finding)],
}

impl Redacted<'_> {
    /// Returns the bytes of the value and the key, which count against
    /// the producer's `message.max.bytes`.
    pub fn size(&self) -> usize {
        self.value.map_or(0, <[u8]>::len) + self.key.map_or(0, <[u8]>::len)
    }
}

impl RecordRedactor {
    /// Returns a redactor that always redacts values, and keys and header
    /// values when asked.
    pub fn new(
        scanner: Arc<Scanner>,
        redact_keys: bool,
        redact_headers: bool,
    ) -> RecordRedactor {
        RecordRedactor {
            scanner,
            redact_keys,
            redact_headers,
            value: Vec::new(),
            key: Vec::new(),
            scratch: Vec::new(),
            findings: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Returns the engine totals over every record so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Redacts `message`.
    ///
    /// Without header redaction the headers are copied by librdkafka, byte
    /// for byte, whatever their names. With it, a header name that is not
    /// UTF-8 cannot be read (see [`read_header`]), so the record is
    /// rejected with that header's index rather than forwarded with a
    /// value left unscanned.
    pub fn redact<'a>(
        &'a mut self,
        message: &'a BorrowedMessage<'_>,
    ) -> Result<Redacted<'a>, UnreadableHeader> {
        self.findings.clear();
        let value = match message.payload() {
            Some(payload) => {
                self.value.clear();
                let into = &mut self.value;
                scan(
                    &self.scanner,
                    payload,
                    into,
                    Field::Value,
                    &mut self.findings,
                    &mut self.stats,
                );
                true
            }
            None => false,
        };
        let key = match message.key() {
            Some(key) if self.redact_keys => {
                self.key.clear();
                scan(
                    &self.scanner,
                    key,
                    &mut self.key,
                    Field::Key,
                    &mut self.findings,
                    &mut self.stats,
                );
                KeyCopy::Redacted
            }
            Some(key) => KeyCopy::Original(key),
            None => KeyCopy::Absent,
        };
        let headers = match message.headers() {
            Some(headers) if self.redact_headers => {
                Some(self.copy_headers(headers)?)
            }
            Some(headers) => Some(headers.detach()),
            None => None,
        };
        Ok(Redacted {
            value: value.then_some(self.value.as_slice()),
            key: match key {
                KeyCopy::Redacted => Some(self.key.as_slice()),
                KeyCopy::Original(key) => Some(key),
                KeyCopy::Absent => None,
            },
            headers,
            timestamp: message.timestamp().to_millis(),
            findings: &self.findings,
        })
    }

    /// Copies `headers` with their values redacted.
    fn copy_headers(
        &mut self,
        headers: &BorrowedHeaders,
    ) -> Result<OwnedHeaders, UnreadableHeader> {
        let count = headers.count();
        let mut copy = OwnedHeaders::new_with_capacity(count);
        for index in 0..count {
            let Some(header) = read_header(headers, index)? else {
                break;
            };
            let value = match header.value {
                Some(value) => {
                    self.scratch.clear();
                    scan(
                        &self.scanner,
                        value,
                        &mut self.scratch,
                        Field::Header(index),
                        &mut self.findings,
                        &mut self.stats,
                    );
                    Some(self.scratch.as_slice())
                }
                None => None,
            };
            copy = copy.insert(Header { key: header.key, value });
        }
        Ok(copy)
    }
}

/// A header whose name is not UTF-8, by its index in the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreadableHeader {
    /// The header's index, from 0.
    pub index: usize,
}

thread_local! {
    /// Set while [`read_header`] expects a panic that it catches, so that
    /// the panic hook does not print it.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Returns header `index` of `headers`, `None` past the last one.
///
/// rdkafka 0.39 has no way to read a header name as bytes:
/// `BorrowedHeaders::try_get` converts the name with
/// `CStr::to_str().unwrap()`, which panics on a name that is not UTF-8.
/// Kafka allows any bytes there, and a producer other than the Java client
/// can write them. The panic is caught here and becomes an error; the
/// panic message names no input bytes. This needs the default
/// `panic = "unwind"`: under `panic = "abort"` such a record would end the
/// process. Reading the name through librdkafka's C API would need
/// `unsafe`, which this crate forbids.
fn read_header(
    headers: &BorrowedHeaders,
    index: usize,
) -> Result<Option<Header<'_, &[u8]>>, UnreadableHeader> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    CATCHING.with(|catching| catching.set(true));
    let header =
        panic::catch_unwind(AssertUnwindSafe(|| headers.try_get(index)));
    CATCHING.with(|catching| catching.set(false));
    header.map_err(|_| UnreadableHeader { index })
}

enum KeyCopy<'a> {
    Redacted,
    Original(&'a [u8]),
    Absent,
}

/// Redacts one field as a whole buffer, appending the output to `out`.
fn scan(
    scanner: &Arc<Scanner>,
    input: &[u8],
    out: &mut Vec<u8>,
    field: Field,
    findings: &mut Vec<(Field, Finding)>,
    stats: &mut Stats,
) {
    let mut redactor = scanner.redactor();
    let mut sink = FieldSink { out, findings, field };
    let Ok(()) = redactor.push(input, &mut sink);
    let Ok(()) = redactor.finish(&mut sink);
    add_stats(stats, redactor.stats());
}

struct FieldSink<'a> {
    out: &'a mut Vec<u8>,
    findings: &'a mut Vec<(Field, Finding)>,
    field: Field,
}

impl Sink for FieldSink<'_> {
    type Error = std::convert::Infallible;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finding(&mut self, finding: &Finding) -> Result<(), Self::Error> {
        self.findings.push((self.field, *finding));
        Ok(())
    }
}

fn add_stats(total: &mut Stats, part: &Stats) {
    total.bytes_in += part.bytes_in;
    total.bytes_out += part.bytes_out;
    total.candidates += part.candidates;
    for (sum, add) in total.findings.iter_mut().zip(&part.findings) {
        for (s, a) in sum.iter_mut().zip(add) {
            *s += a;
        }
    }
    for (sum, add) in total.redactions.iter_mut().zip(&part.redactions) {
        *sum += add;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_add_every_counter() {
        let mut part = Stats {
            bytes_in: 3,
            bytes_out: 2,
            candidates: 1,
            ..Stats::default()
        };
        part.findings[1][2] = 4;
        part.redactions[5] = 6;
        let mut total = Stats::default();
        add_stats(&mut total, &part);
        add_stats(&mut total, &part);
        assert_eq!(total.bytes_in, 6);
        assert_eq!(total.bytes_out, 4);
        assert_eq!(total.candidates, 2);
        assert_eq!(total.findings[1][2], 8);
        assert_eq!(total.redactions[5], 12);
    }

    #[test]
    fn field_names_for_sources() {
        assert_eq!(Field::Value.to_string(), "value");
        assert_eq!(Field::Key.to_string(), "key");
        assert_eq!(Field::Header(2).to_string(), "header2");
    }
}
