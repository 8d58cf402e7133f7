//! `persona compact`: rewrite a closed store with one copy of every live key (see
//! [`crate::storage::compact`]).

use anyhow::{bail, Context, Result};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Write the compacted store with sled's zstd compression at this level (1-22), or
    /// uncompressed (0); default: as the store is (a compressed one at the configured
    /// `compression_level`, or 1).
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(0..=crate::config::MAX_COMPRESSION_LEVEL as i64))]
    compression_level: Option<u8>,
    /// Rewrite a plain (unencrypted) store as an encrypted one: customers named by token, what
    /// names them sealed with their own data key (docs/privacy.md). The key is the
    /// configuration's `key_file`, or PERSONA_KEY, or a new `store.key` in the data directory.
    #[arg(long)]
    encrypt: bool,
}

/// Compacts the store in `data` with the cache size and compression level of its
/// configuration.
pub fn run(data: &Path, config: &crate::Config, args: &Args) -> Result<()> {
    use crate::storage::compact::{compact, encrypt, CopyCompression};
    let compression = match args.compression_level {
        Some(level) => CopyCompression::Level(level),
        None => CopyCompression::AsStored(config.compression_level),
    };
    let done = if args.encrypt {
        encrypt(data, config.cache_capacity_mb, compression, config)
    } else {
        compact(data, config.cache_capacity_mb, compression)
    };
    let report = match done {
        Ok(r) => r,
        Err(crate::Error::Locked { .. }) => {
            bail!(
                "cannot compact the store at {}: another process has it open (stop it first)",
                data.display()
            )
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot compact the store at {}", data.display()))
        }
    };
    if args.json {
        super::print_json(&serde_json::to_value(&report)?)?;
    } else {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "compacted {}: {:.1} MiB -> {:.1} MiB on disk ({} keys, {:.1} MiB of keys and values) in {:.1} s",
            report.path.display(),
            mib(report.bytes_before),
            mib(report.bytes_after),
            report.keys,
            mib(report.logical_bytes),
            report.seconds
        );
    }
    Ok(())
}
