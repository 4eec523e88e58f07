//! `cargo xtask matrix` (being built).

/// Runs `cargo xtask matrix ARGS…`.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask matrix is not built yet")
}
