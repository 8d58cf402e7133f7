//! `persona key rotate`: re-wrap an encrypted store's data keys under a new store key (see
//! [`crate::storage::encryption::rotate_key`]).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// Generate a new store key and re-wrap every customer's data key under it (the store must
    /// be closed). The new key replaces the key file the store was opened with, unless
    /// --new-key-file names where to write it; the old key no longer opens the store.
    Rotate {
        /// Write the new key to this file (mode 0600; it must not exist) instead of replacing
        /// the current key file. Required when the key comes from PERSONA_KEY.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// Print the result as JSON (`data_keys`, `key_file`).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &crate::Config, args: &Args) -> Result<()> {
    let data = config.path();
    crate::storage::require_store(data)?;
    match &args.command {
        KeyCommand::Rotate { new_key_file, json } => {
            let rotation =
                match crate::storage::encryption::rotate_key(config, new_key_file.as_deref()) {
                    Ok(r) => r,
                    Err(crate::Error::Locked { .. }) => bail!(
                        "cannot rotate the key of the store at {}: another process has it \
                         open (stop it first)",
                        data.display()
                    ),
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot rotate the key of the store at {}", data.display())
                        })
                    }
                };
            if *json {
                super::print_json(&serde_json::to_value(&rotation)?)?;
            } else {
                println!(
                    "rotated the store key of {}: {} data keys re-wrapped; the new key is in {} \
                     (the old key no longer opens the store)",
                    data.display(),
                    rotation.data_keys,
                    rotation.key_file.display()
                );
            }
            Ok(())
        }
    }
}
