//! `token-service`: the local server on the embedded store. See `token-service --help`.

use backend::server::{Config, Server, shutdown_signal};
use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry().with(log).with(backend::app::log_filter()).init();
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
