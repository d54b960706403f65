//! The embedded backend: the store contract in-process, on one redb database file, with no external process
//! (as k3s runs kube on SQLite through kine).
//!
//! Layout (all in one redb file, `<data-dir>/store.redb`):
//! - `versions`: `(key, revision) → record` — every version of every key still needed, tombstones included;
//!   this is the MVCC history that lists at an older revision and watch replays read.
//! - `current`: `key → (create revision, mod revision)` — the live keys, so that reads at the latest revision
//!   never scan history.
//! - `log`: `revision → key` — one entry per write, in revision order: the change feed for watch replay and the
//!   work list for compaction.
//! - `meta`: the current and the compacted revision.
//!
//! One writer thread owns all writes ([`commit`]): it takes every request queued since its last commit, applies
//! them in order in one write transaction (each gets the next revision; a failed precondition fails only its
//! own request) and commits once with an fsync, so concurrent writers share fsyncs (group commit). A write is
//! acknowledged only after its commit is durable, so it survives `kill -9`. Committed changes are then
//! broadcast to watches ([`watch`]), which fall back to replaying the log whenever they lag.

mod commit;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::{broadcast, oneshot};

use crate::{
    ContinueToken, Deleted, Error, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchStream,
    prefix_end,
};
use commit::{Batch, WriteOp, WriteOutcome, WriteRequest};

const VERSIONS: TableDefinition<'_, (&[u8], u64), &[u8]> = TableDefinition::new("versions");
const CURRENT: TableDefinition<'_, &[u8], (u64, u64)> = TableDefinition::new("current");
const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";

/// Settings of an embedded store.
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// The directory holding the database file; created if missing.
    pub data_dir: PathBuf,
    /// How often a quiet watch reports its progress.
    pub progress_interval: Duration,
    /// Values larger than this fail with [`Error::ValueTooLarge`] (etcd's `--max-request-bytes` analogue).
    pub max_value_bytes: usize,
    /// redb's page cache.
    pub cache_bytes: usize,
    /// How many committed batches a watch may fall behind before it replays from the log instead.
    pub watch_buffer_batches: usize,
}

impl EmbeddedConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            data_dir: data_dir.into(),
            progress_interval: Duration::from_secs(5),
            max_value_bytes: 10 << 20,
            cache_bytes: 64 << 20,
            watch_buffer_batches: 1024,
        }
    }
}

/// One stored version of a key: what `versions` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    /// A tombstone: the key was deleted at this revision.
    deleted: bool,
    create_revision: u64,
    /// The version this one replaced (0 when it started a new life of the key).
    prev_revision: u64,
    value: Bytes,
}

const RECORD_HEADER: usize = 17;

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(RECORD_HEADER + self.value.len());
        bytes.push(u8::from(self.deleted));
        bytes.extend_from_slice(&self.create_revision.to_le_bytes());
        bytes.extend_from_slice(&self.prev_revision.to_le_bytes());
        bytes.extend_from_slice(&self.value);
        bytes
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < RECORD_HEADER {
            return Err(Error::internal("truncated version record"));
        }
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Ok(Record {
            deleted: bytes[0] != 0,
            create_revision: word(1),
            prev_revision: word(9),
            value: Bytes::copy_from_slice(&bytes[RECORD_HEADER..]),
        })
    }

    fn key_value(self, key: &[u8], mod_revision: u64) -> Result<KeyValue> {
        Ok(KeyValue {
            key: key_string(key)?,
            value: self.value,
            create_revision: revision(self.create_revision),
            mod_revision: revision(mod_revision),
        })
    }
}

fn key_string(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec()).map_err(|e| Error::internal_from("stored key is not UTF-8", e))
}

fn revision(value: u64) -> Revision {
    Revision(i64::try_from(value).expect("revisions stay below 2^63"))
}

fn storage_error(context: &'static str) -> impl FnOnce(redb::Error) -> Error {
    move |err| Error::internal_from(context, err)
}

/// Reads one version; `Ok(None)` when it is not stored.
fn read_version(
    versions: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    rev: u64,
) -> Result<Option<Record>> {
    let guard = versions
        .get((key, rev))
        .map_err(|e| storage_error("read version")(e.into()))?;
    guard.map(|guard| Record::decode(guard.value())).transpose()
}

/// One page of a list being read.
struct Page {
    limit: usize,
    items: Vec<KeyValue>,
    /// Matching keys after the page.
    remaining: u64,
}

