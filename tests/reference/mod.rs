//! A brute-force whole-buffer reference of the detection rules: every
//! rule applied at every offset, written from the rules in the README
//! without the engine's scan. The streaming redactor is checked against
//! it by the property tests and by the differential fuzz target, which
//! includes this file by its path.
#![allow(dead_code)]

use std::sync::Arc;

use cfscrub::engine::{
    DEFAULT_KEYWORDS, DEFAULT_WINDOW, Kind, KindSet, Level, Scanner,
    ScannerBuilder, Style,
};
use sha2::{Digest, Sha256};

/// A span found by the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefSpan {
    pub offset: usize,
    pub len: usize,
    pub kind: Kind,
    pub level: Level,
}

/// The scanner configuration a case runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub kinds: KindSet,
    pub window: usize,
    pub min_level: Level,
    pub style: Style,
    /// Keywords added to [`DEFAULT_KEYWORDS`].
    pub keywords: Vec<Vec<u8>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            kinds: KindSet::all(),
            window: DEFAULT_WINDOW,
            min_level: Level::ChecksumInvalid,
            style: Style::Label,
            keywords: Vec::new(),
        }
    }
}

impl Settings {
    /// Returns a scanner builder with these settings.
    pub fn builder(&self) -> ScannerBuilder {
        let mut builder = Scanner::builder();
        builder
            .kinds(self.kinds)
            .window(self.window)
            .min_level(self.min_level)
            .style(self.style);
        for keyword in &self.keywords {
            builder.keyword(keyword);
        }
        builder
    }

    /// Returns the scanner of these settings.
    ///
    /// # Panics
    ///
    /// Panics if the settings are invalid: an empty, too long or
    /// unprintable keyword, or a window outside 1 to `MAX_WINDOW`.
    pub fn scanner(&self) -> Arc<Scanner> {
        let scanner = self.builder().build();
        Arc::new(scanner.expect("generated settings are valid"))
    }

    /// Returns every keyword: the defaults and the added ones.
    fn all_keywords(&self) -> impl Iterator<Item = &[u8]> {
        let defaults = DEFAULT_KEYWORDS.iter().map(|k| k.as_bytes());
        defaults.chain(self.keywords.iter().map(Vec::as_slice))
    }
}

const PREFIXES: [(&[u8], Kind); 3] = [
    (b"cfut_", Kind::UserToken),
    (b"cfat_", Kind::AccountToken),
    (b"cfk_", Kind::GlobalKey),
];

fn is_hex(byte: u8) -> bool {
    byte.is_ascii_hexdigit()
}

fn is_lower_hex(byte: u8) -> bool {
    matches!(byte, b'0'..=b'9' | b'a'..=b'f')
}

fn is_token(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn crc_hex(body: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(body))
}

fn prefix_starts_at(input: &[u8], at: usize) -> bool {
    PREFIXES.iter().any(|(prefix, _)| input[at..].starts_with(prefix))
}

/// Applies the prefixed rule: 40 alphanumerics after the prefix, then up
/// to 8 hex digits. Eight digits are the checksum, valid or not, unless
/// they are invalid and a prefix starts among them. In that case, and
/// with fewer digits, the checksum is missing and the span stops before
/// the prefix.
fn prefixed_at(
    input: &[u8],
    at: usize,
    prefix_len: usize,
) -> Option<(usize, Level)> {
    let body_start = at + prefix_len;
    let body = input.get(body_start..body_start + 40)?;
    if !body.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let after = body_start + 40;
    let tail = &input[after..input.len().min(after + 8)];
    if tail.len() == 8 && tail.iter().all(|b| is_hex(*b)) {
        if tail == crc_hex(body).as_bytes() {
            return Some((prefix_len + 48, Level::ChecksumValid));
        }
        if !(after..after + 8).any(|i| prefix_starts_at(input, i)) {
            return Some((prefix_len + 48, Level::ChecksumInvalid));
        }
    }
    let mut digits = 0;
    while digits < 8
        && after + digits < input.len()
        && !prefix_starts_at(input, after + digits)
        && is_hex(input[after + digits])
    {
        digits += 1;
    }
    Some((prefix_len + 40 + digits, Level::ChecksumMissing))
}

/// Reports whether an Origin CA key starts at `at`: `v1.0-`, 24
/// lowercase hex digits, `-`, 146 lowercase hex digits.
fn origin_ca_at(input: &[u8], at: usize) -> bool {
    let Some(key) = input.get(at..at + 176) else {
        return false;
    };
    key.starts_with(b"v1.0-")
        && key[5..29].iter().all(|b| is_lower_hex(*b))
        && key[29] == b'-'
        && key[30..].iter().all(|b| is_lower_hex(*b))
}

/// Classifies a whole run of token characters as a legacy kind.
fn classify(run: &[u8]) -> Option<Kind> {
    let lower = run.iter().any(u8::is_ascii_lowercase);
    let upper = run.iter().any(u8::is_ascii_uppercase);
    let digit = run.iter().any(u8::is_ascii_digit);
    if run.iter().all(|b| is_lower_hex(*b)) {
        let key = (37..=45).contains(&run.len()) && run.len() != 40;
        return (key && lower && digit).then_some(Kind::LegacyGlobalKey);
    }
    let classes = [lower, upper, digit].iter().filter(|c| **c).count();
    let token = run.len() == 40 && classes >= 2 && !has_uuid(run);
    token.then_some(Kind::LegacyToken)
}

