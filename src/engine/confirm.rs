//! The rule that confirms each kind, applied to the bytes at a candidate.
//!
//! Every check works on a buffer that may end before the candidate does.
//! When it cannot decide yet, it returns [`Check::NeedMore`] unless the
//! buffer is the end of the input, so the streaming redactor holds those
//! bytes back and tries again once more have arrived.

use super::kind::{Kind, Level};

/// Characters of a prefixed credential's body.
pub(crate) const BODY_LEN: usize = 40;
/// Hex digits of the CRC-32 that ends a prefixed credential.
pub(crate) const CHECKSUM_LEN: usize = 8;
/// Length of a legacy API token.
pub(crate) const LEGACY_TOKEN_LEN: usize = 40;
/// Shortest and longest legacy Global API key.
pub(crate) const LEGACY_KEY_LEN: std::ops::RangeInclusive<usize> = 37..=45;
/// Length of a SHA-1 in hex, as in a git commit id. A hex run of exactly
/// this length is never taken for a legacy Global API key.
const SHA1_HEX_LEN: usize = 40;
/// Hex digits in the first and second group of an Origin CA key.
const ORIGIN_CA_GROUPS: (usize, usize) = (24, 146);
/// Length of an Origin CA key, prefix included.
pub(crate) const ORIGIN_CA_LEN: usize =
    5 + ORIGIN_CA_GROUPS.0 + 1 + ORIGIN_CA_GROUPS.1;

/// The outcome of a check at one candidate position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// The bytes here are not this kind.
    NoMatch,
    /// The buffer ends before the check can decide.
    NeedMore,
    /// A credential of `len` bytes starts here.
    Found { len: usize, level: Level },
}

/// Reports whether `byte` may appear in a prefixed credential's body.
fn is_body_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
}

/// Reports whether `byte` may appear in a legacy token.
pub(crate) fn is_token_byte(byte: u8) -> bool {
    TOKEN_BYTES[usize::from(byte)]
}

/// Which bytes are token characters: one load per byte in the loops that
/// walk a context window, in place of four comparisons.
static TOKEN_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        byte += 1;
    }
    table
};

fn is_lower_hex(byte: u8) -> bool {
    byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)
}

/// Writes the CRC-32 of `body` as 8 lowercase hex digits.
pub fn checksum_hex(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let crc = crc32fast::hash(body);
    let mut out = [0u8; CHECKSUM_LEN];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 28 - 4 * i;
        *slot = HEX[((crc >> shift) & 0xf) as usize];
    }
    out
}

/// How the bytes at a position relate to the prefixed formats' prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrefixAt {
    No,
    /// The buffer ends inside what could still become a prefix.
    Partial,
    Yes,
}

const PREFIXES: [&[u8]; 3] = [b"cfut_", b"cfat_", b"cfk_"];

fn prefix_at(bytes: &[u8]) -> PrefixAt {
    let mut partial = false;
    for prefix in PREFIXES {
        if bytes.starts_with(prefix) {
            return PrefixAt::Yes;
        }
        if bytes.len() < prefix.len() && prefix.starts_with(bytes) {
            partial = true;
        }
    }
    if partial { PrefixAt::Partial } else { PrefixAt::No }
}

