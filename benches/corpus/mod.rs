//! Benchmark corpora, made at run time from the loghub sample logs.
//!
//! Every corpus starts from the same base: the `*.log` files of the loghub
//! folder in name order, each ended with a newline. A recipe then plants
//! credentials or near-misses in it. The result is a block of a few MiB
//! that the criterion benchmarks scan as it is and that `bench-corpus`
//! repeats up to any size. Credentials come from `cfscrub::engine::sample`,
//! so none that passes its checksum is ever stored in the repository.

// Each user of this module (the criterion benchmark and the corpus
// generator) calls a different part of it.
#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cfscrub::engine::{Kind, Level, Scanner, sample};
use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};

/// Fixed seed, so that each recipe makes the same corpus in every run.
pub const SEED: u64 = 0x00c0_ffee;

/// Kinds planted in turn by the recipes that plant credentials.
const PLANTED_KINDS: [Kind; 3] =
    [Kind::UserToken, Kind::AccountToken, Kind::GlobalKey];

/// Text around each planted credential (before, after), used in turn: a
/// key-value pair, an HTTP header and a JSON field.
const PLANT_CONTEXTS: [(&str, &str); 3] = [
    (" token=", ""),
    (" Authorization: Bearer ", ""),
    (" {\"api_token\":\"", "\"}"),
];

/// Bytes that end a near-miss in the adversarial corpus: none of them can
/// continue a body or a checksum.
const NEAR_MISS_ENDS: &[u8] = b" .,;:\"'/=&)]";

/// The corpus recipes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// The loghub logs unchanged: no credential and no keyword.
    Clean,
    /// A credential with a valid checksum at the end of the line that
    /// crosses each 64 KiB of output.
    Per64K,
    /// The same, every 1 KiB.
    Per1K,
    /// Every 24 to 64 bytes, a prefix (`cfut_`, `cfat_`, `cfk_` or
    /// `v1.0-`) followed by a body that ends too early. Each one makes
    /// the engine confirm a candidate that never becomes a finding.
    Adversarial,
    /// The word `cloudflare` at the start of every line, so that a
    /// context window is open over the start of each line.
    CloudflareLines,
    /// [`Recipe::Per64K`] with each newline replaced by a space: one line
    /// as long as the whole input.
    NoNewline,
}

impl Recipe {
    /// Every recipe, in the order of the benchmark tables.
    pub const ALL: [Recipe; 6] = [
        Recipe::Clean,
        Recipe::Per64K,
        Recipe::Per1K,
        Recipe::Adversarial,
        Recipe::CloudflareLines,
        Recipe::NoNewline,
    ];

    /// Returns the identifier used in benchmark names and on the command
    /// line of `bench-corpus`.
    pub fn id(self) -> &'static str {
        match self {
            Recipe::Clean => "clean",
            Recipe::Per64K => "per_64k",
            Recipe::Per1K => "per_1k",
            Recipe::Adversarial => "adversarial",
            Recipe::CloudflareLines => "cloudflare_lines",
            Recipe::NoNewline => "no_newline",
        }
    }

    /// Parses an identifier as returned by [`Recipe::id`].
    pub fn from_id(id: &str) -> Option<Recipe> {
        Recipe::ALL.into_iter().find(|recipe| recipe.id() == id)
    }

    /// Byte that ends each record (line) of this corpus.
    pub fn separator(self) -> u8 {
        if self == Recipe::NoNewline { b' ' } else { b'\n' }
    }
}

impl fmt::Display for Recipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One corpus block and what was planted in it.
pub struct Block {
    pub recipe: Recipe,
    pub bytes: Vec<u8>,
    /// End offset of each planted credential, in order. Near-misses are
    /// not credentials and are not listed.
    pub planted_ends: Vec<usize>,
    /// End offset of each near-miss planted by [`Recipe::Adversarial`].
    pub near_miss_ends: Vec<usize>,
}

impl Block {
    /// Returns how many planted credentials end at or before `len`.
    pub fn planted_before(&self, len: usize) -> usize {
        self.planted_ends.partition_point(|&end| end <= len)
    }

    /// Returns how many near-misses end at or before `len`.
    pub fn near_misses_before(&self, len: usize) -> usize {
        self.near_miss_ends.partition_point(|&end| end <= len)
    }

    /// Checks that `scanner` finds exactly the planted credentials, each
    /// with a valid checksum, and returns the number of findings. A
    /// [`Recipe::CloudflareLines`] block may contain legacy findings too,
    /// so that recipe is only counted.
    pub fn check(&self, scanner: &Arc<Scanner>) -> Result<usize, String> {
        let mut out = Vec::with_capacity(self.bytes.len());
        let findings = scanner.redact(&self.bytes, &mut out);
        if self.recipe == Recipe::CloudflareLines {
            return Ok(findings.len());
        }
        let valid = findings
            .iter()
            .filter(|f| f.level == Level::ChecksumValid && f.redacted)
            .count();
        let planted = self.planted_ends.len();
        if valid != planted || findings.len() != planted {
            return Err(format!(
                "corpus {}: {} findings, {valid} of them checksum_valid, \
                 but {planted} credentials were planted; the recipe or the \
                 engine changed",
                self.recipe,
                findings.len()
            ));
        }
        Ok(findings.len())
    }
}

