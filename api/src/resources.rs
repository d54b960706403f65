//! The static table of resources Flotilla serves: one declaration per resource, from which discovery, routing,
//! storage keys and (later) OpenAPI are all derived. Adding a resource is adding a row.

/// A subresource a resource offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
        }
    }
}

/// Which server an apiserver is: the federation endpoint, or a (simulated) member cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// The federation: every resource but those only a real cluster has (nodes), plus the federation group.
    #[default]
    Federation,
    /// A member cluster: the Kubernetes resources, nodes included, without the federation group.
    Member,
}

/// Which profiles serve a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServedBy {
    Both,
    Only(Profile),
}

/// What clients may do with a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every verb.
    ReadWrite,
    /// Get, list and watch only, and always empty: a kind Flotilla does not federate (pods, persistent volumes,
    /// …), served so that clients which expect every Kubernetes kind work — kubectl's default prune allowlist
    /// fails the whole `apply --prune` when one of its kinds is missing from discovery — and writes answer 405
    /// saying the kind is not federated.
    ReadOnly,
}

/// One served resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; `""` for the core group.
    pub group: &'static str,
    /// Served versions, preferred first. Every version serves the same stored object.
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    /// The plural resource name used in URLs.
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub namespaced: bool,
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    pub served_by: ServedBy,
    pub access: Access,
}

/// The verbs every writable resource offers, as discovery lists them.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs of a [`Access::ReadOnly`] resource.
pub const READ_VERBS: &[&str] = &["get", "list", "watch"];

impl Resource {
    /// `group/version` for `apiVersion`, `v1` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_owned()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The resource's name in error messages, as kube writes it: `deployments.apps`, `configmaps`.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }

    pub fn has_subresource(&self, subresource: Subresource) -> bool {
        self.subresources.contains(&subresource)
    }

    /// The verbs discovery lists for the resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        match self.access {
            Access::ReadWrite => VERBS,
            Access::ReadOnly => READ_VERBS,
        }
    }

    pub fn is_writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    pub fn served_in(&self, profile: Profile) -> bool {
        match self.served_by {
            ServedBy::Both => true,
            ServedBy::Only(only) => only == profile,
        }
    }
}

use Subresource::{Scale, Status};

macro_rules! resource {
    ($group:expr, [$($version:expr),+], $kind:expr, $plural:expr, $singular:expr, short [$($short:expr),*],
     namespaced $namespaced:expr, categories [$($category:expr),*], subresources [$($sub:expr),*]
     $(, only $only:expr)? $(, access $access:expr)?) => {
        Resource {
            group: $group,
            versions: &[$($version),+],
            kind: $kind,
            plural: $plural,
            singular: $singular,
            short_names: &[$($short),*],
            namespaced: $namespaced,
            categories: &[$($category),*],
            subresources: &[$($sub),*],
            served_by: resource!(@served $($only)?),
            access: resource!(@access $($access)?),
        }
    };
    (@served) => { ServedBy::Both };
    (@served $only:expr) => { ServedBy::Only($only) };
    (@access) => { Access::ReadWrite };
    (@access $access:expr) => { $access };
}

/// Every resource Flotilla serves, in discovery order.
pub static RESOURCES: &[Resource] = &[
    resource!("", ["v1"], "Namespace", "namespaces", "namespace", short ["ns"],
        namespaced false, categories [], subresources [Status]),
    resource!("", ["v1"], "ConfigMap", "configmaps", "configmap", short ["cm"],
        namespaced true, categories [], subresources []),
    resource!("", ["v1"], "Secret", "secrets", "secret", short [],
        namespaced true, categories [], subresources []),
    resource!("", ["v1"], "Service", "services", "service", short ["svc"],
        namespaced true, categories ["all"], subresources [Status]),
    resource!("", ["v1"], "Event", "events", "event", short ["ev"],
        namespaced true, categories [], subresources []),
    resource!("", ["v1"], "ServiceAccount", "serviceaccounts", "serviceaccount", short ["sa"],
        namespaced true, categories [], subresources []),
    resource!("", ["v1"], "Node", "nodes", "node", short ["no"],
        namespaced false, categories [], subresources [Status], only Profile::Member),
    // Not federated: listed (always empty) for kubectl's default prune allowlist and `get all`.
    resource!("", ["v1"], "Pod", "pods", "pod", short ["po"],
        namespaced true, categories ["all"], subresources [], access Access::ReadOnly),
    resource!("", ["v1"], "ReplicationController", "replicationcontrollers", "replicationcontroller",
        short ["rc"], namespaced true, categories ["all"], subresources [], access Access::ReadOnly),
    resource!("", ["v1"], "Endpoints", "endpoints", "endpoints", short ["ep"],
        namespaced true, categories [], subresources [], access Access::ReadOnly),
    resource!("", ["v1"], "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim",
        short ["pvc"], namespaced true, categories [], subresources [], access Access::ReadOnly),
    resource!("", ["v1"], "PersistentVolume", "persistentvolumes", "persistentvolume", short ["pv"],
        namespaced false, categories [], subresources [], access Access::ReadOnly),
    resource!("apps", ["v1"], "Deployment", "deployments", "deployment", short ["deploy"],
        namespaced true, categories ["all"], subresources [Status, Scale]),
    resource!("apps", ["v1"], "ReplicaSet", "replicasets", "replicaset", short ["rs"],
        namespaced true, categories ["all"], subresources [Status, Scale]),
    resource!("apps", ["v1"], "DaemonSet", "daemonsets", "daemonset", short ["ds"],
        namespaced true, categories ["all"], subresources [Status]),
    resource!("apps", ["v1"], "StatefulSet", "statefulsets", "statefulset", short ["sts"],
        namespaced true, categories ["all"], subresources [Status, Scale]),
    resource!("batch", ["v1"], "Job", "jobs", "job", short [],
        namespaced true, categories ["all"], subresources [Status]),
    resource!("batch", ["v1"], "CronJob", "cronjobs", "cronjob", short ["cj"],
        namespaced true, categories ["all"], subresources [], access Access::ReadOnly),
    // Stored as v2; v1 is converted on the way in and out (the apiserver's `conversion`).
    resource!("autoscaling", ["v2", "v1"], "HorizontalPodAutoscaler", "horizontalpodautoscalers",
        "horizontalpodautoscaler", short ["hpa"], namespaced true, categories ["all"], subresources [Status]),
    resource!("networking.k8s.io", ["v1"], "Ingress", "ingresses", "ingress", short ["ing"],
        namespaced true, categories [], subresources [Status]),
    resource!("rbac.authorization.k8s.io", ["v1"], "ClusterRole", "clusterroles", "clusterrole", short [],
        namespaced false, categories [], subresources []),
    resource!("rbac.authorization.k8s.io", ["v1"], "ClusterRoleBinding", "clusterrolebindings",
        "clusterrolebinding", short [], namespaced false, categories [], subresources []),
    resource!("rbac.authorization.k8s.io", ["v1"], "Role", "roles", "role", short [],
        namespaced true, categories [], subresources []),
    resource!("rbac.authorization.k8s.io", ["v1"], "RoleBinding", "rolebindings", "rolebinding", short [],
        namespaced true, categories [], subresources []),
    resource!("coordination.k8s.io", ["v1"], "Lease", "leases", "lease", short [],
        namespaced true, categories [], subresources []),
    resource!("federation", ["v1beta1"], "Cluster", "clusters", "cluster", short [],
        namespaced false, categories [], subresources [Status], only Profile::Federation),
];

