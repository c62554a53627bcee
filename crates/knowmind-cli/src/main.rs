//! `knowmind`: parses the command line, runs it, prints an error once (with its hint), and exits
//! with the documented code.
#![allow(clippy::print_stderr)]

use clap::Parser;
use knowmind_cli::cli::Cli;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match knowmind_cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if e.has_message() {
                eprintln!("knowmind: {e}");
            }
            if let Some(hint) = e.hint_text() {
                eprintln!("  hint: {hint}");
            }
            std::process::ExitCode::from(e.code())
        }
    }
}
