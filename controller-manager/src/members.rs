//! Clients for member clusters, built from each Cluster's credential Secret in `federation-system` (its
//! `kubeconfig` key, the server overridden by the Cluster's address, as federation v1 did), cached until the
//! Cluster's address or the Secret changes.

use std::collections::HashMap;
use std::sync::Mutex;

use flotilla_api::federation::{self, Cluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("cluster {0} has no spec.secretRef")]
    NoSecretRef(String),
    #[error("secret {namespace}/{name} does not exist", namespace = federation::SYSTEM_NAMESPACE)]
    NoSecret { name: String },
    #[error("secret {namespace}/{name} has no `{key}` key", namespace = federation::SYSTEM_NAMESPACE, key = federation::KUBECONFIG_KEY)]
    NoKubeconfig { name: String },
    #[error("the kubeconfig in secret {name} is invalid: {source}")]
    Kubeconfig {
        name: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cluster address {address:?} is not a valid URL")]
    Address { address: String },
    #[error("cannot build a client: {0}")]
    Client(#[from] kube::Error),
}

/// What a cached client was built from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    address: Option<String>,
    secret: String,
    secret_version: Option<String>,
}

/// Member clients by cluster name.
pub struct Members {
    secrets: Store<Secret>,
    cache: Mutex<HashMap<String, (Source, Client)>>,
}

impl std::fmt::Debug for Members {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Members").finish_non_exhaustive()
    }
}

impl Members {
    /// Watches the credential Secrets of the federation; returns once they are listed.
    pub async fn start(federation: Client) -> Self {
        let secrets: Api<Secret> = Api::namespaced(federation, federation::SYSTEM_NAMESPACE);
        let (reader, writer) = reflector::store();
        let stream = reflector::reflector(writer, watcher(secrets, watcher::Config::default()))
            .default_backoff()
            .for_each(|_| async {});
        tokio::spawn(stream);
        // The namespace may not exist yet: an empty list is ready too.
        let _ = reader.wait_until_ready().await;
        Members {
            secrets: reader,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A client for `cluster`'s API.
    pub async fn client(&self, cluster: &Cluster) -> Result<Client, MemberError> {
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let secret_name = cluster
            .spec
            .secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| MemberError::NoSecretRef(name.clone()))?;
        let secret = self
            .secrets
            .get(&ObjectRef::new(&secret_name).within(federation::SYSTEM_NAMESPACE))
            .ok_or_else(|| MemberError::NoSecret {
                name: secret_name.clone(),
            })?;
        let source = Source {
            address: cluster.server_address().map(str::to_owned),
            secret: secret_name.clone(),
            secret_version: secret.metadata.resource_version.clone(),
        };
        if let Some((cached, client)) = self.cache.lock().expect("not poisoned").get(&name)
            && *cached == source
        {
            return Ok(client.clone());
        }
        let kubeconfig = secret
            .data
            .as_ref()
            .and_then(|d| d.get(federation::KUBECONFIG_KEY))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .ok_or_else(|| MemberError::NoKubeconfig {
                name: secret_name.clone(),
            })?;
        let client = client_for(&kubeconfig, source.address.as_deref())
            .await
            .map_err(|err| match err {
                ClientError::Kubeconfig(source) => MemberError::Kubeconfig {
                    name: secret_name.clone(),
                    source,
                },
                ClientError::Address(address) => MemberError::Address { address },
                ClientError::Kube(err) => MemberError::Client(err),
            })?;
        self.cache
            .lock()
            .expect("not poisoned")
            .insert(name, (source, client.clone()));
        Ok(client)
    }

    /// What a client for `cluster` would be built from: when it changes, caches built with the old client
    /// must be rebuilt.
    pub fn fingerprint(&self, cluster: &Cluster) -> String {
        let secret = cluster
            .spec
            .secret_ref
            .as_ref()
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let version = self
            .secrets
            .get(&ObjectRef::new(&secret).within(federation::SYSTEM_NAMESPACE))
            .and_then(|s| s.metadata.resource_version.clone())
            .unwrap_or_default();
        format!(
            "{}|{secret}|{version}",
            cluster.server_address().unwrap_or_default()
        )
    }

    /// A digest of every credential Secret's name and resourceVersion: it changes whenever one does.
    pub fn credentials_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        let secrets = self.secrets.state();
        let mut versions: Vec<(Option<&str>, Option<&str>)> = secrets
            .iter()
            .map(|s| (s.metadata.name.as_deref(), s.metadata.resource_version.as_deref()))
            .collect();
        versions.sort_unstable();
        versions.hash(&mut hasher);
        hasher.finish()
    }

    /// Forgets the client of a cluster that is gone.
    pub fn forget(&self, cluster: &str) {
        self.cache.lock().expect("not poisoned").remove(cluster);
    }
}

/// Why no client could be built from a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(kube::config::KubeconfigError),
    #[error("{0:?} is not a valid URL")]
    Address(String),
    #[error(transparent)]
    Kube(kube::Error),
}

/// A client from a kubeconfig's current context, talking to `address` when given.
pub async fn client_for(kubeconfig: &str, address: Option<&str>) -> Result<Client, ClientError> {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(kubeconfig).map_err(ClientError::Kubeconfig)?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(ClientError::Kubeconfig)?;
    if let Some(address) = address {
        let url = if address.contains("://") {
            address.to_owned()
        } else {
            format!("https://{address}")
        };
        config.cluster_url = url
            .parse()
            .map_err(|_| ClientError::Address(address.to_owned()))?;
    }
    config.connect_timeout = Some(std::time::Duration::from_secs(5));
    Client::try_from(config).map_err(ClientError::Kube)
}
