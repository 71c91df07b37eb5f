use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match bnas::cli::run(bnas::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bnas::cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
