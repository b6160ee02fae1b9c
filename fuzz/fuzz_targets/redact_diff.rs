//! Differential target: the streaming redactor, fed in chunk sizes that
//! the input chooses (0-byte and 1-byte pushes included), against the
//! brute-force reference of `tests/reference/mod.rs` and against
//! `Scanner::redact` on the whole buffer. Any difference in the output
//! bytes or the findings is a crash.
//!
//! The input is a header and a script. The header sets the scanner and
//! the chunk sizes. The script is copied to the stream byte by byte,
//! except that [`ESCAPE`] and an opcode splice in a generated piece: a
//! checksum-valid credential of any kind, a near miss, a keyword, a
//! prefix, a separator or clean filler. Credentials are generated here at
//! run time, so no input, seed or crash artifact contains one.
//!
//! Failure messages give offsets and lengths, never bytes, because the
//! stream contains credentials.

#![no_main]

#[path = "../../tests/reference/mod.rs"]
mod reference;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use cfscrub::engine::{
    DEFAULT_KEYWORDS, DEFAULT_WINDOW, Finding, Fingerprint, Kind, KindSet,
    Level, MAX_WINDOW, Redactor, Scanner, Sink, Style, sample,
};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

use reference::{RefSpan, Settings, reference_output, reference_spans};

/// Starts an instruction in the script. It never occurs in UTF-8, so a
/// log line used as a seed is copied as it is.
const ESCAPE: u8 = 0xff;

/// Header bytes before the chunk sizes and the keywords.
const HEADER_LEN: usize = 5;

const PREFIXED: [Kind; 3] =
    [Kind::UserToken, Kind::AccountToken, Kind::GlobalKey];
const PREFIXES: [&[u8]; 4] = [b"cfut_", b"cfat_", b"cfk_", b"v1.0-"];
const SEPARATORS: [&[u8]; 8] =
    [b" ", b"\n", b"\r\n", b"=", b"\"", b"%3D", b"\t", b": "];
const FILLER_LINE: &[u8] = b"2024-01-01 12:00:00 INFO worker: request done\n";

/// Compiled scanners by [`Case::scanner_key`], because most inputs share
/// their settings with an earlier one and the automaton is expensive to
/// build.
static SCANNERS: LazyLock<Mutex<HashMap<Vec<u8>, Arc<Scanner>>>> =
    LazyLock::new(Mutex::default);

/// Scanners kept in [`SCANNERS`] before it is emptied, which bounds its
/// memory.
const SCANNERS_KEPT: usize = 256;

/// A decoded input.
struct Case {
    /// The settings as bytes, the same for equal settings.
    scanner_key: Vec<u8>,
    settings: Settings,
    /// Push sizes, used in turn until the input is used up.
    chunks: Vec<usize>,
    input: Vec<u8>,
}

/// A sink that keeps the output and the findings.
#[derive(Default)]
struct Collect {
    out: Vec<u8>,
    findings: Vec<Finding>,
}

impl Sink for Collect {
    type Error = std::convert::Infallible;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finding(&mut self, finding: &Finding) -> Result<(), Self::Error> {
        self.findings.push(*finding);
        Ok(())
    }
}

/// Takes bytes off the front of the input; past its end every byte is 0.
struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&first, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        first
    }

    fn bytes(&mut self, len: usize) -> &[u8] {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken
    }
}

