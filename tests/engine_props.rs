//! Property test: the streaming redactor, fed in random chunks, against
//! the brute-force whole-buffer reference in `reference/mod.rs`.
//!
//! Inputs are random bytes and log text with credentials of every kind
//! planted in them, legacy ones after a keyword, beside look-alikes. A
//! case holds only seeds and lengths, so a failing case prints no
//! credential, and neither do the assertion messages.

mod common;
mod reference;

use std::sync::Arc;

use cfscrub::engine::{
    DEFAULT_WINDOW, Kind, KindSet, Level, Scanner, Style, sample,
};
use proptest::prelude::*;
use proptest::test_runner::Config;
use rand::Rng;
use rand::rngs::StdRng;

use common::{Collect, difference};
use reference::{RefSpan, Settings, reference_output, reference_spans};

// ---------------------------------------------------------------------
// Generated inputs.
// ---------------------------------------------------------------------

/// Something that resembles a credential but is not a whole one.
#[derive(Clone, Copy, Debug)]
enum LookAlike {
    ShortBody,
    WrongChecksum,
    CutOff(usize),
    UppercaseChecksum,
    CommitId,
    Uuid,
    Hex32,
    LongRun,
    ShortOriginCa,
    UppercaseOriginCa,
    ValueOnNextLine,
    ValueBeyondWindow,
}

/// A piece of a generated input. It contains seeds and sizes, never
/// bytes.
#[derive(Clone, Debug)]
enum Segment {
    /// Bytes of any value.
    Bytes { seed: u64, len: usize },
    /// Log words, separators and fragments of credentials and keywords.
    Words { seed: u64, count: usize },
    /// A credential of `kind`, after a keyword for the legacy kinds, that
    /// must be redacted.
    Planted { kind: Kind, seed: u64 },
    /// A look-alike that the rules decide on.
    LookAlike { shape: LookAlike, seed: u64 },
    /// Clean log lines, longer than the bytes a redactor joins to what it
    /// holds back, so that large chunks are scanned in place.
    Filler { len: usize },
}

const TOKEN_CONTEXTS: [&str; 6] = [
    "CF_API_TOKEN=",
    "export CLOUDFLARE_API_TOKEN=\"",
    "{\"cloudflare_api_token\":\"",
    "cloudflare_api_token = \"",
    "?cf_api_token%3D",
    "Cloudflare token ",
];
const KEY_CONTEXTS: [&str; 4] =
    ["X-Auth-Key: ", "cf_api_key: ", "curl -H 'X-Auth-Key: ", "CF_KEY="];
const AFTER_VALUE: [&str; 5] = [" ", "\"", "\n", "&x=1", "'\r\n"];

const WORDS: &[&str] = &[
    "GET",
    "/client/v4/zones",
    "200",
    "INFO",
    "user=alice",
    "cloudflare",
    "CLOUDFLARE",
    "CF_API_TOKEN=",
    "cf_token:",
    "X-Auth-Key:",
    "x-auth-key",
    "cfut_",
    "cfat_",
    "cfk_",
    "cf",
    "cfu",
    "cfa",
    "c",
    "v1.0-",
    "v1",
    "%3D",
    "%",
    "\"",
    "=",
    ": ",
    "deadbeef",
    "0123456789abcdef",
    "\0",
    "\u{e9}",
];
const SEPARATORS: &[&str] = &["", " ", " ", "\n", "\r\n", "\t", "=", "\""];

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

