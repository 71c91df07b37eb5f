use std::process::ExitCode;

fn main() -> ExitCode {
    match bnas::cli::run(bnas::cli::Cli::parse_noting_given()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", bnas::cli::error_line(&e));
            ExitCode::FAILURE
        }
    }
}
