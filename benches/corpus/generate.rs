//! `bench-corpus`: writes a benchmark corpus of a given size, for
//! `benches/compare.sh`.
//!
//! The file is the recipe's block repeated, cut at the last record
//! separator that fits, so no planted credential is cut in two. One line
//! goes to stdout: `bytes=N planted=N near_misses=N`, the counts that the
//! whole file holds, which the script compares with what each tool
//! replaced. With `-` as the file, the corpus goes to stdout and that line
//! to stderr, so a corpus larger than the disk can stream into a pipe.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use cfscrub::engine::Scanner;
use clap::Parser;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[path = "mod.rs"]
mod corpus;

use corpus::Recipe;

/// Writes a benchmark corpus made from the loghub sample logs.
#[derive(Debug, Parser)]
#[command(name = "bench-corpus")]
struct Args {
    /// Recipe: clean, per_64k, per_1k, adversarial, cloudflare_lines or
    /// no_newline.
    #[arg(value_parser = parse_recipe)]
    recipe: Recipe,

    /// Size of the file in bytes. The file ends at the end of a record, so
    /// it may be up to one record shorter.
    size: u64,

    /// File to write, or `-` for stdout.
    out: PathBuf,

    /// Folder of the loghub `*.log` files.
    #[arg(long, value_name = "DIR", default_value_os_t = corpus::loghub_dir())]
    loghub: PathBuf,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-corpus: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let base = corpus::read_loghub(&args.loghub).with_context(|| {
        format!("cannot read the loghub logs in {}", args.loghub.display())
    })?;
    let mut rng = StdRng::seed_from_u64(corpus::SEED);
    let block = corpus::block(args.recipe, &base, &mut rng);
    let scanner = Arc::new(Scanner::builder().build()?);
    block.check(&scanner).map_err(anyhow::Error::msg)?;

    let block_len = block.bytes.len() as u64;
    let repeats = args.size / block_len;
    let rest = (args.size % block_len) as usize;
    let separator = args.recipe.separator();
    // The partial block ends just after its last separator.
    let tail = block.bytes[..rest]
        .iter()
        .rposition(|b| *b == separator)
        .map_or(0, |at| at + 1);
    if repeats == 0 && tail == 0 {
        bail!(
            "invalid size {}: the smallest corpus is one record of the {} \
             block ({block_len} bytes in all)",
            args.size,
            args.recipe
        );
    }

    let to_stdout = args.out.as_os_str() == "-";
    let file: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        let file = File::create(&args.out).with_context(|| {
            format!("cannot create {}", args.out.display())
        })?;
        Box::new(file)
    };
    // Each block is larger than the buffer, so BufWriter writes it
    // straight through, and the buffer only joins the tail to it.
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let written = (0..repeats)
        .try_for_each(|_| out.write_all(&block.bytes))
        .and_then(|()| out.write_all(&block.bytes[..tail]))
        .and_then(|()| out.flush());
    written
        .with_context(|| format!("write to {} failed", args.out.display()))?;

    let repeats = repeats as usize;
    let bytes = repeats * block.bytes.len() + tail;
    let planted =
        repeats * block.planted_ends.len() + block.planted_before(tail);
    let near_misses =
        repeats * block.near_miss_ends.len() + block.near_misses_before(tail);
    let counts =
        format!("bytes={bytes} planted={planted} near_misses={near_misses}");
    if to_stdout {
        eprintln!("{counts}");
    } else {
        println!("{counts}");
    }
    Ok(())
}

fn parse_recipe(id: &str) -> Result<Recipe, String> {
    Recipe::from_id(id).ok_or_else(|| {
        let ids: Vec<_> = Recipe::ALL.iter().map(|r| r.id()).collect();
        format!("invalid recipe {id:?}: expected one of {}", ids.join(", "))
    })
}
