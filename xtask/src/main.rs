//! Repository automation (`cargo xtask …`), in Rust, no shell glue:
//! `matrix` (the migration matrix, SPEC §10), `release` (version bump, tag),
//! `dist` (release artefacts), `bench` (performance figures).

mod bench;
mod build;
mod crashtest;
mod dist;
mod matrix;
mod proc;
mod release;
mod snapshot;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    let result = match args.first().map(String::as_str) {
        Some("matrix") => matrix::run(rest),
        Some("release") => release::run(rest),
        Some("dist") => dist::run(rest),
        Some("bench") => bench::run(rest),
        Some("crashtest") => crashtest::run(rest),
        _ => Err(anyhow::anyhow!(
            "usage: cargo xtask <matrix|release|dist|bench> [ARGS…]"
        )),
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}
