//! The detection and redaction engine: pure, synchronous, no I/O.
//!
//! A [`Scanner`] is built once from a [`ScannerBuilder`] and shared. Each
//! stream gets its own [`Redactor`], which takes chunks of any size and
//! writes the redacted stream to a [`Sink`]. For whole records there is
//! [`Scanner::redact`].

mod confirm;
mod kind;
mod prefilter;
mod redactor;
pub mod sample;
mod scan;
mod scanner;
mod style;

pub use confirm::checksum_hex;
pub use kind::{Kind, KindSet, Level};
pub(crate) use redactor::Collect;
pub use redactor::{Finding, Redactor, Sink, Stats, count_newlines};
pub use scanner::{
    BuildError, DEFAULT_KEYWORDS, DEFAULT_WINDOW, MAX_KEYWORD_LEN, MAX_WINDOW,
    Scanner, ScannerBuilder,
};
pub use style::{Fingerprint, Style};
