//! The embedded store's single writer: group commit, revisions, preconditions and compaction.
//!
//! Every write goes through one thread. It blocks for the first queued request, then takes every other request
//! already queued (up to [`MAX_BATCH`]), applies them in arrival order inside one redb write transaction, and
//! commits once with `Durability::Immediate` (an fsync). Only then are the requests answered and the batch's
//! events broadcast to watches, in revision order. A request whose precondition fails writes nothing and fails
//! alone; a storage error aborts the whole batch and fails every request in it, so no write is half done.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, Table};
use tokio::sync::{broadcast, oneshot};

use super::{
    CURRENT, LOG, META, META_COMPACTED, META_REVISION, Record, Shared, VERSIONS, read_version, revision,
};
use crate::{Deleted, Error, KeyValue, Result, Revision, WatchEvent};

/// The most requests one commit takes.
const MAX_BATCH: usize = 1024;

#[derive(Debug)]
pub(super) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        precondition: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
}

#[derive(Debug)]
pub(super) enum WriteOutcome {
    Written(Revision),
    Deleted(Deleted),
    Compacted,
}

#[derive(Debug)]
pub(super) struct WriteRequest {
    pub(super) op: WriteOp,
    pub(super) reply: oneshot::Sender<Result<WriteOutcome>>,
}

/// One commit's changes, as broadcast to watches.
#[derive(Debug)]
pub(super) struct Batch {
    /// The store revision before this commit.
    pub(super) after: Revision,
    /// The store revision after it; every revision in `after + 1 ..= last` is in `events`.
    pub(super) last: Revision,
    pub(super) events: Vec<WatchEvent>,
}

fn storage_error(context: &'static str) -> impl FnOnce(redb::Error) -> Error {
    super::storage_error(context)
}

/// Creates the tables on first open and reads the current and compacted revisions.
pub(super) fn initialise(db: &Database) -> Result<(i64, i64)> {
    let txn = db
        .begin_write()
        .map_err(|e| storage_error("begin write")(e.into()))?;
    let (current, compacted) = {
        txn.open_table(VERSIONS)
            .map_err(|e| storage_error("create versions")(e.into()))?;
        txn.open_table(CURRENT)
            .map_err(|e| storage_error("create current")(e.into()))?;
        txn.open_table(LOG)
            .map_err(|e| storage_error("create log")(e.into()))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| storage_error("create meta")(e.into()))?;
        let read = |name| -> Result<u64> {
            Ok(meta
                .get(name)
                .map_err(|e| storage_error("read meta")(e.into()))?
                .map_or(0, |g| g.value()))
        };
        (read(META_REVISION)?, read(META_COMPACTED)?)
    };
    txn.commit()
        .map_err(|e| storage_error("commit tables")(e.into()))?;
    Ok((revision(current).0, revision(compacted).0))
}

pub(super) fn spawn_writer(
    shared: Arc<Shared>,
    events: broadcast::Sender<Arc<Batch>>,
) -> Result<std::sync::mpsc::Sender<WriteRequest>> {
    let (sender, receiver) = std::sync::mpsc::channel::<WriteRequest>();
    std::thread::Builder::new()
        .name("flotilla-store-writer".to_owned())
        .spawn(move || writer_loop(&shared, &receiver, &events))
        .map_err(|e| Error::internal_from("spawn the embedded store writer", e))?;
    Ok(sender)
}

fn writer_loop(
    shared: &Shared,
    receiver: &std::sync::mpsc::Receiver<WriteRequest>,
    events: &broadcast::Sender<Arc<Batch>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut requests = vec![first];
        while requests.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        let after = shared.revision.load(Ordering::Acquire) as u64;
        let ops: Vec<&WriteOp> = requests.iter().map(|request| &request.op).collect();
        match commit_batch(shared, &ops, after) {
            Ok(committed) => {
                shared.revision.store(committed.last as i64, Ordering::Release);
                if let Some(compacted) = committed.compacted {
                    shared.compacted.store(compacted as i64, Ordering::Release);
                }
                if !committed.events.is_empty() {
                    let batch = Batch {
                        after: revision(after),
                        last: revision(committed.last),
                        events: committed.events,
                    };
                    // No receiver means no watch is open; that is fine.
                    let _ = events.send(Arc::new(batch));
                }
                for (request, outcome) in requests.into_iter().zip(committed.outcomes) {
                    let _ = request.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, n_requests = requests.len(), "embedded store commit failed");
                let message = err.to_string();
                for request in requests {
                    let _ = request
                        .reply
                        .send(Err(Error::internal(format!("commit failed: {message}"))));
                }
            }
        }
    }
}

