//! The metric set against its documentation: every metric in the registry
//! is listed in the README's metrics table with its type and labels, and
//! every listed one exists. Also the naming rules and the label values.

use std::collections::BTreeMap;

use cfscrub::engine::{Kind, Level, Stats};
use cfscrub::observe::metrics::Stage;
use cfscrub::observe::{Metrics, SourceType};
use prometheus::proto::MetricType;

/// Name -> (type, sorted label names).
type MetricSet = BTreeMap<String, (String, Vec<String>)>;

/// Returns the rows of the first markdown table after `heading` in the
/// README, each as its cells, without the header and separator rows.
fn readme_table(heading: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/README.md"
    ))
    .unwrap();
    let start = readme
        .find(heading)
        .unwrap_or_else(|| panic!("README has no heading {heading:?}"));
    readme[start..]
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect()
}

fn unquote(cell: &str) -> String {
    cell.trim_matches('`').to_owned()
}

fn documented_metrics() -> MetricSet {
    readme_table("### Metrics")
        .into_iter()
        .map(|row| {
            let mut labels: Vec<String> = row[2]
                .split(',')
                .map(|label| unquote(label.trim()))
                .filter(|label| !label.is_empty())
                .collect();
            labels.sort();
            (unquote(&row[0]), (row[1].clone(), labels))
        })
        .collect()
}

/// Returns the metrics of a registry in which every labelled family has
/// at least one series, since a family without one is not exported.
fn exported_metrics() -> MetricSet {
    let metrics = Metrics::new().unwrap();
    metrics.kafka_consumed.with_label_values(&["logs", "0"]).inc();
    metrics.kafka_produced.with_label_values(&["logs", "0"]).inc();
    metrics.kafka_lag.with_label_values(&["logs", "0"]).set(1);
    metrics.follow_rotations.with_label_values(&["rename"]).inc();
    let mut set = MetricSet::new();
    for family in metrics.registry().gather() {
        let kind = match family.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            other => panic!("unexpected metric type {other:?}"),
        };
        let mut labels: Vec<String> = family.get_metric()[0]
            .get_label()
            .iter()
            .map(|pair| pair.name().to_owned())
            .collect();
        labels.sort();
        set.insert(family.name().to_owned(), (kind.to_owned(), labels));
    }
    set
}

#[test]
fn readme_lists_every_metric() {
    let documented = documented_metrics();
    let exported = exported_metrics();
    for (name, entry) in &exported {
        assert_eq!(documented.get(name), Some(entry), "README row of {name}");
    }
    for name in documented.keys() {
        assert!(exported.contains_key(name), "{name} is documented only");
    }
}

#[test]
fn names_follow_prometheus_conventions() {
    for (name, (kind, _)) in exported_metrics() {
        assert!(name.starts_with("cfscrub_"), "{name}: no cfscrub_ prefix");
        if kind == "counter" {
            assert!(
                name.ends_with("_total"),
                "{name}: counter without _total"
            );
        } else {
            assert!(!name.ends_with("_total"), "{name}: _total on a {kind}");
        }
        if kind == "histogram" {
            assert!(name.ends_with("_seconds"), "{name}: histogram unit");
        }
    }
}

#[test]
fn label_names_come_from_closed_set() {
    let allowed =
        ["source", "kind", "level", "stage", "topic", "partition", "rotation"];
    for (name, (_, labels)) in exported_metrics() {
        for label in labels {
            let documented =
                label == "version" && name == "cfscrub_build_info";
            assert!(
                documented || allowed.contains(&label.as_str()),
                "{name} has label {label}"
            );
        }
    }
}

#[test]
fn readme_lists_every_label_value() {
    let rows = readme_table("Label values:");
    let values_of = |label: &str| -> Vec<String> {
        let row = rows
            .iter()
            .find(|row| row[0] == format!("`{label}`"))
            .unwrap_or_else(|| panic!("README lists no values of {label}"));
        row[1].split(',').map(|value| unquote(value.trim())).collect()
    };
    let sources: Vec<_> = SourceType::ALL.iter().map(|s| s.id()).collect();
    assert_eq!(values_of("source"), sources);
    let mut levels: Vec<_> = Level::ALL.iter().map(|l| l.id()).collect();
    levels.sort();
    let mut documented_levels = values_of("level");
    documented_levels.sort();
    assert_eq!(documented_levels, levels);
    let stages: Vec<_> = Stage::ALL.iter().map(|s| s.id()).collect();
    assert_eq!(values_of("stage"), stages);
}

#[test]
fn series_exist_before_any_detection() {
    let text = String::from_utf8(Metrics::new().unwrap().encode()).unwrap();
    for kind in Kind::ALL {
        for level in Level::ALL {
            let series = format!(
                "cfscrub_detections_total{{kind=\"{}\",level=\"{}\"}} 0",
                kind.id(),
                level.id()
            );
            assert!(text.contains(&series), "missing {series}");
        }
        let series =
            format!("cfscrub_redactions_total{{kind=\"{}\"}} 0", kind.id());
        assert!(text.contains(&series), "missing {series}");
    }
    for stage in Stage::ALL {
        let series =
            format!("cfscrub_errors_total{{stage=\"{}\"}} 0", stage.id());
        assert!(text.contains(&series), "missing {series}");
    }
}

#[test]
fn publish_adds_only_the_difference() {
    let metrics = Metrics::new().unwrap();
    let user = Kind::ALL.iter().position(|k| *k == Kind::UserToken).unwrap();
    let valid =
        Level::ALL.iter().position(|l| *l == Level::ChecksumValid).unwrap();
    let mut before = Stats { bytes_in: 10, bytes_out: 10, ..Stats::default() };
    before.findings[user][valid] = 1;
    before.redactions[user] = 1;
    let mut now = before;
    now.bytes_in = 25;
    now.bytes_out = 22;
    now.candidates = 4;
    now.findings[user][valid] = 3;
    now.redactions[user] = 2;
    metrics.publish(SourceType::File, &before, &now);
    let counters = metrics.source(SourceType::File);
    assert_eq!(counters.read_bytes.get(), 15);
    assert_eq!(counters.written_bytes.get(), 12);
    assert_eq!(metrics.candidates.get(), 4);
    let detections = metrics
        .detections
        .with_label_values(&["user_token", "checksum_valid"])
        .get();
    assert_eq!(detections, 2);
    assert_eq!(metrics.redactions.with_label_values(&["user_token"]).get(), 1);
    let stdin = metrics.source(SourceType::Stdin);
    assert_eq!(stdin.read_bytes.get(), 0, "other sources stay untouched");
}

#[test]
fn error_counts_by_stage() {
    let metrics = Metrics::new().unwrap();
    metrics.error(Stage::Write);
    metrics.error(Stage::Write);
    metrics.error(Stage::Textfile);
    assert_eq!(metrics.errors.with_label_values(&["write"]).get(), 2);
    assert_eq!(metrics.errors.with_label_values(&["textfile"]).get(), 1);
    assert_eq!(metrics.errors.with_label_values(&["read"]).get(), 0);
}
