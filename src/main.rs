use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    credproxy::cli::run(credproxy::cli::Cli::parse())
}
