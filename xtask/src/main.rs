//! Repository automation (`cargo xtask …`), in Rust, no shell glue.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        _ => anyhow::bail!("usage: cargo xtask <matrix|release|bench|dist>"),
    }
}
