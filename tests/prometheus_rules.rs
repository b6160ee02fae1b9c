//! The alerting rules in deploy/prometheus/ pass `promtool check rules`
//! and their unit tests in alerts.test.yaml, and the example
//! configuration passes `promtool check config`.
//!
//! Needs `promtool` (Debian package `prometheus`, installed by
//! scripts/setup-test-deps.sh). Outside CI the tests skip without it;
//! with `CI=true` they fail.

mod metrics_common;

use std::path::PathBuf;
use std::process::Command;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus")
}

/// Runs promtool with `args` in deploy/prometheus and panics with its
/// output when it fails.
fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir())
        .output()
        .expect("promtool is on PATH but cannot be started");
    assert!(
        output.status.success(),
        "promtool {} failed with {}:\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn alert_rules_pass_check() {
    if metrics_common::require_program("promtool") {
        promtool(&["check", "rules", "alerts.yaml"]);
    }
}

#[test]
fn alert_rules_pass_unit_tests() {
    if metrics_common::require_program("promtool") {
        promtool(&["test", "rules", "alerts.test.yaml"]);
    }
}

#[test]
fn example_config_passes_check() {
    if metrics_common::require_program("promtool") {
        promtool(&["check", "config", "prometheus.example.yml"]);
    }
}
