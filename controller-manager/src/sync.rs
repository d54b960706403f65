//! The generic sync controller: one kube-runtime controller per federated type over the federation API, each
//! reconciling a federation object against its copies in every Ready member (through the type's
//! [`Adapter`]). Level-triggered: every reconcile computes the desired copies from scratch, in memory, and
//! converges the members by create, update and delete — so a crash at any moment converges after restart.
//!
//! Member copies are watched (only Flotilla's, by label) in one reflector per (member, type); a change to a
//! copy re-queues its federation object, so drift is put back and status is aggregated as members report it.
//! A copy is rewritten only when what Flotilla would write differs from what it last wrote (the applied-hash
//! annotation) or when someone changed a field Flotilla sets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use flotilla_api::federation::{self, Cluster, DELETE_FROM_MEMBERS_FINALIZER, MANAGED_LABEL};
use futures::{FutureExt as _, StreamExt, TryStreamExt as _};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::adapters::{self, APPLIED_HASH_ANNOTATION, Adapter, Placement};
use crate::copies::{CopyType, MemberCopy};
use crate::events;
use crate::members::Members;
use crate::metrics::Metrics;
use crate::orphans::{Identity, Orphans};
use crate::placement::ClusterSelector;

/// Annotation on a federation object that lets Flotilla take over member objects it did not create.
pub const ADOPT_ANNOTATION: &str = "federation.flotilla.io/adopt";

/// Namespaces whose contents never leave the federation (member credentials live in `federation-system`) and
/// which every member has of its own.
const LOCAL_NAMESPACES: &[&str] = &[
    federation::SYSTEM_NAMESPACE,
    "default",
    "kube-system",
    "kube-public",
    "kube-node-lease",
];

/// The sync controllers' settings.
#[derive(Clone, Copy, Debug)]
pub struct SyncOptions {
    /// How long a member's pods may stay unavailable before its share is capped (v1's estimated capacity).
    pub capacity_timeout: Duration,
    /// How long one write to a member may take.
    pub member_timeout: Duration,
    /// How often every object is reconciled even when nothing changed.
    pub resync: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            capacity_timeout: Duration::from_secs(60),
            member_timeout: Duration::from_secs(10),
            resync: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("federation API: {0}")]
    Federation(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Selector(String),
    #[error("{failed} of the member writes failed: {first}")]
    Members { failed: usize, first: String },
}

/// One member's caches: a reflector of Flotilla's copies per federated type in use. A type is watched in the
/// members only once the federation holds an object of it (see [`Fleet::active`]), so a federation of ConfigMaps
/// and Deployments keeps a handful of watches per member, not one per federated type.
struct MemberCache {
    fingerprint: String,
    client: Client,
    labels: BTreeMap<String, String>,
    /// By adapter index; `None` for a type not in use yet.
    types: Vec<Option<TypeCache>>,
    /// Every type started with the cache has synced once: the member is in view (newly used types do not take
    /// it out again; their reconciles wait for their own cache).
    in_view: bool,
    /// Looks once through the types not in use for copies left behind ([`sweep_unused`]).
    sweeper: tokio::task::JoinHandle<()>,
}

impl Drop for MemberCache {
    fn drop(&mut self) {
        self.sweeper.abort();
    }
}

/// The reflector of one federated type in one member.
struct TypeCache {
    store: Store<MemberCopy>,
    synced: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl TypeCache {
    fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
    }
}

