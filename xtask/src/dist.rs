//! `cargo xtask dist` (being built).

/// Runs `cargo xtask dist ARGS…`.
pub fn run(_args: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask dist is not built yet")
}
