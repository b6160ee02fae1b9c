//! What cfscrub reports beside its output: metrics and findings as JSON
//! lines.

mod findings;
pub mod metrics;

pub use findings::{FindingRecord, FindingsWriter};
pub use metrics::{Metrics, SourceType, Stage};
