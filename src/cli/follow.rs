//! Follow mode: files followed across rotation, redacted to one output,
//! with the metrics endpoint on by default.

use std::process::ExitCode;
use std::sync::mpsc::{self, Sender};

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

use super::args::FollowArgs;
use crate::observe::{Metrics, serve};
use crate::source::follow::output::Output;
use crate::source::follow::watch::{Pattern, Wake};
use crate::source::follow::{FollowConfig, Follower, touch_rotation_labels};

/// Runs follow mode until SIGTERM or SIGINT and returns the exit status.
pub(super) fn run(args: &FollowArgs) -> anyhow::Result<ExitCode> {
    let scanner = args.engine.scanner()?;
    let patterns = args
        .paths
        .iter()
        .map(|text| Pattern::parse(text))
        .collect::<Result<Vec<_>, _>>()?;
    let output = match &args.output {
        Some(path) => Output::append_to(path).with_context(|| {
            format!("cannot open --output {}", path.display())
        })?,
        None => Output::stdout().context("cannot open stdout")?,
    };
    let metrics = Metrics::new().context("cannot create the metrics")?;
    touch_rotation_labels(&metrics);

    // Signals and the metrics endpoint run on a small runtime beside the
    // follow loop, which blocks this thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("cfscrub-follow-io")
        .enable_all()
        .build()
        .context("cannot start the runtime for signals and metrics")?;
    let (wake_sender, wake) = mpsc::channel();
    handle_stop_signals(&runtime, wake_sender.clone())?;
    if !args.no_metrics {
        serve_metrics(&runtime, args, &metrics)?;
    }

    let config = FollowConfig {
        patterns,
        from_start: args.from_start,
        checkpoint: args.checkpoint.clone(),
        checkpoint_interval: args.checkpoint_interval,
        poll_interval: args.poll_interval,
        poll_only: args.poll,
    };
    let follower =
        Follower::new(config, scanner, metrics, output, wake_sender, wake);
    let result = follower.run();
    runtime.shutdown_background();
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.is_closed_pipe() => {
            tracing::debug!("stdout closed, stopping");
            Ok(ExitCode::SUCCESS)
        }
        // The message contains its cause already, and printing the chain
        // of a converted error would repeat it.
        Err(error) => Err(anyhow::Error::msg(error.to_string())),
    }
}

/// Sends [`Wake::Stop`] on SIGTERM or SIGINT. The handlers are installed
/// before this returns, so a signal that comes right after start is not
/// lost to the default action.
fn handle_stop_signals(
    runtime: &Runtime,
    wake: Sender<Wake>,
) -> anyhow::Result<()> {
    let _entered = runtime.enter();
    let mut terminate = signal(SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    runtime.spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "stopping");
        let _ = wake.send(Wake::Stop);
    });
    Ok(())
}

/// Binds the metrics endpoint and serves it on `runtime`.
fn serve_metrics(
    runtime: &Runtime,
    args: &FollowArgs,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let addr = args.metrics_listen;
    let listener =
        runtime.block_on(tokio::net::TcpListener::bind(addr)).with_context(
            || format!("cannot listen on --metrics-listen {addr}"),
        )?;
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %local, "metrics endpoint listening");
    let metrics = metrics.clone();
    runtime.spawn(async move {
        if let Err(error) = serve(listener, metrics).await {
            tracing::error!(addr = %local, %error, "metrics endpoint stopped");
        }
    });
    Ok(())
}