impl Drop for TypeCache {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Everything the sync controllers share.
pub struct Fleet {
    federation: Client,
    members: Arc<Members>,
    clusters: Store<Cluster>,
    adapters: Vec<Arc<dyn Adapter>>,
    /// By adapter index: its type, shared by the keys of every member cache.
    copy_types: Vec<CopyType>,
    caches: RwLock<BTreeMap<String, MemberCache>>,
    /// The resourceVersion each federation object was last reconciled at, by (type, key): the backlog metric.
    reconciled: std::sync::Mutex<std::collections::HashMap<(usize, String), String>>,
    /// Consecutive failed syncs by (type, key), for the retry backoff.
    failures: std::sync::Mutex<std::collections::HashMap<(usize, String), u32>>,
    /// Ready members no client could be built for (their credentials are broken): planned without.
    unreachable: RwLock<BTreeSet<String>>,
    /// Copies to release rather than delete when their member is back: their object was orphaned meanwhile.
    orphans: Orphans,
    triggers: Vec<mpsc::UnboundedSender<ObjectRef<DynamicObject>>>,
    resync_all: Vec<mpsc::UnboundedSender<()>>,
    /// By adapter index: the objects whose reconcile found a Ready member not in view yet, triggered again as
    /// soon as every Ready member's cache of the type has synced (the 200 ms retry is only the backstop).
    deferred: Vec<std::sync::Mutex<std::collections::HashSet<ObjectRef<DynamicObject>>>>,
    /// Wakes [`maintain`] before its next tick: a reconcile is waiting for a type to be watched.
    maintain_now: tokio::sync::Notify,
    federation_stores: OnceLock<Vec<Store<DynamicObject>>>,
    /// By adapter index: the federation has held an object of the type (not a local one) since this process
    /// started, so members' copies of it are watched. Never reset: a type in use stays watched.
    active: Vec<AtomicBool>,
    /// By adapter index: the reconciles of the type that may run at once, handed out first come, first served.
    syncs: Vec<tokio::sync::Semaphore>,
    options: SyncOptions,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A ready member as one reconcile sees it.
struct Ready {
    name: String,
    labels: BTreeMap<String, String>,
    client: Client,
    store: Store<MemberCopy>,
}

fn object_ref(resource: &ApiResource, namespace: Option<&str>, name: &str) -> ObjectRef<DynamicObject> {
    let reference = ObjectRef::new_with(name, resource.clone());
    match namespace {
        Some(ns) => reference.within(ns),
        None => reference,
    }
}

fn object_key(object: &DynamicObject) -> String {
    format!("{}/{}", object.namespace().unwrap_or_default(), object.name_any())
}

/// Whether an object stays in the federation: the local namespaces and everything in them.
fn is_local(adapter: &dyn Adapter, object: &DynamicObject) -> bool {
    if adapter.resource().plural == "namespaces" {
        return LOCAL_NAMESPACES.contains(&object.name_any().as_str());
    }
    object
        .namespace()
        .is_some_and(|ns| LOCAL_NAMESPACES.contains(&ns.as_str()) && ns != "default")
}

/// Runs the sync controllers until dropped.
pub async fn run(
    federation: Client,
    members: Arc<Members>,
    clusters: Store<Cluster>,
    options: SyncOptions,
    metrics: Arc<Metrics>,
) {
    let adapters: Vec<Arc<dyn Adapter>> = adapters::all(options.capacity_timeout)
        .into_iter()
        .map(Arc::from)
        .collect();
    let mut trigger_rx = Vec::new();
    let mut triggers = Vec::new();
    let mut resync_rx = Vec::new();
    let mut resync_all = Vec::new();
    for _ in &adapters {
        let (tx, rx) = mpsc::unbounded_channel();
        triggers.push(tx);
        trigger_rx.push(rx);
        let (tx, rx) = mpsc::unbounded_channel();
        resync_all.push(tx);
        resync_rx.push(rx);
    }
    let fleet = Arc::new(Fleet {
        federation: federation.clone(),
        members,
        clusters,
        copy_types: adapters.iter().map(|a| Arc::new(a.resource().clone())).collect(),
        adapters: adapters.clone(),
        caches: RwLock::new(BTreeMap::new()),
        reconciled: std::sync::Mutex::new(std::collections::HashMap::new()),
        failures: std::sync::Mutex::new(std::collections::HashMap::new()),
        unreachable: RwLock::new(BTreeSet::new()),
        orphans: Orphans::start(federation.clone()).await,
        triggers,
        resync_all,
        deferred: adapters.iter().map(|_| Default::default()).collect(),
        maintain_now: tokio::sync::Notify::new(),
        federation_stores: OnceLock::new(),
        active: adapters.iter().map(|_| AtomicBool::new(false)).collect(),
        syncs: adapters
            .iter()
            .map(|_| tokio::sync::Semaphore::new(CONCURRENT_SYNCS))
            .collect(),
        options,
        metrics,
    });
    let mut stores = Vec::new();
    let mut controllers = Vec::new();
    for (index, (adapter, (triggered, resync))) in adapters
        .iter()
        .zip(trigger_rx.into_iter().zip(resync_rx))
        .enumerate()
    {
        let resource = adapter.resource().clone();
        let api: Api<DynamicObject> = Api::all_with(federation.clone(), &resource);
        let controller = Controller::new_with(api, watcher::Config::default(), resource)
            // No limit in kube-runtime's runner: at its limit it parks every due object in an unordered set and
            // picks from it in hash order, so under sustained load some objects wait until the load ends
            // (measured: a third of 1,000 Deployments created at 50/s waited 1–26 s). `reconcile` takes a permit
            // of `Fleet::syncs` instead, a fair semaphore, so reconciles start in the order they became due.
            .with_config(kube::runtime::controller::Config::default().debounce(TRIGGER_DEBOUNCE))
            .reconcile_on(UnboundedReceiverStream::new(triggered))
            .reconcile_all_on(UnboundedReceiverStream::new(resync));
        stores.push(controller.store());
        let context = Arc::new((fleet.clone(), index));
        controllers.push(
            controller
                .run(reconcile, error_policy, context)
                .for_each(|_| async {}),
        );
    }
    let _ = fleet.federation_stores.set(stores);
    tokio::spawn(maintain(fleet.clone()));
    futures::future::join_all(controllers).await;
}

/// Reconciles of one type at a time. Each writes to every member at once, so this bounds the requests (and
/// the member connections they open) in flight to this many times the members.
const CONCURRENT_SYNCS: usize = 16;

/// How long a trigger waits for more of the same object before its reconcile is due: folds the bursts of
/// triggers one object gets (its own writes coming back from every member) into one reconcile. It also keeps
/// due reconciles in order: a trigger due at once lands on a stack in kube-runtime's scheduler (tokio-util's
/// `DelayQueue` keeps already elapsed deadlines on its `expired` stack, newest first), a later deadline in the
/// timer wheel, whose slots expire in time order.
const TRIGGER_DEBOUNCE: Duration = Duration::from_millis(20);

/// First retry after a failed sync; doubled per consecutive failure of the same object, up to a minute (v1 used
/// 5 s to 1 min), and reset by a success.
const RETRY_BASE: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(60);

fn error_policy(object: Arc<DynamicObject>, error: &SyncError, context: Arc<(Arc<Fleet>, usize)>) -> Action {
    let (fleet, index) = (&context.0, context.1);
    fleet.metrics.sync_errors.inc();
    let failures = {
        let mut failures = fleet.failures.lock().expect("not poisoned");
        let count = failures.entry((index, object_key(&object))).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = RETRY_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX);
    tracing::warn!(kind = %fleet.adapters[index].resource().kind, object = %object.name_any(), %error, failures, retry_in = ?delay, "sync failed");
    Action::requeue(delay)
}

/// Rounds of [`maintain`] (250 ms each) between two periodic sweeps: a minute.
const SWEEP_ROUNDS: u64 = 240;

/// Keeps one cache per Ready member, re-queues everything when the set of Ready members or their labels
/// change, and deletes copies whose federation object is gone (deleted while their member was away).
///
/// It looks every 250 ms (and at once when a reconcile waits for a type nobody watches yet), but does the work
/// only when something it depends on moved: a Cluster's readiness, labels, server or credentials, or a
/// credential Secret, changed; a type came into use; a member cache is still syncing or a Ready member has no
/// client yet. Otherwise a round costs a digest of the Clusters and
/// Secrets; the backlog metric is counted every 2 s. Copies whose federation object is gone are swept when a
/// member cache comes into view (a member back from away) and otherwise once a minute, as a backstop: it
/// walks every member's every copy.
async fn maintain(fleet: Arc<Fleet>) {
    let mut last_view: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut last_digest: Option<u64> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut rounds: u64 = 0;
    loop {
        // A round on demand does the work a tick would, but leaves the periodic chores to the ticks.
        let ticked = tokio::select! {
            _ = tick.tick() => true,
            () = fleet.maintain_now.notified() => false,
        };
        rounds += u64::from(ticked);
        let every = |n: u64| ticked && rounds.is_multiple_of(n);
        if every(8) {
            count_backlog(&fleet);
        }
        let clusters: Vec<Arc<Cluster>> = fleet.clusters.state();
        let digest = fleet_digest(&clusters, &fleet.members);
        let mut started = activate_types(&fleet);
        let settling = !fleet.unreachable.read().expect("not poisoned").is_empty()
            || fleet
                .caches
                .read()
                .expect("not poisoned")
                .values()
                .any(|cache| !cache.in_view);
        if last_digest == Some(digest) && !started && !settling {
            if every(SWEEP_ROUNDS) {
                forget_deleted(&fleet);
                sweep(&fleet).await;
                prune_orphans(&fleet, &clusters).await;
            }
            continue;
        }
        last_digest = Some(digest);
        fleet.metrics.cluster_ready.clear();
        for cluster in &clusters {
            let name = cluster.metadata.name.clone().unwrap_or_default();
            fleet
                .metrics
                .cluster_ready
                .get_or_create(&vec![("cluster".to_owned(), name)])
                .set(i64::from(cluster.is_ready()));
        }
        let ready: BTreeMap<String, Arc<Cluster>> = clusters
            .into_iter()
            .filter(|c| c.is_ready())
            .filter_map(|c| Some((c.metadata.name.clone()?, c)))
            .collect();
        {
            let mut caches = fleet.caches.write().expect("not poisoned");
            caches.retain(|name, cache| {
                ready
                    .get(name)
                    .is_some_and(|c| fleet.members.fingerprint(c) == cache.fingerprint)
            });
        }
        for (name, cluster) in &ready {
            let has_cache = fleet.caches.read().expect("not poisoned").contains_key(name);
            let labels = cluster.metadata.labels.clone().unwrap_or_default();
            if has_cache {
                if let Some(cache) = fleet.caches.write().expect("not poisoned").get_mut(name) {
                    cache.labels = labels;
                    start_types(&fleet, name, cache);
                }
                continue;
            }
            match fleet.members.client(cluster).await {
                Ok(client) => {
                    fleet.unreachable.write().expect("not poisoned").remove(name);
                    let cache = start_cache(&fleet, name, client, fleet.members.fingerprint(cluster), labels);
                    fleet
                        .caches
                        .write()
                        .expect("not poisoned")
                        .insert(name.clone(), cache);
                    started = true;
                }
                Err(err) => {
                    tracing::warn!(cluster = %name, error = %err, "no client for a Ready member");
                    fleet
                        .unreachable
                        .write()
                        .expect("not poisoned")
                        .insert(name.clone());
                }
            }
        }
        let view: BTreeMap<String, BTreeMap<String, String>> = {
            let mut caches = fleet.caches.write().expect("not poisoned");
            for cache in caches.values_mut() {
                if !cache.in_view && cache.types.iter().flatten().all(TypeCache::synced) {
                    cache.in_view = true;
                    // A member back from away: what was deleted meanwhile goes now, not at the next minute.
                    started = true;
                }
            }
            caches
                .iter()
                .filter(|(_, c)| c.in_view)
                .map(|(n, c)| (n.clone(), c.labels.clone()))
                .collect()
        };
        fleet.metrics.ready_members.set(view.len() as i64);
        if view != last_view {
            tracing::info!(members = ?view.keys().collect::<Vec<_>>(), "member set changed; re-syncing every object");
            for resync in &fleet.resync_all {
                let _ = resync.send(());
            }
            last_view = view;
        }
        if started || every(SWEEP_ROUNDS) {
            forget_deleted(&fleet);
            sweep(&fleet).await;
            prune_orphans(&fleet, &fleet.clusters.state()).await;
        }
    }
}

/// Forgets, in the records of orphaned objects, the members that left the federation, and the members in view
/// that hold no copy of the object (it was never placed there, or the copy is released already).
async fn prune_orphans(fleet: &Fleet, clusters: &[Arc<Cluster>]) {
    let joined: BTreeSet<String> = clusters.iter().filter_map(|c| c.metadata.name.clone()).collect();
    if let Err(err) = fleet.orphans.prune(&joined).await {
        tracing::warn!(error = %err, "cannot update the records of orphaned objects");
    }
    let mut nothing_to_release = Vec::new();
    {
        let caches = fleet.caches.read().expect("not poisoned");
        for (identity, pending) in fleet.orphans.records() {
            let Some(index) = fleet.adapters.iter().position(|a| identity.is_of(a.resource())) else {
                continue;
            };
            let (namespace, name) = identity.namespace_and_name();
            let key = MemberCopy::key(&fleet.copy_types[index], namespace, name);
            for cluster in pending {
                let copies = caches
                    .get(&cluster)
                    .filter(|cache| cache.in_view)
                    .and_then(|cache| cache.types[index].as_ref())
                    .filter(|copies| copies.synced());
                if copies.is_some_and(|copies| copies.store.get(&key).is_none()) {
                    nothing_to_release.push((identity.clone(), cluster));
                }
            }
        }
    }
    for (identity, cluster) in nothing_to_release {
        if let Err(err) = fleet.orphans.released(&identity, &cluster).await {
            tracing::warn!(error = %err, "cannot update the records of orphaned objects");
        }
    }
}

/// The federation objects not yet reconciled at their current resourceVersion, as the queue depth metric.
fn count_backlog(fleet: &Fleet) {
    let Some(stores) = fleet.federation_stores.get() else {
        return;
    };
    let reconciled = fleet.reconciled.lock().expect("not poisoned");
    let backlog = stores
        .iter()
        .enumerate()
        .flat_map(|(index, store)| store.state().into_iter().map(move |o| (index, o)))
        .filter(|(index, object)| {
            reconciled.get(&(*index, object_key(object))) != object.metadata.resource_version.as_ref()
        })
        .count();
    fleet.metrics.queue_depth.set(backlog as i64);
}

/// A digest of what the member set depends on: each Cluster's name, readiness, labels, server and credentials
/// (not its whole status, whose probe times move every few periods), and the credential Secrets' versions.
fn fleet_digest(clusters: &[Arc<Cluster>], members: &Members) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut sorted: Vec<&Cluster> = clusters.iter().map(AsRef::as_ref).collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for cluster in sorted {
        cluster.metadata.name.hash(&mut hasher);
        cluster.is_ready().hash(&mut hasher);
        cluster.metadata.labels.hash(&mut hasher);
        cluster.server_address().hash(&mut hasher);
        cluster
            .spec
            .secret_ref
            .as_ref()
            .map(|r| &r.name)
            .hash(&mut hasher);
    }
    members.credentials_digest().hash(&mut hasher);
    hasher.finish()
}

/// Drops the bookkeeping of federation objects that no longer exist.
fn forget_deleted(fleet: &Fleet) {
    let Some(stores) = fleet.federation_stores.get() else {
        return;
    };
    let existing: std::collections::HashSet<(usize, String)> = stores
        .iter()
        .enumerate()
        .flat_map(|(index, store)| store.state().into_iter().map(move |o| (index, object_key(&o))))
        .collect();
    fleet
        .reconciled
        .lock()
        .expect("not poisoned")
        .retain(|key, _| existing.contains(key));
    fleet
        .failures
        .lock()
        .expect("not poisoned")
        .retain(|key, _| existing.contains(key));
}

/// Marks the types the federation now holds objects of as in use; whether any became so.
fn activate_types(fleet: &Fleet) -> bool {
    let Some(stores) = fleet.federation_stores.get() else {
        return false;
    };
    let mut activated = false;
    for (index, adapter) in fleet.adapters.iter().enumerate() {
        if fleet.active[index].load(Ordering::Relaxed) {
            continue;
        }
        if stores[index]
            .state()
            .iter()
            .any(|o| !is_local(adapter.as_ref(), o))
        {
            tracing::debug!(kind = %adapter.resource().kind, "type in use; watching its copies in the members");
            fleet.active[index].store(true, Ordering::Relaxed);
            activated = true;
        }
    }
    activated
}

/// A member's cache, with reflectors for the types in use.
fn start_cache(
    fleet: &Arc<Fleet>,
    cluster: &str,
    client: Client,
    fingerprint: String,
    labels: BTreeMap<String, String>,
) -> MemberCache {
    let mut cache = MemberCache {
        fingerprint,
        client: client.clone(),
        labels,
        types: fleet.adapters.iter().map(|_| None).collect(),
        in_view: false,
        sweeper: tokio::spawn(sweep_unused(fleet.clone(), cluster.to_owned(), client.clone())),
    };
    start_types(fleet, cluster, &mut cache);
    cache
}

/// Starts the reflectors of the types in use that the member's cache lacks.
fn start_types(fleet: &Arc<Fleet>, cluster: &str, cache: &mut MemberCache) {
    for (index, adapter) in fleet.adapters.iter().enumerate() {
        if cache.types[index].is_some() || !fleet.active[index].load(Ordering::Relaxed) {
            continue;
        }
        let resource = adapter.resource().clone();
        let api: Api<DynamicObject> = Api::all_with(cache.client.clone(), &resource);
        let config = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
        let writer = reflector::store::Writer::new(fleet.copy_types[index].clone());
        let reader = writer.as_reader();
        let trigger = fleet.triggers[index].clone();
        let copies = watcher(api, config).map_ok(MemberCopy::event);
        let events = reflector::reflector(writer, copies)
            .default_backoff()
            .touched_objects()
            .for_each(move |object| {
                if let Ok(object) = object {
                    let _ = trigger.send(object_ref(
                        &resource,
                        object.namespace().as_deref(),
                        &object.name_any(),
                    ));
                }
                async {}
            });
        let synced = Arc::new(AtomicBool::new(false));
        let (waiting, done) = (reader.clone(), synced.clone());
        let name = cluster.to_owned();
        let kind = adapter.resource().kind.clone();
        // Weak: the task lives in the fleet's own caches.
        let owner = Arc::downgrade(fleet);
        let tasks = vec![
            tokio::spawn(events),
            tokio::spawn(async move {
                if waiting.wait_until_ready().await.is_ok() {
                    done.store(true, Ordering::Relaxed);
                    tracing::debug!(cluster = %name, %kind, "member cache synced");
                    if let Some(fleet) = owner.upgrade() {
                        fleet.wake_deferred(index);
                    }
                }
            }),
        ];
        cache.types[index] = Some(TypeCache {
            store: reader,
            synced,
            tasks,
        });
    }
}

/// The (namespace, name) of a type's federation objects.
type ObjectNames<'a> = std::collections::HashSet<(Option<&'a str>, &'a str)>;

/// Deletes member copies whose federation object no longer exists.
async fn sweep(fleet: &Arc<Fleet>) {
    let Some(federation_stores) = fleet.federation_stores.get() else {
        return;
    };
    // Each type's federation objects once, looked up by borrowed (namespace, name): every member holds a copy of
    // every object, so the walk below is members × objects.
    let objects: Vec<Option<Vec<Arc<DynamicObject>>>> = federation_stores
        .iter()
        .map(|store| {
            store
                .wait_until_ready()
                .now_or_never()
                .is_some()
                .then(|| store.state())
        })
        .collect();
    let existing: Vec<Option<ObjectNames<'_>>> = objects
        .iter()
        .map(|objects| {
            objects.as_ref().map(|objects| {
                objects
                    .iter()
                    .map(|o| {
                        (
                            o.metadata.namespace.as_deref(),
                            o.metadata.name.as_deref().unwrap_or(""),
                        )
                    })
                    .collect()
            })
        })
        .collect();
    let mut deletions = Vec::new();
    {
        let caches = fleet.caches.read().expect("not poisoned");
        for (cluster, cache) in caches.iter() {
            for (index, (types, existing)) in cache.types.iter().zip(&existing).enumerate() {
                let (Some(copies), Some(existing)) = (types.as_ref().filter(|t| t.synced()), existing) else {
                    continue;
                };
                for copy in copies.store.state() {
                    if copy.deleting() {
                        continue;
                    }
                    let meta = kube::Resource::meta(copy.as_ref());
                    let key = (meta.namespace.as_deref(), meta.name.as_deref().unwrap_or(""));
                    if !existing.contains(&key) {
                        deletions.push((
                            cluster.clone(),
                            cache.client.clone(),
                            index,
                            Arc::new(copy.object()),
                        ));
                    }
                }
            }
        }
    }
    delete_orphans(fleet, deletions).await;
}

/// Types not in use are not watched, but a member may still hold copies of them, from objects deleted while it
/// was away or before this process started: each member's are listed once, when its cache starts.
async fn sweep_unused(fleet: Arc<Fleet>, cluster: String, client: Client) {
    let federation_stores = loop {
        if let Some(stores) = fleet.federation_stores.get()
            && stores
                .iter()
                .all(|s| s.wait_until_ready().now_or_never().is_some())
        {
            break stores;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut deletions = Vec::new();
    for (index, adapter) in fleet.adapters.iter().enumerate() {
        if fleet.active[index].load(Ordering::Relaxed) {
            continue; // watched: the periodic sweep covers it
        }
        let api: Api<DynamicObject> = Api::all_with(client.clone(), adapter.resource());
        let params = ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
        match tokio::time::timeout(fleet.options.member_timeout, api.list(&params)).await {
            Ok(Ok(list)) => {
                for copy in list.items {
                    let reference =
                        object_ref(adapter.resource(), copy.namespace().as_deref(), &copy.name_any());
                    if copy.metadata.deletion_timestamp.is_none()
                        && federation_stores[index].get(&reference).is_none()
                    {
                        deletions.push((cluster.clone(), client.clone(), index, Arc::new(copy)));
                    }
                }
            }
            Ok(Err(err)) => {
                tracing::debug!(%cluster, kind = %adapter.resource().kind, error = %err, "cannot list copies of a type not in use");
            }
            Err(_) => {
                tracing::debug!(%cluster, kind = %adapter.resource().kind, "no answer listing copies of a type not in use")
            }
        }
    }
    delete_orphans(&fleet, deletions).await;
}

/// Deletes copies that looked orphaned in a cache or a list, each only after checking again that its federation
/// object is gone and the live copy is still Flotilla's.
async fn delete_orphans(fleet: &Arc<Fleet>, deletions: Vec<(String, Client, usize, Arc<DynamicObject>)>) {
    for (cluster, client, index, copy) in deletions {
        let adapter = &fleet.adapters[index];
        let api = member_api(&client, adapter.as_ref(), copy.namespace().as_deref());
        // The caches may lag: the copy may have just been released (orphaned) or its federation object
        // re-created. Only a copy that is still Flotilla's and whose object is really gone goes.
        // The federation object first: once it is gone, a release (orphaning) has already happened.
        let federated = member_api(&fleet.federation, adapter.as_ref(), copy.namespace().as_deref());
        let timeout = fleet.options.member_timeout;
        if !matches!(
            tokio::time::timeout(timeout, federated.get_opt(&copy.name_any())).await,
            Ok(Ok(None))
        ) {
            continue;
        }
        let still_ours = tokio::time::timeout(timeout, api.get_opt(&copy.name_any()))
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
            .is_some_and(|live| live.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true"));
        if !still_ours {
            continue;
        }
        let identity = Identity::new(adapter.resource(), copy.namespace().as_deref(), &copy.name_any());
        let Ok(pending) = fleet.orphans.pending(&identity, &cluster).await else {
            continue; // not knowing whether to release or delete, neither; the next sweep decides
        };
        if pending {
            tracing::info!(%cluster, kind = %adapter.resource().kind, object = %copy.name_any(), "releasing a copy whose federation object was orphaned while its member was away");
            match tokio::time::timeout(timeout, release(&api, &copy)).await {
                Ok(Ok(())) => {
                    if let Err(err) = fleet.orphans.released(&identity, &cluster).await {
                        tracing::warn!(%cluster, error = %err, "cannot update the record of an orphaned object");
                    }
                }
                Ok(Err(err)) => tracing::warn!(%cluster, error = %err, "cannot release an orphaned copy"),
                Err(_) => tracing::warn!(%cluster, "no answer releasing an orphaned copy"),
            }
            continue;
        }
        tracing::info!(%cluster, kind = %adapter.resource().kind, object = %copy.name_any(), "deleting a copy whose federation object is gone");
        let _ = tokio::time::timeout(
            fleet.options.member_timeout,
            api.delete(&copy.name_any(), &delete_exactly(&copy)),
        )
        .await;
    }
}

/// Releases a copy: it stays in its member, no longer Flotilla's (an orphaning deletion).
async fn release(api: &Api<DynamicObject>, live: &DynamicObject) -> Result<(), kube::Error> {
    let patch =
        json!({"metadata": {"labels": {MANAGED_LABEL: null}, "resourceVersion": live.resource_version()}});
    match api
        .patch(&live.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

fn member_api(client: &Client, adapter: &dyn Adapter, namespace: Option<&str>) -> Api<DynamicObject> {
    match (adapter.namespaced(), namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, adapter.resource()),
        _ => Api::all_with(client.clone(), adapter.resource()),
    }
}

impl Fleet {
    /// Remembers an object whose reconcile waits for member caches, and has a type not watched yet watched now.
    fn defer(&self, index: usize, object: &DynamicObject) {
        let reference = object_ref(
            self.adapters[index].resource(),
            object.namespace().as_deref(),
            &object.name_any(),
        );
        self.deferred[index]
            .lock()
            .expect("not poisoned")
            .insert(reference);
        if !self.active[index].load(Ordering::Relaxed) {
            self.maintain_now.notify_one();
        }
    }

    /// Triggers the deferred objects of type `index` once every Ready member's cache of it has synced.
    fn wake_deferred(&self, index: usize) {
        if self.ready(index).is_none() {
            return;
        }
        let deferred = std::mem::take(&mut *self.deferred[index].lock().expect("not poisoned"));
        for reference in deferred {
            let _ = self.triggers[index].send(reference);
        }
    }

    /// The Ready members whose caches of type `index` are synced; `None` while one of them is not synced yet.
    fn ready(&self, index: usize) -> Option<Vec<Ready>> {
        let caches = self.caches.read().expect("not poisoned");
        // Plan only with every Ready member in view: a member whose cache is not started yet would otherwise
        // look absent, and its share would be placed elsewhere (and kept there without rebalance).
        let unreachable = self.unreachable.read().expect("not poisoned");
        let behind = self.clusters.state().iter().any(|cluster| {
            cluster.is_ready()
                && cluster
                    .metadata
                    .name
                    .as_ref()
                    .is_some_and(|name| !caches.contains_key(name) && !unreachable.contains(name))
        });
        if behind {
            return None;
        }
        let mut ready = Vec::new();
        for (name, cache) in caches.iter() {
            // A type just put in use has its reflectors started on the next maintenance round.
            let copies = cache.types[index].as_ref().filter(|t| t.synced())?;
            ready.push(Ready {
                name: name.clone(),
                labels: cache.labels.clone(),
                client: cache.client.clone(),
                store: copies.store.clone(),
            });
        }
        Some(ready)
    }

    /// Whether a federated HPA targets this workload.
    fn autoscaled(&self, kind: &str, namespace: Option<&str>, name: &str) -> bool {
        let Some(stores) = self.federation_stores.get() else {
            return false;
        };
        let Some(index) = self
            .adapters
            .iter()
            .position(|a| a.resource().kind == "HorizontalPodAutoscaler")
        else {
            return false;
        };
        stores[index].state().iter().any(|hpa| {
            hpa.namespace().as_deref() == namespace
                && hpa
                    .data
                    .pointer("/spec/scaleTargetRef/kind")
                    .and_then(Value::as_str)
                    == Some(kind)
                && hpa
                    .data
                    .pointer("/spec/scaleTargetRef/name")
                    .and_then(Value::as_str)
                    == Some(name)
        })
    }
}

/// One write to a member.
enum Operation {
    Create(Value),
    Update(Value),
    /// The copy to delete (deleted only if it is still that object).
    Delete(Box<DynamicObject>),
}

async fn reconcile(
    object: Arc<DynamicObject>,
    context: Arc<(Arc<Fleet>, usize)>,
) -> Result<Action, SyncError> {
    let (fleet, index) = (&context.0, context.1);
    let adapter = fleet.adapters[index].as_ref();
    if is_local(adapter, &object) {
        if let Some(version) = object.metadata.resource_version.clone() {
            fleet
                .reconciled
                .lock()
                .expect("not poisoned")
                .insert((index, object_key(&object)), version);
        }
        return Ok(Action::await_change());
    }
    let _permit = fleet.syncs[index].acquire().await.expect("never closed");
    // The object as it is now, not as it was when its turn was asked for.
    let latest = fleet.federation_stores.get().and_then(|stores| {
        stores[index].get(&object_ref(
            adapter.resource(),
            object.namespace().as_deref(),
            &object.name_any(),
        ))
    });
    let object = match latest {
        Some(latest) => latest,
        // Deleted meanwhile: its deletion was handled (or the sweep removes what is left).
        None => return Ok(Action::await_change()),
    };
    let started = std::time::Instant::now();
    tracing::debug!(kind = %adapter.resource().kind, object = %object.name_any(), "reconcile started");
    let result = sync(fleet, index, &object).await;
    tracing::debug!(
        kind = %adapter.resource().kind,
        object = %object.name_any(),
        took_ms = started.elapsed().as_millis() as u64,
        ok = result.is_ok(),
        "reconcile done"
    );
    if result.is_ok() {
        fleet
            .failures
            .lock()
            .expect("not poisoned")
            .remove(&(index, object_key(&object)));
    }
    if result.is_ok()
        && let Some(version) = object.metadata.resource_version.clone()
    {
        fleet
            .reconciled
            .lock()
            .expect("not poisoned")
            .insert((index, object_key(&object)), version);
    }
    fleet
        .metrics
        .reconcile_seconds
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn sync(fleet: &Arc<Fleet>, index: usize, object: &DynamicObject) -> Result<Action, SyncError> {
    let adapter = fleet.adapters[index].as_ref();
    let Some(ready) = fleet.ready(index) else {
        tracing::debug!(object = %object.name_any(), "a Ready member is not in view yet; retrying");
        fleet.defer(index, object);
        return Ok(Action::requeue(Duration::from_millis(200)));
    };
    let name = object.name_any();
    let namespace = object.namespace();
    let value = typed(adapter, serde_json::to_value(object)?);
    let key = MemberCopy::key(&fleet.copy_types[index], namespace.as_deref(), &name);
    let copies: BTreeMap<String, Value> = ready
        .iter()
        .filter_map(|member| {
            let copy = member.store.get(&key)?;
            Some((member.name.clone(), typed(adapter, copy.value())))
        })
        .collect();
    let federation_api = member_api(&fleet.federation, adapter, namespace.as_deref());
    let finalizers = object.finalizers().to_vec();

    if object.metadata.deletion_timestamp.is_some() {
        return delete(fleet, adapter, object, &federation_api, &ready).await;
    }
    // An object orphaned earlier under this name: the copies it left are this one's now.
    fleet
        .orphans
        .forget(&Identity::new(adapter.resource(), namespace.as_deref(), &name))
        .await?;
    if !finalizers.iter().any(|f| f == DELETE_FROM_MEMBERS_FINALIZER) {
        let mut with = finalizers.clone();
        with.push(DELETE_FROM_MEMBERS_FINALIZER.to_owned());
        set_finalizers(&federation_api, object, with).await?;
    }

    let annotations = object.annotations();
    let selector = match annotations.get(federation::CLUSTER_SELECTOR_ANNOTATION) {
        Some(text) => match ClusterSelector::parse(text) {
            Ok(selector) => selector,
            Err(err) => {
                events::warn(&fleet.federation, adapter, object, "InvalidClusterSelector", &err).await;
                return Err(SyncError::Selector(err));
            }
        },
        None => ClusterSelector::default(),
    };
    let selected: Vec<String> = ready
        .iter()
        .filter(|m| selector.matches(&m.labels))
        .map(|m| m.name.clone())
        .collect();
    let selected_copies: BTreeMap<String, Value> = copies
        .iter()
        .filter(|(c, _)| selected.contains(c))
        .map(|(c, v)| (c.clone(), v.clone()))
        .collect();
    let autoscaled = matches!(adapter.resource().kind.as_str(), "Deployment" | "ReplicaSet")
        && fleet.autoscaled(&adapter.resource().kind, namespace.as_deref(), &name);
    let desired = adapter.place(
        &value,
        &Placement {
            clusters: &selected,
            members: &selected_copies,
            autoscaled,
        },
    );

    // What to write where: growth first, shrinking after, so that capacity moves before it goes.
    let mut grow = Vec::new();
    let mut shrink = Vec::new();
    for member in &ready {
        let current = copies.get(&member.name);
        match (desired.get(&member.name), current) {
            (Some(want), None) => {
                let mut want = want.clone();
                want["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(adapters::hash(&want));
                grow.push((member, Operation::Create(want)));
            }
            (Some(want), Some(current)) => {
                let hash = adapters::hash(want);
                let written = current
                    .pointer(&format!(
                        "/metadata/annotations/{}",
                        APPLIED_HASH_ANNOTATION.replace('/', "~1")
                    ))
                    .and_then(Value::as_str);
                if written == Some(hash.as_str()) && adapters::covers(current, want) {
                    continue;
                }
                tracing::debug!(cluster = %member.name, %name, want = %want, current = %current, "copy differs");
                let mut update = adapter.for_update(want.clone(), current);
                update["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(hash);
                update["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
                let fewer = replicas(&update) < replicas(current);
                let operation = Operation::Update(update);
                if fewer {
                    shrink.push((member, operation))
                } else {
                    grow.push((member, operation))
                }
            }
            (None, Some(current)) => match serde_json::from_value::<DynamicObject>(current.clone()) {
                Ok(copy) => shrink.push((member, Operation::Delete(Box::new(copy)))),
                Err(err) => tracing::warn!(%err, "a cached copy does not parse"),
            },
            (None, None) => {}
        }
    }
    let wrote = !grow.is_empty() || !shrink.is_empty();
    let mut failures = Vec::new();
    for phase in [grow, shrink] {
        let writes = phase.into_iter().map(|(member, operation)| {
            write(
                fleet,
                adapter,
                object,
                member,
                namespace.as_deref(),
                &name,
                operation,
            )
        });
        for result in futures::future::join_all(writes).await {
            if let Err(err) = result {
                failures.push(err);
            }
        }
    }

    let placed: BTreeMap<String, Value> = selected_copies
        .into_iter()
        .filter(|(c, _)| desired.contains_key(c))
        .collect();
    let applied = !wrote && failures.is_empty() && placed.len() == desired.len();
    if let Some(status) = adapter.aggregate(&value, &placed, applied) {
        let current = value.get("status").cloned().unwrap_or(json!({}));
        // A null asks for a field to go (a merge patch); one still present is a difference too.
        let stale = status.as_object().is_some_and(|fields| {
            fields
                .iter()
                .any(|(k, v)| v.is_null() && !current[k.as_str()].is_null())
        });
        if stale || !adapters::covers(&current, &without_nulls(&status)) {
            federation_api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await?;
        }
    }
    // Autoscaled, the member HPAs decide the replicas; like kube's HPA with its target, the federation's object
    // is scaled to what they run in total, so that `kubectl rollout status` and `get` agree with the members.
    if autoscaled && applied && !placed.is_empty() {
        let total: i64 = placed.values().map(replicas).sum();
        if total != replicas(&value) {
            federation_api
                .patch_scale(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"replicas": total}})),
                )
                .await?;
        }
    }
    if let Some(first) = failures.first() {
        return Err(SyncError::Members {
            failed: failures.len(),
            first: first.clone(),
        });
    }
    // Members short of ready replicas are looked at again once their capacity could be estimated.
    let short = placed.values().any(|c| {
        c.pointer("/status/readyReplicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            < c.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0)
    });
    Ok(Action::requeue(if short && adapter.resource().kind != "Job" {
        fleet.options.capacity_timeout.min(fleet.options.resync)
    } else {
        fleet.options.resync
    }))
}

/// Background deletion on the condition that the object is still `object` (its uid): a name reused by someone
/// else since is not touched.
fn delete_exactly(object: &DynamicObject) -> DeleteParams {
    let mut params = DeleteParams::background();
    params.preconditions = Some(kube::api::Preconditions {
        uid: object.metadata.uid.clone(),
        resource_version: None,
    });
    params
}

/// An object with its `apiVersion` and `kind`, which list responses leave out of their items.
fn typed(adapter: &dyn Adapter, mut object: Value) -> Value {
    let resource = adapter.resource();
    object["apiVersion"] = json!(resource.api_version);
    object["kind"] = json!(resource.kind);
    object
}

fn replicas(object: &Value) -> i64 {
    object
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Performs one write in one member, with an event on the federation object; returns the error text.
async fn write(
    fleet: &Arc<Fleet>,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    member: &Ready,
    namespace: Option<&str>,
    name: &str,
    operation: Operation,
) -> Result<(), String> {
    let api = member_api(&member.client, adapter, namespace);
    let kind = &adapter.resource().kind;
    let cluster = &member.name;
    let timeout = fleet.options.member_timeout;
    let (verb, result) = match operation {
        Operation::Create(want) => {
            let copy: DynamicObject = serde_json::from_value(want.clone()).map_err(|e| e.to_string())?;
            let result = tokio::time::timeout(timeout, api.create(&PostParams::default(), &copy)).await;
            match result {
                Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                    return adopt_or_refuse(fleet, adapter, object, &api, cluster, name, want).await;
                }
                other => ("create", other.map(|r| r.map(drop))),
            }
        }
        Operation::Update(want) => {
            let copy: DynamicObject = serde_json::from_value(want).map_err(|e| e.to_string())?;
            (
                "update",
                tokio::time::timeout(timeout, api.replace(name, &PostParams::default(), &copy))
                    .await
                    .map(|r| r.map(drop)),
            )
        }
        Operation::Delete(copy) => {
            let result = tokio::time::timeout(timeout, api.delete(name, &delete_exactly(&copy))).await;
            match result {
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => ("delete", Ok(Ok(()))),
                other => ("delete", other.map(|r| r.map(drop))),
            }
        }
    };
    let outcome = match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    };
    let key = match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    };
    let (reason, capitalised) = match verb {
        "create" => ("CreateInCluster", "Creating"),
        "update" => ("UpdateInCluster", "Updating"),
        _ => ("DeleteInCluster", "Deleting"),
    };
    match &outcome {
        Ok(()) => {
            fleet.metrics.member_writes.inc();
            events::normal(
                &fleet.federation,
                adapter,
                object,
                reason,
                &format!("{capitalised} {kind} \"{key}\" in cluster {cluster}"),
            )
            .await;
        }
        Err(err) => {
            events::warn(
                &fleet.federation,
                adapter,
                object,
                &format!("{reason}Failed"),
                &format!("Failed to {verb} {kind} \"{key}\" in cluster {cluster}: {err}"),
            )
            .await;
        }
    }
    outcome
}

/// A member already has an object of this name that Flotilla did not create: take it over when the federation
/// object asks for it, otherwise leave it and say so.
async fn adopt_or_refuse(
    fleet: &Arc<Fleet>,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    api: &Api<DynamicObject>,
    cluster: &str,
    name: &str,
    want: Value,
) -> Result<(), String> {
    let current = api.get(name).await.map_err(|e| e.to_string())?;
    let ours = current.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true");
    let adopt = object.annotations().get(ADOPT_ANNOTATION).map(String::as_str) == Some("true");
    if !ours && !adopt {
        events::warn(
            &fleet.federation,
            adapter,
            object,
            "AlreadyExistsInCluster",
            &format!(
                "cluster {cluster} already has a {} {name} that Flotilla did not create; it is left alone (annotate {ADOPT_ANNOTATION}=true to take it over)",
                adapter.resource().kind
            ),
        )
        .await;
        return Ok(());
    }
    let current_value = serde_json::to_value(&current).map_err(|e| e.to_string())?;
    let mut update = adapter.for_update(want, &current_value);
    update["metadata"]["resourceVersion"] = json!(current.resource_version());
    let copy: DynamicObject = serde_json::from_value(update).map_err(|e| e.to_string())?;
    api.replace(name, &PostParams::default(), &copy)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

async fn set_finalizers(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    finalizers: Vec<String>,
) -> Result<(), SyncError> {
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": object.resource_version()}});
    api.patch(&object.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Cascading deletion: with `orphan` (`--cascade=orphan`) the member copies are released (no longer
/// Flotilla's) and stay; otherwise they are deleted from every Ready member before the finalizer goes. A
/// member that is away is not waited for: its copies are swept when it returns, and released instead when the
/// deletion orphaned them (the [`Orphans`] records say so).
async fn delete(
    fleet: &Arc<Fleet>,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    federation_api: &Api<DynamicObject>,
    ready: &[Ready],
) -> Result<Action, SyncError> {
    let finalizers = object.finalizers().to_vec();
    if !finalizers.iter().any(|f| f == DELETE_FROM_MEMBERS_FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = object.name_any();
    let namespace = object.namespace();
    let orphan = finalizers.iter().any(|f| f == "orphan");
    let mut pending = BTreeSet::new();
    // Every Ready member, not only those whose cache shows a copy (a cache may lag behind a copy just made), but
    // only Flotilla's copies: the live object is read, and deleted on the condition that it is that same object.
    for member in ready {
        let api = member_api(&member.client, adapter, namespace.as_deref());
        let live = match tokio::time::timeout(fleet.options.member_timeout, api.get_opt(&name)).await {
            Ok(Ok(live)) => live,
            Ok(Err(err)) => {
                return Err(SyncError::Members {
                    failed: 1,
                    first: format!("{}: {err}", member.name),
                });
            }
            Err(_) => {
                return Err(SyncError::Members {
                    failed: 1,
                    first: format!("{}: no answer", member.name),
                });
            }
        };
        let Some(live) = live.filter(|l| l.labels().get(MANAGED_LABEL).map(String::as_str) == Some("true"))
        else {
            continue;
        };
        let result = if orphan {
            release(&api, &live).await
        } else {
            pending.insert(member.name.clone());
            api.delete(&name, &delete_exactly(&live)).await.map(drop)
        };
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(err) => {
                return Err(SyncError::Members {
                    failed: 1,
                    first: format!("{}: {err}", member.name),
                });
            }
        }
    }
    if !pending.is_empty() {
        events::normal(
            &fleet.federation,
            adapter,
            object,
            "DeleteInCluster",
            &format!(
                "Deleting {} from clusters: {}",
                adapter.resource().kind,
                pending.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .await;
        // Come back once the member caches show the copies gone.
        return Ok(Action::requeue(Duration::from_millis(300)));
    }
    if orphan {
        // Members away now release their copies when they are back, not delete them.
        let here: BTreeSet<&str> = ready.iter().map(|m| m.name.as_str()).collect();
        let away: BTreeSet<String> = fleet
            .clusters
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .filter(|c| !here.contains(c.as_str()))
            .collect();
        let identity = Identity::new(adapter.resource(), namespace.as_deref(), &name);
        fleet.orphans.remember(&identity, &away).await?;
    }
    let remaining: Vec<String> = finalizers
        .into_iter()
        .filter(|f| f != DELETE_FROM_MEMBERS_FINALIZER && !(orphan && f == "orphan"))
        .collect();
    set_finalizers(federation_api, object, remaining).await?;
    Ok(Action::await_change())
}