impl Segment {
    /// Appends the segment's bytes to `input`, and for a planted credential
    /// records the bytes that must not reach the output.
    fn write(&self, input: &mut Vec<u8>, secrets: &mut Vec<(Kind, Vec<u8>)>) {
        match *self {
            Segment::Bytes { seed, len } => {
                let mut rng = common::rng(seed);
                input.extend((0..len).map(|_| rng.random::<u8>()));
            }
            Segment::Words { seed, count } => {
                let mut rng = common::rng(seed);
                for _ in 0..count {
                    let word = match rng.random_range(0..10) {
                        0 => {
                            let len = rng.random_range(30..48);
                            sample::hex(&mut rng, len)
                        }
                        1 => sample::legacy_token(&mut rng),
                        2 => sample::body(&mut rng),
                        _ => pick(&mut rng, WORDS).to_owned(),
                    };
                    input.extend_from_slice(word.as_bytes());
                    let separator = pick(&mut rng, SEPARATORS);
                    input.extend_from_slice(separator.as_bytes());
                }
            }
            Segment::Planted { kind, seed } => {
                let mut rng = common::rng(seed);
                let credential = sample::credential(&mut rng, kind);
                let contexts: &[&str] = match kind {
                    Kind::LegacyToken => &TOKEN_CONTEXTS,
                    Kind::LegacyGlobalKey => &KEY_CONTEXTS,
                    _ => &[""],
                };
                input.extend_from_slice(pick(&mut rng, contexts).as_bytes());
                input.extend_from_slice(credential.as_bytes());
                if kind.is_contextual() {
                    let after = pick(&mut rng, &AFTER_VALUE);
                    input.extend_from_slice(after.as_bytes());
                }
                let secret = match kind.prefix() {
                    Some(prefix) => &credential.as_bytes()[prefix.len()..],
                    None => credential.as_bytes(),
                };
                secrets.push((kind, secret.to_vec()));
            }
            Segment::LookAlike { shape, seed } => {
                let mut rng = common::rng(seed);
                let text = look_alike(&mut rng, shape);
                input.extend_from_slice(text.as_bytes());
            }
            Segment::Filler { len } => {
                let line = b"2024-01-01 12:00:00 INFO worker: request done\n";
                input.extend(line.iter().cycle().take(len));
            }
        }
    }
}

fn prefixed_kind(rng: &mut StdRng) -> Kind {
    [Kind::UserToken, Kind::AccountToken, Kind::GlobalKey]
        [rng.random_range(0..3)]
}

fn look_alike(rng: &mut StdRng, shape: LookAlike) -> String {
    let kind = prefixed_kind(rng);
    let prefix = std::str::from_utf8(kind.prefix().unwrap()).unwrap();
    match shape {
        LookAlike::ShortBody => {
            format!("{prefix}{}", &sample::body(rng)[..39])
        }
        LookAlike::WrongChecksum => sample::wrong_checksum(rng, kind),
        LookAlike::CutOff(cut) => sample::cut_off(rng, kind, cut),
        LookAlike::UppercaseChecksum => sample::prefixed(rng, kind)
            .to_uppercase()
            .replacen(&prefix.to_uppercase(), prefix, 1),
        LookAlike::CommitId => {
            format!(
                "uses: cloudflare/wrangler-action@{}",
                sample::hex(rng, 40)
            )
        }
        LookAlike::Uuid => format!(
            "cloudflare request {}-{}-{}-{}-{}",
            sample::hex(rng, 8),
            sample::hex(rng, 4),
            sample::hex(rng, 4),
            sample::hex(rng, 4),
            sample::hex(rng, 12)
        ),
        LookAlike::Hex32 => {
            format!("cloudflare zone {}", sample::hex(rng, 32))
        }
        LookAlike::LongRun => {
            format!("CF_API_TOKEN={}x", sample::legacy_token(rng))
        }
        LookAlike::ShortOriginCa => {
            sample::origin_ca_key(rng)[..175].to_owned()
        }
        LookAlike::UppercaseOriginCa => {
            let key = sample::origin_ca_key(rng);
            format!("v1.0-{}", key[5..].to_uppercase())
        }
        LookAlike::ValueOnNextLine => {
            format!("CF_API_TOKEN=\n{}", sample::legacy_token(rng))
        }
        LookAlike::ValueBeyondWindow => format!(
            "X-Auth-Key: {}{}",
            " ".repeat(DEFAULT_WINDOW),
            sample::legacy_global_key(rng)
        ),
    }
}

