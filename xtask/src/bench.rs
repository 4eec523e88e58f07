//! `cargo xtask bench` (being built).

/// Runs `cargo xtask bench ARGS…`.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask bench is not built yet")
}
