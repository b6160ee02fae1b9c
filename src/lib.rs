//! cfscrub finds Cloudflare API credentials in log streams and redacts
//! them.
//!
//! The [`engine`] does the finding and replacing, free of I/O. The other
//! modules read and write streams and report what was found.

#![forbid(unsafe_code)]

pub mod cli;
pub mod engine;
pub mod kafka;
pub mod observe;
pub mod source;
