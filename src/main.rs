//! The `mosaic` binary: parses the command line and dispatches to the library.

use clap::Parser;

fn main() {
    let cli = mosaic::cli::Cli::parse();
    std::process::exit(mosaic::commands::dispatch(cli));
}
