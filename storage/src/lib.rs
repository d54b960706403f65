//! Flotilla's storage contract: a small, revision-centric key-value store with etcd's semantics.
//!
//! Everything kube-apiserver promises about `resourceVersion` comes from here: every write gets a new, strictly
//! increasing [`Revision`]; writes are compare-and-swap on the key's mod revision; a list is a consistent
//! snapshot at one revision and its pages continue at that revision; a watch delivers every change after a
//! revision in order, with no gap and no duplicate, or fails with [`Error::Expired`] when that history has been
//! compacted. Two backends implement [`Store`]: [`etcd::EtcdStore`] (a real etcd, to scale past one machine) and
//! [`embedded::EmbeddedStore`] (an on-disk redb database in-process, for a single node). Keys are strings and
//! values are bytes: this crate knows nothing of Kubernetes objects.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

mod continuation;
pub mod embedded;
pub mod etcd;
#[cfg(feature = "test-util")]
pub mod testing;

pub use continuation::ContinueToken;

/// A point in the store's history: etcd's revision, kube's `resourceVersion`.
///
/// Revision 0 means "none": a key that does not exist, or "the latest" where a revision is optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision(pub i64);

impl Revision {
    pub const ZERO: Revision = Revision(0);

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One key's value as of a revision, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision of the write that created this key (since it last did not exist).
    pub create_revision: Revision,
    /// The revision of the last write to this key.
    pub mod_revision: Revision,
}

/// What a watch delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created (`prev` is `None`) or updated (`prev` is its value before).
    Put { kv: KeyValue, prev: Option<KeyValue> },
    /// A key was deleted at `revision`; `prev` is its last value.
    Delete { revision: Revision, prev: KeyValue },
    /// Nothing under the watched prefix changed up to and including `revision` that has not been delivered.
    /// Sent periodically so that a quiet watch can still report how far it has seen (kube's bookmarks).
    Progress { revision: Revision },
}

impl WatchEvent {
    /// The revision this event happened at, or the progress revision.
    pub fn revision(&self) -> Revision {
        match self {
            WatchEvent::Put { kv, .. } => kv.mod_revision,
            WatchEvent::Delete { revision, .. } => *revision,
            WatchEvent::Progress { revision } => *revision,
        }
    }

    /// The key this event is about; `None` for progress notifications.
    pub fn key(&self) -> Option<&str> {
        match self {
            WatchEvent::Put { kv, .. } => Some(&kv.key),
            WatchEvent::Delete { prev, .. } => Some(&prev.key),
            WatchEvent::Progress { .. } => None,
        }
    }
}

/// The stream a watch returns. It ends with an `Err` (then nothing more) when it cannot go on without a gap,
/// for example [`Error::Expired`] when the history it needs was compacted.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

/// How to read a range of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many items; `None` for all of them.
    pub limit: Option<usize>,
    /// The token of the previous page ([`ListResult::continue_token`]); the page is read at that page's revision.
    pub continue_token: Option<String>,
    /// Read at exactly this revision; `None` for the latest. Not allowed together with `continue_token`.
    pub revision: Option<Revision>,
}

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListResult {
    /// Items in key order.
    pub items: Vec<KeyValue>,
    /// The revision the whole list (all of its pages) is read at.
    pub revision: Revision,
    /// Set when more items follow; pass it back in [`ListOptions::continue_token`].
    pub continue_token: Option<String>,
    /// How many items follow this page, when more do.
    pub remaining: Option<u64>,
}

/// What a delete removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The value the key had.
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: Revision,
}

