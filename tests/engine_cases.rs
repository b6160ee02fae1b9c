//! Hard cases for the engine, each fed whole, split in two at every
//! offset, and one byte at a time.
//!
//! Every credential is generated at run time. Failure messages name the
//! case and the split, never the bytes.

mod common;

use std::sync::Arc;

use cfscrub::engine::{Finding, Kind, Level, Scanner, checksum_hex, sample};
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;

use common::{Collect, assert_same, label, redact_chunked, redact_split};

/// A span that the case expects the engine to report and redact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expected {
    offset: u64,
    len: usize,
    kind: Kind,
    level: Level,
}

/// One input and the spans expected in it.
struct Case {
    name: String,
    input: Vec<u8>,
    expected: Vec<Expected>,
}

impl Case {
    fn new(name: impl Into<String>) -> Case {
        Case { name: name.into(), input: Vec::new(), expected: Vec::new() }
    }

    /// Appends bytes that are not part of any expected span.
    fn text(mut self, text: impl AsRef<[u8]>) -> Case {
        self.input.extend_from_slice(text.as_ref());
        self
    }

    /// Appends bytes that the engine must report as one span.
    fn found(
        mut self,
        credential: impl AsRef<[u8]>,
        kind: Kind,
        level: Level,
    ) -> Case {
        let credential = credential.as_ref();
        self.expected.push(Expected {
            offset: self.input.len() as u64,
            len: credential.len(),
            kind,
            level,
        });
        self.input.extend_from_slice(credential);
        self
    }

    /// Records a span over bytes already appended, for spans that overlap
    /// the next one.
    fn span_at(
        mut self,
        offset: usize,
        len: usize,
        kind: Kind,
        level: Level,
    ) -> Case {
        let span = Expected { offset: offset as u64, len, kind, level };
        self.expected.push(span);
        self.expected.sort_by_key(|s| s.offset);
        self
    }

    /// Returns the output the default scanner must write: each span
    /// replaced by its label. A span that overlaps the next one is
    /// replaced up to where the next one starts.
    fn expected_output(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut written = 0;
        for (i, span) in self.expected.iter().enumerate() {
            let start = span.offset as usize;
            let mut end = start + span.len;
            if let Some(next) = self.expected.get(i + 1) {
                end = end.min(next.offset as usize);
            }
            out.extend_from_slice(&self.input[written..start]);
            out.extend_from_slice(&label(span.kind));
            written = end;
        }
        out.extend_from_slice(&self.input[written..]);
        out
    }
}

const PREFIXED: [Kind; 3] =
    [Kind::UserToken, Kind::AccountToken, Kind::GlobalKey];

fn prefix(kind: Kind) -> &'static str {
    std::str::from_utf8(kind.prefix().expect("prefixed kind")).unwrap()
}

fn alphanumeric(rng: &mut StdRng, len: usize) -> String {
    Alphanumeric.sample_string(rng, len)
}

/// Returns a credential whose CRC-32 has a letter, written in uppercase.
fn uppercase_checksum(rng: &mut StdRng, kind: Kind) -> String {
    loop {
        let body = sample::body(rng);
        let checksum = checksum_hex(body.as_bytes());
        if checksum.iter().any(u8::is_ascii_alphabetic) {
            let upper = String::from_utf8(checksum.to_vec()).unwrap();
            return format!("{}{body}{}", prefix(kind), upper.to_uppercase());
        }
    }
}

/// Returns a credential with a wrong checksum whose last two digits, `cf`,
/// could begin a prefix if more bytes followed.
fn checksum_ending_in_cf(rng: &mut StdRng, kind: Kind) -> String {
    loop {
        let body = sample::body(rng);
        if &checksum_hex(body.as_bytes()) != b"012345cf" {
            return format!("{}{body}012345cf", prefix(kind));
        }
    }
}

