//! The audit trail SPID requires of a Service Provider: every AuthnRequest sent and every
//! Response received (and, for OpenID Connect, every authorization request and token response),
//! with time, IdP and outcome, kept as an append-only chain that whoever can
//! write the files cannot rewrite.
//!
//! One record per line: `MAC JSON`. `MAC` is the hex HMAC-SHA256, under the audit key (a file
//! named by `[sp] audit_key`, never in the trail), of the JSON text exactly as written; the JSON
//! holds `seq` (1, 2, ...) and `prev`, the previous record's MAC (64 zeros for the very first).
//! Changing, removing, inserting or reordering a record breaks the chain there, and without the
//! key no record can be made that fits. Cutting the tail off cannot be seen from the files alone:
//! the gateway logs a checkpoint (`seq` and MAC) to its own log every [`CHECKPOINT_EVERY`]
//! records and at every rotation, and `varco audit verify` prints the last one it reached.
//!
//! Files rotate at a size: the current file is renamed `<file>.<UTC time>` and the new one starts
//! with a `rotated` record that carries the chain on (`seq` continues, `prev` is the last MAC of
//! the previous file). Rotated files older than the retention (SPID asks for 24 months) are
//! deleted; a set whose first file starts with a `rotated` record is then verified from there.
//!
//! Records are written in batches and each batch is flushed to the disk (`fdatasync`) before it
//! counts as written: a caller that was told "written" never loses its record to a crash. The
//! messages themselves are kept (base64), as the rules require, except for posts that fail before
//! anything was verified (garbage, unsolicited answers), of which the first [`BOUNDED_PREFIX`]
//! bytes and the SHA-256 of the whole are kept, so that nobody can fill the disk with junk.
//! No cookie or session value is ever recorded. Each gateway instance writes its own files.
//!
//! Files written before the audit key existed (plain SHA-256 chains) still verify without a key,
//! and are set aside (renamed `<file>.unkeyed-<UTC time>`) when a keyed chain starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod verify;
mod write;

pub use self::verify::{verify, Verified};
pub use self::write::AuditLog;
use sha2::{Digest, Sha256};

pub(super) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The format of keyed chains, named in each file's first record.
pub(super) const FORMAT: &str = "hmac-sha256";
/// How many bytes of an unverified message are kept.
pub const BOUNDED_PREFIX: usize = 2048;
/// How often (in records) the gateway logs a checkpoint.
pub const CHECKPOINT_EVERY: u64 = 1000;

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// An AuthnRequest sent.
    AuthnRequest,
    /// A Response received at the ACS.
    Response,
    /// An OpenID Connect authorization request sent (the state only as its digest).
    AuthorizationRequest,
    /// An OpenID Connect callback refused before its code was redeemed.
    AuthorizationResponse,
    /// An OpenID Connect callback redeemed: the callback, the token endpoint's answer (access and
    /// refresh tokens redacted, the ID token kept) and the UserInfo answer.
    TokenResponse,
    /// A CNS login sent to the card's host.
    CnsRequest,
    /// A CNS card's certificate chain received, with the outcome of its verification.
    ClientCertificate,
}

/// Why the audit trail cannot be used or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// A file cannot be opened, read or written (a full disk, permissions).
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// Another process (another varco, or the one being upgraded) has the trail open.
    #[error("{path}: the audit trail is open in another varco process (a trail has one writer)")]
    InUse {
        /// The trail.
        path: String,
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
    /// The audit key is missing, unreadable or too short.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// Why it is refused.
        reason: String,
    },
}

pub(super) fn io(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

pub(super) use crate::secret::to_hex as hex;

/// The key of the chain's MACs. Never printed.
#[derive(Clone)]
pub struct AuditKey(openssl::pkey::PKey<openssl::pkey::Private>);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey([redacted])")
    }
}

impl AuditKey {
    /// The smallest key accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// Reads the key file (raw bytes, at least [`Self::MIN_LEN`]).
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let refuse = |reason: String| AuditError::Key {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes).map_err(refuse)
    }

    /// A key from its bytes (at least [`Self::MIN_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < Self::MIN_LEN {
            return Err(format!(
                "the audit key has {} bytes, at least {} random bytes are needed (e.g. `openssl rand -out audit.key 32`)",
                bytes.len(),
                Self::MIN_LEN
            ));
        }
        openssl::pkey::PKey::hmac(bytes)
            .map(Self)
            .map_err(|e| e.to_string())
    }

    fn mac(&self, data: &[u8]) -> String {
        let signed = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &self.0)
            .and_then(|mut s| {
                s.update(data)?;
                s.sign_to_vec()
            });
        // HMAC over memory cannot fail but for allocation; an empty MAC never verifies.
        signed.map(|m| hex(&m)).unwrap_or_default()
    }
}

/// One event to record.
#[derive(Clone)]
pub struct AuditRecord {
    kind: AuditKind,
    idp: String,
    request_id: String,
    outcome: String,
    message: Vec<u8>,
    bounded: bool,
}

impl std::fmt::Debug for AuditRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The message is a SAML document with the citizen's data: only its size prints.
        f.debug_struct("AuditRecord")
            .field("kind", &self.kind)
            .field("idp", &self.idp)
            .field("request_id", &self.request_id)
            .field("outcome", &self.outcome)
            .field("message_bytes", &self.message.len())
            .field("bounded", &self.bounded)
            .finish()
    }
}

impl AuditRecord {
    /// A record keeping the whole message.
    pub fn new(
        kind: AuditKind,
        idp: &str,
        request_id: &str,
        outcome: &str,
        message: &[u8],
    ) -> Self {
        Self {
            kind,
            idp: idp.into(),
            request_id: request_id.into(),
            outcome: outcome.into(),
            message: message.to_vec(),
            bounded: false,
        }
    }

    /// A record of a message nothing was verified of: its first [`BOUNDED_PREFIX`] bytes, its
    /// length and its SHA-256 only.
    pub fn bounded(
        kind: AuditKind,
        idp: &str,
        request_id: &str,
        outcome: &str,
        message: &[u8],
    ) -> Self {
        let mut r = Self::new(
            kind,
            idp,
            request_id,
            outcome,
            &message[..message.len().min(BOUNDED_PREFIX)],
        );
        r.bounded = true;
        r.outcome = format!(
            "{outcome} [{} bytes, sha256 {}]",
            message.len(),
            hex(&Sha256::digest(message))
        );
        r
    }
}

/// Where and how the trail is kept.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The current file; rotated ones sit beside it.
    pub path: PathBuf,
    /// Rotate once the current file is larger than this.
    pub rotate_bytes: u64,
    /// Delete rotated files last written longer ago than this.
    pub retention: Duration,
}

pub(super) fn json_str(s: &str) -> String {
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

/// The rotated files of `path`, oldest first (their names end in a UTC time, which sorts).
pub(super) fn rotated_files(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(io(path, "not a file name"));
    };
    let prefix = format!("{name}.");
    let mut found: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&prefix) && !n[prefix.len()..].starts_with("unkeyed")
                })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(dir, e)),
    };
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests;
