//! The watch cache, after kube-apiserver's cacher: an in-memory copy of every object of every resource, a
//! bounded history of recent events per resource, and a broadcast to every client watch; so a thousand
//! `kubectl get -w` cost no storage watch of their own, and each event is decoded and serialised once.
//!
//! Unlike kube's one watch per resource, one storage list (every resource at one revision) and one storage
//! watch on the whole prefix feed every resource's cache. So every write advances every cache's revision, and a
//! client that watches a quiet resource from the revision of an unrelated write (`kubectl get -w` lists, then
//! watches from the list's revision) is served at once instead of waiting for a progress notification.
//!
//! It serves WATCH (from any revision still in the history; older is 410 Expired), LIST with
//! `resourceVersion=0` or `N` (not older than N), and GET with `resourceVersion=0`. Consistent reads (no
//! `resourceVersion`) still go to storage, as in kube-apiserver before consistent reads from cache.
//! When its storage watch fails, the cache lists again and closes every client watch, which clients answer by
//! watching again from their last revision (or relisting on 410), as with kube-apiserver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use flotilla_api::keys::{StoragePrefix, collection_prefix};
use flotilla_api::resources::{RESOURCES, Resource};
use flotilla_storage::{KeyValue, Store, WatchEvent};
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::object;

/// How many past events each resource keeps by default for watches that resume from an older revision (kube's
/// `--default-watch-cache-size` is 100; federation writes come in bursts, so Flotilla keeps more).
pub const DEFAULT_HISTORY: usize = 1000;
/// How long a request waits for the cache to reach the revision it asked for (kube: 3 s).
pub const FRESHNESS_WAIT: Duration = Duration::from_secs(3);

/// What selectors need of a cached object: its labels and its selectable fields.
#[derive(Debug, Default)]
pub struct Index {
    pub labels: BTreeMap<String, String>,
    fields: Vec<(&'static str, String)>,
}

impl Index {
    fn of(object: &Value, resource: &Resource) -> Self {
        let fields = object::selectable_fields(resource)
            .iter()
            .map(|field| (*field, object::field_value(object, field).unwrap_or_default()))
            .collect();
        Index {
            labels: object::labels(object),
            fields,
        }
    }

    /// The value of a selectable field; `None` for a field the resource cannot select on.
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.as_str())
    }
}

/// One object as the cache holds it: serialised once, as kube-apiserver's list items are (no type meta), plus
/// the [`Index`] selectors read. Nothing else, so that 100,000 objects stay small.
#[derive(Debug)]
pub struct Cached {
    pub item_json: Bytes,
    pub index: Index,
    pub revision: i64,
}

impl Cached {
    fn new(resource: &Resource, mut object: Value, revision: i64) -> Arc<Self> {
        if let Some(map) = object.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        object::set_resource_version(&mut object, revision);
        let item_json = Bytes::from(serde_json::to_vec(&object).expect("JSON serialises"));
        Arc::new(Cached {
            index: Index::of(&object, resource),
            item_json,
            revision,
        })
    }

    /// Appends the object with `apiVersion` and `kind` to `out` (splicing them in front of the item's fields).
    pub fn write_typed(&self, api_version: &str, kind: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"apiVersion\":\"");
        out.extend_from_slice(api_version.as_bytes());
        out.extend_from_slice(b"\",\"kind\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'"');
        let fields = &self.item_json[1..]; // after the opening brace
        if fields != b"}" {
            out.push(b',');
        }
        out.extend_from_slice(fields);
    }
}

/// A change, as the cache broadcasts it.
#[derive(Debug)]
pub enum CacheEvent {
    /// Created (`prev` is `None`) or updated.
    Put {
        key: String,
        new: Arc<Cached>,
        prev: Option<Arc<Cached>>,
    },
    /// Deleted; `prev` carries the object with the deletion's revision.
    Delete { key: String, prev: Arc<Cached> },
    /// Nothing changed up to this revision beyond what was broadcast.
    Progress(i64),
}

