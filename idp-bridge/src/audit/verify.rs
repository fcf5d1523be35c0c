//! Checking a trail: every file's chain, from the first record (or a `rotated` one) to the last,
//! keyed or from before the key existed.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{hex, io, rotated_files, AuditError, AuditKey, FORMAT, GENESIS};

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records checked.
    pub records: u64,
    /// Files checked, oldest first.
    pub files: Vec<PathBuf>,
    /// `seq` of the first record (above 1 when older files were removed by retention).
    pub first_seq: u64,
    /// `seq` of the last record.
    pub last_seq: u64,
    /// MAC (or, for an unkeyed file, hash) of the last record: compare with the last checkpoint
    /// in the gateway's log to see that no tail was cut off.
    pub last_mac: String,
}

/// Whether the file's first record is of the chains written before the audit key.
pub(super) fn is_unkeyed(path: &Path) -> Result<bool, AuditError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let first = BufReader::new(file).lines().next();
    Ok(match first {
        None => false,
        Some(line) => !line
            .map_err(|e| io(path, e))?
            .contains(&format!("\"format\":\"{FORMAT}\"")),
    })
}

/// Checks one file of the plain SHA-256 chains written before the audit key existed.
pub(super) fn verify_unkeyed(path: &Path) -> Result<Verified, AuditError> {
    check_file(path, None, 0, GENESIS, true).map(|(records, last_seq, last_mac)| Verified {
        records,
        files: vec![path.to_path_buf()],
        first_seq: 1,
        last_seq,
        last_mac,
    })
}

/// Checks the lines of one file, starting after `seq`/`prev`. With `first_of_set`, a file that
/// starts with a `rotated` record may start anywhere (older files were removed by retention).
/// Returns the records checked, the last seq and the last MAC.
fn check_file(
    path: &Path,
    key: Option<&AuditKey>,
    mut seq: u64,
    prev: &str,
    first_of_set: bool,
) -> Result<(u64, u64, String), AuditError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut prev = prev.to_string();
    let mut count = 0u64;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let broken = |reason: &str| AuditError::Broken {
            path: path.display().to_string(),
            line: i + 1,
            reason: reason.to_string(),
        };
        let line = line.map_err(|e| broken(&format!("unreadable: {e}")))?;
        let Some((mac, json)) = line.split_once(' ') else {
            return Err(broken(
                "not a `MAC JSON` record (a torn write, or not an audit file)",
            ));
        };
        let expected = match key {
            Some(k) => k.mac(json.as_bytes()),
            None => hex(&Sha256::digest(json.as_bytes())),
        };
        if expected != mac {
            return Err(broken(if key.is_some() {
                "the record does not match its MAC (changed after writing, or another audit key)"
            } else {
                "the record does not match its hash (changed after writing)"
            }));
        }
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|_| broken("the record is not JSON"))?;
        if i == 0 && key.is_some() {
            let kind = v["kind"].as_str().unwrap_or("");
            if v["format"].as_str() != Some(FORMAT) || !matches!(kind, "chain_start" | "rotated") {
                return Err(broken("the file does not start the chain or carry it on"));
            }
            if first_of_set && kind == "rotated" {
                // Older files are gone (retention): the chain is checked from here.
                seq = v["seq"].as_u64().unwrap_or(1).saturating_sub(1);
                prev = v["prev"].as_str().unwrap_or("").to_string();
            }
        }
        if v["prev"].as_str() != Some(prev.as_str()) {
            return Err(broken("the record does not follow the previous one (removed, reordered or inserted records)"));
        }
        if v["seq"].as_u64() != Some(seq + 1) {
            return Err(broken(&format!(
                "sequence number {} where {} was expected",
                v["seq"],
                seq + 1
            )));
        }
        seq += 1;
        count += 1;
        prev = mac.to_string();
    }
    Ok((count, seq, prev))
}

pub(super) fn verify_chain(path: &Path, key: Option<&AuditKey>) -> Result<Verified, AuditError> {
    let mut files = rotated_files(path)?;
    if path.exists() {
        files.push(path.to_path_buf());
    }
    let (mut seq, mut prev, mut records) = (0u64, GENESIS.to_string(), 0u64);
    let mut first_seq = None;
    for (i, f) in files.iter().enumerate() {
        let (n, last, mac) = check_file(f, key, seq, &prev, i == 0)?;
        if first_seq.is_none() && n > 0 {
            first_seq = Some(last + 1 - n);
        }
        records += n;
        seq = last;
        prev = mac;
    }
    Ok(Verified {
        records,
        files,
        first_seq: first_seq.unwrap_or(0),
        last_seq: seq,
        last_mac: prev,
    })
}

/// Checks the whole trail whose current file is `path`: its rotated files, oldest first, then
/// `path`. With a key, the keyed chain; without, a file written before the audit key.
pub fn verify(path: &Path, key: Option<&AuditKey>) -> Result<Verified, AuditError> {
    match key {
        Some(k) => verify_chain(path, Some(k)),
        None => verify_unkeyed(path),
    }
}
