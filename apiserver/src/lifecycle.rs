//! What kube's controller manager does for deletion, done inside the apiserver (Flotilla runs no
//! kube-controller-manager): emptying a terminating namespace and then removing it, and the garbage
//! collector's part of propagation policies — `orphan` (strip the owner reference from dependents) and
//! `foregroundDeletion` (delete dependents first) — after which the owner's finalizer is removed.
//!
//! Work is queued when a delete marks an object, and found again at start-up by scanning for objects being
//! deleted, so a crash in the middle finishes after a restart.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_api::keys::{StoragePrefix, collection_prefix, object_key};
use flotilla_api::resources::{RESOURCES, Resource};
use flotilla_storage::{Error, KeyValue, Store};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::object::{self, meta_str};

/// An object whose deletion needs work beyond the delete request.
#[derive(Debug)]
struct Deleting {
    resource: &'static Resource,
    namespace: Option<String>,
    name: String,
}

/// The handle handlers use to report deletions.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    queue: mpsc::UnboundedSender<Deleting>,
}

impl Lifecycle {
    /// Starts the worker and re-queues every deletion left unfinished in the store.
    pub fn start(store: Arc<dyn Store>, prefix: StoragePrefix) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        let worker = Worker { store, prefix };
        tokio::spawn(worker.run(receiver, queue.clone()));
        Lifecycle { queue }
    }

    pub fn deletion_started(&self, resource: &'static Resource, namespace: Option<&str>, name: &str) {
        let is_namespace = resource.group.is_empty() && resource.plural == "namespaces";
        let _ = self.queue.send(Deleting {
            resource,
            namespace: if is_namespace {
                None
            } else {
                namespace.map(str::to_owned)
            },
            name: name.to_owned(),
        });
    }
}

struct Worker {
    store: Arc<dyn Store>,
    prefix: StoragePrefix,
}

const RETRY: Duration = Duration::from_millis(250);

