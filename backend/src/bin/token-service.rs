//! `token-service`: the local server on the embedded store. See `token-service --help`.

use backend::server::{Config, Server, shutdown_signal};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let server = match Server::build(Config::parse()).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("token-service: {e}");
            return ExitCode::FAILURE;
        }
    };
    match server.local_addr() {
        Ok(addr) => println!("token-service listening on http://{addr}"),
        Err(e) => eprintln!("token-service: {e}"),
    }
    if let Err(e) = server.run(shutdown_signal()).await {
        eprintln!("token-service: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
