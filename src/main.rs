//! The `mosaic` binary: parses the command line and dispatches to the library.
//!
//! A panic (a bug) never reaches the user as a backtrace: the hook prints one
//! line asking for a report, and the process exits 101 as Rust's default.

use clap::Parser;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        use std::io::Write;
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "mosaic: internal error ({}{at}); nothing more was done: please report it with the command you ran",
            msg.replace('\n', " ")
        );
    }));
    // A self-update's note to this (new) binary is read once and not passed on.
    mosaic::selfupdate::take_updated_mark();
    // A shell asking for completions (MOSAIC_COMPLETE=SHELL) is answered and exits.
    mosaic::complete::answer_if_asked();
    let cli = mosaic::cli::Cli::parse();
    std::process::exit(mosaic::commands::dispatch(cli));
}