/// Checks a prefixed credential (`cfut_`, `cfat_`, `cfk_`) whose prefix of
/// `prefix_len` bytes starts `bytes`.
///
/// The body is exactly 40 alphanumeric characters. Up to 8 hex digits may
/// follow: all 8 make the full shape, valid when they are the lowercase
/// CRC-32 of the body. Fewer mean the checksum is missing or cut off, and
/// the span covers the digits that are there. Nothing is required after
/// the span, so letters may follow a credential directly.
pub(crate) fn check_prefixed(
    bytes: &[u8],
    prefix_len: usize,
    at_end: bool,
) -> Check {
    let after_prefix = &bytes[prefix_len..];
    let body_len =
        after_prefix.iter().take(BODY_LEN).take_while(|b| is_body_byte(**b));
    let body_len = body_len.count();
    if body_len < BODY_LEN {
        let cut_off = body_len == after_prefix.len();
        return if cut_off && !at_end {
            Check::NeedMore
        } else {
            Check::NoMatch
        };
    }
    let body = &after_prefix[..BODY_LEN];
    let tail = &after_prefix[BODY_LEN..];
    if tail.len() < CHECKSUM_LEN && !at_end {
        let hex_so_far = tail.iter().all(|b| b.is_ascii_hexdigit());
        if hex_so_far {
            return Check::NeedMore;
        }
    }
    let full = tail.len() >= CHECKSUM_LEN
        && tail[..CHECKSUM_LEN].iter().all(|b| b.is_ascii_hexdigit());
    if full {
        let level = if tail[..CHECKSUM_LEN] == checksum_hex(body) {
            Level::ChecksumValid
        } else {
            Level::ChecksumInvalid
        };
        // A valid checksum wins over any other reading of those digits.
        // An invalid one may be the start of the next credential written
        // straight after a cut-off one, so that reading is tried below.
        if level == Level::ChecksumValid || !contains_prefix(tail, at_end) {
            let len = prefix_len + BODY_LEN + CHECKSUM_LEN;
            return Check::Found { len, level };
        }
    }
    let mut digits = 0;
    while digits < CHECKSUM_LEN && digits < tail.len() {
        match prefix_at(&tail[digits..]) {
            PrefixAt::Yes => break,
            PrefixAt::Partial if !at_end => return Check::NeedMore,
            PrefixAt::Partial | PrefixAt::No => {}
        }
        if !tail[digits].is_ascii_hexdigit() {
            break;
        }
        digits += 1;
    }
    let len = prefix_len + BODY_LEN + digits;
    Check::Found { len, level: Level::ChecksumMissing }
}

/// Reports whether a prefix starts within the checksum digits of `tail`,
/// or may start there once more bytes arrive. At the end of the input a
/// prefix cut off by the end is no prefix.
fn contains_prefix(tail: &[u8], at_end: bool) -> bool {
    (0..CHECKSUM_LEN).any(|i| match prefix_at(&tail[i..]) {
        PrefixAt::Yes => true,
        PrefixAt::Partial => !at_end,
        PrefixAt::No => false,
    })
}

/// Checks an Origin CA key at the start of `bytes`, which begins with
/// `v1.0-`.
pub(crate) fn check_origin_ca(bytes: &[u8], at_end: bool) -> Check {
    let (first, second) = ORIGIN_CA_GROUPS;
    let dash = 5 + first;
    let available = bytes.len().min(ORIGIN_CA_LEN);
    for (i, &byte) in bytes[..available].iter().enumerate().skip(5) {
        let fits = if i == dash { byte == b'-' } else { is_lower_hex(byte) };
        if !fits {
            return Check::NoMatch;
        }
    }
    debug_assert_eq!(ORIGIN_CA_LEN, dash + 1 + second);
    if available < ORIGIN_CA_LEN {
        return if at_end { Check::NoMatch } else { Check::NeedMore };
    }
    Check::Found { len: ORIGIN_CA_LEN, level: Level::Contextual }
}

/// Classifies a whole run of token characters that starts inside a
/// keyword's context window.
///
/// The run must be delimited on both sides by a byte that is not a token
/// character (or the start or end of the input): a legacy credential has no
/// prefix, so its boundaries are what separates it from a longer id.
pub(crate) fn classify_legacy_run(run: &[u8]) -> Option<Kind> {
    let mut lower = false;
    let mut upper = false;
    let mut digit = false;
    let mut hex_only = true;
    for &byte in run {
        lower |= byte.is_ascii_lowercase();
        upper |= byte.is_ascii_uppercase();
        digit |= byte.is_ascii_digit();
        hex_only &= is_lower_hex(byte);
    }
    if hex_only {
        let key_len =
            LEGACY_KEY_LEN.contains(&run.len()) && run.len() != SHA1_HEX_LEN;
        return (key_len && lower && digit).then_some(Kind::LegacyGlobalKey);
    }
    // A random 40-character token mixes at least two of lowercase,
    // uppercase and digits; an identifier or a word usually does not.
    // A request id such as OpenStack's `req-` and a UUID is 40 characters
    // too, but real tokens hold a UUID's shape with odds near 2^-100.
    let classes = usize::from(lower) + usize::from(upper) + usize::from(digit);
    (run.len() == LEGACY_TOKEN_LEN && classes >= 2 && !contains_uuid(run))
        .then_some(Kind::LegacyToken)
}

/// Length of a UUID in its 8-4-4-4-12 text form.
const UUID_LEN: usize = 36;

