//! How much memory in-process sessions take: fills varco's `MemoryStore` with N realistic
//! sessions (SPID L2, fiscal number, name, family name, e-mail) and reports the growth of the
//! process's resident set, with the gateway's allocator (mimalloc).
//!
//! `cargo run --release -p benches --bin session-memory -- [N]` (default 100000).

use std::time::Duration;

use gateway::store::{Lifetimes, MemoryStore, StateStore as _};
use gateway::store::{Session, SessionId};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident set size in bytes (Linux).
fn rss() -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/statm"))?
        .parse()?;
    Ok(pages * 4096)
}

/// A session as the ACS would leave it.
fn session(i: usize) -> anyhow::Result<Session> {
    use policies::Attribute;
    let fiscal = format!("TINIT-RSSMRA80A01H{:03}U", i % 1000);
    let email = format!("cittadino{i}@example.org");
    let principal = idp_bridge::insecure_test_idp::unverified_principal_for_tests(
        "https://identity.sieltecloud.it",
        &format!("_{i:032x}"),
        policies::Level::SpidL2,
        &[
            (Attribute::FiscalNumber, &fiscal),
            (Attribute::Name, "Maria Grazia"),
            (Attribute::FamilyName, "Bianchi Lucchesi"),
            (Attribute::Email, &email),
        ],
    );
    Ok(Session::open(
        principal,
        Attribute::ALL.iter().copied().take(10).collect(),
    ))
}

#[allow(clippy::print_stdout)] // the figure is this tool's output
fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let store = MemoryStore::new(Lifetimes {
        idle: Duration::from_secs(1800),
        absolute: Duration::from_secs(8 * 3600),
    });
    // Warm up the allocator and the cache's internals with a few sessions, then measure.
    let warm: Vec<SessionId> = (0..100).map(|_| SessionId::new()).collect();
    for (i, id) in warm.iter().enumerate() {
        rt.block_on(store.put_session(id, session(i)?))?;
    }
    let before = rss()?;
    let ids: Vec<SessionId> = (0..n).map(|_| SessionId::new()).collect();
    let ids_bytes = rss()?.saturating_sub(before);
    for (i, id) in ids.iter().enumerate() {
        rt.block_on(store.put_session(id, session(i)?))?;
    }
    let held = store.session_count();
    let after = rss()?;
    let grown = after.saturating_sub(before).saturating_sub(ids_bytes);
    let per = grown as f64 / n as f64;
    // Reads must still find them (and the measurement must not be of an emptied cache).
    let found = ids
        .iter()
        .step_by((n / 1000).max(1))
        .filter(|id| matches!(rt.block_on(store.session(id)), Ok(Some(_))))
        .count();
    println!(
        "{n} sessions ({held} held, {found} of {} sampled found): {:.1} MiB resident, {per:.0} bytes per session",
        ids.iter().step_by((n / 1000).max(1)).count(),
        grown as f64 / (1024.0 * 1024.0),
    );
    Ok(())
}