/// Returns the folder of the loghub sample logs, which sits outside the
/// repository, beside its root.
pub fn loghub_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/loghub")
}

/// Reads the `*.log` files of `dir` in name order into one buffer, adding
/// a newline after each file that does not end with one.
pub fn read_loghub(dir: &Path) -> io::Result<Vec<u8>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "log") {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no *.log file in {}", dir.display()),
        ));
    }
    let mut base = Vec::new();
    for path in paths {
        base.extend(fs::read(&path)?);
        if base.last() != Some(&b'\n') {
            base.push(b'\n');
        }
    }
    Ok(base)
}

/// Makes the block of `recipe` from `base`, the output of [`read_loghub`].
pub fn block<R: Rng>(recipe: Recipe, base: &[u8], rng: &mut R) -> Block {
    let mut block = Block {
        recipe,
        bytes: Vec::with_capacity(base.len() + base.len() / 4),
        planted_ends: Vec::new(),
        near_miss_ends: Vec::new(),
    };
    match recipe {
        Recipe::Clean => block.bytes.extend_from_slice(base),
        Recipe::Per64K | Recipe::NoNewline => {
            plant_every(&mut block, base, 64 * 1024, rng);
        }
        Recipe::Per1K => plant_every(&mut block, base, 1024, rng),
        Recipe::Adversarial => plant_near_misses(&mut block, base, rng),
        Recipe::CloudflareLines => {
            for line in base.split_inclusive(|b| *b == b'\n') {
                block.bytes.extend_from_slice(b"cloudflare ");
                block.bytes.extend_from_slice(line);
            }
        }
    }
    if recipe == Recipe::NoNewline {
        for byte in &mut block.bytes {
            if *byte == b'\n' {
                *byte = b' ';
            }
        }
    }
    block
}

/// Appends `base` to the block, with a credential at the end of each line
/// that crosses a multiple of `every` bytes of output.
fn plant_every<R: Rng>(
    block: &mut Block,
    base: &[u8],
    every: usize,
    rng: &mut R,
) {
    let mut next = every;
    for line in base.split_inclusive(|b| *b == b'\n') {
        let out = &mut block.bytes;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        out.extend_from_slice(text);
        if out.len() + 1 >= next {
            let turn = block.planted_ends.len();
            let kind = PLANTED_KINDS[turn % PLANTED_KINDS.len()];
            let (before, after) = PLANT_CONTEXTS[turn % PLANT_CONTEXTS.len()];
            out.extend_from_slice(before.as_bytes());
            out.extend_from_slice(sample::prefixed(rng, kind).as_bytes());
            block.planted_ends.push(out.len());
            out.extend_from_slice(after.as_bytes());
            while next <= out.len() {
                next += every;
            }
        }
        if text.len() < line.len() {
            out.push(b'\n');
        }
    }
}

/// Appends `base` to the block with a near-miss every 24 to 64 bytes.
fn plant_near_misses<R: Rng>(block: &mut Block, base: &[u8], rng: &mut R) {
    let mut at = 0;
    while at < base.len() {
        let step = rng.random_range(24..=64).min(base.len() - at);
        block.bytes.extend_from_slice(&base[at..at + step]);
        at += step;
        near_miss(rng, &mut block.bytes);
        block.near_miss_ends.push(block.bytes.len());
    }
}

/// Appends a prefix followed by a body that ends before it is complete.
fn near_miss<R: Rng>(rng: &mut R, out: &mut Vec<u8>) {
    match rng.random_range(0..4) {
        0 => {
            // An Origin CA key whose hex digits stop early, in the first
            // or in the second group.
            out.extend_from_slice(b"v1.0-");
            if rng.random_bool(0.5) {
                let len = rng.random_range(0..24);
                out.extend_from_slice(sample::hex(rng, len).as_bytes());
            } else {
                out.extend_from_slice(sample::hex(rng, 24).as_bytes());
                out.push(b'-');
                let len = rng.random_range(0..40);
                out.extend_from_slice(sample::hex(rng, len).as_bytes());
            }
        }
        turn => {
            let kind = PLANTED_KINDS[turn - 1];
            out.extend_from_slice(kind.prefix().expect("prefixed kind"));
            // At most 39 body characters: one short of a credential.
            let len = rng.random_range(0..40);
            out.extend_from_slice(
                Alphanumeric.sample_string(rng, len).as_bytes(),
            );
        }
    }
    let end = NEAR_MISS_ENDS[rng.random_range(0..NEAR_MISS_ENDS.len())];
    out.push(end);
}