impl CacheEvent {
    pub fn revision(&self) -> i64 {
        match self {
            CacheEvent::Put { new, .. } => new.revision,
            CacheEvent::Delete { prev, .. } => prev.revision,
            CacheEvent::Progress(revision) => *revision,
        }
    }
}

#[derive(Debug)]
struct State {
    ready: bool,
    revision: i64,
    objects: BTreeMap<String, Arc<Cached>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event after this revision is in `history`.
    oldest: i64,
    events: broadcast::Sender<Arc<CacheEvent>>,
}

/// Why the cache cannot answer.
#[derive(Debug, PartialEq, Eq)]
pub enum CacheError {
    /// The revision asked for is older than the history kept.
    Expired { requested: i64, oldest: i64 },
    /// The cache did not reach the revision in time.
    TooLarge { requested: i64, current: i64 },
}

/// A watch's starting point: the events to send first, then the live feed.
#[derive(Debug)]
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    /// The revision `initial` brings the watch to.
    pub revision: i64,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
}

/// The cache of one resource.
#[derive(Debug)]
pub struct ResourceCache {
    resource: &'static Resource,
    history_capacity: usize,
    state: RwLock<State>,
    revision: watch::Sender<i64>,
}

impl ResourceCache {
    fn new(resource: &'static Resource, history_capacity: usize) -> Self {
        let (events, _) = broadcast::channel(1024);
        ResourceCache {
            resource,
            history_capacity: history_capacity.max(1),
            state: RwLock::new(State {
                ready: false,
                revision: 0,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                events,
            }),
            revision: watch::Sender::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until the cache is ready and has seen `revision`.
    pub async fn wait_for(&self, revision: i64) -> Result<(), CacheError> {
        self.wait_for_within(revision, FRESHNESS_WAIT).await
    }

    /// [`ResourceCache::wait_for`], for at most `patience`.
    pub async fn wait_for_within(&self, revision: i64, patience: Duration) -> Result<(), CacheError> {
        let mut seen = self.revision.subscribe();
        let fresh = |current: &i64| *current >= revision.max(1);
        match tokio::time::timeout(patience, seen.wait_for(fresh)).await {
            Ok(Ok(_)) if self.read().ready => Ok(()),
            _ => Err(CacheError::TooLarge {
                requested: revision,
                current: *self.revision.borrow(),
            }),
        }
    }

    /// The objects under `prefix` and the revision they are at (after [`ResourceCache::wait_for`]).
    pub fn list(&self, prefix: &str) -> (Vec<Arc<Cached>>, i64) {
        let state = self.read();
        let items = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, state.revision)
    }

    pub fn get(&self, key: &str) -> Option<Arc<Cached>> {
        self.read().objects.get(key).cloned()
    }

    /// Starts a watch of keys under `prefix`: from the current state as ADDED events (`from` is `None`), or
    /// from the events after revision `from`.
    pub fn subscribe(&self, prefix: &str, from: Option<i64>) -> Result<Subscription, CacheError> {
        let state = self.read();
        let live = state.events.subscribe();
        let initial = match from {
            None => state
                .objects
                .range(prefix.to_owned()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(key, cached)| {
                    Arc::new(CacheEvent::Put {
                        key: key.clone(),
                        new: cached.clone(),
                        prev: None,
                    })
                })
                .collect(),
            Some(from) if from < state.oldest => {
                return Err(CacheError::Expired {
                    requested: from,
                    oldest: state.oldest,
                });
            }
            Some(from) => state
                .history
                .iter()
                .filter(|event| event.revision() > from)
                .cloned()
                .collect(),
        };
        Ok(Subscription {
            initial,
            revision: state.revision,
            live,
        })
    }

    /// Replaces the contents after a (re)list; closes every open watch (they must start again).
    fn reset(&self, objects: BTreeMap<String, Arc<Cached>>, revision: i64) {
        let mut state = self.write();
        let (events, _) = broadcast::channel(1024);
        state.events = events; // dropping the old sender ends every client watch
        state.objects = objects;
        state.history.clear();
        state.revision = revision;
        state.oldest = revision;
        state.ready = true;
        drop(state);
        self.revision.send_replace(revision);
    }

    fn mark_stale(&self) {
        self.write().ready = false;
    }

    /// Records that the store reached `revision` with no change to this resource.
    fn advance(&self, revision: i64) {
        let mut state = self.write();
        if revision <= state.revision {
            return;
        }
        state.revision = revision;
        drop(state);
        self.revision.send_replace(revision);
    }

    fn apply(&self, event: CacheEvent) {
        let revision = event.revision();
        let event = Arc::new(event);
        let mut state = self.write();
        match event.as_ref() {
            CacheEvent::Put { key, new, .. } => {
                state.objects.insert(key.clone(), new.clone());
            }
            CacheEvent::Delete { key, .. } => {
                state.objects.remove(key);
            }
            CacheEvent::Progress(_) => {}
        }
        if !matches!(event.as_ref(), CacheEvent::Progress(_)) {
            state.history.push_back(event.clone());
            while state.history.len() > self.history_capacity {
                if let Some(dropped) = state.history.pop_front() {
                    state.oldest = dropped.revision();
                }
            }
        }
        state.revision = state.revision.max(revision);
        let _ = state.events.send(event);
        let current = state.revision;
        drop(state);
        self.revision.send_replace(current);
    }
}

/// The caches of every served resource.
#[derive(Debug)]
pub struct Caches {
    by_resource: Vec<(String, Arc<ResourceCache>)>,
}

impl Caches {
    /// Starts the one feeder of every cache; each keeps `history` past events.
    pub fn start(store: Arc<dyn Store>, prefix: &StoragePrefix, history: usize) -> Self {
        let by_resource: Vec<(String, Arc<ResourceCache>)> = RESOURCES
            .iter()
            .map(|resource| {
                let key_prefix = collection_prefix(prefix, resource.group, resource.plural, None);
                (key_prefix, Arc::new(ResourceCache::new(resource, history)))
            })
            .collect();
        let caches = Caches { by_resource };
        tokio::spawn(feed(caches.by_resource.clone(), store, format!("{prefix}/")));
        caches
    }

