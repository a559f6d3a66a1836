//! `gre-relay`: parse the command line, start logging, hand over to the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GRE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = gre_relay::cli::Cli::parse();
    // The runtime is built here, not by #[tokio::main], so that `server.worker_threads` can size it.
    let runtime = match gre_relay::cli::runtime(&cli) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gre-relay: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(gre_relay::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gre-relay: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