/// Reports whether `run` contains a UUID: 8-4-4-4-12 hex digits.
fn has_uuid(run: &[u8]) -> bool {
    let groups = [8, 4, 4, 4, 12];
    (0..run.len().saturating_sub(35)).any(|start| {
        let mut at = start;
        groups.iter().enumerate().all(|(i, len)| {
            let digits = run[at..at + len].iter().all(u8::is_ascii_hexdigit);
            at += len;
            let dash = i == 4 || run[at] == b'-';
            at += 1;
            digits && dash
        })
    })
}

/// Returns the end of every keyword occurrence, in any ASCII case.
fn keyword_ends(input: &[u8], settings: &Settings) -> Vec<usize> {
    let mut ends = Vec::new();
    for at in 0..input.len() {
        for keyword in settings.all_keywords() {
            let end = at + keyword.len();
            if end <= input.len()
                && input[at..end].eq_ignore_ascii_case(keyword)
            {
                ends.push(end);
            }
        }
    }
    ends
}

/// Appends the spans of the legacy rule: a whole run of token characters
/// that starts within the window after a keyword's end, on the same line.
/// Two hex digits of a percent-encoded byte at the run's start are not
/// part of the value.
fn legacy_spans(input: &[u8], settings: &Settings, spans: &mut Vec<RefSpan>) {
    let ends = keyword_ends(input, settings);
    for start in 0..input.len() {
        let run_start = is_token(input[start])
            && (start == 0 || !is_token(input[start - 1]));
        if !run_start {
            continue;
        }
        let in_window = ends.iter().any(|&end| {
            end <= start
                && start < end + settings.window
                && !input[end..start].contains(&b'\n')
        });
        if !in_window {
            continue;
        }
        let run_end = input[start..]
            .iter()
            .position(|b| !is_token(*b))
            .map_or(input.len(), |len| start + len);
        let encoded = start > 0
            && input[start - 1] == b'%'
            && run_end - start > 2
            && is_hex(input[start])
            && is_hex(input[start + 1]);
        let value = if encoded { start + 2 } else { start };
        let kind = classify(&input[value..run_end]);
        if let Some(kind) = kind.filter(|k| settings.kinds.contains(*k)) {
            let len = run_end - value;
            let level = Level::Contextual;
            spans.push(RefSpan { offset: value, len, kind, level });
        }
    }
}

/// Returns every span the rules accept, by offset.
pub fn reference_spans(input: &[u8], settings: &Settings) -> Vec<RefSpan> {
    let kinds = settings.kinds;
    let mut spans = Vec::new();
    for at in 0..input.len() {
        for (prefix, kind) in PREFIXES {
            if kinds.contains(kind)
                && input[at..].starts_with(prefix)
                && let Some((len, level)) =
                    prefixed_at(input, at, prefix.len())
            {
                spans.push(RefSpan { offset: at, len, kind, level });
            }
        }
        if kinds.contains(Kind::OriginCaKey) && origin_ca_at(input, at) {
            let (kind, level) = (Kind::OriginCaKey, Level::Contextual);
            spans.push(RefSpan { offset: at, len: 176, kind, level });
        }
    }
    legacy_spans(input, settings, &mut spans);
    spans.sort_by_key(|span| span.offset);
    spans
}

/// Returns the replacement of a span of `len` bytes in `style`, written
/// from the README: a label, the prefix then `*`, or the prefix then `[sha256:`
/// and 12 hex digits of the credential's SHA-256.
fn replacement(
    style: Style,
    kind: Kind,
    credential: &[u8],
    len: usize,
) -> Vec<u8> {
    let prefix = kind.prefix().unwrap_or_default();
    match style {
        Style::Label => format!("[REDACTED:{}]", kind.id()).into_bytes(),
        Style::Mask => {
            let mut mask = prefix.to_vec();
            mask.resize(len, b'*');
            mask
        }
        Style::Fingerprint => {
            let digest = Sha256::digest(credential);
            let hex: String =
                digest[..6].iter().map(|b| format!("{b:02x}")).collect();
            [prefix, b"[sha256:", hex.as_bytes(), b"]"].concat()
        }
    }
}

/// Returns the output for `spans`: each span at or above the minimum
/// level replaced, and one that overlaps the next replaced span only up
/// to where that one starts.
pub fn reference_output(
    input: &[u8],
    spans: &[RefSpan],
    settings: &Settings,
) -> Vec<u8> {
    let redacted: Vec<&RefSpan> =
        spans.iter().filter(|s| s.level >= settings.min_level).collect();
    let mut out = Vec::new();
    let mut written = 0;
    for (i, span) in redacted.iter().enumerate() {
        let next = redacted.get(i + 1).map_or(usize::MAX, |n| n.offset);
        let end = (span.offset + span.len).min(next);
        let credential = &input[span.offset..span.offset + span.len];
        let len = end - span.offset;
        out.extend_from_slice(&input[written..span.offset]);
        let style = settings.style;
        out.extend(replacement(style, span.kind, credential, len));
        written = end;
    }
    out.extend_from_slice(&input[written..]);
    out
}