    pub fn of(&self, resource: &Resource) -> &Arc<ResourceCache> {
        self.by_resource
            .iter()
            .find(|(_, cache)| std::ptr::eq(cache.resource, resource))
            .map(|(_, cache)| cache)
            .expect("every served resource has a cache")
    }
}

fn decode(resource: &Resource, kv: &KeyValue) -> Option<Arc<Cached>> {
    decode_at(resource, kv, kv.mod_revision.get())
}

/// Decodes a stored object as of `revision` (a deletion reports the deleted object at the deletion's revision).
fn decode_at(resource: &Resource, kv: &KeyValue, revision: i64) -> Option<Arc<Cached>> {
    match serde_json::from_slice::<Value>(&kv.value) {
        Ok(object) => Some(Cached::new(resource, object, revision)),
        Err(err) => {
            tracing::error!(key = %kv.key, error = %err, "stored object is not JSON; left out of the cache");
            None
        }
    }
}

type Feeds = Vec<(String, Arc<ResourceCache>)>;

/// Lists, then watches, forever; lists again whenever the watch fails.
async fn feed(caches: Feeds, store: Arc<dyn Store>, root: String) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match list_and_watch(&caches, store.as_ref(), &root).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                tracing::warn!(error = %err, "watch cache lost its storage watch; relisting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        for (_, cache) in &caches {
            cache.mark_stale();
        }
    }
}