/// Cases for the three prefixed kinds.
fn prefixed_cases(rng: &mut StdRng) -> Vec<Case> {
    use Level::{ChecksumInvalid, ChecksumMissing, ChecksumValid};
    let mut cases = Vec::new();
    for kind in PREFIXED {
        let p = prefix(kind);
        let cred = |rng: &mut StdRng| sample::prefixed(rng, kind);
        let valid = ChecksumValid;
        cases.push(Case::new(format!("{kind} alone")).found(
            cred(rng),
            kind,
            valid,
        ));
        cases.push(
            Case::new(format!("{kind} at start"))
                .found(cred(rng), kind, valid)
                .text(" sent\n"),
        );
        cases.push(Case::new(format!("{kind} at end")).text("token ").found(
            cred(rng),
            kind,
            valid,
        ));
        cases.push(
            Case::new(format!("{kind} after %3D, letters after"))
                .text("GET /hook?token%3D")
                .found(cred(rng), kind, valid)
                .text("abcXYZ HTTP/1.1\n"),
        );
        cases.push(
            Case::new(format!("{kind} between x and y"))
                .text("x")
                .found(cred(rng), kind, valid)
                .text("y"),
        );
        cases.push(
            Case::new(format!("{kind} after quote, letters after"))
                .text("{\"t\":\"")
                .found(cred(rng), kind, valid)
                .text("\"abc}\n"),
        );
        cases.push(
            Case::new(format!("{kind} among NUL and invalid UTF-8"))
                .text(b"\0\xff\xfe")
                .found(cred(rng), kind, valid)
                .text(b"\xc3\x28\0\xf0\x28\x8c\n"),
        );
        cases.push(
            Case::new(format!("{kind} on CRLF lines"))
                .text("first\r\nkey=")
                .found(cred(rng), kind, valid)
                .text("\r\nlast\r\n"),
        );
        cases.push(
            Case::new(format!("{kind} inside a long word"))
                .text("abcdef0123")
                .found(cred(rng), kind, valid)
                .text("0123abcdef\n"),
        );
        let wrong = sample::wrong_checksum(rng, kind);
        cases.push(
            Case::new(format!("{kind} wrong checksum"))
                .text("a=")
                .found(wrong, kind, ChecksumInvalid)
                .text("\n"),
        );
        let upper = uppercase_checksum(rng, kind);
        cases.push(
            Case::new(format!("{kind} uppercase checksum"))
                .text("a=")
                .found(upper, kind, ChecksumInvalid)
                .text(" b\n"),
        );
        for cut in [1, 4, 7, 8] {
            let missing = sample::cut_off(rng, kind, cut);
            cases.push(
                Case::new(format!("{kind} checksum cut by {cut} at end"))
                    .text("token=")
                    .found(missing, kind, ChecksumMissing),
            );
            let missing = sample::cut_off(rng, kind, cut);
            cases.push(
                Case::new(format!(
                    "{kind} checksum cut by {cut}, line goes on"
                ))
                .text("token=")
                .found(missing, kind, ChecksumMissing)
                .text(" next=1\n"),
            );
        }
        let ends_like_prefix = checksum_ending_in_cf(rng, kind);
        cases.push(
            Case::new(format!("{kind} checksum ending in cf at end"))
                .text("token=")
                .found(ends_like_prefix, kind, ChecksumInvalid),
        );
        let short = format!("{p}{}", alphanumeric(rng, 30));
        cases.push(
            Case::new(format!("{kind} body cut off at end"))
                .text("token=")
                .text(short),
        );
        let body39 = format!("{p}{}", alphanumeric(rng, 39));
        cases.push(
            Case::new(format!("{kind} 39-character body"))
                .text("token=")
                .text(&body39)
                .text(" next\n"),
        );
        cases.push(
            Case::new(format!("{kind} 39-character body at end"))
                .text("token=")
                .text(&body39),
        );
        cases.push(
            Case::new(format!("{kind} prefix only"))
                .text(format!("{p}{p} {p}\n{p}")),
        );
        cases.push(
            Case::new(format!("{kind} repeated prefix first"))
                .text(format!("{p}{p}"))
                .found(cred(rng), kind, valid)
                .text("\n"),
        );
        cases.push(
            Case::new(format!("{kind} after partial prefix"))
                .text(&p[..p.len() - 2])
                .found(cred(rng), kind, valid)
                .text("\n"),
        );
    }
    let mut chain = Case::new("chain of look-alikes then user_token");
    for i in 0..4 {
        chain = chain.text(format!("cfut_{}", alphanumeric(rng, 39)));
        // Each look-alike's body ends with the `c` of the next prefix and
        // its checksum is the `f` after it.
        chain = chain.span_at(44 * i, 46, Kind::UserToken, ChecksumMissing);
    }
    let credential = sample::prefixed(rng, Kind::UserToken);
    cases.push(chain.found(credential, Kind::UserToken, ChecksumValid));
    cases.push(
        Case::new("cfut_cfut_ then a credential").text("cfut_cfut_").found(
            sample::prefixed(rng, Kind::UserToken),
            Kind::UserToken,
            ChecksumValid,
        ),
    );
    for first in PREFIXED {
        for second in PREFIXED {
            let a = sample::prefixed(rng, first);
            let b = sample::prefixed(rng, second);
            cases.push(
                Case::new(format!("{first} then {second} back to back"))
                    .found(a, first, ChecksumValid)
                    .found(b, second, ChecksumValid),
            );
            let a = sample::cut_off(rng, first, 8);
            let b = sample::prefixed(rng, second);
            cases.push(
                Case::new(format!("{first} without checksum then {second}"))
                    .found(a, first, ChecksumMissing)
                    .found(b, second, ChecksumValid),
            );
            let a = sample::cut_off(rng, first, 5);
            let b = sample::prefixed(rng, second);
            cases.push(
                Case::new(format!(
                    "{first} with 3 checksum digits then {second}"
                ))
                .found(a, first, ChecksumMissing)
                .found(b, second, ChecksumValid),
            );
            cases.push(look_alike_before(rng, first, second));
        }
    }
    cases
}

