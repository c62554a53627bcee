//! `knowmind-server`: parses the command line, sets up logging, runs the command, and maps the
//! outcome to an exit code (0 ok, 1 error, 2 usage). It prints the one error line itself.
#![allow(clippy::print_stderr)]

use clap::Parser;
use knowmind_server::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Held to the end: dropping it writes the log lines still queued.
    let _log = match knowmind_server::serve::init_tracing(&cli.common) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("knowmind-server: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    match knowmind_server::serve::run(cli).await {
        Ok(code) => std::process::ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("knowmind-server: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
