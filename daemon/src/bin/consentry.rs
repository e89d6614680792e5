//! `consentry`: the operator's command line. See `consentry --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = consentry::cli::CliArgs::parse();
    match consentry::cli::run_cli(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`consentry assets list | head`) is not an error.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("consentry: {err:#}");
            ExitCode::FAILURE
        }
    }
}
