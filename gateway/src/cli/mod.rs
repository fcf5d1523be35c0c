//! What the `varco` command line needs beyond starting the server: `varco explain`.

pub mod explain;
