//! Reports beside the redacted output: metrics, the HTTP endpoint that
//! serves them, and findings as JSON lines.

mod findings;
pub mod metrics;
pub mod server;

pub use findings::{FindingRecord, FindingsWriter};
pub use metrics::{Metrics, SourceType, Stage};
pub use server::{
    DEFAULT_METRICS_ADDR, MetricsServer, serve, serve_with_shutdown,
};