async fn list_and_watch(
    caches: &Feeds,
    store: &dyn Store,
    root: &str,
) -> Result<(), flotilla_storage::Error> {
    // Every resource at one revision, so that one watch from it continues them all.
    let revision = store.current_revision().await?;
    let mut listed = Vec::with_capacity(caches.len());
    for (prefix, cache) in caches {
        let (items, _) = flotilla_storage::list_all(store, prefix, Some(revision)).await?;
        let objects: BTreeMap<String, Arc<Cached>> = items
            .iter()
            .filter_map(|kv| decode(cache.resource, kv).map(|cached| (kv.key.clone(), cached)))
            .collect();
        listed.push(objects);
    }
    let mut events = store.watch(root, revision).await?;
    for ((_, cache), objects) in caches.iter().zip(listed) {
        cache.reset(objects, revision.get());
    }
    let owner = |key: &str| {
        caches
            .iter()
            .find(|(prefix, _)| key.starts_with(prefix.as_str()))
            .map(|(_, cache)| cache)
    };
    while let Some(event) = events.next().await {
        let event = event?;
        let revision = event.revision().get();
        let (owner, converted) = match event {
            WatchEvent::Put { kv, prev } => match owner(&kv.key) {
                Some(cache) => {
                    let (resource, key) = (cache.resource, kv.key.clone());
                    let converted = decode(resource, &kv).map(|new| CacheEvent::Put {
                        key,
                        new,
                        prev: prev.as_ref().and_then(|prev| decode(resource, prev)),
                    });
                    (Some(cache), converted)
                }
                None => (None, None),
            },
            WatchEvent::Delete { revision, prev } => match owner(&prev.key) {
                Some(cache) => {
                    // The deleted object is reported with the deletion's revision, as kube-apiserver does.
                    let converted =
                        decode_at(cache.resource, &prev, revision.get()).map(|old| CacheEvent::Delete {
                            key: prev.key.clone(),
                            prev: old,
                        });
                    (Some(cache), converted)
                }
                None => (None, None),
            },
            WatchEvent::Progress { revision } => {
                for (_, cache) in caches {
                    cache.apply(CacheEvent::Progress(revision.get()));
                }
                continue;
            }
        };
        for (_, cache) in caches {
            match (&owner, &converted) {
                (Some(owner), Some(_)) if Arc::ptr_eq(owner, cache) => {}
                _ => cache.advance(revision),
            }
        }
        if let (Some(owner), Some(event)) = (owner, converted) {
            owner.apply(event);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resources::lookup;
    use serde_json::json;

    fn cached(name: &str, revision: i64) -> Arc<Cached> {
        Cached::new(
            lookup(
                flotilla_api::resources::Profile::Federation,
                "",
                "v1",
                "configmaps",
            )
            .unwrap(),
            json!({"metadata": {"name": name}}),
            revision,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn watches_resume_from_history_and_expire_past_it() {
        let cache = ResourceCache::new(
            lookup(
                flotilla_api::resources::Profile::Federation,
                "",
                "v1",
                "configmaps",
            )
            .unwrap(),
            10,
        );
        cache.reset(BTreeMap::from([("/r/cm/ns/a".to_owned(), cached("a", 5))]), 5);
        cache.apply(CacheEvent::Put {
            key: "/r/cm/ns/b".to_owned(),
            new: cached("b", 6),
            prev: None,
        });
        cache.apply(CacheEvent::Delete {
            key: "/r/cm/ns/a".to_owned(),
            prev: cached("a", 7),
        });
        let from_start = cache.subscribe("/r/cm/", None).unwrap();
        assert_eq!(from_start.initial.len(), 1, "only b is left");
        let from_5 = cache.subscribe("/r/cm/", Some(5)).unwrap();
        assert_eq!(
            from_5.initial.iter().map(|e| e.revision()).collect::<Vec<_>>(),
            vec![6, 7]
        );
        assert_eq!(
            cache.subscribe("/r/cm/", Some(4)).unwrap_err(),
            CacheError::Expired {
                requested: 4,
                oldest: 5
            }
        );
        assert!(cache.wait_for(7).await.is_ok());
        assert_eq!(cache.list("/r/cm/ns/").1, 7);
        assert!(matches!(
            cache.wait_for(8).await,
            Err(CacheError::TooLarge {
                requested: 8,
                current: 7
            })
        ));
        let b = cache.get("/r/cm/ns/b").unwrap();
        assert_eq!(b.index.field("metadata.name"), Some("b"));
        let mut typed = Vec::new();
        b.write_typed("v1", "ConfigMap", &mut typed);
        let typed: Value = serde_json::from_slice(&typed).unwrap();
        assert_eq!(
            (
                typed["kind"].as_str(),
                typed["metadata"]["resourceVersion"].as_str()
            ),
            (Some("ConfigMap"), Some("6"))
        );
    }
}