struct Committed {
    last: u64,
    compacted: Option<u64>,
    events: Vec<WatchEvent>,
    outcomes: Vec<Result<WriteOutcome>>,
}

struct Tables<'txn> {
    versions: Table<'txn, (&'static [u8], u64), &'static [u8]>,
    current: Table<'txn, &'static [u8], (u64, u64)>,
    log: Table<'txn, u64, &'static [u8]>,
    meta: Table<'txn, &'static str, u64>,
    /// The last revision assigned in this transaction.
    revision: u64,
    compacted: Option<u64>,
    events: Vec<WatchEvent>,
}

/// A request's own failure (precondition, not found) versus a storage failure that aborts the batch.
enum OpError {
    Request(Error),
    Storage(Error),
}

impl From<redb::StorageError> for OpError {
    fn from(err: redb::StorageError) -> Self {
        OpError::Storage(Error::internal_from("write", err))
    }
}

impl From<Error> for OpError {
    fn from(err: Error) -> Self {
        OpError::Storage(err)
    }
}

fn commit_batch(shared: &Shared, ops: &[&WriteOp], after: u64) -> Result<Committed> {
    let mut txn = shared
        .db
        .begin_write()
        .map_err(|e| storage_error("begin write")(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| Error::internal_from("set durability", e))?;
    let mut outcomes = Vec::with_capacity(ops.len());
    let (last, compacted, events) = {
        let mut tables = Tables {
            versions: txn
                .open_table(VERSIONS)
                .map_err(|e| storage_error("open versions")(e.into()))?,
            current: txn
                .open_table(CURRENT)
                .map_err(|e| storage_error("open current")(e.into()))?,
            log: txn
                .open_table(LOG)
                .map_err(|e| storage_error("open log")(e.into()))?,
            meta: txn
                .open_table(META)
                .map_err(|e| storage_error("open meta")(e.into()))?,
            revision: after,
            compacted: None,
            events: Vec::new(),
        };
        for op in ops {
            match tables.apply(op, shared) {
                Ok(outcome) => outcomes.push(Ok(outcome)),
                Err(OpError::Request(err)) => outcomes.push(Err(err)),
                Err(OpError::Storage(err)) => return Err(err),
            }
        }
        if tables.revision != after {
            tables
                .meta
                .insert(META_REVISION, tables.revision)
                .map_err(|e| storage_error("write meta")(e.into()))?;
        }
        (tables.revision, tables.compacted, tables.events)
    };
    txn.commit().map_err(|e| storage_error("commit")(e.into()))?;
    Ok(Committed {
        last,
        compacted,
        events,
        outcomes,
    })
}

impl Tables<'_> {
    fn apply(&mut self, op: &WriteOp, shared: &Shared) -> Result<WriteOutcome, OpError> {
        match op {
            WriteOp::Create { key, value } => self.create(key, value),
            WriteOp::Update { key, value, expected } => self.update(key, value, *expected),
            WriteOp::Delete { key, precondition } => self.delete(key, *precondition),
            WriteOp::Compact { revision: at } => self.compact(*at, shared),
        }
    }

    fn live(&self, key: &str) -> Result<Option<(u64, u64)>, OpError> {
        Ok(self.current.get(key.as_bytes())?.map(|guard| guard.value()))
    }

    fn version(&self, key: &str, rev: u64) -> Result<KeyValue, OpError> {
        let record = read_version(&self.versions, key.as_bytes(), rev)?
            .ok_or_else(|| Error::internal(format!("key {key:?} has no version {rev}")))?;
        Ok(record.key_value(key.as_bytes(), rev)?)
    }

    /// Appends a version of `key` at the next revision and logs it.
    fn append(&mut self, key: &str, record: &Record) -> Result<u64, OpError> {
        let rev = self.revision + 1;
        self.versions
            .insert((key.as_bytes(), rev), record.encode().as_slice())?;
        self.log.insert(rev, key.as_bytes())?;
        self.revision = rev;
        Ok(rev)
    }

    fn create(&mut self, key: &str, value: &Bytes) -> Result<WriteOutcome, OpError> {
        if self.live(key)?.is_some() {
            return Err(OpError::Request(Error::AlreadyExists { key: key.to_owned() }));
        }
        let rev = self.revision + 1;
        let record = Record {
            deleted: false,
            create_revision: rev,
            prev_revision: 0,
            value: value.clone(),
        };
        self.append(key, &record)?;
        self.current.insert(key.as_bytes(), (rev, rev))?;
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: revision(rev),
            mod_revision: revision(rev),
        };
        self.events.push(WatchEvent::Put { kv, prev: None });
        Ok(WriteOutcome::Written(revision(rev)))
    }

    /// The live key at the expected revision, or the request's failure.
    fn expect(&self, key: &str, expected: Option<Revision>) -> Result<(u64, KeyValue), OpError> {
        let Some((create_revision, mod_revision)) = self.live(key)? else {
            return Err(OpError::Request(Error::NotFound { key: key.to_owned() }));
        };
        let current = self.version(key, mod_revision)?;
        match expected {
            Some(expected) if expected.0 as u64 != mod_revision => Err(OpError::Request(Error::Conflict {
                key: key.to_owned(),
                expected,
                current: Box::new(current),
            })),
            _ => Ok((create_revision, current)),
        }
    }

    fn update(&mut self, key: &str, value: &Bytes, expected: Revision) -> Result<WriteOutcome, OpError> {
        let (create_revision, prev) = self.expect(key, Some(expected))?;
        let record = Record {
            deleted: false,
            create_revision,
            prev_revision: prev.mod_revision.0 as u64,
            value: value.clone(),
        };
        let rev = self.append(key, &record)?;
        self.current.insert(key.as_bytes(), (create_revision, rev))?;
        let kv = KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision: revision(create_revision),
            mod_revision: revision(rev),
        };
        self.events.push(WatchEvent::Put { kv, prev: Some(prev) });
        Ok(WriteOutcome::Written(revision(rev)))
    }

    fn delete(&mut self, key: &str, precondition: Option<Revision>) -> Result<WriteOutcome, OpError> {
        let (create_revision, prev) = self.expect(key, precondition)?;
        let tombstone = Record {
            deleted: true,
            create_revision,
            prev_revision: prev.mod_revision.0 as u64,
            value: Bytes::new(),
        };
        let rev = self.append(key, &tombstone)?;
        self.current.remove(key.as_bytes())?;
        self.events.push(WatchEvent::Delete {
            revision: revision(rev),
            prev: prev.clone(),
        });
        Ok(WriteOutcome::Deleted(Deleted {
            prev,
            revision: revision(rev),
        }))
    }

    /// Forgets history below `at`: for every write logged before `at`, the version it replaced is no longer
    /// needed (a newer one at or before `at` exists), and a tombstone before `at` is not needed either. What
    /// remains is, per key, its last version at or before `at` (unless deleted) and everything after.
    fn compact(&mut self, at: Revision, shared: &Shared) -> Result<WriteOutcome, OpError> {
        let compacted = self
            .compacted
            .unwrap_or_else(|| shared.compacted.load(Ordering::Acquire) as u64);
        let at_u64 = at.0.max(0) as u64;
        if at_u64 <= compacted {
            return Ok(WriteOutcome::Compacted);
        }
        if at_u64 > self.revision {
            return Err(OpError::Request(Error::FutureRevision {
                requested: at,
                current: Some(revision(self.revision)),
            }));
        }
        let mut writes = Vec::new();
        for entry in self.log.range(..at_u64)? {
            let (rev, key) = entry?;
            writes.push((rev.value(), key.value().to_vec()));
        }
        for (rev, key) in writes {
            let record = read_version(&self.versions, &key, rev)?
                .ok_or_else(|| Error::internal("logged write without its version"))?;
            if record.prev_revision > 0 {
                self.versions.remove((key.as_slice(), record.prev_revision))?;
            }
            if record.deleted {
                self.versions.remove((key.as_slice(), rev))?;
            }
            self.log.remove(rev)?;
        }
        self.meta.insert(META_COMPACTED, at_u64)?;
        self.compacted = Some(at_u64);
        Ok(WriteOutcome::Compacted)
    }
}
