//! The bounded cache of filtered catalog answers, which the shared state keeps across requests.

use std::sync::Arc;

use bytes::Bytes;

/// What a cached answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `/catalog` for a viewer holding this (`None`: anonymous).
    Page(Option<catalog::Viewer>),
    /// `/catalog.json`.
    Json,
    /// `/catalog.jsonld`.
    JsonLd,
}

/// Filtered answers: (generation, kind, canonical query) → (body, ETag).
pub(crate) type Cache = moka::sync::Cache<(u64, Kind, String), (Bytes, Arc<str>)>;

/// Most bytes the cache of filtered answers holds (bodies and keys).
pub(crate) const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A cache of filtered answers, bounded in bytes: a flood of distinct queries evicts older
/// answers, it cannot grow memory.
pub(crate) fn new_cache() -> Cache {
    moka::sync::Cache::builder()
        .weigher(|key: &(u64, Kind, String), value: &(Bytes, Arc<str>)| {
            u32::try_from(key.2.len() + value.0.len() + 64).unwrap_or(u32::MAX)
        })
        .max_capacity(CACHE_BYTES)
        .time_to_live(std::time::Duration::from_secs(600))
        .build()
}
