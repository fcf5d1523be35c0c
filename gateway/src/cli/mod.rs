//! What the `varco` command line needs beyond starting the server: `varco explain`, and the
//! export of the metadata for AgID (`varco metadata --export`).

pub mod explain;
pub mod export;