/// Returns a case with a 39-character body written straight before a
/// credential. The look-alike takes the first bytes of the credential as
/// the rest of its body, and both are redacted.
fn look_alike_before(rng: &mut StdRng, first: Kind, second: Kind) -> Case {
    let head = format!("{}{}", prefix(first), alphanumeric(rng, 39));
    let credential = sample::prefixed(rng, second);
    // The look-alike's 40th body character is the `c` of the next prefix,
    // and its checksum digits are the hex digits that follow it.
    let digits = credential.as_bytes()[1..]
        .iter()
        .take_while(|b| b.is_ascii_hexdigit())
        .count();
    let len = head.len() + 1 + digits;
    Case::new(format!("{first} 39-character look-alike then {second}"))
        .text(&head)
        .found(credential, second, Level::ChecksumValid)
        .span_at(0, len, first, Level::ChecksumMissing)
}

/// Cases for Origin CA keys.
fn origin_ca_cases(rng: &mut StdRng) -> Vec<Case> {
    let kind = Kind::OriginCaKey;
    let level = Level::Contextual;
    let key = |rng: &mut StdRng| sample::origin_ca_key(rng);
    let mut cases = vec![
        Case::new("origin_ca_key alone").found(key(rng), kind, level),
        Case::new("origin_ca_key at start")
            .found(key(rng), kind, level)
            .text(" x\n"),
        Case::new("origin_ca_key at end").text("key: ").found(
            key(rng),
            kind,
            level,
        ),
        Case::new("origin_ca_key between x and letters")
            .text("x")
            .found(key(rng), kind, level)
            .text("yz\n"),
        Case::new("origin_ca_key followed by hex")
            .text("\"")
            .found(key(rng), kind, level)
            .text("abc0\"\n"),
        Case::new("origin_ca_key back to back")
            .found(key(rng), kind, level)
            .found(key(rng), kind, level)
            .text("\r\n"),
    ];

    let whole = key(rng);
    cases.push(
        Case::new("origin_ca_key 145 hex").text(&whole[..175]).text("\n"),
    );
    cases.push(Case::new("origin_ca_key cut off at end").text(&whole[..120]));
    let upper = format!("v1.0-{}", whole[5..].to_uppercase());
    cases.push(Case::new("origin_ca_key uppercase hex").text(upper));
    let no_dash = format!("{}0{}", &whole[..29], &whole[30..]);
    cases.push(Case::new("origin_ca_key without dash").text(no_dash));

    // The key's last three hex digits begin a `cfat_` prefix.
    let head = &key(rng)[..173];
    let credential = sample::prefixed(rng, Kind::AccountToken);
    cases.push(
        Case::new("origin_ca_key ending in a credential's start")
            .text(head)
            .found(credential, Kind::AccountToken, Level::ChecksumValid)
            .span_at(0, 176, kind, level)
            .text("\n"),
    );
    cases
}