impl Worker {
    async fn run(
        self,
        mut receiver: mpsc::UnboundedReceiver<Deleting>,
        queue: mpsc::UnboundedSender<Deleting>,
    ) {
        if let Err(err) = self.requeue_unfinished(&queue).await {
            tracing::warn!(error = %err, "scan for unfinished deletions failed");
        }
        let worker = Arc::new(self);
        while let Some(item) = receiver.recv().await {
            let (worker, queue) = (worker.clone(), queue.clone());
            tokio::spawn(async move {
                match worker.process(&item).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tokio::time::sleep(RETRY).await;
                        let _ = queue.send(item);
                    }
                    Err(err) => {
                        tracing::warn!(resource = item.resource.plural, name = %item.name, error = %err, "deletion step failed; retrying");
                        tokio::time::sleep(RETRY * 4).await;
                        let _ = queue.send(item);
                    }
                }
            });
        }
    }

    async fn requeue_unfinished(&self, queue: &mpsc::UnboundedSender<Deleting>) -> Result<(), Error> {
        for resource in RESOURCES {
            for kv in self
                .list(&collection_prefix(
                    &self.prefix,
                    resource.group,
                    resource.plural,
                    None,
                ))
                .await?
            {
                let object = parse(&kv);
                if object::metadata(&object).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                    let _ = queue.send(Deleting {
                        resource,
                        namespace: if resource.namespaced {
                            meta_str(&object, "namespace").map(str::to_owned)
                        } else {
                            None
                        },
                        name: meta_str(&object, "name").unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, Error> {
        Ok(flotilla_storage::list_all(self.store.as_ref(), prefix, None)
            .await?
            .0)
    }

    /// One step; `true` when the deletion is complete (or the object gone), `false` to come back later.
    async fn process(&self, item: &Deleting) -> Result<bool, Error> {
        let key = object_key(
            &self.prefix,
            item.resource.group,
            item.resource.plural,
            item.namespace.as_deref(),
            &item.name,
        );
        let kv = match self.store.get(&key).await {
            Ok(kv) => kv,
            Err(Error::NotFound { .. }) => return Ok(true),
            Err(err) => return Err(err),
        };
        let owner = parse(&kv);
        if item.resource.group.is_empty() && item.resource.plural == "namespaces" {
            return self.finish_namespace(&key, &item.name, &owner).await;
        }
        let uid = meta_str(&owner, "uid").unwrap_or_default().to_owned();
        let finalizers = object::finalizers(&owner);
        if finalizers.iter().any(|f| f == "orphan") {
            for (dependent_key, _) in self.dependents(item, &uid).await? {
                self.modify(&dependent_key, |dependent| {
                    let refs = dependent
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut);
                    if let Some(refs) = refs {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                })
                .await?;
            }
            // The federation controller reads `orphan` to leave member copies in place; it removes it together
            // with its own finalizer. Everywhere else the garbage collector's part ends here.
            let federated = finalizers
                .iter()
                .any(|f| f == flotilla_api::federation::DELETE_FROM_MEMBERS_FINALIZER);
            if !federated {
                self.remove_finalizer(&key, "orphan").await?;
            }
        }
        if finalizers.iter().any(|f| f == "foregroundDeletion") {
            let dependents = self.dependents(item, &uid).await?;
            if !dependents.is_empty() {
                for (dependent_key, _) in dependents {
                    self.delete_or_mark(&dependent_key).await?;
                }
                return Ok(false);
            }
            self.remove_finalizer(&key, "foregroundDeletion").await?;
        }
        // Other finalizers belong to someone else (the federation controller); nothing more to do here.
        Ok(true)
    }

    /// Objects that name `uid` as an owner: in the owner's namespace, or anywhere for a cluster-scoped owner.
    async fn dependents(&self, item: &Deleting, uid: &str) -> Result<Vec<(String, Value)>, Error> {
        let mut found = Vec::new();
        for resource in RESOURCES {
            if item.namespace.is_some() && !resource.namespaced {
                continue;
            }
            let prefix = collection_prefix(
                &self.prefix,
                resource.group,
                resource.plural,
                item.namespace.as_deref(),
            );
            for kv in self.list(&prefix).await? {
                let object = parse(&kv);
                let owned = object["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
                    });
                if owned {
                    found.push((kv.key, object));
                }
            }
        }
        Ok(found)
    }

    /// A terminating namespace: delete everything in it; once it is empty, the namespace itself.
    async fn finish_namespace(&self, key: &str, name: &str, namespace: &Value) -> Result<bool, Error> {
        let mut remaining = 0;
        for resource in RESOURCES.iter().filter(|r| r.namespaced) {
            let prefix = collection_prefix(&self.prefix, resource.group, resource.plural, Some(name));
            for kv in self.list(&prefix).await? {
                remaining += 1;
                self.delete_or_mark(&kv.key).await?;
            }
        }
        if remaining > 0 {
            return Ok(false);
        }
        if object::finalizers(namespace).is_empty() {
            match self.store.delete(key, None).await {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// Deletes an object at once, or marks it deleted when finalizers hold it.
    async fn delete_or_mark(&self, key: &str) -> Result<(), Error> {
        loop {
            let kv = match self.store.get(key).await {
                Ok(kv) => kv,
                Err(Error::NotFound { .. }) => return Ok(()),
                Err(err) => return Err(err),
            };
            let mut object = parse(&kv);
            let result = if object::finalizers(&object).is_empty() {
                self.store.delete(key, Some(kv.mod_revision)).await.map(drop)
            } else if object::metadata(&object).is_some_and(|m| m.contains_key("deletionTimestamp")) {
                return Ok(());
            } else {
                let meta = object::metadata_mut(&mut object);
                meta.insert("deletionTimestamp".to_owned(), Value::String(object::now()));
                meta.insert("deletionGracePeriodSeconds".to_owned(), json!(0));
                self.store
                    .update(key, encode(&object), kv.mod_revision)
                    .await
                    .map(drop)
            };
            match result {
                Ok(()) | Err(Error::NotFound { .. }) => return Ok(()),
                Err(Error::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    async fn remove_finalizer(&self, key: &str, finalizer: &str) -> Result<(), Error> {
        self.modify(key, |object| {
            if let Some(list) = object
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
            {
                list.retain(|f| f.as_str() != Some(finalizer));
            }
        })
        .await
    }

    /// A compare-and-swap edit; an object being deleted whose last finalizer goes is deleted.
    async fn modify(&self, key: &str, mut edit: impl FnMut(&mut Value)) -> Result<(), Error> {
        loop {
            let kv = match self.store.get(key).await {
                Ok(kv) => kv,
                Err(Error::NotFound { .. }) => return Ok(()),
                Err(err) => return Err(err),
            };
            let before = parse(&kv);
            let mut after = before.clone();
            edit(&mut after);
            if after == before {
                return Ok(());
            }
            if object::metadata(&after).is_some_and(|m| {
                m.get("finalizers")
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
            }) {
                object::metadata_mut(&mut after).remove("finalizers");
            }
            let deleting = object::metadata(&after).is_some_and(|m| m.contains_key("deletionTimestamp"));
            let result = if deleting && object::finalizers(&after).is_empty() {
                self.store.delete(key, Some(kv.mod_revision)).await.map(drop)
            } else {
                self.store
                    .update(key, encode(&after), kv.mod_revision)
                    .await
                    .map(drop)
            };
            match result {
                Ok(()) | Err(Error::NotFound { .. }) => return Ok(()),
                Err(Error::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
    }
}

fn parse(kv: &KeyValue) -> Value {
    serde_json::from_slice(&kv.value).unwrap_or_default()
}

fn encode(object: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(object).expect("JSON values serialise"))
}

/// Creates the namespaces every cluster has (`default`, `kube-system`, `kube-public`) when missing.
pub async fn ensure_default_namespaces(store: &dyn Store, prefix: &StoragePrefix) -> Result<(), Error> {
    let namespaces = flotilla_api::resources::lookup(
        flotilla_api::resources::Profile::Federation,
        "",
        "v1",
        "namespaces",
    )
    .expect("namespaces are served");
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let mut namespace = json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}});
        object::prepare_create(&mut namespace, object::Behaviour::of(namespaces), namespaces);
        object::set_type(&mut namespace, namespaces, "v1");
        match store
            .create(
                &object_key(prefix, "", "namespaces", None, name),
                encode(&namespace),
            )
            .await
        {
            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