/// Decodes the header: kinds, minimum level, style, window, then the
/// number of chunk sizes and of added keywords, the sizes and the
/// keywords.
fn decode(data: &[u8]) -> Case {
    let mut reader = Reader { data };
    let header = reader.bytes(HEADER_LEN).to_vec();
    let byte = |i: usize| header.get(i).copied().unwrap_or(0);

    let mut kinds: KindSet = Kind::ALL
        .into_iter()
        .enumerate()
        .filter(|(i, _)| byte(0) >> i & 1 == 1)
        .map(|(_, k)| k)
        .collect();
    if kinds.is_empty() {
        kinds = KindSet::all();
    }
    let min_level = Level::ALL[usize::from(byte(1) & 3)];
    let style = Style::ALL[usize::from(byte(1) >> 2 & 3) % 3];
    let window = match u16::from_le_bytes([byte(2), byte(3)]) {
        0 => DEFAULT_WINDOW,
        n => 1 + usize::from(n) % MAX_WINDOW,
    };
    let chunk_count = usize::from(byte(4) & 7);
    let keyword_count = usize::from(byte(4) >> 3 & 3) % 3;

    let chunks = (0..chunk_count).map(|_| chunk_size(reader.byte())).collect();
    let keywords = (0..keyword_count)
        .map(|_| {
            let len = usize::from(reader.byte() % 70);
            reader.bytes(len).to_vec()
        })
        .collect();
    let settings = Settings { kinds, window, min_level, style, keywords };
    let mut scanner_key = vec![byte(0) & 0x3f, byte(1) & 0x0f];
    scanner_key.extend_from_slice(&window.to_le_bytes());
    for keyword in &settings.keywords {
        scanner_key.push(keyword.len() as u8);
        scanner_key.extend_from_slice(keyword);
    }
    let input = run_script(reader.data, &settings);
    Case { scanner_key, settings, chunks, input }
}

/// Maps a byte to a push size: 0 to 191 as they are, larger values to
/// multiples of 128 up to 8 KiB, past the redactor's stitching limit.
fn chunk_size(byte: u8) -> usize {
    match byte {
        0..=191 => usize::from(byte),
        _ => usize::from(byte - 191) * 128,
    }
}

/// Runs the script: copies its bytes and splices in a generated piece for
/// each [`ESCAPE`], opcode and argument.
fn run_script(script: &[u8], settings: &Settings) -> Vec<u8> {
    let keywords: Vec<&[u8]> = DEFAULT_KEYWORDS
        .iter()
        .map(|k| k.as_bytes())
        .chain(settings.keywords.iter().map(Vec::as_slice))
        .collect();
    let mut input = Vec::with_capacity(script.len() * 2);
    let mut reader = Reader { data: script };
    let mut pieces = 0u64;
    while !reader.data.is_empty() {
        let byte = reader.byte();
        if byte != ESCAPE {
            input.push(byte);
            continue;
        }
        let op = reader.byte() % 16;
        let arg = reader.byte();
        pieces += 1;
        let mut rng = StdRng::seed_from_u64(u64::from(arg) << 32 | pieces);
        let prefixed = PREFIXED[usize::from(arg) % 3];
        let piece = match op {
            0..=5 => sample::credential(&mut rng, Kind::ALL[usize::from(op)]),
            6 => sample::wrong_checksum(&mut rng, prefixed),
            7 => sample::cut_off(&mut rng, prefixed, usize::from(arg / 3) % 9),
            8 => {
                let keyword = keywords[usize::from(arg) % keywords.len()];
                let mut keyword = keyword.to_vec();
                if arg & 0x80 != 0 {
                    keyword.make_ascii_uppercase();
                }
                input.extend_from_slice(&keyword);
                continue;
            }
            9 => {
                input.extend_from_slice(PREFIXES[usize::from(arg) % 4]);
                continue;
            }
            10 => sample::hex(&mut rng, usize::from(arg) % 64),
            11 => sample::body(&mut rng),
            12 => sample::legacy_token(&mut rng),
            13 => {
                let len = (usize::from(arg) + 1) * 32;
                input.extend(FILLER_LINE.iter().cycle().take(len));
                continue;
            }
            14 => {
                input.extend_from_slice(SEPARATORS[usize::from(arg) % 8]);
                continue;
            }
            _ => {
                input.push(ESCAPE);
                continue;
            }
        };
        input.extend_from_slice(piece.as_bytes());
    }
    input
}

