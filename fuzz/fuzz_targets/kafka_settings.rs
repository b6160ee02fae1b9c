//! Kafka settings target: `-X` settings, output topic templates and input
//! topic names, parsed and validated without a Kafka client. Parsing must
//! not panic, an error must be one line, and the error of a `-X` setting
//! must not depend on its value, which may be a password.
//!
//! The first input byte chooses the parser; the rest is its text.

#![no_main]

use std::time::Duration;

use cfscrub::kafka::{
    Guarantee, OutputTemplate, Partitioning, Property, Settings,
};
use libfuzzer_sys::fuzz_target;

fn assert_one_line(context: &str, message: &str) {
    let breaks = message.contains(['\n', '\r']);
    assert!(!breaks, "{context}: error of more than one line");
}

/// Checks `-X` parsing: the error for `NAME=VALUE` equals the error for
/// `NAME=`, so no part of the value reaches the message.
fn check_property(text: &str) {
    let Err(error) = Property::parse(text) else {
        return;
    };
    let message = error.to_string();
    assert_one_line("-X", &message);
    if let Some((name, _)) = text.split_once('=') {
        let empty = Property::parse(&format!("{name}="))
            .expect_err("the same name without a value is rejected too");
        assert_eq!(message, empty.to_string(), "-X error shows its value");
    }
}

/// Checks a template, and validates settings with the input topics that
/// follow it, separated by NUL bytes.
fn check_topics(text: &str) {
    let mut parts = text.split('\0');
    let template = parts.next().unwrap_or_default();
    let output = match OutputTemplate::parse(template) {
        Ok(output) => output,
        Err(error) => {
            assert_one_line("--output-topic", &error.to_string());
            return;
        }
    };
    let inputs: Vec<String> = parts.map(str::to_owned).collect();
    for input in &inputs {
        let _ = output.output_for(input);
    }
    let settings = Settings {
        brokers: "127.0.0.1:9092".to_owned(),
        group: "fuzz".to_owned(),
        inputs,
        output,
        properties: Vec::new(),
        guarantee: Guarantee::AtLeastOnce,
        redact_keys: false,
        redact_headers: false,
        partitioning: Partitioning::Same,
        grace_period: Duration::from_secs(10),
        max_in_flight: 1,
        commit_interval: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(10),
    };
    if let Err(error) = settings.validate() {
        assert_one_line("topics", &error.to_string());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if selector % 2 == 0 {
        check_property(text);
    } else {
        check_topics(text);
    }
});
