//! Command-line target: the input is the argument list after `cfscrub`,
//! split at NUL bytes, for the filter and every subcommand. Parsing must not panic,
//! and what the parsed arguments build (the scanner, follow patterns, the
//! Kafka settings) must fail with a one-line error or succeed.
//!
//! Arguments need not be UTF-8: an argument that is not is passed as
//! raw bytes, as a Unix shell would pass it.

#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use cfscrub::cli::{Cli, Command, EngineArgs};
use cfscrub::source::follow::watch::Pattern;
use clap::Parser;
use libfuzzer_sys::fuzz_target;

/// Asserts that an error message is one line.
fn assert_one_line(context: &str, message: &str) {
    let breaks = message.contains(['\n', '\r']);
    assert!(!breaks, "{context}: error of more than one line");
}

fn check_engine(engine: &EngineArgs) {
    if let Err(error) = engine.scanner() {
        assert_one_line("scanner", &format!("{error:#}"));
    }
}

fuzz_target!(|data: &[u8]| {
    // An empty input is the command line without arguments.
    let args = (!data.is_empty())
        .then(|| data.split(|b| *b == 0).map(OsStr::from_bytes))
        .into_iter()
        .flatten();
    let args = std::iter::once(OsStr::new("cfscrub")).chain(args);
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            // clap's own messages span lines (usage, a hint), so only the
            // rendering is checked.
            let _ = error.render().to_string();
            return;
        }
    };
    match &cli.command {
        None => check_engine(&cli.filter.engine),
        Some(Command::Demo(args)) => check_engine(&args.engine),
        Some(Command::Follow(args)) => {
            check_engine(&args.engine);
            for path in &args.paths {
                match Pattern::parse(path) {
                    Ok(pattern) => {
                        let _ = pattern.watch_dir();
                    }
                    Err(error) => {
                        assert_one_line("pattern", &error.to_string());
                    }
                }
            }
        }
        Some(Command::Kafka(args)) => {
            check_engine(&args.engine);
            if let Err(error) = args.settings() {
                assert_one_line("kafka settings", &format!("{error:#}"));
            }
        }
    }
});
