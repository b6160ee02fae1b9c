//! Generated credentials of every kind, for the demo, tests and
//! benchmarks.
//!
//! Each one is made at run time from random bytes, so no credential that
//! passes its checksum is ever written into the source tree, where
//! credential scanners would report it as a leak. They belong to nobody.

use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};

use super::confirm::{BODY_LEN, checksum_hex};
use super::kind::Kind;

const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";
const TOKEN_BYTES: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// Returns a random body of a prefixed credential: 40 alphanumerics.
pub fn body<R: Rng + ?Sized>(rng: &mut R) -> String {
    Alphanumeric.sample_string(rng, BODY_LEN)
}

/// Returns a prefixed credential of `kind` (`cfut_`, `cfat_` or `cfk_`)
/// with a valid CRC-32.
///
/// # Panics
///
/// Panics if `kind` is not one of the three prefixed kinds.
pub fn prefixed<R: Rng + ?Sized>(rng: &mut R, kind: Kind) -> String {
    let prefix = match kind {
        Kind::UserToken | Kind::AccountToken | Kind::GlobalKey => {
            kind.prefix().expect("prefixed kinds have a prefix")
        }
        _ => panic!("{kind} has no checksum"),
    };
    let body = body(rng);
    let checksum = checksum_hex(body.as_bytes());
    let mut out = String::from_utf8(prefix.to_vec()).expect("ASCII prefix");
    out.push_str(&body);
    out.push_str(std::str::from_utf8(&checksum).expect("hex is ASCII"));
    out
}

/// Returns a prefixed credential whose checksum is wrong.
pub fn wrong_checksum<R: Rng + ?Sized>(rng: &mut R, kind: Kind) -> String {
    let mut credential = prefixed(rng, kind).into_bytes();
    let last = credential.len() - 1;
    credential[last] = if credential[last] == b'0' { b'1' } else { b'0' };
    String::from_utf8(credential).expect("ASCII credential")
}

/// Returns a prefixed credential cut `cut` bytes before its end, as a
/// logger that truncates lines leaves it (`cut` at most 8 keeps the body).
pub fn cut_off<R: Rng + ?Sized>(
    rng: &mut R,
    kind: Kind,
    cut: usize,
) -> String {
    let mut credential = prefixed(rng, kind);
    credential.truncate(credential.len() - cut);
    credential
}

/// Returns a random legacy API token: 40 of `[A-Za-z0-9_-]` with at least
/// one uppercase letter and one digit, as real ones have.
pub fn legacy_token<R: Rng + ?Sized>(rng: &mut R) -> String {
    loop {
        let token: String = (0..40)
            .map(|_| {
                TOKEN_BYTES[rng.random_range(0..TOKEN_BYTES.len())] as char
            })
            .collect();
        let upper = token.bytes().any(|b| b.is_ascii_uppercase());
        let digit = token.bytes().any(|b| b.is_ascii_digit());
        if upper && digit {
            return token;
        }
    }
}

/// Returns a random legacy Global API key of 37 lowercase hex digits, with
/// at least one letter and one digit.
pub fn legacy_global_key<R: Rng + ?Sized>(rng: &mut R) -> String {
    loop {
        let key = hex(rng, 37);
        let letter = key.bytes().any(|b| b.is_ascii_alphabetic());
        let digit = key.bytes().any(|b| b.is_ascii_digit());
        if letter && digit {
            return key;
        }
    }
}

/// Returns a random Origin CA key.
pub fn origin_ca_key<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("v1.0-{}-{}", hex(rng, 24), hex(rng, 146))
}

/// Returns `len` random lowercase hex digits.
pub fn hex<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len).map(|_| LOWER_HEX[rng.random_range(0..16)] as char).collect()
}

/// Returns a credential of `kind` that the scanner confirms at its
/// strongest level; legacy kinds need a keyword before them to be found.
pub fn credential<R: Rng + ?Sized>(rng: &mut R, kind: Kind) -> String {
    match kind {
        Kind::UserToken | Kind::AccountToken | Kind::GlobalKey => {
            prefixed(rng, kind)
        }
        Kind::LegacyToken => legacy_token(rng),
        Kind::LegacyGlobalKey => legacy_global_key(rng),
        Kind::OriginCaKey => origin_ca_key(rng),
    }
}
