//! Throughput of the engine alone, without I/O, on corpora made from the
//! loghub sample logs (see `corpus/mod.rs` for the recipes).
//!
//! Each benchmark feeds one corpus block (4.5 to 7.3 MB) to a redactor
//! in 64 KiB chunks, the read size of the stream filter, and counts the
//! output in a sink that keeps nothing.
//!
//! `cargo bench --bench engine` measures; `cargo bench --bench engine --
//! --test` runs each benchmark once, which the test command does so that
//! the benchmarks and the corpus recipes keep working.

use std::hint::black_box;
use std::sync::Arc;

use cfscrub::engine::{Finding, Kind, KindSet, Scanner, Sink};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod corpus;

use corpus::Recipe;

/// Bytes given to each `push`.
const CHUNK: usize = 64 * 1024;

/// A sink that counts what it receives and keeps nothing.
#[derive(Default)]
struct Count {
    bytes: usize,
    findings: usize,
}

impl Sink for Count {
    type Error = std::convert::Infallible;

    fn write(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        self.bytes += bytes.len();
        Ok(())
    }

    fn finding(&mut self, _: &Finding) -> Result<(), Self::Error> {
        self.findings += 1;
        Ok(())
    }
}

/// Redacts `input` as a stream of [`CHUNK`]-byte pushes.
fn redact_stream(scanner: &Arc<Scanner>, input: &[u8]) -> Count {
    let mut redactor = scanner.redactor();
    let mut sink = Count::default();
    for chunk in input.chunks(CHUNK) {
        let Ok(()) = redactor.push(chunk, &mut sink);
    }
    let Ok(()) = redactor.finish(&mut sink);
    sink
}

fn engine(c: &mut Criterion) {
    let dir = corpus::loghub_dir();
    let base = corpus::read_loghub(&dir).unwrap_or_else(|error| {
        panic!("cannot read the loghub logs in {}: {error}", dir.display())
    });
    let all = Arc::new(Scanner::builder().build().expect("default scanner"));
    let no_legacy: KindSet =
        Kind::ALL.into_iter().filter(|kind| !kind.is_contextual()).collect();
    let no_legacy = Arc::new(
        Scanner::builder().kinds(no_legacy).build().expect("prefixed scanner"),
    );
    let cases = [
        ("clean", Recipe::Clean, &all),
        ("clean_legacy_off", Recipe::Clean, &no_legacy),
        ("per_64k", Recipe::Per64K, &all),
        ("per_1k", Recipe::Per1K, &all),
        ("adversarial", Recipe::Adversarial, &all),
        ("cloudflare_lines", Recipe::CloudflareLines, &all),
    ];

    let mut group = c.benchmark_group("engine");
    for (name, recipe, scanner) in cases {
        let mut rng = StdRng::seed_from_u64(corpus::SEED);
        let block = corpus::block(recipe, &base, &mut rng);
        // The same check on the streaming path as on the whole block, so
        // that a benchmark never measures a corpus that lost its findings.
        let expected = block.check(&all).unwrap_or_else(|e| panic!("{e}"));
        let count = redact_stream(scanner, &block.bytes);
        if scanner.kinds() == all.kinds() {
            assert_eq!(count.findings, expected, "{name}: streamed findings");
        }
        group.throughput(Throughput::Bytes(block.bytes.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| redact_stream(scanner, black_box(&block.bytes)))
        });
    }
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
