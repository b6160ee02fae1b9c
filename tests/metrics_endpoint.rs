//! The metrics HTTP endpoint, served from the library: paths, status
//! codes, content type, and a clear error for an address in use.

mod metrics_common;

use std::net::SocketAddr;

use cfscrub::engine::{Kind, Level, Stats};
use cfscrub::observe::{Metrics, MetricsServer, SourceType};
use metrics_common::{get, request};

fn loopback_any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn metrics_path_serves_text_format() {
    let metrics = Metrics::new().unwrap();
    let server = MetricsServer::start(loopback_any_port(), metrics).unwrap();
    let response = get(server.local_addr(), "/metrics");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = response.text();
    assert!(text.contains("# TYPE cfscrub_detections_total counter"));
    assert!(text.contains("cfscrub_build_info{version="));
}

#[test]
fn metrics_path_shows_published_counts() {
    let metrics = Metrics::new().unwrap();
    let server =
        MetricsServer::start(loopback_any_port(), metrics.clone()).unwrap();
    let kind = Kind::ALL.iter().position(|k| *k == Kind::GlobalKey).unwrap();
    let level =
        Level::ALL.iter().position(|l| *l == Level::ChecksumValid).unwrap();
    let mut now = Stats { bytes_in: 100, bytes_out: 90, ..Stats::default() };
    now.findings[kind][level] = 3;
    metrics.publish(SourceType::Stdin, &Stats::default(), &now);
    let text = get(server.local_addr(), "/metrics").text();
    assert!(text.contains(
        "cfscrub_detections_total{kind=\"global_key\",\
         level=\"checksum_valid\"} 3"
    ));
    assert!(text.contains("cfscrub_read_bytes_total{source=\"stdin\"} 100"));
}

#[test]
fn healthz_is_ok_while_alive() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    let response = get(server.local_addr(), "/healthz");
    assert_eq!(response.status, 200);
}

#[test]
fn readyz_follows_ready_gauge() {
    let metrics = Metrics::new().unwrap();
    let server =
        MetricsServer::start(loopback_any_port(), metrics.clone()).unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/readyz").status, 503);
    metrics.ready.set(1);
    assert_eq!(get(addr, "/readyz").status, 200);
    metrics.ready.set(0);
    assert_eq!(get(addr, "/readyz").status, 503);
}

#[test]
fn unknown_path_is_not_found() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    assert_eq!(get(server.local_addr(), "/").status, 404);
    assert_eq!(get(server.local_addr(), "/metrics/x").status, 404);
}

#[test]
fn post_is_method_not_allowed() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    let response = request(server.local_addr(), "POST", "/metrics").unwrap();
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
}

#[test]
fn head_has_no_body() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    let response = request(server.local_addr(), "HEAD", "/metrics").unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
}

#[test]
fn address_in_use_fails_start() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = occupied.local_addr().unwrap();
    let error = MetricsServer::start(addr, Metrics::new().unwrap())
        .err()
        .expect("a port already bound must be rejected");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot listen on {addr}: address already in use"
        )),
        "unexpected message: {message}"
    );
}

#[test]
fn dropped_server_frees_port() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    let addr = server.local_addr();
    assert_eq!(get(addr, "/healthz").status, 200);
    drop(server);
    let rebound = MetricsServer::start(addr, Metrics::new().unwrap());
    assert!(rebound.is_ok(), "port still bound: {:?}", rebound.err());
}

#[test]
fn wait_for_scrape_sees_next_scrape() {
    let server =
        MetricsServer::start(loopback_any_port(), Metrics::new().unwrap())
            .unwrap();
    let addr = server.local_addr();
    let scraper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        get(addr, "/metrics").status
    });
    let seen = server.wait_for_scrape(std::time::Duration::from_secs(30));
    assert!(seen, "no scrape seen within 30 s");
    assert_eq!(scraper.join().unwrap(), 200);
    let idle = server.wait_for_scrape(std::time::Duration::from_millis(50));
    assert!(!idle, "a scrape was reported that never happened");
}

#[test]
fn serve_runs_inside_a_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let metrics = Metrics::new().unwrap();
    metrics.ready.set(1);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let task = runtime.spawn(cfscrub::observe::serve(listener, metrics));
    let response = get(addr, "/readyz");
    assert_eq!(response.status, 200);
    task.abort();
}
