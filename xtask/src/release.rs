//! `cargo xtask release` (being built).

/// Runs `cargo xtask release ARGS…`.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask release is not built yet")
}
