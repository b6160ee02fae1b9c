//! Starting and stopping the metrics exporters that `--metrics-listen`
//! and `--metrics-textfile` ask for.

use std::time::Duration;

use anyhow::Context;

use super::args::MetricsArgs;
use crate::observe::{Metrics, MetricsServer, TextfileWriter};

/// The metrics of one run and the exporters that publish them.
pub struct Exporters {
    /// The metrics, shared with the exporters.
    pub metrics: Metrics,
    server: Option<MetricsServer>,
    textfile: Option<TextfileWriter>,
}

impl Exporters {
    /// Creates the metrics and starts the exporters in `args`, or returns
    /// `None` when `args` requests no exporter, so that no metric is kept and no
    /// thread or runtime is started.
    ///
    /// # Errors
    ///
    /// Fails when the address cannot be bound or the text file cannot be
    /// written, with a message naming the option and the address or path.
    pub fn start(args: &MetricsArgs) -> anyhow::Result<Option<Exporters>> {
        if !args.enabled() {
            return Ok(None);
        }
        let metrics = Metrics::new().context("cannot create the metrics")?;
        let server = match args.metrics_listen {
            Some(addr) => Some(
                MetricsServer::start(addr, metrics.clone())
                    .context("--metrics-listen")?,
            ),
            None => None,
        };
        let textfile = match &args.metrics_textfile {
            Some(path) => Some(
                TextfileWriter::start(
                    path.clone(),
                    metrics.clone(),
                    args.metrics_textfile_interval,
                )
                .context("--metrics-textfile")?,
            ),
            None => None,
        };
        Ok(Some(Exporters { metrics, server, textfile }))
    }

    /// Writes the text file a last time, then keeps the endpoint up until
    /// one scrape has read the final counts, `linger` has passed or
    /// `stopped` returns true, and stops it.
    ///
    /// # Errors
    ///
    /// Fails, naming the path, when the last write of the text file fails.
    /// The endpoint is stopped in any case.
    pub fn finish(
        mut self,
        linger: Duration,
        stopped: impl Fn() -> bool,
    ) -> anyhow::Result<()> {
        let written = match self.textfile.take() {
            Some(textfile) => textfile.finish(),
            None => Ok(()),
        };
        let server = self.server.take();
        let lingering = server.as_ref().filter(|_| !linger.is_zero());
        if let Some(server) = lingering {
            linger_for_scrape(server, linger, &stopped);
        }
        // Dropping the server lets a response in progress finish.
        drop(server);
        written
    }
}

/// Waits for one scrape of `server`, for at most `linger`, and logs how
/// the wait ended. A stop request, before or during the wait, ends it.
fn linger_for_scrape(
    server: &MetricsServer,
    linger: Duration,
    stopped: impl Fn() -> bool,
) {
    if stopped() {
        tracing::info!("stop requested, not waiting for a last scrape");
        return;
    }
    tracing::info!(
        addr = %server.local_addr(),
        linger_seconds = linger.as_secs(),
        "input ended, waiting for a last scrape"
    );
    if server.wait_for_scrape_unless(linger, &stopped) {
        return;
    }
    if stopped() {
        tracing::info!("stop requested, ending the wait for a last scrape");
        return;
    }
    tracing::warn!(
        addr = %server.local_addr(),
        linger_seconds = linger.as_secs(),
        "no scrape came before --metrics-linger ran out, so the last counts \
         may be missing in Prometheus"
    );
}