/// Everything a store operation can fail with. This enum is part of the contract: both backends return the same
/// variant for the same situation, and the apiserver maps each to one Kubernetes `Status`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key does not exist (get, update, delete).
    #[error("key {key:?} not found")]
    NotFound { key: String },
    /// A create found the key already present.
    #[error("key {key:?} already exists")]
    AlreadyExists { key: String },
    /// An update or a delete with a precondition found the key at another mod revision; `current` is what is
    /// there now, so a read-modify-write loop can retry without reading again.
    #[error("key {key:?} was modified: expected revision {expected}, found {}", current.mod_revision)]
    Conflict {
        key: String,
        expected: Revision,
        current: Box<KeyValue>,
    },
    /// The revision asked for (list, watch, continue token) has been compacted away; `oldest` is the oldest
    /// revision still available, where the backend knows it.
    #[error("revision {requested} has been compacted")]
    Expired {
        requested: Revision,
        oldest: Option<Revision>,
    },
    /// The revision asked for is newer than the store's (`current`, where the backend knows it).
    #[error("revision {requested} is newer than the current revision")]
    FutureRevision {
        requested: Revision,
        current: Option<Revision>,
    },
    /// The value is larger than the store accepts.
    #[error("value for key {key:?} is too large ({size} bytes)")]
    ValueTooLarge { key: String, size: usize },
    /// The request itself is malformed, such as an unreadable continue token.
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    /// An option this backend does not implement; named, never half-honoured.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The store cannot be reached or did not answer in time; the operation may be retried.
    #[error("storage unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Anything else: a bug, or data on disk that cannot be read.
    #[error("storage internal error: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn internal_from(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The storage contract. Both backends pass the same suite (`testing`, run by `tests/contract_*.rs`).
#[async_trait]
pub trait Store: fmt::Debug + Send + Sync + 'static {
    /// Creates `key`; fails with [`Error::AlreadyExists`] if it is present. Returns the new revision.
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision>;

    /// Reads the latest value of `key`.
    async fn get(&self, key: &str) -> Result<KeyValue>;

    /// Lists the keys that start with `prefix`, in key order, at one revision.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult>;

    /// Replaces the value of `key` if its mod revision is still `expected`; [`Error::Conflict`] otherwise,
    /// [`Error::NotFound`] if it is gone. Returns the new revision.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision>;

    /// Deletes `key`, if `precondition` is given only while its mod revision is still that.
    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted>;

    /// Every change to a key under `prefix` after `from` (exclusive), in revision order. `from` of
    /// [`Revision::ZERO`] watches from the current revision on.
    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream>;

    /// The store's latest revision.
    async fn current_revision(&self) -> Result<Revision>;

    /// Forgets the history before `revision`: afterwards a list or a watch that needs an older revision fails
    /// with [`Error::Expired`]. Compacting at or below an earlier compaction does nothing.
    async fn compact(&self, revision: Revision) -> Result<()>;
}

/// kube's `GuaranteedUpdate`: reads `key`, computes its new value with `update`, and writes it if the key has
/// not moved meanwhile, retrying with the current value on conflict. When `update` returns the value unchanged
/// nothing is written. Errors from `update` end the loop as they are.
pub async fn guaranteed_update<S, F, E>(store: &S, key: &str, mut update: F) -> Result<KeyValue, E>
where
    S: Store + ?Sized,
    F: FnMut(&KeyValue) -> Result<Bytes, E>,
    E: From<Error>,
{
    let mut current = store.get(key).await?;
    loop {
        let value = update(&current)?;
        if value == current.value {
            return Ok(current);
        }
        match store.update(key, value.clone(), current.mod_revision).await {
            Ok(revision) => {
                return Ok(KeyValue {
                    key: current.key,
                    value,
                    create_revision: current.create_revision,
                    mod_revision: revision,
                });
            }
            Err(Error::Conflict { current: now, .. }) => current = *now,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Reads every key under `prefix` at one revision (the latest, or `revision`), page by page.
pub async fn list_all<S>(
    store: &S,
    prefix: &str,
    revision: Option<Revision>,
) -> Result<(Vec<KeyValue>, Revision)>
where
    S: Store + ?Sized,
{
    const PAGE: usize = 1000;
    let mut items = Vec::new();
    let mut options = ListOptions {
        limit: Some(PAGE),
        revision,
        continue_token: None,
    };
    loop {
        let page = store.list(prefix, &options).await?;
        items.extend(page.items);
        match page.continue_token {
            Some(token) => {
                options = ListOptions {
                    limit: Some(PAGE),
                    continue_token: Some(token),
                    revision: None,
                }
            }
            None => return Ok((items, page.revision)),
        }
    }
}

/// The smallest key greater than every key that starts with `prefix` (etcd's range end for a prefix), or
/// `None` when no such key exists (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
