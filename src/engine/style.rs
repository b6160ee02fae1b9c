//! What a detected span is replaced with.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::kind::Kind;

/// Bytes of SHA-256 kept in a fingerprint: 48 bits, 12 hex digits.
const FINGERPRINT_BYTES: usize = 6;

/// A short hash of a credential: the first 12 hex digits of the SHA-256 of
/// its bytes, as `printf %s "$TOKEN" | sha256sum | cut -c1-12` prints it.
///
/// The owner of a credential can match it against their own without anyone
/// seeing the secret; 48 bits are too few to search for the credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; FINGERPRINT_BYTES]);

impl Fingerprint {
    /// Computes the fingerprint of `credential`.
    pub fn of(credential: &[u8]) -> Fingerprint {
        let digest = Sha256::digest(credential);
        let mut bytes = [0u8; FINGERPRINT_BYTES];
        bytes.copy_from_slice(&digest[..FINGERPRINT_BYTES]);
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// How a detected credential is replaced. No replacement is longer than
/// the credential, so a redacted record never outgrows the original.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    /// `[REDACTED:user_token]`: names the kind.
    #[default]
    Label,
    /// The prefix, if the kind has one, then `*` up to the same length, so
    /// columns stay aligned.
    Mask,
    /// The prefix, if the kind has one, then `[sha256:` and the 12 digits
    /// of the [`Fingerprint`] and `]`.
    Fingerprint,
}

impl Style {
    /// Every style, in the order of the help text.
    pub const ALL: [Style; 3] =
        [Style::Label, Style::Mask, Style::Fingerprint];

    /// Returns the identifier used on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Style::Label => "label",
            Style::Mask => "mask",
            Style::Fingerprint => "fingerprint",
        }
    }

    /// Appends to `out` the replacement of a span of `len` bytes that
    /// contains a credential of kind `kind` with `fingerprint`.
    pub(crate) fn write(
        self,
        kind: Kind,
        len: usize,
        fingerprint: Fingerprint,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        match self {
            Style::Label => {
                out.extend_from_slice(b"[REDACTED:");
                out.extend_from_slice(kind.id().as_bytes());
                out.push(b']');
            }
            Style::Mask => write_mask(kind, len, out),
            Style::Fingerprint => {
                out.extend_from_slice(kind.prefix().unwrap_or_default());
                out.extend_from_slice(b"[sha256:");
                out.extend_from_slice(fingerprint.to_string().as_bytes());
                out.push(b']');
            }
        }
        // Every kind's shortest credential (37 bytes) is longer than any
        // label or fingerprint, and so is a span cut short where an
        // overlapping one starts (38 bytes or more). The mask is the
        // fallback all the same.
        if out.len() - start > len {
            out.truncate(start);
            write_mask(kind, len, out);
        }
    }
}

fn write_mask(kind: Kind, len: usize, out: &mut Vec<u8>) {
    let prefix = kind.prefix().unwrap_or_default();
    let kept = prefix.len().min(len);
    out.extend_from_slice(&prefix[..kept]);
    out.resize(out.len() + len - kept, b'*');
}

impl fmt::Display for Style {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl FromStr for Style {
    type Err = String;

    fn from_str(id: &str) -> Result<Style, String> {
        Style::ALL.into_iter().find(|style| style.id() == id).ok_or_else(
            || {
                format!(
                    "invalid style {id:?}: expected label, mask or fingerprint"
                )
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHORTEST_SPAN: usize = 37;

    #[test]
    fn fingerprint_is_sha256_prefix() {
        // SHA-256 of "abc" starts with ba7816bf8f01.
        assert_eq!(Fingerprint::of(b"abc").to_string(), "ba7816bf8f01");
    }

    #[test]
    fn replacements_fit_shortest_span() {
        let credential = vec![b'x'; SHORTEST_SPAN];
        let fingerprint = Fingerprint::of(&credential);
        for style in Style::ALL {
            for kind in Kind::ALL {
                let mut out = Vec::new();
                style.write(kind, credential.len(), fingerprint, &mut out);
                assert!(out.len() <= SHORTEST_SPAN, "{style} {kind}");
                let mut masked = Vec::new();
                write_mask(kind, SHORTEST_SPAN, &mut masked);
                if style != Style::Mask {
                    assert_ne!(out, masked, "{style} {kind} fell back");
                }
            }
        }
    }

    #[test]
    fn mask_keeps_prefix_and_length() {
        let mut out = Vec::new();
        let credential = [b'a'; 53];
        let fingerprint = Fingerprint::of(&credential);
        Style::Mask.write(Kind::UserToken, 53, fingerprint, &mut out);
        assert_eq!(out.len(), 53);
        assert!(out.starts_with(b"cfut_*"));
        assert!(out[5..].iter().all(|b| *b == b'*'));
    }

    #[test]
    fn style_parses_ids() {
        assert_eq!("mask".parse::<Style>(), Ok(Style::Mask));
        assert!("stars".parse::<Style>().unwrap_err().contains("stars"));
    }
}