/// Cases for the legacy kinds, after a keyword.
fn legacy_cases(rng: &mut StdRng) -> Vec<Case> {
    let token = Kind::LegacyToken;
    let key = Kind::LegacyGlobalKey;
    let level = Level::Contextual;
    let mut cases = vec![
        Case::new("legacy_token after env keyword")
            .text("CF_API_TOKEN=")
            .found(sample::legacy_token(rng), token, level)
            .text("\n"),
        Case::new("legacy_token at end")
            .text("export CLOUDFLARE_API_TOKEN=")
            .found(sample::legacy_token(rng), token, level),
        Case::new("legacy_global_key in header")
            .text("X-Auth-Key: ")
            .found(sample::legacy_global_key(rng), key, level)
            .text("\r\n"),
        Case::new("legacy_global_key at end").text("x-auth-key:").found(
            sample::legacy_global_key(rng),
            key,
            level,
        ),
        Case::new("legacy kinds on one line")
            .text("cloudflare token=")
            .found(sample::legacy_token(rng), token, level)
            .text(" key=")
            .found(sample::legacy_global_key(rng), key, level)
            .text("\n"),
        Case::new("prefixed credential after keyword")
            .text("CF_API_TOKEN=")
            .found(
                sample::prefixed(rng, Kind::UserToken),
                Kind::UserToken,
                Level::ChecksumValid,
            )
            .text("\n"),
        Case::new("legacy_token among NUL bytes")
            .text(b"\0CF_TOKEN=\xff")
            .found(sample::legacy_token(rng), token, level)
            .text(b"\0\n"),
    ];
    // A token whose last two characters begin an Origin CA key: the run
    // is 40 characters long, so it is read as a legacy token too.
    let head = &sample::legacy_token(rng)[..38];
    let origin = sample::origin_ca_key(rng);
    cases.push(
        Case::new("legacy_token run ending in an Origin CA key's start")
            .text("cf_api_token: ")
            .text(head)
            .found(origin, Kind::OriginCaKey, level)
            .span_at(14, 40, token, level)
            .text(" ok\n"),
    );
    cases
}

fn cases() -> Vec<Case> {
    let mut rng = common::rng(0x0c45_ca5e);
    let mut cases = prefixed_cases(&mut rng);
    cases.extend(origin_ca_cases(&mut rng));
    cases.extend(legacy_cases(&mut rng));
    cases
}

fn spans_of(findings: &[Finding]) -> Vec<Expected> {
    findings
        .iter()
        .map(|f| Expected {
            offset: f.offset,
            len: f.len,
            kind: f.kind,
            level: f.level,
        })
        .collect()
}

/// Checks one feed of a case, output and findings, and returns what is
/// wrong with it.
fn check(case: &Case, result: &Collect, feed: &str) -> Vec<String> {
    let name = format!("{} ({feed})", case.name);
    let mut failures = Vec::new();
    if let Some(difference) =
        common::difference(&result.out, &case.expected_output())
    {
        failures.push(format!("{name}: {difference}"));
    }
    let spans = spans_of(&result.findings);
    if spans != case.expected {
        failures.push(format!(
            "{name}: findings {spans:?}, expected {:?}",
            case.expected
        ));
    }
    for finding in &result.findings {
        let before = &case.input[..finding.offset as usize];
        let line = before.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        if finding.line != line {
            failures.push(format!(
                "{name}: finding at {} on line {}, expected {line}",
                finding.offset, finding.line
            ));
        }
        if !finding.redacted {
            failures.push(format!("{name}: finding not redacted"));
        }
    }
    failures
}

/// Panics with the first failures, one per line, unless there are none.
fn assert_no_failures(failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let shown: Vec<&str> =
        failures.iter().take(40).map(String::as_str).collect();
    panic!("{} failures:\n{}", failures.len(), shown.join("\n"));
}

