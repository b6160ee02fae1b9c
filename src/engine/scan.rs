//! The scan of one contiguous buffer: finds every span to redact and the
//! point up to which the buffer is settled.
//!
//! A scan never looks before the start of its buffer. Whatever it needs to
//! know about earlier bytes is in [`ScanState`]: whether a keyword's context
//! window is still open, and whether the byte just before the buffer was a
//! token character. The scan leaves the state as it stands at the release
//! point, so the bytes after that point can be scanned again, joined to the
//! next chunk, with the same result as if the stream were one buffer.

use memchr::memchr;

use super::confirm::{
    Check, LEGACY_KEY_LEN, LEGACY_TOKEN_LEN, check_origin_ca, check_prefixed,
    classify_legacy_run, is_token_byte,
};
use super::kind::{Kind, Level};
use super::prefilter::Hit;
use super::scanner::Scanner;

/// A span of the buffer that holds a credential.
///
/// Spans may overlap by a few bytes, because a look-alike can run into
/// the first bytes of a credential written straight after it (see
/// [`Scan::settle`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) len: usize,
    pub(crate) kind: Kind,
    pub(crate) level: Level,
    /// Where a scan must resume to find this span again: its start, or
    /// for a legacy value after a percent-encoded byte, the start of the
    /// run that contains it.
    pub(crate) rescan_from: usize,
}

impl Span {
    pub(crate) fn end(&self) -> usize {
        self.start + self.len
    }
}

/// What the scan of the next buffer needs to know about the bytes before
/// it. Offsets are absolute: counted from the start of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanState {
    /// End of the open context window. No window is open when this is at
    /// or before the buffer start. A window never crosses a newline.
    pub(crate) window_end: u64,
    /// Runs of token characters that start before this offset were
    /// already classified.
    pub(crate) runs_from: u64,
    /// The byte just before the buffer; a newline at the start of input.
    pub(crate) prev: u8,
}

impl Default for ScanState {
    fn default() -> ScanState {
        ScanState { window_end: 0, runs_from: 0, prev: b'\n' }
    }
}

/// The outcome of one scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scanned {
    /// Bytes before this offset are settled: every credential in them is
    /// in the spans, and the rest can be written out.
    pub(crate) release: usize,
    /// Prefilter hits looked at, for the candidates metric.
    pub(crate) candidates: u64,
}

/// Bytes of a percent-encoded byte after its `%`, as in `%3D`.
const PERCENT_DIGITS: usize = 2;

/// Lengths of a legacy credential: every key length, and the token's.
const LEGACY_LENGTHS: std::ops::RangeInclusive<usize> = LEGACY_KEY_LEN;
const _: () = assert!(
    *LEGACY_LENGTHS.start() <= LEGACY_TOKEN_LEN
        && LEGACY_TOKEN_LEN <= *LEGACY_LENGTHS.end()
);

/// Longest run of token characters that can still be a legacy credential.
const LONGEST_LEGACY: usize = *LEGACY_KEY_LEN.end();

struct Scan<'a> {
    scanner: &'a Scanner,
    buf: &'a [u8],
    base: u64,
    at_end: bool,
    prev: u8,
    spans: &'a mut Vec<Span>,
    first_span: usize,
    /// Earliest offset in `buf` that cannot be settled yet.
    hold: usize,
    /// End of the open window, absolute.
    window_end: u64,
    /// Runs starting before this absolute offset were classified.
    runs_from: u64,
    /// End of the window carried in from the previous buffer, once cut
    /// at a newline.
    carried_end: u64,
    /// Start in `buf` and absolute window end of each keyword seen, to
    /// rebuild the state at the release point.
    keywords: Vec<(usize, u64)>,
    candidates: u64,
}

