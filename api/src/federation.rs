//! The federation API group (`federation/v1beta1`), in federation v1's shape so that v1 tooling and habits carry
//! over: the cluster-scoped `Cluster`, which registers a member cluster, and the annotations and finalizer that
//! federated objects carry.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "federation";
pub const VERSION: &str = "v1beta1";
pub const API_VERSION: &str = "federation/v1beta1";

/// Where member credentials live in the federation (v1's `FederationNamespaceSystem`).
pub const SYSTEM_NAMESPACE: &str = "federation-system";
/// The key of a member credential Secret that holds its kubeconfig.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The condition a healthy member has with status `True`.
pub const CONDITION_READY: &str = "Ready";
/// The condition an unreachable member has with status `True`.
pub const CONDITION_OFFLINE: &str = "Offline";

/// Narrows where a federated object goes: a JSON list of `{key, operator, values}` over Cluster labels.
pub const CLUSTER_SELECTOR_ANNOTATION: &str = "federation.alpha.kubernetes.io/cluster-selector";
/// Every federated object carries it while its member copies exist; removed once they are deleted.
pub const DELETE_FROM_MEMBERS_FINALIZER: &str = "federation.kubernetes.io/delete-from-underlying-clusters";

/// Every object Flotilla creates in a member carries this label (value `true`), so that what it propagated can
/// be found (`flotilla status` counts, `flotilla unjoin --delete-propagated` deletes) and nothing else is
/// touched.
pub const MANAGED_LABEL: &str = "federation.flotilla.io/managed";

/// The federated types, as `(group, version, plural)`, in the order they are propagated (namespaces first, so
/// that the objects in them can be created).
pub const FEDERATED_TYPES: &[(&str, &str, &str)] = &[
    ("", "v1", "namespaces"),
    ("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "clusterroles"),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "services"),
    ("networking.k8s.io", "v1", "ingresses"),
    ("apps", "v1", "daemonsets"),
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"),
    ("apps", "v1", "replicasets"),
    ("batch", "v1", "jobs"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
];

/// A member cluster of the federation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.flotilla.federation.v1beta1.Cluster")]
pub struct Cluster {
    /// APIVersion defines the versioned schema of this representation of an object.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// Kind is a string value representing the REST resource this object represents.
    #[serde(default = "kind")]
    pub kind: String,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec defines how to reach the cluster.
    #[serde(default)]
    pub spec: ClusterSpec,
    /// Status describes the cluster's health, as the cluster controller last probed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterStatus>,
}

fn api_version() -> String {
    API_VERSION.to_owned()
}

fn kind() -> String {
    "Cluster".to_owned()
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            api_version: api_version(),
            kind: kind(),
            metadata: ObjectMeta::default(),
            spec: ClusterSpec::default(),
            status: None,
        }
    }
}

/// How to reach a member cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.flotilla.federation.v1beta1.ClusterSpec")]
pub struct ClusterSpec {
    /// Addresses of the cluster's API by client CIDR; the federation uses the first (`0.0.0.0/0`: any client).
    #[serde(default, rename = "serverAddressByClientCIDRs")]
    pub server_address_by_client_cidrs: Vec<ServerAddressByClientCIDR>,
    /// The Secret in the `federation-system` namespace that holds the cluster's kubeconfig (key `kubeconfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
}

/// One address of a member cluster's API, for clients in a CIDR.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.flotilla.federation.v1beta1.ServerAddressByClientCIDR")]
pub struct ServerAddressByClientCIDR {
    /// The CIDR range in which to match the client's IP.
    #[serde(rename = "clientCIDR")]
    pub client_cidr: String,
    /// Address of this server, suitable for a client that matches the above CIDR: a URL, host, or host:port.
    pub server_address: String,
}

