//! The SAML audit trail SPID requires of a Service Provider: every AuthnRequest sent and every
//! Response received, with time, IdP and outcome, kept as an append-only, hash-chained file.
//!
//! One record per line: `HASH JSON`, where `HASH` is the hex SHA-256 of the JSON text exactly as
//! written and the JSON holds `seq` (1, 2, ...) and `prev`, the previous line's hash (64 zeros for
//! the first). Changing, removing or reordering any line breaks the chain at that line, which
//! [`verify`] reports. The messages themselves are kept (base64), as the rules require; no cookie
//! or session value ever is. Each gateway instance writes its own file.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// An AuthnRequest sent.
    AuthnRequest,
    /// A Response received at the ACS.
    Response,
}

/// The append-only audit file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<(File, u64, String)>,
}

/// Why the audit file cannot be used or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The file cannot be opened, read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The chain is broken at this line.
    #[error("{path}:{line}: {reason}")]
    Broken {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong there.
        reason: String,
    },
}

fn io(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditLog {
    /// Opens (creating it and its directory if needed) the audit file, checking the whole
    /// existing chain first: a broken file is not extended.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let (seq, last) = if path.exists() {
            verify(path)?
        } else {
            (0, GENESIS.to_string())
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            state: Mutex::new((file, seq, last)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record. An error means the event could not be recorded: callers fail closed.
    pub fn record(
        &self,
        kind: AuditKind,
        idp: &str,
        request_id: &str,
        outcome: &str,
        message: &[u8],
    ) -> Result<(), AuditError> {
        let Ok(mut state) = self.state.lock() else {
            return Err(io(&self.path, "audit writer poisoned"));
        };
        let (file, seq, prev) = &mut *state;
        let json = serde_json_line(*seq + 1, prev, kind, idp, request_id, outcome, message);
        let hash = hex(&Sha256::digest(json.as_bytes()));
        let line = format!("{hash} {json}\n");
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .map_err(|e| io(&self.path, e))?;
        *seq += 1;
        *prev = hash;
        Ok(())
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn serde_json_line(
    seq: u64,
    prev: &str,
    kind: AuditKind,
    idp: &str,
    request_id: &str,
    outcome: &str,
    message: &[u8],
) -> String {
    let kind = match kind {
        AuditKind::AuthnRequest => "authn_request",
        AuditKind::Response => "response",
    };
    format!(
        "{{\"seq\":{seq},\"prev\":{},\"time\":{},\"kind\":{},\"idp\":{},\"request_id\":{},\"outcome\":{},\"message\":{}}}",
        json_str(prev),
        json_str(&Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
        json_str(kind),
        json_str(idp),
        json_str(request_id),
        json_str(outcome),
        json_str(&base64::engine::general_purpose::STANDARD.encode(message)),
    )
}

/// Checks the whole chain; returns the number of records and the last hash, or the first broken
/// line.
pub fn verify(path: &Path) -> Result<(u64, String), AuditError> {
    let file = File::open(path).map_err(|e| io(path, e))?;
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let broken = |reason: &str| AuditError::Broken {
            path: path.display().to_string(),
            line: i + 1,
            reason: reason.to_string(),
        };
        let line = line.map_err(|e| broken(&format!("unreadable: {e}")))?;
        let Some((hash, json)) = line.split_once(' ') else {
            return Err(broken("not a `HASH JSON` record"));
        };
        if hex(&Sha256::digest(json.as_bytes())) != hash {
            return Err(broken(
                "the record does not match its hash (changed after writing)",
            ));
        }
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|_| broken("the record is not JSON"))?;
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
        prev = hash.to_string();
    }
    Ok((seq, prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .expect("read")
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn records_chain_and_tampering_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit/saml.log");
        let log = AuditLog::open(&path).expect("open");
        for i in 0..5 {
            log.record(
                AuditKind::AuthnRequest,
                "https://idp.example",
                &format!("_{i}"),
                "sent",
                b"<samlp:AuthnRequest/>",
            )
            .expect("record");
        }
        drop(log);
        assert_eq!(verify(&path).expect("valid").0, 5);
        // Reopening continues the chain.
        let log = AuditLog::open(&path).expect("reopen");
        log.record(
            AuditKind::Response,
            "https://idp.example",
            "_4",
            "accepted",
            b"<samlp:Response/>",
        )
        .expect("record");
        assert_eq!(verify(&path).expect("valid").0, 6);

        let original = lines(&path);
        let write = |l: &[String]| std::fs::write(&path, l.join("\n") + "\n").expect("write");
        let mut changed = original.clone();
        changed[2] = changed[2].replace("\"sent\"", "\"refused\"");
        write(&changed);
        assert!(matches!(
            verify(&path),
            Err(AuditError::Broken { line: 3, .. })
        ));
        let mut removed = original.clone();
        removed.remove(3);
        write(&removed);
        assert!(matches!(
            verify(&path),
            Err(AuditError::Broken { line: 4, .. })
        ));
        let mut swapped = original.clone();
        swapped.swap(1, 2);
        write(&swapped);
        assert!(matches!(
            verify(&path),
            Err(AuditError::Broken { line: 2, .. })
        ));
        // A broken file is not extended.
        assert!(AuditLog::open(&path).is_err());
        write(&original);
        assert!(verify(&path).is_ok());
    }

    #[test]
    fn values_cannot_break_the_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        let log = AuditLog::open(&path).expect("open");
        log.record(
            AuditKind::Response,
            "idp\"\n{\"x\":1}",
            "_\\1",
            "refused: \"quoted\"\r\n",
            b"\x00\xff",
        )
        .expect("record");
        assert_eq!(lines(&path).len(), 1);
        assert!(verify(&path).is_ok());
    }
}