/// A generated input and the chunk sizes to feed it in.
#[derive(Clone, Debug)]
struct Case {
    segments: Vec<Segment>,
    chunks: Vec<usize>,
}

impl Case {
    /// Returns the input and the planted secrets with their kinds.
    fn build(&self) -> (Vec<u8>, Vec<(Kind, Vec<u8>)>) {
        let mut input = Vec::new();
        let mut secrets = Vec::new();
        for segment in &self.segments {
            segment.write(&mut input, &mut secrets);
        }
        (input, secrets)
    }
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

fn any_look_alike() -> impl Strategy<Value = LookAlike> {
    prop_oneof![
        Just(LookAlike::ShortBody),
        Just(LookAlike::WrongChecksum),
        (1usize..=8).prop_map(LookAlike::CutOff),
        Just(LookAlike::UppercaseChecksum),
        Just(LookAlike::CommitId),
        Just(LookAlike::Uuid),
        Just(LookAlike::Hex32),
        Just(LookAlike::LongRun),
        Just(LookAlike::ShortOriginCa),
        Just(LookAlike::UppercaseOriginCa),
        Just(LookAlike::ValueOnNextLine),
        Just(LookAlike::ValueBeyondWindow),
    ]
}

fn any_segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        2 => (any::<u64>(), 0usize..64)
            .prop_map(|(seed, len)| Segment::Bytes { seed, len }),
        3 => (any::<u64>(), 1usize..24)
            .prop_map(|(seed, count)| Segment::Words { seed, count }),
        3 => (any_kind(), any::<u64>())
            .prop_map(|(kind, seed)| Segment::Planted { kind, seed }),
        2 => (any_look_alike(), any::<u64>())
            .prop_map(|(shape, seed)| Segment::LookAlike { shape, seed }),
        1 => (1000usize..6000).prop_map(|len| Segment::Filler { len }),
    ]
}

fn any_settings() -> impl Strategy<Value = Settings> {
    let kinds = prop::sample::subsequence(Kind::ALL.to_vec(), 1..=6)
        .prop_map(|kinds| kinds.into_iter().collect::<KindSet>());
    let level = prop::sample::select(Level::ALL.to_vec());
    let style = prop::sample::select(Style::ALL.to_vec());
    let window = prop_oneof![Just(DEFAULT_WINDOW), 1usize..300];
    (kinds, window, level, style).prop_map(
        |(kinds, window, min_level, style)| Settings {
            kinds,
            window,
            min_level,
            style,
            keywords: Vec::new(),
        },
    )
}

fn any_case() -> impl Strategy<Value = Case> {
    let segments = prop::collection::vec(any_segment(), 1..16);
    let chunks = prop::collection::vec(
        prop_oneof![4 => 1usize..16, 4 => 16usize..300, 1 => 300usize..5000],
        1..6,
    );
    (segments, chunks).prop_map(|(segments, chunks)| Case { segments, chunks })
}

// ---------------------------------------------------------------------
// The property.
// ---------------------------------------------------------------------

fn spans_of(findings: &[cfscrub::engine::Finding]) -> Vec<RefSpan> {
    findings
        .iter()
        .map(|f| RefSpan {
            offset: f.offset as usize,
            len: f.len,
            kind: f.kind,
            level: f.level,
        })
        .collect()
}

