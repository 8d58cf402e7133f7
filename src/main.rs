//! The `persona` command-line tool. See `persona --help`.
//!
//! Exit codes: 0 success, 1 the command failed (the error is printed), 2 bad usage.

use persona::cli;

use clap::Parser;

/// The binary's allocator. With glibc's malloc, memory that sled's page cache, the writer and the
/// query threads allocate on one thread and free on another stays in per-thread arenas: at 300k
/// profiles the benchmark's resident set was 690 MiB with glibc and 507 MiB with mimalloc (and
/// ingest faster), see docs/bench-history.md. Programs that link the library choose their own.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `persona export … | head` closes stdout early; print! then panics with "failed printing to
    // stdout". A closed pipe is a normal way for a reader to stop, so exit quietly (status 0)
    // instead of printing a panic, as Unix tools do on SIGPIPE.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    // Transparent huge pages (`always` on many distributions) make every page mimalloc gives back
    // and takes again a fresh 2 MiB page to zero: 8% of the writer's time, and a larger resident
    // set, in the benchmark (docs/bench-history.md). This process does better with 4 KiB pages.
    #[cfg(target_os = "linux")]
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        eprintln!("persona: could not disable transparent huge pages ({e}); continuing");
    }
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERSONA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a log file or a pipe.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli::run(args) {
        Ok(()) => {}
        Err(e) => match cli::exit_code(&e) {
            None => std::process::exit(0),
            Some(code) => {
                eprintln!("persona: {e:#}");
                std::process::exit(code);
            }
        },
    }
}
