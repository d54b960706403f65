//! Orphaning while a member is away. `kubectl delete --cascade=orphan` releases the copies of every Ready
//! member (they lose Flotilla's managed label and stay); a member that is away at that moment cannot be
//! told, and once it is back its copy would look like one whose federation object is gone, which the sweep
//! deletes. So the deletion leaves a record, a ConfigMap in `federation-system` per orphaned object naming the
//! members still to release it, and the sweep releases instead of deleting what a record names.
//!
//! A record is dropped when its last member has released the copy or left the federation, and when an object
//! of the same name is created again (the new object owns the copies from then on).

use std::collections::{BTreeMap, BTreeSet};

use flotilla_api::federation;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

/// The label that marks a record.
pub const RECORD_LABEL: &str = "federation.flotilla.io/orphaned-copies";

/// The keys of a record's data.
const RESOURCE: &str = "resource";
const NAMESPACE: &str = "namespace";
const NAME: &str = "name";
const CLUSTERS: &str = "clusters";

/// The records of orphaned objects whose copies some members still hold as Flotilla's.
pub struct Orphans {
    api: Api<ConfigMap>,
    records: Store<ConfigMap>,
}

impl std::fmt::Debug for Orphans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orphans").finish_non_exhaustive()
    }
}

/// Which object a record is about: the type (`plural.group`), namespace and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    resource: String,
    namespace: String,
    name: String,
}

impl Identity {
    pub fn new(resource: &ApiResource, namespace: Option<&str>, name: &str) -> Self {
        let plural = if resource.group.is_empty() {
            resource.plural.clone()
        } else {
            format!("{}.{}", resource.plural, resource.group)
        };
        Identity {
            resource: plural,
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.to_owned(),
        }
    }

    /// The record's name: `orphaned-` and a stable 64-bit FNV-1a digest of the identity (names can be 253
    /// characters long, so the identity itself does not fit; the data says which object it is).
    /// Whether this is an object of `resource`.
    pub fn is_of(&self, resource: &ApiResource) -> bool {
        *self == Identity::new(resource, Some(&self.namespace), &self.name)
    }

    /// The object's namespace (`None` when cluster-scoped) and name.
    pub fn namespace_and_name(&self) -> (Option<&str>, &str) {
        let namespace = Some(self.namespace.as_str()).filter(|ns| !ns.is_empty());
        (namespace, &self.name)
    }

