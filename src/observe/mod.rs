//! Reports beside the redacted output: metrics, the HTTP endpoint that
//! serves them, the metrics text file, and findings as JSON lines.

mod findings;
pub mod metrics;
pub mod server;
pub mod textfile;
pub(crate) mod throttle;

pub use findings::{
    DEFAULT_RUNBOOK_URL, FindingRecord, FindingsWriter, runbook_link,
};
pub use metrics::{Metrics, SourceType, Stage};
pub use server::{
    DEFAULT_METRICS_ADDR, MetricsServer, serve, serve_with_shutdown,
};
pub use textfile::{DEFAULT_TEXTFILE_INTERVAL, TextfileWriter};

/// Returns the message of an I/O error in the `context: detail` style:
/// starting in lowercase and without the "(os error N)" suffix.
pub(crate) fn os_message(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn os_message_drops_suffix_and_capital() {
        let error = std::io::Error::from_raw_os_error(2);
        assert_eq!(super::os_message(&error), "no such file or directory");
    }
}