/// Scans `buf`, whose first byte is at absolute offset `base`, appends the
/// spans to redact to `spans` in order, and moves `state` to the release
/// point.
///
/// When `at_end` is true the buffer is the end of the input: every
/// candidate is decided with what is there and the whole buffer is
/// released.
pub(crate) fn scan(
    scanner: &Scanner,
    state: &mut ScanState,
    base: u64,
    buf: &[u8],
    at_end: bool,
    spans: &mut Vec<Span>,
) -> Scanned {
    let mut scan = Scan {
        scanner,
        buf,
        base,
        at_end,
        prev: state.prev,
        first_span: spans.len(),
        spans,
        hold: buf.len(),
        window_end: state.window_end,
        runs_from: state.runs_from.max(base),
        carried_end: state.window_end,
        keywords: Vec::new(),
        candidates: 0,
    };
    if scan.window_end > base {
        scan.open_window(0);
    }
    scan.carried_end = scan.window_end;
    scan.follow_hits();
    if !at_end && let Some(start) = scanner.prefilter.partial_at_end(buf) {
        scan.hold = scan.hold.min(start);
    }
    let release = scan.settle();
    *state = scan.state_at(release);
    Scanned { release, candidates: scan.candidates }
}

impl Scan<'_> {
    fn abs(&self, offset: usize) -> u64 {
        self.base + offset as u64
    }

    fn rel(&self, offset: u64) -> usize {
        let end = self.base + self.buf.len() as u64;
        (offset.clamp(self.base, end) - self.base) as usize
    }

    fn byte_before(&self, offset: usize) -> u8 {
        if offset == 0 { self.prev } else { self.buf[offset - 1] }
    }

    /// Goes through the prefilter's hits in order until the buffer ends or
    /// a candidate needs bytes that have not arrived.
    fn follow_hits(&mut self) {
        let prefilter = &self.scanner.prefilter;
        let mut from = 0;
        while let Some((start, pattern)) = prefilter.find(self.buf, from) {
            if start >= self.hold {
                break;
            }
            self.candidates += 1;
            let hit = prefilter.resolve(self.buf, start, pattern, self.at_end);
            let next = match hit {
                Hit::NeedMore => None,
                Hit::NoMatch => Some(start + 1),
                Hit::Prefix(kind) => self.check_prefix(start, kind),
                Hit::Keyword { len } => {
                    self.keyword(start, len);
                    // An operator's keyword may contain a prefix or
                    // another keyword, so the search goes on inside it.
                    Some(start + 1)
                }
            };
            match next {
                Some(next) => from = next,
                None => {
                    self.hold = self.hold.min(start);
                    break;
                }
            }
        }
    }

    /// Confirms a prefixed candidate at `start`, returning where the
    /// search goes on, or `None` when more input is needed.
    fn check_prefix(&mut self, start: usize, kind: Kind) -> Option<usize> {
        let bytes = &self.buf[start..];
        let check = match kind.prefix() {
            Some(_) if kind == Kind::OriginCaKey => {
                check_origin_ca(bytes, self.at_end)
            }
            Some(prefix) => check_prefixed(bytes, prefix.len(), self.at_end),
            None => unreachable!("only kinds with a prefix are searched"),
        };
        match check {
            Check::NeedMore => None,
            Check::NoMatch => Some(start + 1),
            Check::Found { len, level } => {
                let rescan_from = start;
                self.spans.push(Span { start, len, kind, level, rescan_from });
                // Not `start + len`: a prefix in the span's last bytes may
                // begin a credential that only looks like part of this one.
                Some(start + 1)
            }
        }
    }

    /// Opens or widens the context window after a keyword at `start`.
    fn keyword(&mut self, start: usize, len: usize) {
        let keyword_end = start + len;
        let window_end = self.abs(keyword_end) + self.scanner.window as u64;
        self.window_end = self.window_end.max(window_end);
        self.runs_from = self.runs_from.max(self.abs(keyword_end));
        self.open_window(keyword_end);
        self.keywords.push((start, self.window_end));
    }

    /// Closes the window at the first newline at or after `from`, then
    /// classifies the runs that start inside it.
    fn open_window(&mut self, from: usize) {
        let end = self.rel(self.window_end);
        if let Some(newline) = memchr(b'\n', &self.buf[from.min(end)..end]) {
            self.window_end = self.abs(from.min(end) + newline);
        }
        self.classify_window_runs();
    }

    /// Classifies each run of token characters that starts inside the
    /// window and has not been classified yet.
    ///
    /// A run that starts with the two hex digits of a percent-encoded byte
    /// (`%3D`, `%22`, `%20` in a URL-encoded query) is classified without
    /// them, so `cf_api_token%3D` is a separator like `cf_api_token=`.
    fn classify_window_runs(&mut self) {
        let buf = self.buf;
        let limit = self.rel(self.window_end).min(self.hold);
        let mut at = self.rel(self.runs_from);
        // Inside a run that started before `at`, which is not a candidate.
        let mut in_run = at < limit && is_token_byte(self.byte_before(at));
        while at < limit {
            let run_len = buf[at..]
                .iter()
                .position(|b| !is_token_byte(*b))
                .unwrap_or(buf.len() - at);
            if run_len == 0 {
                in_run = false;
                at += 1;
                continue;
            }
            let run_end = at + run_len;
            if in_run {
                at = run_end;
                in_run = false;
                continue;
            }
            if run_end == buf.len() && !self.at_end {
                if run_len <= LONGEST_LEGACY + PERCENT_DIGITS {
                    self.hold = self.hold.min(at);
                    self.runs_from = self.abs(at);
                    return;
                }
                // Too long to be a credential, whatever follows.
                at = run_end;
                break;
            }
            let value = at + self.percent_digits(at, run_len);
            // Most runs are words, far from any credential's length.
            if !LEGACY_LENGTHS.contains(&(run_end - value)) {
                at = run_end;
                continue;
            }
            let kind = classify_legacy_run(&buf[value..run_end]);
            if let Some(kind) =
                kind.filter(|k| self.scanner.kinds.contains(*k))
            {
                self.spans.push(Span {
                    start: value,
                    len: run_end - value,
                    kind,
                    level: Level::Contextual,
                    rescan_from: at,
                });
            }
            at = run_end;
        }
        self.runs_from = self.runs_from.max(self.abs(at.min(self.hold)));
    }

    /// Returns how many bytes of the run at `at` are the hex digits of a
    /// percent-encoded byte before the value: 2 or 0.
    fn percent_digits(&self, at: usize, run_len: usize) -> usize {
        let encoded = self.byte_before(at) == b'%'
            && run_len > PERCENT_DIGITS
            && self.buf[at..at + PERCENT_DIGITS]
                .iter()
                .all(u8::is_ascii_hexdigit);
        if encoded { PERCENT_DIGITS } else { 0 }
    }

    /// Sorts the spans, drops every span the release point does not
    /// cover, and returns the release point.
    ///
    /// Two spans overlap when a look-alike runs into the first bytes of a
    /// credential written straight after it, such as a 39-character body
    /// followed by `cfut_`. Both are kept: the redactor replaces the
    /// first one up to where the next redacted one starts, so neither
    /// leaves a byte behind. A span starts inside at most one other, so
    /// a chain of overlaps is settled one span at a time and the bytes
    /// held back stay below [`Scanner::max_hold`].
    fn settle(&mut self) -> usize {
        let spans = &mut self.spans[self.first_span..];
        spans.sort_unstable_by_key(|s| (s.start, usize::MAX - s.len));
        let mut kept = self.first_span;
        let mut last_start = None;
        for i in self.first_span..self.spans.len() {
            let span = self.spans[i];
            if span.start >= self.hold {
                break;
            }
            if last_start == Some(span.start) {
                continue;
            }
            last_start = Some(span.start);
            self.spans[kept] = span;
            kept += 1;
        }
        self.spans.truncate(kept);

        let mut release = self.hold;
        // A redacted span that reaches past the release point is found
        // again, whole, when the scan resumes where it can be found. A
        // span that is only reported needs no bytes after the release
        // point, so it is reported now.
        let min_level = self.scanner.min_level;
        let last_redacted = self.spans[self.first_span..]
            .iter()
            .rev()
            .find(|span| span.level >= min_level)
            .copied();
        if let Some(last) = last_redacted
            && last.end() > release
        {
            release = last.rescan_from;
            let first = self.first_span;
            let keep =
                self.spans[first..].partition_point(|s| s.start < release);
            self.spans.truncate(first + keep);
        }
        release
    }

    /// Returns the state that a scan resuming at `release` starts from.
    fn state_at(&self, release: usize) -> ScanState {
        let mut window_end = self.carried_end;
        for &(start, end) in &self.keywords {
            if start < release {
                window_end = window_end.max(end);
            }
        }
        ScanState {
            window_end,
            runs_from: self.runs_from.min(self.abs(release)),
            prev: self.byte_before(release),
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::engine::sample;

    fn scanner() -> Scanner {
        Scanner::builder().build().unwrap()
    }

    fn token() -> String {
        sample::legacy_token(&mut StdRng::seed_from_u64(1))
    }

    /// Scans `buf` as the whole input and returns the spans.
    fn scan_whole(scanner: &Scanner, buf: &[u8]) -> Vec<Span> {
        let mut state = ScanState::default();
        let mut spans = Vec::new();
        let scanned = scan(scanner, &mut state, 0, buf, true, &mut spans);
        assert_eq!(scanned.release, buf.len(), "whole input released");
        spans
    }

    #[test]
    fn window_closes_at_newline() {
        let scanner = scanner();
        let next_line = format!("CF_API_TOKEN=\n{}\n", token());
        assert!(scan_whole(&scanner, next_line.as_bytes()).is_empty());
        let same_line = format!("CF_API_TOKEN={}\n", token());
        let spans = scan_whole(&scanner, same_line.as_bytes());
        assert_eq!(spans.len(), 1);
        assert_eq!((spans[0].start, spans[0].len), (13, 40));
    }

    #[test]
    fn window_carried_to_next_buffer() {
        let scanner = scanner();
        let mut state = ScanState::default();
        let mut spans = Vec::new();
        let first = b"CF_API_TOKEN=";
        let scanned = scan(&scanner, &mut state, 0, first, false, &mut spans);
        assert_eq!(scanned.release, first.len());
        assert!(state.window_end > first.len() as u64, "window open");
        let second = format!("{} rest\n", token());
        let base = first.len() as u64;
        let buf = second.as_bytes();
        let scanned = scan(&scanner, &mut state, base, buf, false, &mut spans);
        assert_eq!(scanned.release, buf.len());
        assert_eq!(spans.len(), 1);
        assert_eq!((spans[0].start, spans[0].kind), (0, Kind::LegacyToken));
    }

    #[test]
    fn run_at_buffer_end_held_back() {
        let scanner = scanner();
        let mut state = ScanState::default();
        let mut spans = Vec::new();
        let buf = b"CF_API_TOKEN=abc123";
        let scanned = scan(&scanner, &mut state, 0, buf, false, &mut spans);
        assert_eq!(scanned.release, 13, "the run may go on");
        assert!(spans.is_empty());
        assert_eq!(state.prev, b'=');
    }

    #[test]
    fn percent_digits_not_in_value() {
        let scanner = scanner();
        let line = format!("q=cf_api_token%3D{}&x=1\n", token());
        let spans = scan_whole(&scanner, line.as_bytes());
        assert_eq!(spans.len(), 1);
        assert_eq!((spans[0].start, spans[0].len), (17, 40));
        assert_eq!(spans[0].rescan_from, 15, "the run starts at the digits");
    }

    #[test]
    fn overlapping_spans_both_kept() {
        let scanner = scanner();
        let mut rng = StdRng::seed_from_u64(2);
        let body = sample::body(&mut rng);
        let credential = sample::prefixed(&mut rng, Kind::UserToken);
        let input = format!("cfut_{}{credential}", &body[..39]);
        let spans = scan_whole(&scanner, input.as_bytes());
        let starts: Vec<usize> = spans.iter().map(|s| s.start).collect();
        assert_eq!(starts, [0, 44]);
        assert_eq!(spans[0].level, Level::ChecksumMissing);
        assert_eq!(spans[1].level, Level::ChecksumValid);
        assert!(spans[0].end() > spans[1].start, "spans overlap");
    }

    #[test]
    fn span_reaching_past_hold_found_again() {
        // A look-alike whose last bytes begin a credential that has not
        // fully arrived: neither is settled until the credential ends.
        let scanner = scanner();
        let mut rng = StdRng::seed_from_u64(3);
        let body = sample::body(&mut rng);
        let credential = sample::prefixed(&mut rng, Kind::UserToken);
        let input = format!("ab cfut_{}{}", &body[..39], &credential[..20]);
        let mut state = ScanState::default();
        let mut spans = Vec::new();
        let buf = input.as_bytes();
        let scanned = scan(&scanner, &mut state, 0, buf, false, &mut spans);
        assert_eq!(scanned.release, 3);
        assert!(spans.is_empty());
    }
}
