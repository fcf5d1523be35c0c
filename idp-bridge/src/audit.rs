//! The SAML audit trail SPID requires of a Service Provider: every AuthnRequest sent and every
//! Response received, with time, IdP and outcome, kept as an append-only chain that whoever can
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

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The format of keyed chains, named in each file's first record.
const FORMAT: &str = "hmac-sha256";
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

fn io(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

/// The append-only trail (one writer: the gateway runs it on its own thread).
#[derive(Debug)]
pub struct AuditLog {
    options: AuditOptions,
    key: AuditKey,
    /// An exclusive lock on `.<file>.lock` beside the trail, held while the trail is open: two
    /// writers would fork the chain, and during an upgrade the old and the new process both run.
    _lock: File,
    file: File,
    size: u64,
    seq: u64,
    prev: String,
}

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

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn record_json(seq: u64, prev: &str, r: &AuditRecord) -> String {
    let kind = match r.kind {
        AuditKind::AuthnRequest => "authn_request",
        AuditKind::Response => "response",
    };
    format!(
        "{{\"seq\":{seq},\"prev\":{},\"time\":{},\"kind\":{},\"idp\":{},\"request_id\":{},\"outcome\":{},\"message\":{}{}}}",
        json_str(prev),
        json_str(&now()),
        json_str(kind),
        json_str(&r.idp),
        json_str(&r.request_id),
        json_str(&r.outcome),
        json_str(&base64::engine::general_purpose::STANDARD.encode(&r.message)),
        if r.bounded { ",\"bounded\":true" } else { "" },
    )
}

/// The first record of a file: where the chain comes from.
fn start_json(seq: u64, prev: &str, previous_file: Option<&str>) -> String {
    let (kind, from) = match previous_file {
        None => ("chain_start", String::new()),
        Some(f) => ("rotated", format!(",\"previous_file\":{}", json_str(f))),
    };
    format!(
        "{{\"seq\":{seq},\"prev\":{},\"time\":{},\"kind\":\"{kind}\",\"format\":\"{FORMAT}\"{from}}}",
        json_str(prev),
        json_str(&now()),
    )
}

/// Takes the trail's writer lock, or says who has it.
fn lock_file(path: &Path) -> Result<File, AuditError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
    let lock_path = path.with_file_name(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::InUse {
            path: path.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(&lock_path, e)),
    }
}

/// The rotated files of `path`, oldest first (their names end in a UTC time, which sorts).
fn rotated_files(path: &Path) -> Result<Vec<PathBuf>, AuditError> {
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

fn stamp() -> String {
    Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string()
}

impl AuditLog {
    /// Opens the trail: checks every file of the chain first (a broken chain is not extended),
    /// deletes rotated files past the retention, sets an unkeyed file aside, and starts a file
    /// when there is none.
    ///
    /// Fails with [`AuditError::InUse`] while another process has the trail open.
    pub fn open(options: AuditOptions, key: AuditKey) -> Result<Self, AuditError> {
        let path = options.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let lock = lock_file(&path)?;
        if path.exists() && is_unkeyed(&path)? {
            // Written before the audit key: check it as it was written, then keep it aside.
            verify_unkeyed(&path)?;
            let aside = path.with_file_name(format!(
                "{}.unkeyed-{}",
                path.file_name().and_then(|n| n.to_str()).unwrap_or("audit"),
                stamp()
            ));
            std::fs::rename(&path, &aside).map_err(|e| io(&path, e))?;
        }
        prune(&options)?;
        let verified = if path.exists() {
            Some(verify_chain(&path, Some(&key))?)
        } else {
            None
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let size = file.metadata().map_err(|e| io(&path, e))?.len();
        let mut log = Self {
            options,
            key,
            _lock: lock,
            file,
            size,
            seq: 0,
            prev: GENESIS.to_string(),
        };
        let previous_file = match verified {
            Some(v) if v.records > 0 => {
                log.seq = v.last_seq;
                log.prev = v.last_mac;
                v.files
                    .iter()
                    .rev()
                    .find(|f| **f != log.options.path)
                    .and_then(|f| f.file_name())
                    .and_then(|n| n.to_str())
                    .map(String::from)
            }
            _ => None,
        };
        if log.size == 0 {
            // A new trail, or a crash between a rotation's rename and its first record.
            log.start_file(previous_file.as_deref())?;
        }
        Ok(log)
    }

    /// `seq` of the last record written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// MAC of the last record written (for checkpoints).
    pub fn last_mac(&self) -> &str {
        &self.prev
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.options.path
    }

    fn write_lines(&mut self, lines: &str) -> Result<(), AuditError> {
        let path = self.options.path.clone();
        let written = self
            .file
            .write_all(lines.as_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever part of the batch reached the file is cut off again: the chain on disk
            // stays the one in memory, and the next batch can still extend it.
            let _ = self.file.set_len(self.size);
            return Err(io(&path, e));
        }
        self.size += lines.len() as u64;
        Ok(())
    }

    fn start_file(&mut self, previous_file: Option<&str>) -> Result<(), AuditError> {
        let json = start_json(self.seq + 1, &self.prev, previous_file);
        let mac = self.key.mac(json.as_bytes());
        self.write_lines(&format!("{mac} {json}\n"))?;
        self.seq += 1;
        self.prev = mac;
        Ok(())
    }

    /// Renames the current file aside and starts the next one, carrying the chain on.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let path = self.options.path.clone();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("audit");
        let rotated = path.with_file_name(format!("{name}.{}", stamp()));
        std::fs::rename(&path, &rotated).map_err(|e| io(&path, e))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        self.size = 0;
        let previous = rotated
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        self.start_file(Some(&previous))?;
        prune(&self.options)
    }

    /// Appends a batch of records and waits until they are on the disk. An error means none of
    /// them counts as recorded: callers fail closed.
    pub fn append(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if self.size > self.options.rotate_bytes {
            self.rotate()?;
        }
        let mut lines = String::new();
        let (mut seq, mut prev) = (self.seq, self.prev.clone());
        for r in records {
            seq += 1;
            let json = record_json(seq, &prev, r);
            let mac = self.key.mac(json.as_bytes());
            lines.push_str(&mac);
            lines.push(' ');
            lines.push_str(&json);
            lines.push('\n');
            prev = mac;
        }
        self.write_lines(&lines)?;
        self.seq = seq;
        self.prev = prev;
        Ok(())
    }

    /// One record, written at once (the command line and tests; the gateway batches).
    pub fn record(
        &mut self,
        kind: AuditKind,
        idp: &str,
        request_id: &str,
        outcome: &str,
        message: &[u8],
    ) -> Result<(), AuditError> {
        self.append(&[AuditRecord::new(kind, idp, request_id, outcome, message)])
    }
}

/// Deletes rotated files last written longer ago than the retention.
fn prune(options: &AuditOptions) -> Result<(), AuditError> {
    let Some(cutoff) = SystemTime::now().checked_sub(options.retention) else {
        return Ok(());
    };
    for f in rotated_files(&options.path)? {
        let old = std::fs::metadata(&f)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old {
            std::fs::remove_file(&f).map_err(|e| io(&f, e))?;
        }
    }
    Ok(())
}

/// Whether the file's first record is of the chains written before the audit key.
fn is_unkeyed(path: &Path) -> Result<bool, AuditError> {
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
fn verify_unkeyed(path: &Path) -> Result<Verified, AuditError> {
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

fn verify_chain(path: &Path, key: Option<&AuditKey>) -> Result<Verified, AuditError> {
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

#[cfg(test)]
mod tests;