/// Reports whether `run` contains a UUID in its 8-4-4-4-12 hex form, in
/// either case.
fn contains_uuid(run: &[u8]) -> bool {
    run.windows(UUID_LEN).any(|window| {
        window.iter().enumerate().all(|(i, byte)| match i {
            8 | 13 | 18 | 23 => *byte == b'-',
            _ => byte.is_ascii_hexdigit(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Vec<u8> {
        (0..BODY_LEN).map(|i| b"aZ09xQ"[i % 6]).collect()
    }

    fn prefixed(prefix: &[u8], checksum: &[u8]) -> Vec<u8> {
        let mut out = prefix.to_vec();
        out.extend(body());
        out.extend(checksum);
        out
    }

    #[test]
    fn checksum_hex_zero_padded_lowercase() {
        // CRC-32 of the empty input is 0, of "a" is 0xe8b7be43.
        assert_eq!(&checksum_hex(b""), b"00000000");
        assert_eq!(&checksum_hex(b"a"), b"e8b7be43");
    }

    #[test]
    fn prefixed_valid_checksum() {
        let crc = checksum_hex(&body());
        let cred = prefixed(b"cfut_", &crc);
        let found = check_prefixed(&cred, 5, true);
        assert_eq!(
            found,
            Check::Found { len: 53, level: Level::ChecksumValid }
        );
    }

    #[test]
    fn prefixed_wrong_checksum() {
        let cred = prefixed(b"cfat_", b"00000000");
        let found = check_prefixed(&cred, 5, true);
        let expected = Check::Found { len: 53, level: Level::ChecksumInvalid };
        assert_eq!(found, expected);
    }

    /// Returns a body whose CRC-32 has at least one hex letter, so that
    /// its uppercase form differs from the lowercase one.
    fn body_with_letter_in_checksum() -> Vec<u8> {
        let mut body = body();
        for byte in b'a'..=b'z' {
            body[0] = byte;
            if checksum_hex(&body).iter().any(u8::is_ascii_alphabetic) {
                return body;
            }
        }
        unreachable!("some CRC-32 of 26 bodies has a hex letter")
    }

    #[test]
    fn prefixed_uppercase_checksum_is_invalid() {
        let body = body_with_letter_in_checksum();
        let mut cred = b"cfk_".to_vec();
        cred.extend(&body);
        cred.extend(checksum_hex(&body).to_ascii_uppercase());
        let found = check_prefixed(&cred, 4, true);
        let expected = Check::Found { len: 52, level: Level::ChecksumInvalid };
        assert_eq!(found, expected);
    }

    /// Every prefix at every level, with a byte after the span that ends
    /// it and at the end of the input.
    #[test]
    fn every_prefix_at_every_level() {
        let crc = checksum_hex(&body());
        for prefix in PREFIXES {
            let p = prefix.len();
            let mut cases = vec![
                (crc.to_vec(), p + 48, Level::ChecksumValid),
                (b"00000000".to_vec(), p + 48, Level::ChecksumInvalid),
            ];
            for digits in 0..CHECKSUM_LEN {
                let cut = crc[..digits].to_vec();
                cases.push((cut, p + 40 + digits, Level::ChecksumMissing));
            }
            for (checksum, len, level) in cases {
                let cred = prefixed(prefix, &checksum);
                let name = format!("{:?} {level}", prefix);
                let found = Check::Found { len, level };
                assert_eq!(check_prefixed(&cred, p, true), found, "{name}");
                let mut line = cred.clone();
                line.extend(b" next");
                assert_eq!(check_prefixed(&line, p, false), found, "{name}");
            }
        }
    }

    #[test]
    fn prefixed_letters_after_span() {
        let crc = checksum_hex(&body());
        let mut cred = prefixed(b"cfat_", &crc);
        cred.extend(b"xyz");
        let found = check_prefixed(&cred, 5, false);
        assert_eq!(
            found,
            Check::Found { len: 53, level: Level::ChecksumValid }
        );
        let mut missing = prefixed(b"cfat_", b"");
        missing.extend(b"xyz");
        let found = check_prefixed(&missing, 5, false);
        let expected = Check::Found { len: 45, level: Level::ChecksumMissing };
        assert_eq!(found, expected);
    }

    #[test]
    fn invalid_checksum_ending_like_prefix_at_end() {
        // Eight hex digits whose last two could begin `cfut_`: at the end
        // of the input they are a checksum, not the start of a prefix.
        let cred = prefixed(b"cfut_", b"012345cf");
        let found = check_prefixed(&cred, 5, true);
        let expected = Check::Found { len: 53, level: Level::ChecksumInvalid };
        assert_eq!(found, expected);
        assert_eq!(check_prefixed(&cred, 5, false), Check::NeedMore);
    }

    #[test]
    fn prefixed_cut_off_checksum() {
        let cred = prefixed(b"cfut_", b"a8f");
        let found = check_prefixed(&cred, 5, true);
        let expected = Check::Found { len: 48, level: Level::ChecksumMissing };
        assert_eq!(found, expected);
        assert_eq!(check_prefixed(&cred, 5, false), Check::NeedMore);
    }

    #[test]
    fn prefixed_short_body_is_no_match() {
        let mut cred = b"cfut_".to_vec();
        cred.extend(&body()[..39]);
        cred.push(b' ');
        assert_eq!(check_prefixed(&cred, 5, false), Check::NoMatch);
        cred.pop();
        assert_eq!(check_prefixed(&cred, 5, false), Check::NeedMore);
        assert_eq!(check_prefixed(&cred, 5, true), Check::NoMatch);
    }

    #[test]
    fn prefixed_missing_checksum_before_next_prefix() {
        let mut cred = prefixed(b"cfut_", b"");
        cred.extend(prefixed(b"cfat_", b"00000000"));
        let found = check_prefixed(&cred, 5, true);
        let expected = Check::Found { len: 45, level: Level::ChecksumMissing };
        assert_eq!(found, expected);
    }

    fn origin_ca(second: &[u8]) -> Vec<u8> {
        let mut key = b"v1.0-".to_vec();
        key.extend((0..24).map(|i| b"0123456789abcdef"[i % 16]));
        key.push(b'-');
        key.extend(second);
        key
    }

    #[test]
    fn origin_ca_key_full_shape() {
        let hex: Vec<u8> =
            (0..146).map(|i| b"fedcba9876543210"[i % 16]).collect();
        let key = origin_ca(&hex);
        let found =
            Check::Found { len: ORIGIN_CA_LEN, level: Level::Contextual };
        assert_eq!(check_origin_ca(&key, true), found);
        let mut longer = key.clone();
        longer.extend(b"abc");
        assert_eq!(check_origin_ca(&longer, false), found);
    }

    #[test]
    fn origin_ca_key_short_or_uppercase() {
        let hex: Vec<u8> =
            (0..146).map(|i| b"0123456789abcdef"[i % 16]).collect();
        let short = origin_ca(&hex[..145]);
        assert_eq!(check_origin_ca(&short, true), Check::NoMatch);
        assert_eq!(check_origin_ca(&short, false), Check::NeedMore);
        let mut ended = short.clone();
        ended.push(b' ');
        assert_eq!(check_origin_ca(&ended, false), Check::NoMatch);
        let upper = origin_ca(&hex.to_ascii_uppercase());
        assert_eq!(check_origin_ca(&upper, true), Check::NoMatch);
    }

    #[test]
    fn legacy_runs_classified() {
        let token = b"Ab3dEf6hIj9lMn2pQr5tUv8xYz1_Cd4-Gh7jKl0n";
        assert_eq!(token.len(), 40);
        assert_eq!(classify_legacy_run(token), Some(Kind::LegacyToken));
        let sha = b"4f2a9c0d3b8e7f6a5c4d3e2f1a0b9c8d7e6f5a4b";
        assert_eq!(classify_legacy_run(sha), None);
        let key = b"1e4f2a9c0d3b8e7f6a5c4d3e2f1a0b9c8d7e6";
        assert_eq!(key.len(), 37);
        assert_eq!(classify_legacy_run(key), Some(Kind::LegacyGlobalKey));
        assert_eq!(classify_legacy_run(&key[..32]), None);
        let request_id = b"req-38101a0b-2096-447d-96ea-a692162415ae";
        assert_eq!(request_id.len(), 40);
        assert_eq!(classify_legacy_run(request_id), None);
        let word = b"cloudflare_worker_deployment_status_flag";
        assert_eq!(word.len(), 40);
        assert_eq!(classify_legacy_run(word), None);
    }
}