    fn record_name(&self) -> String {
        let mut digest: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [&self.resource, &self.namespace, &self.name] {
            for byte in part.bytes().chain(std::iter::once(0)) {
                digest ^= u64::from(byte);
                digest = digest.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("orphaned-{digest:016x}")
    }

    fn of(record: &ConfigMap) -> Option<Self> {
        let data = record.data.as_ref()?;
        Some(Identity {
            resource: data.get(RESOURCE)?.clone(),
            namespace: data.get(NAMESPACE).cloned().unwrap_or_default(),
            name: data.get(NAME)?.clone(),
        })
    }
}

fn clusters_of(record: &ConfigMap) -> BTreeSet<String> {
    record
        .data
        .as_ref()
        .and_then(|d| d.get(CLUSTERS))
        .map(|list| {
            list.split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Orphans {
    /// Watches the records; returns once they are listed.
    pub async fn start(federation: Client) -> Self {
        let api: Api<ConfigMap> = Api::namespaced(federation, federation::SYSTEM_NAMESPACE);
        let (reader, writer) = reflector::store();
        let config = watcher::Config::default().labels(&format!("{RECORD_LABEL}=true"));
        tokio::spawn(
            reflector::reflector(writer, watcher(api.clone(), config))
                .default_backoff()
                .for_each(|_| async {}),
        );
        // The namespace may not exist yet: an empty list is ready too.
        let _ = reader.wait_until_ready().await;
        Orphans { api, records: reader }
    }

    fn record(&self, identity: &Identity) -> Option<std::sync::Arc<ConfigMap>> {
        let record = self
            .records
            .get(&ObjectRef::new(&identity.record_name()).within(federation::SYSTEM_NAMESPACE))?;
        (Identity::of(&record).as_ref() == Some(identity)).then_some(record)
    }

    /// Whether `cluster` is still to release its copy of the orphaned object: read from the federation, not from
    /// the watch of records, which may not have seen a record written a moment ago.
    pub async fn pending(&self, identity: &Identity, cluster: &str) -> Result<bool, kube::Error> {
        let record = self.api.get_opt(&identity.record_name()).await?;
        Ok(record
            .filter(|record| Identity::of(record).as_ref() == Some(identity))
            .is_some_and(|record| clusters_of(&record).contains(cluster)))
    }

    /// Every record, as the watch of records has them: the object and the members still to release it.
    pub fn records(&self) -> Vec<(Identity, BTreeSet<String>)> {
        self.records
            .state()
            .iter()
            .filter_map(|record| Some((Identity::of(record)?, clusters_of(record))))
            .collect()
    }

    /// Records that `clusters` are still to release their copies of the object, added to what an earlier
    /// record of the same object names.
    pub async fn remember(
        &self,
        identity: &Identity,
        clusters: &BTreeSet<String>,
    ) -> Result<(), kube::Error> {
        if clusters.is_empty() {
            return Ok(());
        }
        self.change(identity, |names| names.extend(clusters.iter().cloned()))
            .await
    }

    /// `cluster` released its copy (or never had one).
    pub async fn released(&self, identity: &Identity, cluster: &str) -> Result<(), kube::Error> {
        self.change(identity, |names| {
            names.remove(cluster);
        })
        .await
    }

    /// An object of this name exists again: it owns whatever copies the members hold.
    pub async fn forget(&self, identity: &Identity) -> Result<(), kube::Error> {
        if self.record(identity).is_none() {
            return Ok(());
        }
        self.change(identity, BTreeSet::clear).await
    }

    /// Drops the clusters that left the federation from every record.
    pub async fn prune(&self, joined: &BTreeSet<String>) -> Result<(), kube::Error> {
        for record in self.records.state() {
            let Some(identity) = Identity::of(&record) else {
                continue;
            };
            if clusters_of(&record).iter().any(|c| !joined.contains(c)) {
                self.change(&identity, |names| names.retain(|c| joined.contains(c)))
                    .await?;
            }
        }
        Ok(())
    }

    /// Reads the record, changes its cluster list, and writes it back (created when new, deleted when empty),
    /// retrying when another writer got there first.
    async fn change(
        &self,
        identity: &Identity,
        edit: impl Fn(&mut BTreeSet<String>),
    ) -> Result<(), kube::Error> {
        let name = identity.record_name();
        loop {
            let current = self.api.get_opt(&name).await?;
            let mut clusters = current.as_ref().map(clusters_of).unwrap_or_default();
            edit(&mut clusters);
            let result = match current {
                None if clusters.is_empty() => return Ok(()),
                None => match self
                    .api
                    .create(&PostParams::default(), &record(identity, &name, &clusters, None))
                    .await
                {
                    // Created meanwhile by another writer: read it again. (A 404 here is a missing namespace.)
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    other => return other.map(drop),
                },
                Some(current) if clusters.is_empty() => {
                    let params = DeleteParams {
                        preconditions: Some(kube::api::Preconditions {
                            uid: current.metadata.uid.clone(),
                            resource_version: current.metadata.resource_version.clone(),
                        }),
                        ..DeleteParams::default()
                    };
                    self.api.delete(&name, &params).await.map(drop)
                }
                Some(current) => {
                    let version = current.metadata.resource_version.clone();
                    self.api
                        .replace(
                            &name,
                            &PostParams::default(),
                            &record(identity, &name, &clusters, version),
                        )
                        .await
                        .map(drop)
                }
            };
            match result {
                // Changed or deleted meanwhile by another writer: read it again.
                Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => continue,
                other => return other,
            }
        }
    }
}

fn record(
    identity: &Identity,
    name: &str,
    clusters: &BTreeSet<String>,
    version: Option<String>,
) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(federation::SYSTEM_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([(RECORD_LABEL.to_owned(), "true".to_owned())])),
            resource_version: version,
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (RESOURCE.to_owned(), identity.resource.clone()),
            (NAMESPACE.to_owned(), identity.namespace.clone()),
            (NAME.to_owned(), identity.name.clone()),
            (
                CLUSTERS.to_owned(),
                clusters.iter().cloned().collect::<Vec<_>>().join(","),
            ),
        ])),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> ApiResource {
        ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        }
    }

    #[test]
    fn record_names_are_stable_valid_and_tell_identities_apart() {
        let web = Identity::new(&deployments(), Some("default"), "web");
        assert_eq!(web.record_name(), web.clone().record_name());
        assert_eq!(web.record_name().len(), "orphaned-".len() + 16);
        // The parts are separated: ("ab", "c") and ("a", "bc") differ.
        let a = Identity::new(&deployments(), Some("ab"), "c");
        let b = Identity::new(&deployments(), Some("a"), "bc");
        assert_ne!(a.record_name(), b.record_name());
        let other = Identity::new(&deployments(), Some("other"), "web");
        assert_ne!(web.record_name(), other.record_name());
        assert_eq!(web.resource, "deployments.apps");
    }

    #[test]
    fn a_record_round_trips_its_identity_and_clusters() {
        let web = Identity::new(&deployments(), None, "web");
        let clusters = BTreeSet::from(["m1".to_owned(), "m3".to_owned()]);
        let written = record(&web, &web.record_name(), &clusters, None);
        assert_eq!(Identity::of(&written), Some(web));
        assert_eq!(clusters_of(&written), clusters);
        assert_eq!(written.data.unwrap()[CLUSTERS], "m1,m3");
    }
}
