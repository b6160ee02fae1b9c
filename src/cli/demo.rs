//! `cfscrub demo`: a generated log with planted credentials of every kind,
//! redacted in small random chunks, with a summary of what was found.

use std::io::{self, Write};
use std::process::ExitCode;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::args::DemoArgs;
use crate::engine::{Collect, Finding, Kind, Level, sample};

/// Runs the demo and returns the exit status.
pub(super) fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let scanner = args.engine.scanner()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let log = sample_log(&mut rng);
    if args.print_input {
        return write_stdout(log.as_bytes());
    }
    let mut out = Vec::new();
    let mut sink = Collect { out: &mut out, findings: Vec::new() };
    let mut redactor = scanner.redactor();
    redactor.count_lines(true);
    // Small random chunks, so several credentials arrive split in two.
    let mut rest = log.as_bytes();
    let mut chunks = 0;
    while !rest.is_empty() {
        let len = rng.random_range(1..=48).min(rest.len());
        let Ok(()) = redactor.push(&rest[..len], &mut sink);
        rest = &rest[len..];
        chunks += 1;
    }
    let Ok(()) = redactor.finish(&mut sink);
    let summary = summarize(&sink.findings, log.len(), chunks, seed);
    sink.out.extend_from_slice(summary.as_bytes());
    write_stdout(sink.out)
}

/// Writes `bytes` to stdout. A reader that went away is not an error.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    let written = stdout.write_all(bytes).and_then(|()| stdout.flush());
    match written {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(error).context("write to stdout failed"))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Returns a log of ordinary lines from a web service and its deploy job,
/// with a credential of every kind and level planted among them.
fn sample_log(rng: &mut StdRng) -> String {
    let user = sample::prefixed(rng, Kind::UserToken);
    let account = sample::prefixed(rng, Kind::AccountToken);
    let global = sample::prefixed(rng, Kind::GlobalKey);
    let wrong = sample::wrong_checksum(rng, Kind::UserToken);
    let cut = sample::cut_off(rng, Kind::AccountToken, 5);
    let legacy_token = sample::legacy_token(rng);
    let legacy_key = sample::legacy_global_key(rng);
    let origin = sample::origin_ca_key(rng);
    let request_id = sample::hex(rng, 32);
    let commit = sample::hex(rng, 40);
    let lines = [
        "2026-12-04T09:12:01Z INFO  api: listening on 0.0.0.0:8080".to_owned(),
        format!(
            "2026-12-04T09:12:02Z INFO  api: GET /healthz 200 0.4ms \
             request_id={request_id}"
        ),
        format!(
            "2026-12-04T09:12:05Z DEBUG deploy: env CLOUDFLARE_API_TOKEN={user}"
        ),
        format!(
            "2026-12-04T09:12:05Z DEBUG deploy: curl -H \"Authorization: \
             Bearer {account}\" https://api.cloudflare.com/client/v4/zones"
        ),
        format!(
            "2026-12-04T09:12:06Z WARN  billing: retrying with key={global}"
        ),
        format!(
            "2026-12-04T09:12:06Z INFO  ci: uses: \
             cloudflare/wrangler-action@{commit}"
        ),
        format!(
            "{{\"ts\":\"2026-12-04T09:12:07Z\",\"level\":\"error\",\
             \"msg\":\"token rejected\",\"token\":\"{wrong}\"}}"
        ),
        format!("2026-12-04T09:12:08Z ERROR worker: truncated: auth={cut}"),
        format!(
            "2026-12-04T09:12:09Z DEBUG dns: export CF_API_TOKEN={legacy_token}"
        ),
        format!(
            "2026-12-04T09:12:09Z DEBUG dns: curl -H 'X-Auth-Key: \
             {legacy_key}' -H 'X-Auth-Email: ops@example.com'"
        ),
        format!("2026-12-04T09:12:10Z DEBUG tls: origin key {origin}"),
        "2026-12-04T09:12:11Z INFO  api: shutting down".to_owned(),
    ];
    let mut log = lines.join("\n");
    log.push('\n');
    log
}

fn summarize(
    findings: &[Finding],
    bytes: usize,
    chunks: usize,
    seed: u64,
) -> String {
    let mut text = format!(
        "\n--- cfscrub demo: {} findings in {bytes} bytes fed as {chunks} \
         chunks (seed {seed})\n",
        findings.len()
    );
    for finding in findings {
        let state = if finding.redacted { "redacted" } else { "kept" };
        text.push_str(&format!(
            "line {:>2}  {:<18} {:<17} {} bytes  sha256:{}  {state}\n",
            finding.line,
            finding.kind.id(),
            finding.level.id(),
            finding.len,
            finding.fingerprint,
        ));
    }
    let confirmed =
        findings.iter().filter(|f| f.level == Level::ChecksumValid).count();
    text.push_str(&format!(
        "{confirmed} confirmed by checksum. The 40-hex commit id after \
         cloudflare/ and the 32-hex request id are not credentials.\n"
    ));
    text
}
