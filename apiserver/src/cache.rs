//! The watch cache, after kube-apiserver's cacher: an in-memory copy of every object of every resource, a
//! bounded history of recent events per resource, and a broadcast to every client watch; so a thousand
//! `kubectl get -w` cost no storage watch of their own, and each event is decoded and serialised once.
//!
//! Unlike kube's one watch per resource, one storage list (every resource at one revision) and one storage
//! watch on the whole prefix feed every resource's cache. So every write advances every cache's revision (one
//! revision, shared by all), and a client that watches a quiet resource from the revision of an unrelated write
//! (`kubectl get -w` lists, then watches from the list's revision) is served at once instead of waiting for a
//! progress notification.
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
    /// A stored object as the cache holds it, parsing only what the index needs: the top level, the metadata's
    /// top level with its name, namespace and labels, and the fields a selector may name beyond them. The rest,
    /// such as a ConfigMap's data, is copied as it is, not parsed and written again.
    fn from_stored(
        resource: &Resource,
        stored: &[u8],
        revision: i64,
    ) -> Result<Arc<Self>, serde_json::Error> {
        let raw = object::RawObject::parse(stored)?;
        // What the index reads, as a partial object.
        let mut meta = serde_json::Map::new();
        for field in ["name", "namespace", "labels"] {
            if let Some(value) = raw.metadata.get(field) {
                meta.insert(field.to_owned(), serde_json::from_str(value.get())?);
            }
        }
        let mut partial = serde_json::Map::from_iter([("metadata".to_owned(), Value::Object(meta))]);
        for field in object::selectable_fields(resource) {
            let first = field.split('.').next().unwrap_or_default();
            if !partial.contains_key(first)
                && let Some(value) = raw.top.get(first)
            {
                partial.insert(first.to_owned(), serde_json::from_str(value.get())?);
            }
        }
        Ok(Arc::new(Cached {
            index: Index::of(&Value::Object(partial), resource),
            item_json: Bytes::from(raw.to_vec(revision, false)?),
            revision,
        }))
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
    /// The feed's revision, shared by every resource's cache: once it reads R, every event up to R has been
    /// applied to the cache it belongs to. (One channel for all, so that a write notifies once, not once per
    /// resource.)
    feed: Arc<watch::Sender<i64>>,
}

impl ResourceCache {
    fn new(resource: &'static Resource, history_capacity: usize, feed: Arc<watch::Sender<i64>>) -> Self {
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
            feed,
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
        let mut seen = self.feed.subscribe();
        let fresh = |current: &i64| *current >= revision.max(1);
        match tokio::time::timeout(patience, seen.wait_for(fresh)).await {
            Ok(Ok(_)) if self.read().ready => Ok(()),
            _ => Err(CacheError::TooLarge {
                requested: revision,
                current: *self.feed.borrow(),
            }),
        }
    }

    /// The revision the cache's contents are at: its own last change, or the feed's revision when that is newer
    /// (every write in the store advances every resource). Read under the state lock: an event of this resource
    /// cannot be applied meanwhile, and the feed never reports a revision before its event is applied.
    fn revision_in(&self, state: &State) -> i64 {
        if !state.ready {
            // Relisting: the feed may already be past events this cache has not got.
            return state.revision;
        }
        state.revision.max(*self.feed.borrow())
    }

    /// Records that the feed reached `revision`.
    fn advance_feed(&self, revision: i64) {
        self.feed.send_if_modified(|current| {
            let newer = revision > *current;
            if newer {
                *current = revision;
            }
            newer
        });
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
        (items, self.revision_in(&state))
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
            revision: self.revision_in(&state),
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
        self.advance_feed(revision);
    }

    fn mark_stale(&self) {
        self.write().ready = false;
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
        self.advance_feed(current);
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
        let revision = Arc::new(watch::Sender::new(0));
        let by_resource: Vec<(String, Arc<ResourceCache>)> = RESOURCES
            .iter()
            .map(|resource| {
                let key_prefix = collection_prefix(prefix, resource.group, resource.plural, None);
                (
                    key_prefix,
                    Arc::new(ResourceCache::new(resource, history, revision.clone())),
                )
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
    match Cached::from_stored(resource, &kv.value, revision) {
        Ok(cached) => Some(cached),
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
                    // The previous version is the one cached (decoding the store's copy again only when the cache
                    // lacks it).
                    let prev = prev
                        .as_ref()
                        .and_then(|prev| cache.get(&key).or_else(|| decode(resource, prev)));
                    let converted = decode(resource, &kv).map(|new| CacheEvent::Put { key, new, prev });
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
        match (owner, converted) {
            (Some(owner), Some(event)) => owner.apply(event),
            // Nothing of a served resource changed: every cache is at this revision all the same.
            _ => {
                if let Some((_, any)) = caches.first() {
                    any.advance_feed(revision);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resources::lookup;
    use serde_json::json;

    fn served(plural: &str) -> &'static Resource {
        lookup(flotilla_api::resources::Profile::Federation, "", "v1", plural).unwrap()
    }

    fn cached(name: &str, revision: i64) -> Arc<Cached> {
        let stored = json!({"metadata": {"name": name}}).to_string();
        Cached::from_stored(served("configmaps"), stored.as_bytes(), revision).unwrap()
    }

    #[test]
    fn cached_objects_keep_everything_but_the_type_and_index_their_selectable_fields() {
        let stored = json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "shop", "labels": {"app": "web"},
                "managedFields": [{"manager": "m", "fieldsV1": {"f:reason": {}}}]},
            "involvedObject": {"kind": "Deployment", "name": "web", "uid": "u"},
            "reason": "Scaled", "source": {"component": "flotilla"}, "message": "a \"quoted\" é"});
        let cached = Cached::from_stored(served("events"), stored.to_string().as_bytes(), 42).unwrap();
        let item: Value = serde_json::from_slice(&cached.item_json).unwrap();
        let mut expected = stored.clone();
        expected.as_object_mut().unwrap().remove("apiVersion");
        expected.as_object_mut().unwrap().remove("kind");
        expected["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(item, expected);
        assert_eq!(
            cached.index.labels,
            BTreeMap::from([("app".to_owned(), "web".to_owned())])
        );
        for (field, value) in [
            ("metadata.name", "web.1"),
            ("metadata.namespace", "shop"),
            ("involvedObject.kind", "Deployment"),
            ("involvedObject.uid", "u"),
            ("involvedObject.fieldPath", ""),
            ("reason", "Scaled"),
            ("source", "flotilla"),
        ] {
            assert_eq!(cached.index.field(field), Some(value), "{field}");
        }
        assert!(Cached::from_stored(served("events"), b"{not json", 1).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn watches_resume_from_history_and_expire_past_it() {
        let cache = ResourceCache::new(served("configmaps"), 10, Arc::new(watch::Sender::new(0)));
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
