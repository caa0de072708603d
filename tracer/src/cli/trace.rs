//! `usdt trace`.

use super::CliError;

/// Arguments of `usdt trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {}

/// Runs `usdt trace`.
pub fn run(_args: TraceArgs) -> Result<(), CliError> {
    Err(CliError::Failure("`usdt trace` is not built yet".into()))
}