/// The resources `profile` serves, in table order.
pub fn served(profile: Profile) -> impl Iterator<Item = &'static Resource> {
    RESOURCES.iter().filter(move |r| r.served_in(profile))
}

/// The resource `plural` of `group` served at `version`.
pub fn lookup(profile: Profile, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    served(profile).find(|r| r.group == group && r.plural == plural && r.serves_version(version))
}

/// The groups served, in discovery order, each with its versions (preferred first).
pub fn groups(profile: Profile) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for resource in served(profile) {
        let entry = match groups.iter_mut().find(|(group, _)| *group == resource.group) {
            Some(entry) => entry,
            None => {
                groups.push((resource.group, Vec::new()));
                groups.last_mut().expect("just pushed")
            }
        };
        for version in resource.versions {
            if !entry.1.contains(version) {
                entry.1.push(version);
            }
        }
    }
    groups
}

/// The resources of one group-version, in table order.
pub fn in_group_version<'a>(
    profile: Profile,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    served(profile).filter(move |r| r.group == group && r.serves_version(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_find_served_versions_only() {
        assert_eq!(
            lookup(Profile::Federation, "apps", "v1", "deployments").map(|r| r.kind),
            Some("Deployment")
        );
        assert_eq!(
            lookup(
                Profile::Federation,
                "autoscaling",
                "v2",
                "horizontalpodautoscalers"
            )
            .map(|r| r.kind),
            Some("HorizontalPodAutoscaler")
        );
        assert_eq!(
            lookup(
                Profile::Federation,
                "autoscaling",
                "v1",
                "horizontalpodautoscalers"
            )
            .map(|r| r.versions[0]),
            Some("v2"),
            "served in v1, stored in v2"
        );
        assert!(lookup(Profile::Federation, "apps", "v1beta1", "deployments").is_none());
        assert!(lookup(Profile::Federation, "", "v1", "pods").is_some_and(|r| !r.is_writable()));
        assert!(lookup(Profile::Federation, "", "v1", "bindings").is_none());
    }

    #[test]
    fn profiles_split_nodes_and_clusters() {
        assert!(lookup(Profile::Member, "", "v1", "nodes").is_some());
        assert!(lookup(Profile::Federation, "", "v1", "nodes").is_none());
        assert!(lookup(Profile::Federation, "federation", "v1beta1", "clusters").is_some());
        assert!(lookup(Profile::Member, "federation", "v1beta1", "clusters").is_none());
        assert!(!groups(Profile::Member).iter().any(|(g, _)| *g == "federation"));
    }

    #[test]
    fn groups_list_preferred_versions_first() {
        let groups = groups(Profile::Federation);
        assert_eq!(groups[0], ("", vec!["v1"]));
        assert!(groups.contains(&("autoscaling", vec!["v2", "v1"])));
    }

    #[test]
    fn names_are_unique_within_a_group() {
        for (i, a) in RESOURCES.iter().enumerate() {
            for b in &RESOURCES[i + 1..] {
                assert!(
                    !(a.group == b.group && a.plural == b.plural),
                    "{} twice",
                    a.plural
                );
            }
        }
    }

    #[test]
    fn qualified_names_follow_kube() {
        assert_eq!(
            lookup(Profile::Federation, "", "v1", "configmaps")
                .unwrap()
                .qualified_name(),
            "configmaps"
        );
        assert_eq!(
            lookup(Profile::Federation, "apps", "v1", "deployments")
                .unwrap()
                .qualified_name(),
            "deployments.apps"
        );
    }
}