/// Feeds `input` in chunks and checks, after each push, that a chunk
/// ending in a newline left no byte held back.
fn redact_in_chunks(
    scanner: &Arc<Scanner>,
    input: &[u8],
    sizes: &[usize],
) -> Result<Collect, TestCaseError> {
    let mut redactor = scanner.redactor();
    let mut sink = Collect::default();
    let mut pushed = 0;
    let mut sizes = sizes.iter().cycle();
    while pushed < input.len() {
        let len = (*sizes.next().unwrap()).min(input.len() - pushed);
        let chunk = &input[pushed..pushed + len];
        let Ok(()) = redactor.push(chunk, &mut sink);
        pushed += len;
        prop_assert!(
            redactor.pending_len() < scanner.max_hold(),
            "{} bytes held back, the bound is {}",
            redactor.pending_len(),
            scanner.max_hold()
        );
        if chunk.ends_with(b"\n") {
            prop_assert_eq!(
                redactor.settled_offset(),
                pushed as u64,
                "bytes held back after a newline"
            );
        }
    }
    let Ok(()) = redactor.finish(&mut sink);
    Ok(sink)
}

/// Checks one case: the chunked output equals the reference output and
/// the output of one push, the findings equal the reference's, and no
/// planted credential that gets redacted reaches the output.
fn check(settings: &Settings, case: &Case) -> Result<(), TestCaseError> {
    let scanner = settings.scanner();
    let (input, secrets) = case.build();
    let spans = reference_spans(&input, settings);
    let expected = reference_output(&input, &spans, settings);

    let chunked = redact_in_chunks(&scanner, &input, &case.chunks)?;
    let mut whole = Vec::new();
    let whole_findings = scanner.redact(&input, &mut whole);

    if let Some(difference) = difference(&chunked.out, &expected) {
        return Err(TestCaseError::fail(format!(
            "chunked output against the reference: {difference}"
        )));
    }
    if let Some(difference) = difference(&chunked.out, &whole) {
        return Err(TestCaseError::fail(format!(
            "chunked output against one push: {difference}"
        )));
    }
    prop_assert_eq!(spans_of(&chunked.findings), spans.clone(), "findings");
    prop_assert_eq!(spans_of(&whole_findings), spans, "findings of one push");
    for finding in &chunked.findings {
        let redacted = finding.level >= settings.min_level;
        prop_assert_eq!(finding.redacted, redacted, "redacted flag");
    }
    if settings.style == Style::Mask {
        prop_assert_eq!(chunked.out.len(), input.len(), "masked length");
    }
    // Planted credentials are found at every level but only redacted at
    // the default minimum. A legacy one is up to 7 bytes after its
    // keyword, so a narrower window misses it.
    let default_level = settings.min_level == Level::ChecksumInvalid;
    for (index, (kind, secret)) in secrets.iter().enumerate() {
        let narrow = kind.is_contextual() && settings.window < 8;
        if !default_level || !settings.kinds.contains(*kind) || narrow {
            continue;
        }
        prop_assert!(
            !common::contains(&chunked.out, secret),
            "planted {} credential {} is in the output",
            kind,
            index
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(Config {
        cases: 2000,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn chunked_redaction_matches_reference(case in any_case()) {
        check(&Settings::default(), &case)?;
    }

    #[test]
    fn any_settings_match_reference(
        settings in any_settings(),
        case in any_case(),
    ) {
        check(&settings, &case)?;
    }
}

/// Checks the reference itself on inputs whose result is known, so that a
/// reference bug cannot hide an engine bug.
#[test]
fn reference_finds_planted_kinds() {
    for (kind, context, credential) in common::every_kind(99) {
        let input = format!("a {context}{credential} b\n");
        let settings = Settings::default();
        let spans = reference_spans(input.as_bytes(), &settings);
        let kinds: Vec<Kind> = spans.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [kind], "{kind}");
        let output = reference_output(input.as_bytes(), &spans, &settings);
        let label = common::label(kind);
        let expected =
            [format!("a {context}").as_bytes(), &label, b" b\n"].concat();
        common::assert_same(&output, &expected, kind.id());
    }
    let mut rng = common::rng(1);
    let sha = format!("cloudflare {}\n", sample::hex(&mut rng, 40));
    let spans = reference_spans(sha.as_bytes(), &Settings::default());
    assert!(spans.is_empty(), "commit id");
}
