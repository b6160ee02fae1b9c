//! The command line: argument definitions and the wiring of each mode.

mod args;
mod demo;
mod export;
mod filter;
mod follow;
mod kafka;
mod panic;
mod stream_metrics;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    Cli, Command, EngineArgs, FilterArgs, FollowArgs, MetricsArgs,
};
pub use kafka::KafkaArgs;
pub use panic::{EXIT_PANIC, TEST_PANIC_VARIABLE};

/// Exit status when something was redacted and `--fail-on-find` is set.
pub const EXIT_FOUND: u8 = 1;
/// Exit status for a usage error or a failed read or write.
pub const EXIT_ERROR: u8 = 2;

/// Runs cfscrub with the process's arguments and returns its exit status.
pub fn main() -> ExitCode {
    panic::install();
    let cli = Cli::parse();
    init_logging(&cli.log_level);
    let result = match cli.command {
        None => filter::run(&cli.filter),
        Some(Command::Demo(args)) => demo::run(&args),
        Some(Command::Follow(args)) => follow::run(&args),
        Some(Command::Kafka(args)) => kafka::run(&args),
    };
    match result {
        Ok(status) => status,
        Err(error) => {
            print_error(&format!("{error:#}"));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints `message` on stderr as one line that starts with `cfscrub: `.
/// Control characters, such as a newline in a file name, are escaped as
/// `\n` or `\u{1b}`, so the message stays on one line.
pub(crate) fn print_error(message: &str) {
    let mut line = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    eprintln!("cfscrub: {line}");
}

/// Returns the error for a file given with `option` that cannot be opened
/// for writing, in the `context: detail` style, with what to check.
fn open_error(
    option: &str,
    path: &str,
    error: &std::io::Error,
) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot open {option} {path}: {}; check that its directory exists \
         and is writable",
        crate::observe::os_message(error)
    )
}

/// Sends `tracing` events to stderr, filtered by `RUST_LOG` when it is set
/// and by `level` otherwise.
fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level));
    // Colour codes only for a terminal, so that log files stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
