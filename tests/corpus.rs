//! The real log samples through the real binary. Clean, they pass
//! through byte for byte with no finding. With planted credentials, every
//! one is replaced and nothing else changes.

mod common;

use std::path::Path;

use cfscrub::engine::{Kind, sample};
use rand::Rng;
use rand::rngs::StdRng;

use common::{TestDir, difference, label, run};

/// Credentials of each kind planted in each log.
const PLANTED_PER_KIND: usize = 2;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("corpus log is readable")
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// `cat ../shared/corpus/loghub/*.log | cfscrub` reproduces its input.
#[test]
fn corpus_passes_through_unchanged() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let logs = common::corpus_logs(&dir);
    assert_eq!(logs.len(), 16, "16 logs in {}", dir.display());
    let scratch = TestDir::new("corpus-clean");
    let findings = scratch.path.join("findings.jsonl");
    let mut args = vec![
        "--fail-on-find".to_owned(),
        "--findings".to_owned(),
        findings.to_str().unwrap().to_owned(),
    ];
    args.extend(logs.iter().map(|log| log.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run(&args, b"");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    let concatenated: Vec<u8> =
        logs.iter().flat_map(|log| read(log)).collect();
    if let Some(difference) = difference(&output.stdout, &concatenated) {
        panic!("corpus through cfscrub: {difference}");
    }
    let report = std::fs::read_to_string(&findings).unwrap();
    assert!(report.is_empty(), "findings in the clean corpus: {report}");
}

/// Each log read from standard input, as a pipeline would feed it.
#[test]
fn each_log_through_stdin() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    for log in common::corpus_logs(&dir) {
        let input = read(&log);
        let output = run(&["--fail-on-find"], &input);
        assert_eq!(output.status.code(), Some(0), "{}", name(&log));
        if let Some(difference) = difference(&output.stdout, &input) {
            panic!("{}: {difference}", name(&log));
        }
    }
}

/// Returns a copy of `log` with credentials of every kind planted in it,
/// and the output cfscrub must write for it. Prefixed credentials and
/// Origin CA keys go anywhere inside a line. Legacy ones go at the end
/// of a line after a keyword, so that no other text of the log falls in
/// the keyword's window.
fn plant(log: &[u8], rng: &mut StdRng) -> (Vec<u8>, Vec<u8>, Vec<Kind>) {
    let line_ends: Vec<usize> = log
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(at, _)| at)
        .collect();
    let mut plants: Vec<(usize, Kind, Vec<u8>, Vec<u8>)> = Vec::new();
    for kind in Kind::ALL {
        for _ in 0..PLANTED_PER_KIND {
            let credential = sample::credential(rng, kind);
            let (at, context) = match kind {
                Kind::LegacyToken => {
                    let end = line_ends[rng.random_range(0..line_ends.len())];
                    (end, " CF_API_TOKEN=")
                }
                Kind::LegacyGlobalKey => {
                    let end = line_ends[rng.random_range(0..line_ends.len())];
                    (end, " X-Auth-Key: ")
                }
                _ => (rng.random_range(0..=log.len()), ""),
            };
            let planted = [context.as_bytes(), credential.as_bytes()].concat();
            let replaced = [context.as_bytes(), &label(kind)].concat();
            plants.push((at, kind, planted, replaced));
        }
    }

    // Two legacy plants at the same line end would share a window.
    plants.sort_by_key(|plant| plant.0);
    plants.dedup_by_key(|plant| plant.0);

    let mut input = Vec::new();
    let mut expected = Vec::new();
    let mut kinds = Vec::new();
    let mut copied = 0;
    for (at, kind, planted, replaced) in plants {
        input.extend_from_slice(&log[copied..at]);
        expected.extend_from_slice(&log[copied..at]);
        input.extend_from_slice(&planted);
        expected.extend_from_slice(&replaced);
        kinds.push(kind);
        copied = at;
    }
    input.extend_from_slice(&log[copied..]);
    expected.extend_from_slice(&log[copied..]);
    (input, expected, kinds)
}

#[test]
fn planted_credentials_all_redacted() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let mut rng = common::rng(0x1096);
    for log in common::corpus_logs(&dir) {
        let (input, expected, kinds) = plant(&read(&log), &mut rng);
        let output = run(&["--findings", "-", "--fail-on-find"], &input);
        let log = name(&log);
        assert_eq!(output.status.code(), Some(1), "{log}: status");
        if let Some(difference) = difference(&output.stdout, &expected) {
            panic!("{log} with planted credentials: {difference}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let found: Vec<String> = stderr
            .lines()
            .map(|line| {
                let finding: serde_json::Value =
                    serde_json::from_str(line).expect("finding is JSON");
                finding["kind"].as_str().unwrap().to_owned()
            })
            .collect();
        let planted: Vec<String> =
            kinds.iter().map(|k| k.id().to_owned()).collect();
        assert_eq!(found, planted, "{log}: kinds of findings");
    }
}
