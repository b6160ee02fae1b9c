//! A real Prometheus server scrapes `cfscrub --metrics-listen` while a log
//! with planted credentials streams through a pipe, and its query API must
//! show exactly the planted detections.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`, installed
//! by scripts/setup-test-deps.sh). Outside CI the test skips without it;
//! with `CI=true` it fails.

mod metrics_common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfscrub::engine::{Kind, Level};
use metrics_common::{
    Cfscrub, TempDir, assert_no_secret, get, planted_log, wait_until,
};

/// Bound on starting Prometheus and on each wait for a query result.
const WAIT: Duration = Duration::from_secs(90);

/// A Prometheus server started for one test, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Prometheus {
    /// Starts Prometheus on a loopback port chosen by the system, with a
    /// configuration that scrapes `target` every second, and waits until
    /// it logs its address.
    fn start(dir: &TempDir, target: SocketAddr) -> Prometheus {
        let config = dir.path.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                 scrape_configs:\n  - job_name: cfscrub\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg("--web.listen-address=127.0.0.1:0")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path.join("data").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus is on PATH but cannot be started");

        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });

        let mut prometheus =
            Prometheus { child, addr: "127.0.0.1:0".parse().unwrap(), log };
        let addr = wait_until(WAIT, || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited with {status}; its log:\n{}",
                    prometheus.log_text()
                );
            }
            prometheus.listen_addr()
        });
        prometheus.addr = addr.unwrap_or_else(|| {
            panic!(
                "prometheus logged no address within {WAIT:?}; its log:\n{}",
                prometheus.log_text()
            )
        });
        prometheus
    }

    /// Returns the address from the log line `msg="Listening on"
    /// address=127.0.0.1:PORT`, which Prometheus 2.x writes once bound.
    fn listen_addr(&self) -> Option<SocketAddr> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|line| line.contains("msg=\"Listening on\""))
            .find_map(|line| line.split("address=").nth(1))
            .and_then(|addr| addr.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Runs an instant query and returns its samples as label sets and
    /// values, or `None` when Prometheus does not respond yet.
    fn query(&self, query: &str) -> Option<Vec<(serde_json::Value, f64)>> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let response =
            metrics_common::request(self.addr, "GET", &path).ok()?;
        if response.status != 200 {
            return None;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&response.body).ok()?;
        let samples = json["data"]["result"].as_array()?;
        samples
            .iter()
            .map(|sample| {
                let value = sample["value"][1].as_str()?.parse().ok()?;
                Some((sample["metric"].clone(), value))
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes every byte outside the unreserved set of RFC 3986.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Returns the detections that Prometheus holds for the cfscrub job, by
/// kind and level.
fn detections(prometheus: &Prometheus) -> Option<Vec<(String, String, f64)>> {
    let samples =
        prometheus.query("cfscrub_detections_total{job=\"cfscrub\"}")?;
    let mut detections: Vec<_> = samples
        .into_iter()
        .map(|(labels, value)| {
            let kind = labels["kind"].as_str().unwrap_or("").to_owned();
            let level = labels["level"].as_str().unwrap_or("").to_owned();
            (kind, level, value)
        })
        .collect();
    detections.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Some(detections)
}

/// Returns the value of a query that must return exactly one sample.
fn single_value(prometheus: &Prometheus, query: &str) -> f64 {
    let samples = prometheus
        .query(query)
        .unwrap_or_else(|| panic!("query {query} failed"));
    assert_eq!(samples.len(), 1, "{query} returned {samples:?}");
    samples[0].1
}

#[test]
fn prometheus_scrape_counts_planted_credentials() {
    if !metrics_common::require_program("prometheus") {
        return;
    }
    let log = planted_log();
    let dir = TempDir::new("prometheus");
    let mut cfscrub = Cfscrub::spawn(&[
        "--metrics-listen=127.0.0.1:0",
        "--metrics-linger=120",
        "--count-lines",
    ]);
    let target = cfscrub.metrics_addr(WAIT);
    let prometheus = Prometheus::start(&dir, target);

    // Stdin stays open while Prometheus scrapes.
    cfscrub.feed(&log.text);
    let mut expected: Vec<(String, String, f64)> = Vec::new();
    for kind in Kind::ALL {
        for level in Level::ALL {
            let count = log.count(kind.id(), level.id()) as f64;
            expected.push((
                kind.id().to_owned(),
                level.id().to_owned(),
                count,
            ));
        }
    }
    expected.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut last = None;
    let matched = wait_until(WAIT, || {
        last = detections(&prometheus);
        (last.as_ref() == Some(&expected)).then_some(())
    });
    assert!(
        matched.is_some(),
        "Prometheus did not show the planted detections within {WAIT:?}\n\
         expected: {expected:?}\nlast seen: {last:?}\nprometheus log:\n{}",
        prometheus.log_text()
    );

    let up = single_value(&prometheus, "up{job=\"cfscrub\"}");
    assert_eq!(up, 1.0, "cfscrub target is up");
    let redactions = single_value(
        &prometheus,
        "sum(cfscrub_redactions_total{job=\"cfscrub\"})",
    );
    assert_eq!(redactions, log.total() as f64, "redactions");
    let records = single_value(
        &prometheus,
        "cfscrub_read_records_total{job=\"cfscrub\",source=\"stdin\"}",
    );
    assert_eq!(records, log.lines as f64, "records read");
    let ready = single_value(&prometheus, "cfscrub_ready{job=\"cfscrub\"}");
    assert_eq!(ready, 1.0, "ready while stdin is open");
    assert_eq!(get(target, "/readyz").status, 200, "readyz while reading");
    assert_eq!(get(target, "/healthz").status, 200, "healthz while reading");

    // No label or value, in the scraped text or in what Prometheus
    // stored, carries a planted credential.
    let scraped = get(target, "/metrics");
    assert_no_secret(&scraped.body, &log.secrets, "/metrics");
    let path = format!(
        "/api/v1/query?query={}",
        percent_encode("{__name__=~\"cfscrub_.+\"}")
    );
    let stored = metrics_common::request(prometheus.addr, "GET", &path)
        .expect("query every cfscrub series");
    assert_eq!(stored.status, 200);
    assert!(stored.body.len() > 1000, "the query returned the series");
    assert_no_secret(&stored.body, &log.secrets, "Prometheus's series");

    // After end of input cfscrub waits for one more scrape, then exits.
    cfscrub.close_stdin();
    let exit = cfscrub.wait(WAIT);
    assert!(exit.status.success(), "exit {:?}: {}", exit.status, exit.stderr);
    assert_no_secret(&exit.stdout, &log.secrets, "stdout");
    assert!(
        !exit.stderr.contains("no scrape came"),
        "Prometheus missed the last scrape: {}",
        exit.stderr
    );
    // Once cfscrub is gone its series turn stale, but a range selector
    // still returns the samples scraped before.
    let ready = single_value(
        &prometheus,
        "last_over_time(cfscrub_ready{job=\"cfscrub\"}[5m])",
    );
    assert_eq!(ready, 0.0, "the last scrape saw input ended");
}