impl Page {
    fn is_full(&self) -> bool {
        self.items.len() >= self.limit
    }

    fn push(&mut self, item: KeyValue) {
        self.items.push(item);
    }

    /// Takes a key's version as of the list revision, unless it is a tombstone.
    fn offer(&mut self, candidate: Option<(Vec<u8>, u64, Record)>) -> Result<()> {
        match candidate {
            Some((_, _, record)) if record.deleted => {}
            Some(_) if self.is_full() => self.remaining += 1,
            Some((key, rev, record)) => self.push(record.key_value(&key, rev)?),
            None => {}
        }
        Ok(())
    }
}

/// State shared by the store handle, its writer thread and its watches.
#[derive(Debug)]
struct Shared {
    db: Database,
    /// The last committed revision.
    revision: AtomicI64,
    /// Revisions below this have been compacted.
    compacted: AtomicI64,
    config: EmbeddedConfig,
}

/// The store contract on an embedded redb database. Cheap to clone; clones share the database.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer: std::sync::mpsc::Sender<WriteRequest>,
    events: broadcast::Sender<Arc<Batch>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `config.data_dir`. After a crash redb recovers to the last durable
    /// commit, which includes every acknowledged write.
    pub fn open(config: EmbeddedConfig) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| Error::Unavailable {
            message: format!("create data directory {}", config.data_dir.display()),
            source: Some(Box::new(e)),
        })?;
        let path = Self::database_path(&config.data_dir);
        let db = Database::builder()
            .set_cache_size(config.cache_bytes)
            .create(&path)
            .map_err(|e| Error::Unavailable {
                message: format!("open {}", path.display()),
                source: Some(Box::new(e)),
            })?;
        let (revision, compacted) = commit::initialise(&db)?;
        let shared = Arc::new(Shared {
            db,
            revision: AtomicI64::new(revision),
            compacted: AtomicI64::new(compacted),
            config,
        });
        let (events, _) = broadcast::channel(shared.config.watch_buffer_batches.max(1));
        let writer = commit::spawn_writer(shared.clone(), events.clone())?;
        Ok(EmbeddedStore {
            shared,
            writer,
            events,
        })
    }

    /// Where the database file of a data directory is.
    pub fn database_path(data_dir: &Path) -> PathBuf {
        data_dir.join("store.redb")
    }

    async fn write(&self, op: WriteOp) -> Result<WriteOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.writer
            .send(WriteRequest { op, reply })
            .map_err(|_| Error::Unavailable {
                message: "embedded store writer stopped".to_owned(),
                source: None,
            })?;
        outcome.await.map_err(|_| Error::Unavailable {
            message: "embedded store writer stopped before answering".to_owned(),
            source: None,
        })?
    }

    fn check_value(&self, key: &str, value: &Bytes) -> Result<()> {
        if value.len() > self.shared.config.max_value_bytes {
            return Err(Error::ValueTooLarge {
                key: key.to_owned(),
                size: value.len(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        self.check_value(key, &value)?;
        match self
            .write(WriteOp::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            WriteOutcome::Written(revision) => Ok(revision),
            other => Err(Error::internal(format!("create answered {other:?}"))),
        }
    }

    async fn get(&self, key: &str) -> Result<KeyValue> {
        let txn = self
            .shared
            .db
            .begin_read()
            .map_err(|e| storage_error("begin read")(e.into()))?;
        let current = txn
            .open_table(CURRENT)
            .map_err(|e| storage_error("open current")(e.into()))?;
        let versions = txn
            .open_table(VERSIONS)
            .map_err(|e| storage_error("open versions")(e.into()))?;
        let entry = current
            .get(key.as_bytes())
            .map_err(|e| storage_error("read current")(e.into()))?;
        let Some((_, mod_revision)) = entry.map(|guard| guard.value()) else {
            return Err(Error::NotFound { key: key.to_owned() });
        };
        let record = read_version(&versions, key.as_bytes(), mod_revision)?
            .ok_or_else(|| Error::internal(format!("live key {key:?} has no version {mod_revision}")))?;
        record.key_value(key.as_bytes(), mod_revision)
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let (start, requested) = match (&options.continue_token, options.revision) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "a revision cannot be given together with a continue token".to_owned(),
                ));
            }
            (Some(token), None) => {
                let token = ContinueToken::decode(token)?;
                (token.start_key(prefix), Some(token.revision))
            }
            (None, revision) => (prefix.to_owned(), revision.filter(|r| *r > Revision::ZERO)),
        };
        let txn = self
            .shared
            .db
            .begin_read()
            .map_err(|e| storage_error("begin read")(e.into()))?;
        let meta = txn
            .open_table(META)
            .map_err(|e| storage_error("open meta")(e.into()))?;
        let read_meta = |name| -> Result<u64> {
            let value = meta.get(name).map_err(|e| storage_error("read meta")(e.into()))?;
            Ok(value.map(|guard| guard.value()).unwrap_or(0))
        };
        let snapshot = revision(read_meta(META_REVISION)?);
        let compacted = revision(read_meta(META_COMPACTED)?);
        let at = requested.unwrap_or(snapshot);
        if at < compacted {
            return Err(Error::Expired {
                requested: at,
                oldest: Some(compacted),
            });
        }
        if at > snapshot {
            return Err(Error::FutureRevision {
                requested: at,
                current: Some(snapshot),
            });
        }
        let limit = options.limit.filter(|limit| *limit > 0).unwrap_or(usize::MAX);
        let end = prefix_end(prefix.as_bytes());
        let versions = txn
            .open_table(VERSIONS)
            .map_err(|e| storage_error("open versions")(e.into()))?;
        let mut page = Page {
            limit,
            items: Vec::new(),
            remaining: 0,
        };
        if at == snapshot {
            // The latest revision: walk the live keys only.
            let current = txn
                .open_table(CURRENT)
                .map_err(|e| storage_error("open current")(e.into()))?;
            let range = match &end {
                Some(end) => current.range(start.as_bytes()..end.as_slice()),
                None => current.range(start.as_bytes()..),
            }
            .map_err(|e| storage_error("range current")(e.into()))?;
            for entry in range {
                let (key, value) = entry.map_err(|e| storage_error("read current")(e.into()))?;
                if !page.is_full() {
                    let (key, (_, mod_revision)) = (key.value(), value.value());
                    let record = read_version(&versions, key, mod_revision)?
                        .ok_or_else(|| Error::internal("live key without its version"))?;
                    page.push(record.key_value(key, mod_revision)?);
                } else {
                    page.remaining += 1;
                }
            }
        } else {
            // An older revision: for each key, its last version at or before `at`, unless that is a tombstone.
            let lower = (start.as_bytes(), 0u64);
            let range = match &end {
                Some(end) => versions.range(lower..(end.as_slice(), 0u64)),
                None => versions.range(lower..),
            }
            .map_err(|e| storage_error("range versions")(e.into()))?;
            let mut candidate: Option<(Vec<u8>, u64, Record)> = None;
            for entry in range {
                let (version_key, value) = entry.map_err(|e| storage_error("read versions")(e.into()))?;
                let (key, rev) = version_key.value();
                if candidate
                    .as_ref()
                    .is_some_and(|(candidate_key, _, _)| candidate_key.as_slice() != key)
                {
                    page.offer(candidate.take())?;
                }
                if rev <= at.0 as u64 {
                    candidate = Some((key.to_vec(), rev, Record::decode(value.value())?));
                }
            }
            page.offer(candidate)?;
        }
        let Page { items, remaining, .. } = page;
        let continue_token = match items.last() {
            Some(last) if remaining > 0 => Some(ContinueToken::after(prefix, &last.key, at).encode()),
            _ => None,
        };
        let remaining = continue_token.as_ref().map(|_| remaining);
        Ok(ListResult {
            items,
            revision: at,
            continue_token,
            remaining,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        self.check_value(key, &value)?;
        if expected <= Revision::ZERO {
            return Err(Error::InvalidArgument(format!(
                "update of {key:?} needs the expected mod revision"
            )));
        }
        match self
            .write(WriteOp::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            WriteOutcome::Written(revision) => Ok(revision),
            other => Err(Error::internal(format!("update answered {other:?}"))),
        }
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        match self
            .write(WriteOp::Delete {
                key: key.to_owned(),
                precondition,
            })
            .await?
        {
            WriteOutcome::Deleted(deleted) => Ok(deleted),
            other => Err(Error::internal(format!("delete answered {other:?}"))),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        watch::start(self.shared.clone(), &self.events, prefix, from)
    }

    async fn current_revision(&self) -> Result<Revision> {
        Ok(Revision(self.shared.revision.load(Ordering::Acquire)))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        match self.write(WriteOp::Compact { revision }).await? {
            WriteOutcome::Compacted => Ok(()),
            other => Err(Error::internal(format!("compact answered {other:?}"))),
        }
    }
}