/// A member cluster's health.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.flotilla.federation.v1beta1.ClusterStatus")]
pub struct ClusterStatus {
    /// The latest available observations of the cluster's state: `Ready` and `Offline`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ClusterCondition>,
    /// The zones the cluster's nodes are in (label `topology.kubernetes.io/zone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// The region the cluster's nodes are in (label `topology.kubernetes.io/region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One observation of a member cluster's state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "io.flotilla.federation.v1beta1.ClusterCondition")]
pub struct ClusterCondition {
    /// Type of the condition: `Ready` or `Offline`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition: `True`, `False` or `Unknown`.
    pub status: String,
    /// Last time the condition was probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// Last time the condition changed from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A brief machine-readable reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message about the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Cluster {
    /// Whether the cluster's `Ready` condition is `True` (v1's `isClusterReady`).
    pub fn is_ready(&self) -> bool {
        self.condition(CONDITION_READY)
            .is_some_and(|c| c.status == "True")
    }

    pub fn condition(&self, type_: &str) -> Option<&ClusterCondition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The member's API address for a client anywhere: the first entry (v1 matched the client's own IP; every
    /// Flotilla join writes `0.0.0.0/0`).
    pub fn server_address(&self) -> Option<&str> {
        self.spec
            .server_address_by_client_cidrs
            .first()
            .map(|a| a.server_address.as_str())
    }
}

impl k8s_openapi::Resource for Cluster {
    const API_VERSION: &'static str = API_VERSION;
    const GROUP: &'static str = GROUP;
    const KIND: &'static str = "Cluster";
    const VERSION: &'static str = VERSION;
    const URL_PATH_SEGMENT: &'static str = "clusters";
    type Scope = k8s_openapi::ClusterResourceScope;
}

impl k8s_openapi::ListableResource for Cluster {
    const LIST_KIND: &'static str = "ClusterList";
}

impl k8s_openapi::Metadata for Cluster {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Why a Cluster is invalid: `(field path, message)` pairs, as v1's validation reported them.
pub fn validate_cluster(cluster: &Cluster) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let addresses = &cluster.spec.server_address_by_client_cidrs;
    if addresses.is_empty() {
        problems.push((
            "spec.serverAddressByClientCIDRs".to_owned(),
            "Required value".to_owned(),
        ));
    }
    for (i, address) in addresses.iter().enumerate() {
        if !address.client_cidr.is_empty() && !is_cidr(&address.client_cidr) {
            problems.push((
                format!("spec.serverAddressByClientCIDRs[{i}].clientCIDR"),
                format!("Invalid value: \"{}\": must be a valid CIDR", address.client_cidr),
            ));
        }
        if address.server_address.is_empty() {
            problems.push((
                format!("spec.serverAddressByClientCIDRs[{i}].serverAddress"),
                "Required value".to_owned(),
            ));
        }
    }
    problems
}

fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_round_trip_in_v1_shape() {
        let json = serde_json::json!({
            "apiVersion": "federation/v1beta1",
            "kind": "Cluster",
            "metadata": {"name": "c1"},
            "spec": {
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "https://10.0.0.1:6443"}],
                "secretRef": {"name": "c1"}
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "zones": ["z1"], "region": "eu"}
        });
        let cluster: Cluster = serde_json::from_value(json.clone()).unwrap();
        assert!(cluster.is_ready());
        assert_eq!(cluster.server_address(), Some("https://10.0.0.1:6443"));
        assert_eq!(serde_json::to_value(&cluster).unwrap(), json);
    }

    #[test]
    fn cidrs_are_validated_as_v1_did() {
        let with = |cidr: &str| Cluster {
            spec: ClusterSpec {
                server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                    client_cidr: cidr.to_owned(),
                    server_address: "https://a".to_owned(),
                }],
                secret_ref: None,
            },
            ..Cluster::default()
        };
        for good in ["", "0.0.0.0/0", "0.0.0.0/32", "10.0.0.0/8", "::/0"] {
            assert!(validate_cluster(&with(good)).is_empty(), "{good}");
        }
        for bad in ["0.0.0.0", "256.0.0.0/16", "0.0.0/16", "0.0.0.0/33"] {
            assert_eq!(validate_cluster(&with(bad)).len(), 1, "{bad}");
        }
        assert_eq!(
            validate_cluster(&Cluster::default())[0].0,
            "spec.serverAddressByClientCIDRs"
        );
    }
}