/// Describes how two outputs differ by lengths and the first differing
/// offset, never by content.
fn difference(actual: &[u8], expected: &[u8]) -> Option<String> {
    if actual == expected {
        return None;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    Some(format!(
        "first difference at byte {first}: {} bytes, expected {}",
        actual.len(),
        expected.len()
    ))
}

fn spans_of(findings: &[Finding]) -> Vec<RefSpan> {
    findings
        .iter()
        .map(|f| RefSpan {
            offset: usize::try_from(f.offset).expect("offset fits usize"),
            len: f.len,
            kind: f.kind,
            level: f.level,
        })
        .collect()
}

/// Feeds `input` in pushes of `chunks` sizes, in turn, and checks after
/// each push the bound on held-back bytes and that a chunk ending in a
/// newline left nothing held back.
fn redact_in_chunks(
    scanner: &Arc<Scanner>,
    input: &[u8],
    chunks: &[usize],
) -> (Collect, Redactor) {
    let mut redactor = scanner.redactor();
    redactor.count_lines(true);
    let mut sink = Collect::default();
    // Only 0-byte pushes would never end, so 1-byte ones go between them.
    let mut sizes: Vec<usize> = chunks.to_vec();
    if sizes.iter().all(|size| *size == 0) {
        sizes.push(1);
    }
    let mut pushed = 0;
    for size in sizes.iter().cycle() {
        if pushed == input.len() {
            break;
        }
        let end = input.len().min(pushed + size);
        let chunk = &input[pushed..end];
        let Ok(()) = redactor.push(chunk, &mut sink);
        pushed = end;
        assert!(
            redactor.pending_len() < scanner.max_hold(),
            "{} bytes held back, the bound is {}",
            redactor.pending_len(),
            scanner.max_hold()
        );
        if chunk.ends_with(b"\n") {
            assert_eq!(
                redactor.settled_offset(),
                pushed as u64,
                "bytes held back after a newline"
            );
        }
    }
    let Ok(()) = redactor.finish(&mut sink);
    (sink, redactor)
}

/// Returns the scanner of `case`, from [`SCANNERS`] when it was built
/// before, or `None` after checking the error of invalid settings.
fn scanner(case: &Case) -> Option<Arc<Scanner>> {
    let mut scanners = SCANNERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(scanner) = scanners.get(&case.scanner_key) {
        return Some(Arc::clone(scanner));
    }
    let scanner = match case.settings.builder().build() {
        Ok(scanner) => Arc::new(scanner),
        Err(error) => {
            let message = error.to_string();
            let breaks = message.contains(['\n', '\r']);
            assert!(!breaks, "build error of more than one line");
            return None;
        }
    };
    if scanners.len() >= SCANNERS_KEPT {
        scanners.clear();
    }
    scanners.insert(case.scanner_key.clone(), Arc::clone(&scanner));
    Some(scanner)
}

fn check(case: &Case) {
    let settings = &case.settings;
    let input = &case.input;
    let Some(scanner) = scanner(case) else {
        return;
    };

    let spans = reference_spans(input, settings);
    let expected = reference_output(input, &spans, settings);
    let (chunked, redactor) = redact_in_chunks(&scanner, input, &case.chunks);
    let mut whole = Vec::new();
    let whole_findings = scanner.redact(input, &mut whole);

    if let Some(difference) = difference(&chunked.out, &expected) {
        panic!("chunked output against the reference: {difference}");
    }
    if let Some(difference) = difference(&whole, &expected) {
        panic!("whole-buffer output against the reference: {difference}");
    }
    assert_eq!(spans_of(&chunked.findings), spans, "chunked findings");
    assert_eq!(spans_of(&whole_findings), spans, "whole-buffer findings");

    let mut redactions = 0;
    for finding in &chunked.findings {
        let start = usize::try_from(finding.offset).expect("offset fits");
        let credential = &input[start..start + finding.len];
        let redacted = finding.level >= settings.min_level;
        assert_eq!(finding.redacted, redacted, "redacted flag at {start}");
        redactions += u64::from(redacted);
        let lines = input[..start].iter().filter(|b| **b == b'\n').count();
        assert_eq!(
            finding.line,
            lines as u64 + 1,
            "line of finding at {start}"
        );
        assert_eq!(
            finding.fingerprint,
            Fingerprint::of(credential),
            "fingerprint of finding at {start}"
        );
    }

    assert!(expected.len() <= input.len(), "output longer than input");
    if settings.style == Style::Mask {
        assert_eq!(chunked.out.len(), input.len(), "masked length");
    }
    let stats = redactor.stats();
    assert_eq!(stats.bytes_in, input.len() as u64, "bytes_in");
    assert_eq!(stats.bytes_out, chunked.out.len() as u64, "bytes_out");
    assert_eq!(
        stats.total_findings(),
        chunked.findings.len() as u64,
        "total findings"
    );
    assert_eq!(stats.total_redactions(), redactions, "total redactions");
}

fuzz_target!(|data: &[u8]| {
    check(&decode(data));
});
