//! The `persona` command-line tool. See `persona --help`.
//!
//! Exit codes: 0 success, 1 the command failed (the error is printed), 2 bad usage.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERSONA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(args) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("persona: {e:#}");
            let usage = e
                .downcast_ref::<persona::Error>()
                .is_some_and(|e| matches!(e, persona::Error::Config(_)));
            std::process::exit(if usage { 2 } else { 1 });
        }
    }
}
