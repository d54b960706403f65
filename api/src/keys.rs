//! Where objects live in the store: kube-apiserver's etcd key layout.
//!
//! kube-apiserver stores built-in resources under `<prefix>/<resource>/<namespace>/<name>` (cluster-scoped:
//! `<prefix>/<resource>/<name>`) with no API group in the key, and with a few irregular resource paths such as
//! `services/specs` and the singular `ingress`. Resources of other groups (CRDs, aggregated APIs, and so
//! Flotilla's own `federation` group) are stored under `<prefix>/<group>/<resource>/…`. Following the same layout
//! means etcd tooling reads a Flotilla etcd as it would a Kubernetes one, and several federations can share one
//! etcd under different prefixes.

use std::fmt;

/// The default storage prefix, as kube-apiserver's `--etcd-prefix`.
pub const DEFAULT_PREFIX: &str = "/registry";

/// A storage prefix such as `/registry`: starts with `/`, has no trailing `/`, no empty segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoragePrefix(String);

/// Why a storage prefix was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid storage prefix {prefix:?}: {reason}")]
pub struct InvalidPrefix {
    prefix: String,
    reason: &'static str,
}

impl StoragePrefix {
    /// Normalises `prefix` (a missing leading `/` is added, a trailing `/` dropped).
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let invalid = |reason| InvalidPrefix {
            prefix: prefix.to_owned(),
            reason,
        };
        let trimmed = prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Err(invalid("must name at least one path segment"));
        }
        if trimmed
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(invalid("must not contain empty, '.' or '..' segments"));
        }
        Ok(Self(format!("/{trimmed}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for StoragePrefix {
    fn default() -> Self {
        Self(DEFAULT_PREFIX.to_owned())
    }
}

impl fmt::Display for StoragePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether kube-apiserver serves `group` itself (its keys carry no group), rather than through a CRD or an
/// aggregated API server.
fn is_builtin_group(group: &str) -> bool {
    match group {
        "" | "apps" | "batch" | "autoscaling" | "policy" | "extensions" => true,
        // Served by kube-aggregator, which stores with the group in the key.
        "apiregistration.k8s.io" => false,
        other => other.ends_with(".k8s.io"),
    }
}

/// The path segment(s) under the prefix where `group`/`resource` is stored.
pub fn storage_resource(group: &str, resource: &str) -> String {
    let irregular = match (group, resource) {
        ("", "services") => Some("services/specs"),
        ("", "endpoints") => Some("services/endpoints"),
        ("", "nodes") => Some("minions"),
        ("", "replicationcontrollers") => Some("controllers"),
        ("networking.k8s.io" | "extensions", "ingresses") => Some("ingress"),
        ("policy", "podsecuritypolicies") => Some("podsecuritypolicy"),
        _ => None,
    };
    match irregular {
        Some(path) => path.to_owned(),
        None if is_builtin_group(group) => resource.to_owned(),
        None => format!("{group}/{resource}"),
    }
}

/// The key prefix of a collection, ending in `/`: every object of `group`/`resource`, or only those in
/// `namespace` when it is given.
pub fn collection_prefix(
    prefix: &StoragePrefix,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> String {
    let resource_path = storage_resource(group, resource);
    match namespace {
        Some(namespace) => format!("{prefix}/{resource_path}/{namespace}/"),
        None => format!("{prefix}/{resource_path}/"),
    }
}

/// The key of one object; `namespace` is `None` for cluster-scoped resources.
pub fn object_key(
    prefix: &StoragePrefix,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    let mut key = collection_prefix(prefix, group, resource, namespace);
    key.push_str(name);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(group: &str, resource: &str, namespace: Option<&str>, name: &str, expect: &str) {
        let key = object_key(&StoragePrefix::default(), group, resource, namespace, name);
        assert_eq!(key, expect);
    }

    #[test]
    fn built_in_keys_match_kube_apiserver() {
        check("", "namespaces", None, "default", "/registry/namespaces/default");
        check(
            "",
            "configmaps",
            Some("ns1"),
            "cfg",
            "/registry/configmaps/ns1/cfg",
        );
        check("", "secrets", Some("ns1"), "s", "/registry/secrets/ns1/s");
        check("", "events", Some("ns1"), "e.1", "/registry/events/ns1/e.1");
        check(
            "events.k8s.io",
            "events",
            Some("ns1"),
            "e.1",
            "/registry/events/ns1/e.1",
        );
        check(
            "",
            "services",
            Some("ns1"),
            "web",
            "/registry/services/specs/ns1/web",
        );
        check(
            "",
            "endpoints",
            Some("ns1"),
            "web",
            "/registry/services/endpoints/ns1/web",
        );
        check(
            "apps",
            "deployments",
            Some("ns1"),
            "web",
            "/registry/deployments/ns1/web",
        );
        check(
            "apps",
            "replicasets",
            Some("ns1"),
            "web-1",
            "/registry/replicasets/ns1/web-1",
        );
        check(
            "apps",
            "daemonsets",
            Some("ns1"),
            "agent",
            "/registry/daemonsets/ns1/agent",
        );
        check("batch", "jobs", Some("ns1"), "pi", "/registry/jobs/ns1/pi");
        check(
            "autoscaling",
            "horizontalpodautoscalers",
            Some("ns1"),
            "web",
            "/registry/horizontalpodautoscalers/ns1/web",
        );
        check(
            "networking.k8s.io",
            "ingresses",
            Some("ns1"),
            "web",
            "/registry/ingress/ns1/web",
        );
        check(
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
            "l",
            "/registry/leases/kube-system/l",
        );
    }

    #[test]
    fn non_built_in_groups_carry_the_group() {
        check(
            "federation",
            "clusters",
            None,
            "member-1",
            "/registry/federation/clusters/member-1",
        );
        check(
            "apiregistration.k8s.io",
            "apiservices",
            None,
            "v1.apps",
            "/registry/apiregistration.k8s.io/apiservices/v1.apps",
        );
    }

    #[test]
    fn collection_prefixes_end_with_a_slash() {
        let prefix = StoragePrefix::new("/fed-a").unwrap();
        assert_eq!(
            collection_prefix(&prefix, "", "services", None),
            "/fed-a/services/specs/"
        );
        assert_eq!(
            collection_prefix(&prefix, "apps", "deployments", Some("ns")),
            "/fed-a/deployments/ns/"
        );
    }

    #[test]
    fn prefixes_are_normalised_and_checked() {
        assert_eq!(StoragePrefix::new("registry/").unwrap().as_str(), "/registry");
        assert_eq!(StoragePrefix::new("/a/b").unwrap().as_str(), "/a/b");
        assert!(StoragePrefix::new("/").is_err());
        assert!(StoragePrefix::new("/a//b").is_err());
        assert!(StoragePrefix::new("/a/../b").is_err());
    }
}
