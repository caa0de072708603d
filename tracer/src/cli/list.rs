//! `usdt list`.

use super::CliError;

/// Arguments of `usdt list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {}

/// Runs `usdt list`.
pub fn run(_args: ListArgs) -> Result<(), CliError> {
    Err(CliError::Failure("`usdt list` is not built yet".into()))
}
