//! The configured, compiled scanner that every source shares.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use super::confirm::ORIGIN_CA_LEN;
use super::kind::{KindSet, Level};
use super::prefilter::Prefilter;
use super::redactor::{Finding, Redactor};
use super::style::Style;

/// Keywords after which a legacy token or key is a finding. Matched
/// ASCII-case-insensitively, so `CF_API_TOKEN` and `cf_api_token` are one
/// keyword.
pub const DEFAULT_KEYWORDS: &[&str] = &[
    "cloudflare",
    "cloudflare_api_token",
    "cloudflare_api_key",
    "cf_api_token",
    "cf_api_key",
    "cf_token",
    "cf_key",
    "cf_dns_api_token",
    "cf_zone_api_token",
    "x-auth-key",
];

/// Default number of bytes after a keyword in which a legacy credential
/// must start, on the same line.
pub const DEFAULT_WINDOW: usize = 128;

/// Longest keyword an operator may add. It bounds the bytes held back when
/// a chunk ends inside a keyword.
pub const MAX_KEYWORD_LEN: usize = 64;

/// Largest context window, so that the distance stays a bound and not a
/// whole line.
pub const MAX_WINDOW: usize = 4096;

/// An invalid scanner configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// A keyword is empty.
    EmptyKeyword,
    /// A keyword is longer than [`MAX_KEYWORD_LEN`] bytes.
    KeywordTooLong { len: usize },
    /// A keyword contains a byte that is not printable ASCII or a space.
    KeywordByte { byte: u8 },
    /// The context window is 0 or more than [`MAX_WINDOW`] bytes.
    Window { len: usize },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::EmptyKeyword => f.write_str("invalid keyword: empty"),
            BuildError::KeywordTooLong { len } => write!(
                f,
                "invalid keyword: {len} bytes long, \
                 the maximum is {MAX_KEYWORD_LEN}"
            ),
            BuildError::KeywordByte { byte } => write!(
                f,
                "invalid keyword: byte 0x{byte:02x} is not printable ASCII"
            ),
            BuildError::Window { len } => write!(
                f,
                "invalid context window: {len} bytes, \
                 expected 1 to {MAX_WINDOW}"
            ),
        }
    }
}

impl Error for BuildError {}

/// Configures a [`Scanner`].
#[derive(Clone, Debug)]
pub struct ScannerBuilder {
    kinds: KindSet,
    keywords: Vec<Vec<u8>>,
    style: Style,
    min_level: Level,
    window: usize,
    panic_on_finding: bool,
}

impl Default for ScannerBuilder {
    fn default() -> ScannerBuilder {
        ScannerBuilder {
            kinds: KindSet::all(),
            keywords: DEFAULT_KEYWORDS
                .iter()
                .map(|k| k.as_bytes().to_vec())
                .collect(),
            style: Style::default(),
            min_level: Level::ChecksumInvalid,
            window: DEFAULT_WINDOW,
            panic_on_finding: false,
        }
    }
}

impl ScannerBuilder {
    /// Sets the kinds to detect (default: all).
    pub fn kinds(&mut self, kinds: KindSet) -> &mut ScannerBuilder {
        self.kinds = kinds;
        self
    }

    /// Adds a context keyword to the defaults.
    pub fn keyword(&mut self, keyword: &[u8]) -> &mut ScannerBuilder {
        self.keywords.push(keyword.to_vec());
        self
    }

    /// Sets the replacement style (default: [`Style::Label`]).
    pub fn style(&mut self, style: Style) -> &mut ScannerBuilder {
        self.style = style;
        self
    }

    /// Sets the lowest level that is redacted (default: every level).
    /// Findings below it are still reported, with `redacted` false.
    pub fn min_level(&mut self, level: Level) -> &mut ScannerBuilder {
        self.min_level = level;
        self
    }

    /// Sets how many bytes after a keyword a legacy credential may start
    /// (default: [`DEFAULT_WINDOW`]).
    pub fn window(&mut self, len: usize) -> &mut ScannerBuilder {
        self.window = len;
        self
    }

    /// Makes every redactor of the scanner panic at its first finding,
    /// with a message that quotes the bytes being scanned.
    ///
    /// Test-only: the tests of the binary's panic hook use it to prove
    /// that a panic never prints input bytes. Nothing else should set it.
    #[doc(hidden)]
    pub fn panic_on_finding(&mut self, yes: bool) -> &mut ScannerBuilder {
        self.panic_on_finding = yes;
        self
    }

    /// Compiles the scanner.
    pub fn build(&self) -> Result<Scanner, BuildError> {
        for keyword in &self.keywords {
            if keyword.is_empty() {
                return Err(BuildError::EmptyKeyword);
            }
            if keyword.len() > MAX_KEYWORD_LEN {
                let len = keyword.len();
                return Err(BuildError::KeywordTooLong { len });
            }
            if let Some(&byte) =
                keyword.iter().find(|b| !(b.is_ascii_graphic() || **b == b' '))
            {
                return Err(BuildError::KeywordByte { byte });
            }
        }
        if self.window == 0 || self.window > MAX_WINDOW {
            return Err(BuildError::Window { len: self.window });
        }
        let prefilter = Prefilter::new(self.kinds, &self.keywords);
        let max_hold = ORIGIN_CA_LEN.max(prefilter.longest_keyword()) + 64;
        Ok(Scanner {
            prefilter,
            kinds: self.kinds,
            style: self.style,
            min_level: self.min_level,
            window: self.window,
            max_hold,
            panic_on_finding: self.panic_on_finding,
        })
    }
}

/// A compiled scanner: expensive to build, cheap to share across threads
/// and streams through an [`Arc`].
pub struct Scanner {
    pub(crate) prefilter: Prefilter,
    pub(crate) kinds: KindSet,
    pub(crate) style: Style,
    pub(crate) min_level: Level,
    pub(crate) window: usize,
    /// Upper bound on the bytes a redactor holds back between chunks.
    pub(crate) max_hold: usize,
    /// Test-only: see [`ScannerBuilder::panic_on_finding`].
    pub(crate) panic_on_finding: bool,
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner")
            .field("kinds", &self.kinds)
            .field("style", &self.style)
            .field("min_level", &self.min_level)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl Scanner {
    /// Returns a builder with the defaults: every kind, the default
    /// keywords, the label style, every level redacted.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder::default()
    }

    /// Returns a streaming redactor that uses this scanner.
    pub fn redactor(self: &Arc<Scanner>) -> Redactor {
        Redactor::new(Arc::clone(self))
    }

    /// Returns the kinds this scanner detects.
    pub fn kinds(&self) -> KindSet {
        self.kinds
    }

    /// Returns the most bytes a redactor holds back between two chunks:
    /// the longest credential plus the longest keyword, never a line.
    pub fn max_hold(&self) -> usize {
        self.max_hold
    }

    /// Redacts one whole buffer, such as a Kafka record, appending the
    /// output to `out` and returning the findings. The end of `input` is a
    /// hard boundary: a credential cut off there is judged as it is.
    pub fn redact(
        self: &Arc<Scanner>,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Vec<Finding> {
        let mut redactor = self.redactor();
        let mut sink = super::redactor::Collect { out, findings: Vec::new() };
        let Ok(()) = redactor.push(input, &mut sink);
        let Ok(()) = redactor.finish(&mut sink);
        sink.findings
    }
}