#[test]
fn hard_cases_fed_whole() {
    let scanner = common::default_scanner();
    let mut failures = Vec::new();
    for case in cases() {
        let mut out = Vec::new();
        let findings = scanner.redact(&case.input, &mut out);
        let result = Collect { out, findings };
        let mut found = check(&case, &result, "whole");
        // Scanner::redact counts no lines.
        found.retain(|failure| !failure.contains(" on line "));
        failures.extend(found);
    }
    assert_no_failures(&failures);
}

#[test]
fn hard_cases_split_everywhere() {
    let scanner = common::default_scanner();
    let mut failures = Vec::new();
    for case in cases() {
        for at in 0..=case.input.len() {
            let result = redact_split(&scanner, &case.input, at);
            failures.extend(check(&case, &result, &format!("split at {at}")));
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn hard_cases_one_byte_chunks() {
    let scanner = common::default_scanner();
    let mut failures = Vec::new();
    for case in cases() {
        let result = redact_chunked(&scanner, &case.input, &[1]);
        failures.extend(check(&case, &result, "1-byte chunks"));
    }
    assert_no_failures(&failures);
}

#[test]
fn hard_cases_odd_chunk_sizes() {
    let scanner = common::default_scanner();
    let mut failures = Vec::new();
    for case in cases() {
        for sizes in [&[2][..], &[3, 5], &[7, 1, 64], &[53, 1]] {
            let result = redact_chunked(&scanner, &case.input, sizes);
            let feed = format!("chunks of {sizes:?}");
            failures.extend(check(&case, &result, &feed));
        }
    }
    assert_no_failures(&failures);
}

/// Long clean text around a credential, so a split near the credential
/// leaves a chunk far larger than what the redactor holds back.
#[test]
fn credential_before_large_chunk() {
    let scanner = common::default_scanner();
    let mut rng = common::rng(7);
    let padding = "lorem ipsum dolor sit amet 0123 ".repeat(160);
    let mut failures = Vec::new();
    for (kind, context, credential) in common::every_kind(11) {
        let level = match kind {
            Kind::LegacyToken | Kind::LegacyGlobalKey | Kind::OriginCaKey => {
                Level::Contextual
            }
            _ => Level::ChecksumValid,
        };
        let case = Case::new(format!("{kind} inside long text"))
            .text(&padding)
            .text(context)
            .found(&credential, kind, level)
            .text(" ")
            .text(&padding);
        let start = padding.len();
        let end = start + context.len() + credential.len() + 1;
        for at in start..=end {
            let result = redact_split(&scanner, &case.input, at);
            failures.extend(check(&case, &result, &format!("split at {at}")));
        }
        let sizes = [rng.random_range(1..300), 5000];
        let result = redact_chunked(&scanner, &case.input, &sizes);
        failures.extend(check(
            &case,
            &result,
            &format!("chunks of {sizes:?}"),
        ));
    }
    assert_no_failures(&failures);
}

/// A line that ends with a newline is written out by the push that
/// delivers the newline, whatever the line holds.
#[test]
fn newline_releases_every_byte() {
    let scanner = common::default_scanner();
    for case in cases() {
        let mut redactor = scanner.redactor();
        let mut sink = Collect::default();
        let mut pushed = 0;
        for line in case.input.split_inclusive(|b| *b == b'\n') {
            let Ok(()) = redactor.push(line, &mut sink);
            pushed += line.len() as u64;
            if line.ends_with(b"\n") {
                assert_eq!(
                    redactor.settled_offset(),
                    pushed,
                    "{}: bytes held back after a newline",
                    case.name
                );
            }
        }
    }
}

/// Scanners with some kinds switched off leave those kinds in place.
#[test]
fn kinds_switched_off_untouched() {
    for (kind, context, credential) in common::every_kind(3) {
        let mut builder = Scanner::builder();
        let mut kinds = cfscrub::engine::KindSet::all();
        kinds.remove(kind);
        let scanner = Arc::new(builder.kinds(kinds).build().unwrap());
        let input = format!("{context}{credential}\n");
        let mut out = Vec::new();
        let findings = scanner.redact(input.as_bytes(), &mut out);
        assert!(findings.is_empty(), "{kind} switched off but found");
        assert_same(&out, input.as_bytes(), &format!("{kind} switched off"));
    }
}
