//! The links from findings and alerts into the leaked-credential runbook
//! lead to sections that exist.

mod metrics_common;

use std::collections::HashSet;

use cfscrub::engine::Kind;
use metrics_common::{Cfscrub, TempDir};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{path}"))
        .unwrap_or_else(|error| panic!("read {path}: {error}"))
}

/// Returns the anchor GitHub gives a heading: lowercase, spaces turned
/// into `-`, and every character other than letters, digits, `-` and `_`
/// dropped.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn runbook_anchors() -> HashSet<String> {
    read("docs/runbook-leaked-credential.md")
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor_of(heading.trim_start_matches('#')))
        .collect()
}

#[test]
fn runbook_has_section_per_kind() {
    let anchors = runbook_anchors();
    for kind in Kind::ALL {
        assert!(anchors.contains(kind.id()), "no section {}", kind.id());
    }
}

#[test]
fn runbook_links_resolve() {
    let anchors = runbook_anchors();
    let text = read("docs/runbook-leaked-credential.md");
    for link in text.split("](#").skip(1) {
        let anchor = &link[..link.find(')').unwrap()];
        assert!(anchors.contains(anchor), "broken link #{anchor}");
    }
}

#[test]
fn alert_runbook_urls_resolve() {
    let anchors = runbook_anchors();
    let alerts = read("deploy/prometheus/alerts.yaml");
    let mut checked = 0;
    for line in alerts.lines() {
        let Some(url) = line.trim().strip_prefix("runbook_url: ") else {
            continue;
        };
        let url = url.trim_matches('"');
        let (path, anchor) = url.split_once('#').expect("url has an anchor");
        assert_eq!(path, "docs/runbook-leaked-credential.md");
        if anchor == "{{ $labels.kind }}" {
            for kind in Kind::ALL {
                assert!(
                    anchors.contains(kind.id()),
                    "no section {}",
                    kind.id()
                );
            }
        } else {
            assert!(anchors.contains(anchor), "broken runbook_url #{anchor}");
        }
        checked += 1;
    }
    let alerts = alerts.lines().filter(|l| l.trim().starts_with("- alert: "));
    assert_eq!(checked, alerts.count(), "one runbook_url per alert");
}

/// Runs the filter on `input` with `--findings` and `extra` arguments and
/// returns the `doc_url` of each finding.
fn doc_urls(input: &[u8], extra: &[&str]) -> Vec<String> {
    let dir = TempDir::new("doc-url");
    let findings = dir.path.join("findings.jsonl");
    let mut args = vec!["--findings", findings.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut cfscrub = Cfscrub::spawn(&args);
    cfscrub.feed(input);
    let exit = cfscrub.wait(std::time::Duration::from_secs(60));
    assert!(exit.status.success(), "stderr: {}", exit.stderr);
    std::fs::read_to_string(&findings)
        .unwrap()
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["doc_url"].as_str().expect("doc_url is a string").to_owned()
        })
        .collect()
}

#[test]
fn findings_link_runbook_section() {
    let log = metrics_common::planted_log();
    let urls = doc_urls(&log.text, &[]);
    assert_eq!(urls.len() as u64, log.total());
    let anchors = runbook_anchors();
    for url in &urls {
        let (path, anchor) = url.split_once('#').unwrap();
        assert_eq!(path, "docs/runbook-leaked-credential.md");
        assert!(anchors.contains(anchor), "broken doc_url #{anchor}");
    }
}

#[test]
fn runbook_url_sets_link_base() {
    let mut rng = rand::rng();
    let token = cfscrub::engine::sample::prefixed(&mut rng, Kind::GlobalKey);
    let input = format!("key={token}\n");
    let base = "https://git.example.test/ops/cfscrub/runbook.md";
    let urls = doc_urls(input.as_bytes(), &["--runbook-url", base]);
    assert_eq!(urls, [format!("{base}#global_key")]);
}
