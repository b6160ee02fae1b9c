//! Credential kinds, confirmation levels and sets of kinds.

use std::fmt;

/// A kind of Cloudflare credential that the engine detects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// User API token, prefix `cfut_`.
    UserToken,
    /// Account API token, prefix `cfat_`.
    AccountToken,
    /// Global API key in the prefixed format, prefix `cfk_`.
    GlobalKey,
    /// API token issued before 2026: 40 characters of `[A-Za-z0-9_-]`,
    /// found only after a Cloudflare keyword.
    LegacyToken,
    /// Global API key issued before 2026: 37 to 45 lowercase hex digits,
    /// found only after a Cloudflare keyword or an `X-Auth-Key` header.
    LegacyGlobalKey,
    /// Origin CA key: `v1.0-`, 24 hex digits, `-`, 146 hex digits.
    OriginCaKey,
}

impl Kind {
    /// Every kind, in the order of the command line's help text.
    pub const ALL: [Kind; 6] = [
        Kind::UserToken,
        Kind::AccountToken,
        Kind::GlobalKey,
        Kind::LegacyToken,
        Kind::LegacyGlobalKey,
        Kind::OriginCaKey,
    ];

    /// Returns the stable identifier used on the command line, in findings
    /// and as a metric label value.
    pub fn id(self) -> &'static str {
        match self {
            Kind::UserToken => "user_token",
            Kind::AccountToken => "account_token",
            Kind::GlobalKey => "global_key",
            Kind::LegacyToken => "legacy_token",
            Kind::LegacyGlobalKey => "legacy_global_key",
            Kind::OriginCaKey => "origin_ca_key",
        }
    }

    /// Returns a short human description of the kind.
    pub fn description(self) -> &'static str {
        match self {
            Kind::UserToken => "user API token (cfut_ prefix)",
            Kind::AccountToken => "account API token (cfat_ prefix)",
            Kind::GlobalKey => "Global API key (cfk_ prefix)",
            Kind::LegacyToken => "API token issued before 2026 (by context)",
            Kind::LegacyGlobalKey => {
                "Global API key issued before 2026 (by context)"
            }
            Kind::OriginCaKey => "Origin CA key (v1.0- prefix)",
        }
    }

    /// Parses an identifier as returned by [`Kind::id`].
    pub fn from_id(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.id() == id)
    }

    /// Returns the literal prefix that identifies this kind, if it has one.
    pub fn prefix(self) -> Option<&'static [u8]> {
        match self {
            Kind::UserToken => Some(b"cfut_"),
            Kind::AccountToken => Some(b"cfat_"),
            Kind::GlobalKey => Some(b"cfk_"),
            Kind::OriginCaKey => Some(b"v1.0-"),
            Kind::LegacyToken | Kind::LegacyGlobalKey => None,
        }
    }

    /// Reports whether this kind is only found after a context keyword.
    pub fn is_contextual(self) -> bool {
        matches!(self, Kind::LegacyToken | Kind::LegacyGlobalKey)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// How strongly a finding is confirmed, from weakest to strongest.
///
/// The order is meaningful: `--min-level` redacts a finding when its level
/// is at least the one given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Prefix, body and 8 hex digits, but the CRC-32 does not match.
    ChecksumInvalid,
    /// No prefix with a checksum: found by a keyword before it on the same
    /// line, or by the Origin CA key's fixed shape.
    Contextual,
    /// Prefix and 40 body characters, with the checksum absent or cut off.
    ChecksumMissing,
    /// Full shape and a matching CRC-32: a confirmed credential.
    ChecksumValid,
}

impl Level {
    /// Every level, weakest first.
    pub const ALL: [Level; 4] = [
        Level::ChecksumInvalid,
        Level::Contextual,
        Level::ChecksumMissing,
        Level::ChecksumValid,
    ];

    /// Returns the stable identifier used on the command line, in findings
    /// and as a metric label value.
    pub fn id(self) -> &'static str {
        match self {
            Level::ChecksumInvalid => "checksum_invalid",
            Level::Contextual => "contextual",
            Level::ChecksumMissing => "checksum_missing",
            Level::ChecksumValid => "checksum_valid",
        }
    }

    /// Parses an identifier as returned by [`Level::id`].
    pub fn from_id(id: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.id() == id)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A set of kinds, for switching detection of each kind on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KindSet(u8);

impl KindSet {
    /// The set of every kind.
    pub fn all() -> KindSet {
        Kind::ALL.into_iter().collect()
    }

    /// The empty set.
    pub fn empty() -> KindSet {
        KindSet(0)
    }

    /// Reports whether `kind` is in the set.
    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    /// Adds `kind` to the set.
    pub fn insert(&mut self, kind: Kind) {
        self.0 |= kind.bit();
    }

    /// Removes `kind` from the set.
    pub fn remove(&mut self, kind: Kind) {
        self.0 &= !kind.bit();
    }

    /// Reports whether the set has no kind.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Iterates over the kinds in the set, in [`Kind::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Kind> {
        Kind::ALL.into_iter().filter(move |kind| self.contains(*kind))
    }
}

impl Default for KindSet {
    fn default() -> KindSet {
        KindSet::all()
    }
}

impl FromIterator<Kind> for KindSet {
    fn from_iter<I: IntoIterator<Item = Kind>>(iter: I) -> KindSet {
        let mut set = KindSet::empty();
        for kind in iter {
            set.insert(kind);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_id(kind.id()), Some(kind));
        }
        for level in Level::ALL {
            assert_eq!(Level::from_id(level.id()), Some(level));
        }
        assert_eq!(Kind::from_id("cfut"), None);
    }

    #[test]
    fn levels_ordered_by_confidence() {
        assert!(Level::ChecksumInvalid < Level::Contextual);
        assert!(Level::Contextual < Level::ChecksumMissing);
        assert!(Level::ChecksumMissing < Level::ChecksumValid);
    }

    #[test]
    fn kind_set_insert_remove() {
        let mut set = KindSet::empty();
        assert!(set.is_empty());
        set.insert(Kind::LegacyToken);
        assert!(set.contains(Kind::LegacyToken));
        assert!(!set.contains(Kind::UserToken));
        set.remove(Kind::LegacyToken);
        assert!(set.is_empty());
        assert_eq!(KindSet::all().iter().count(), Kind::ALL.len());
    }
}
