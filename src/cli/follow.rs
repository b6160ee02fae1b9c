//! Follow mode: files followed across rotation, redacted to one output,
//! with the metrics endpoint on by default.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

use super::args::FollowArgs;
use super::open_error;
use crate::observe::server::listen_error;
use crate::observe::{
    DEFAULT_METRICS_ADDR, FindingsWriter, Metrics, TextfileWriter, serve,
};
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
    reject_directories(&patterns)?;
    reject_written_followed(args, &patterns)?;
    let output = match &args.output {
        Some(path) => Output::append_to(path).map_err(|error| {
            open_error("--output", &path.display().to_string(), &error)
        })?,
        None => Output::stdout().context("cannot open stdout")?,
    };
    let findings = match &args.findings {
        Some(path) => {
            let mut writer = FindingsWriter::create(path)
                .map_err(|error| open_error("--findings", path, &error))?;
            writer.set_runbook_url(&args.runbook_url);
            Some(writer)
        }
        None => None,
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
    let reopen_output = Arc::new(AtomicBool::new(false));
    handle_hangup(&runtime, wake_sender.clone(), reopen_output.clone())?;
    if !args.no_metrics {
        serve_metrics(&runtime, args, &metrics)?;
    }
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

    let config = FollowConfig {
        patterns,
        from_start: args.from_start
            || (args.checkpoint.is_some() && !args.from_end),
        checkpoint: args.checkpoint.clone(),
        checkpoint_interval: args.checkpoint_interval,
        poll_interval: args.poll_interval,
        poll_only: args.poll,
        reopen_output,
    };
    let mut follower =
        Follower::new(config, scanner, metrics, output, wake_sender, wake);
    if let Some(findings) = findings {
        follower.report_findings(findings);
    }
    let result = follower.run();
    runtime.shutdown_background();
    // The last write of the text file comes after the follower's last
    // publish, so the file ends with the final counts.
    let written = textfile.map_or(Ok(()), TextfileWriter::finish);
    match result {
        Ok(()) => written.map(|()| ExitCode::SUCCESS),
        Err(error) if error.is_closed_pipe() => {
            tracing::debug!("stdout closed, stopping");
            written.map(|()| ExitCode::SUCCESS)
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

/// Sets `reopen` and wakes the follow loop on each SIGHUP, which
/// logrotate's `postrotate` sends so that the output is reopened. Without
/// a handler SIGHUP would end the process, and systemd does not restart a
/// unit that SIGHUP ended.
fn handle_hangup(
    runtime: &Runtime,
    wake: Sender<Wake>,
    reopen: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let _entered = runtime.enter();
    let mut hangup = signal(SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    runtime.spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!(signal = "SIGHUP", "reopening the output");
            reopen.store(true, Ordering::Relaxed);
            if wake.send(Wake::Data).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Rejects a plain path that names a directory: it would be followed as a
/// file that never appears.
fn reject_directories(patterns: &[Pattern]) -> anyhow::Result<()> {
    for pattern in patterns.iter().filter(|p| !p.is_glob()) {
        let path = Path::new(pattern.text());
        if path.is_dir() {
            anyhow::bail!(
                "cannot follow {}: it is a directory; give a file, or a \
                 quoted glob such as '{}/*.log'",
                path.display(),
                path.display()
            );
        }
    }
    Ok(())
}

/// Fails when a file that follow mode writes is one that it follows. An
/// --output among the plain paths would never be followed, because
/// follow mode skips its own output. A metrics text file or a findings
/// file would be written into the followed log, and read back as if the
/// application had logged it.
fn reject_written_followed(
    args: &FollowArgs,
    patterns: &[Pattern],
) -> anyhow::Result<()> {
    let findings = args.findings.as_deref().filter(|path| *path != "-");
    let written = [
        ("--output", args.output.as_deref(), false),
        ("--metrics-textfile", args.metrics_textfile.as_deref(), true),
        ("--findings", findings.map(Path::new), true),
    ];
    for (option, path, globs_too) in written {
        let Some(path) = path else { continue };
        let followed = patterns
            .iter()
            .filter(|pattern| globs_too || !pattern.is_glob())
            .find(|pattern| pattern.names(path));
        if let Some(pattern) = followed {
            anyhow::bail!(
                "cannot write {option} to {}, because it is also followed \
                 (as {}); choose a path outside the followed files",
                path.display(),
                pattern.text()
            );
        }
    }
    Ok(())
}

/// Binds the metrics endpoint and serves it on `runtime`.
fn serve_metrics(
    runtime: &Runtime,
    args: &FollowArgs,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let addr = args.metrics_listen;
    let bound = runtime.block_on(tokio::net::TcpListener::bind(addr));
    let listener = match bound {
        Ok(listener) => listener,
        // Follow mode listens without being asked, so a second follow
        // process on the host meets the first one's port.
        Err(error)
            if error.kind() == std::io::ErrorKind::AddrInUse
                && addr.to_string() == DEFAULT_METRICS_ADDR =>
        {
            anyhow::bail!(
                "cannot listen on {addr}, the default --metrics-listen: \
                 address already in use; stop the process that listens \
                 there, give another port with --metrics-listen, or serve \
                 no metrics with --no-metrics"
            );
        }
        Err(error) => {
            return Err(listen_error(addr, &error).context("--metrics-listen"));
        }
    };
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
