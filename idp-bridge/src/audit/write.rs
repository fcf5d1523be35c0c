//! Writing the trail: one writer at a time (a lock file), records appended in batches and flushed,
//! checkpoints, rotation at a size and pruning past the retention.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use base64::Engine as _;
use chrono::{SecondsFormat, Utc};

use super::verify::{is_unkeyed, verify_chain, verify_unkeyed};
use super::{
    io, json_str, rotated_files, AuditError, AuditKey, AuditKind, AuditOptions, AuditRecord,
    FORMAT, GENESIS,
};

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

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn record_json(seq: u64, prev: &str, r: &AuditRecord) -> String {
    let kind = match r.kind {
        AuditKind::AuthnRequest => "authn_request",
        AuditKind::AuthorizationRequest => "authorization_request",
        AuditKind::AuthorizationResponse => "authorization_response",
        AuditKind::TokenResponse => "token_response",
        AuditKind::Response => "response",
        AuditKind::CnsRequest => "cns_request",
        AuditKind::ClientCertificate => "client_certificate",
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
