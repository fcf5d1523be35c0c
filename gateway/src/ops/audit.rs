//! The audit trail's writer: one thread owns the files, requests hand it records and wait, without
//! blocking the proxy's reactor, until their batch is on the disk. One `fdatasync` covers every
//! record that arrived meanwhile, so a flood costs one disk flush per batch, not per record.
//!
//! A record counts as written only once flushed: a login whose AuthnRequest or Response cannot be
//! recorded does not go on (SPID requires every one to be kept), and the citizen gets the 503
//! page. A crash loses no record that a caller was told was written.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use idp_bridge::{AuditError, AuditKey, AuditLog, AuditOptions, AuditRecord, CHECKPOINT_EVERY};
use tokio::sync::{mpsc, oneshot};

/// Records waiting for the writer at most; past that, callers wait for room.
const QUEUE: usize = 4096;
/// Records written (and flushed) together at most.
const BATCH: usize = 256;

type Job = (AuditRecord, oneshot::Sender<Result<(), AuditError>>);

/// Hands records to the writer thread.
#[derive(Debug)]
pub(crate) struct AuditWriter {
    tx: mpsc::Sender<Job>,
    path: PathBuf,
}

impl AuditWriter {
    /// Starts the writer thread over an opened trail.
    pub(crate) fn start(log: AuditLog) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUE);
        let path = log.path().to_path_buf();
        tracing::info!(seq = log.seq(), mac = %log.last_mac(), path = %path.display(), "audit trail open");
        std::thread::Builder::new()
            .name("varco-audit".into())
            .spawn(move || write(log, rx))?;
        Ok(Self { tx, path })
    }

    /// Starts the writer thread for a trail that the process being upgraded still has open: the
    /// thread opens it once that process lets go (it exits after draining), waiting at most
    /// `patience`. Records queue meanwhile, and their callers wait; past `patience`, every record
    /// fails (logins get the 503 page) rather than forking the chain.
    pub(crate) fn start_after_release(
        options: AuditOptions,
        key: AuditKey,
        patience: Duration,
    ) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let path = options.path.clone();
        std::thread::Builder::new()
            .name("varco-audit".into())
            .spawn(move || {
                let deadline = Instant::now() + patience;
                let mut said = false;
                let log = loop {
                    match AuditLog::open(options.clone(), key.clone()) {
                        Ok(log) => break Ok(log),
                        Err(AuditError::InUse { .. }) if Instant::now() < deadline => {
                            if !said {
                                tracing::info!(path = %options.path.display(), "waiting for the previous varco to release the audit trail");
                                said = true;
                            }
                            std::thread::sleep(Duration::from_millis(50));
                        }
                        Err(e) => break Err(e),
                    }
                };
                match log {
                    Ok(log) => {
                        tracing::info!(seq = log.seq(), mac = %log.last_mac(), path = %options.path.display(), "audit trail open");
                        write(log, rx);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the audit trail cannot be opened; logins are refused");
                        while let Some((_, reply)) = rx.blocking_recv() {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            })?;
        Ok(Self { tx, path })
    }

    /// Records one event; returns once it is on the disk, or why it could not be.
    pub(crate) async fn record(&self, record: AuditRecord) -> Result<(), AuditError> {
        let stopped = || AuditError::Io {
            path: self.path.display().to_string(),
            reason: "the audit writer has stopped".into(),
        };
        let (reply, done) = oneshot::channel();
        self.tx.send((record, reply)).await.map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

/// The writer's loop: batches, one flush per batch, every caller told how its record fared.
fn write(mut log: AuditLog, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let before = log.seq();
        let records: Vec<AuditRecord> = batch.iter().map(|(r, _)| r.clone()).collect();
        let result = log.append(&records);
        if result.is_ok() && log.seq() / CHECKPOINT_EVERY != before / CHECKPOINT_EVERY {
            // An anchor outside the trail: a tail cut off the files shows against it.
            tracing::info!(seq = log.seq(), mac = %log.last_mac(), "audit checkpoint");
        }
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
    tracing::info!(seq = log.seq(), mac = %log.last_mac(), "audit trail closed");
}

impl idp_bridge::AuditSink for AuditWriter {
    fn record(
        &self,
        record: AuditRecord,
    ) -> impl std::future::Future<Output = Result<(), AuditError>> + Send {
        AuditWriter::record(self, record)
    }
}
