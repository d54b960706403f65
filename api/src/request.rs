//! What an API request path names: kube-apiserver's `RequestInfo`, as a pure function of the path.

/// A path under `/api` or `/apis`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiPath<'a> {
    /// `/api`: the legacy versions.
    LegacyRoot,
    /// `/apis`: the groups.
    GroupsRoot,
    /// `/apis/<group>`.
    Group { group: &'a str },
    /// `/api/v1` or `/apis/<group>/<version>`: a resource list.
    GroupVersion { group: &'a str, version: &'a str },
    /// A collection, an object, or an object's subresource.
    Resource(Target<'a>),
}

/// The resource a request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    pub group: &'a str,
    pub version: &'a str,
    /// The plural resource name.
    pub resource: &'a str,
    /// The namespace in the path (for a namespace object itself, its name, as kube does).
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub subresource: Option<&'a str>,
}

/// Subresources of a namespace that must not be read as a namespaced resource of that name.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses `path` (no query string; a trailing `/` is allowed). `None` when it is not an API path or has too
/// many segments.
pub fn parse(path: &str) -> Option<ApiPath<'_>> {
    let path = path.trim_end_matches('/');
    let mut segments = path.split('/').skip(1);
    let (group, version) = match segments.next()? {
        "api" => match segments.next() {
            None => return Some(ApiPath::LegacyRoot),
            Some(version) => ("", version),
        },
        "apis" => match (segments.next(), segments.next()) {
            (None, _) => return Some(ApiPath::GroupsRoot),
            (Some(group), None) => return Some(ApiPath::Group { group }),
            (Some(group), Some(version)) => (group, version),
        },
        _ => return None,
    };
    let parts: Vec<&str> = segments.collect();
    if parts.iter().any(|part| part.is_empty()) {
        return None;
    }
    let mut rest = parts.as_slice();
    if rest.is_empty() {
        return Some(ApiPath::GroupVersion { group, version });
    }
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1]);
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let target = match *rest {
        [resource] => Target {
            group,
            version,
            resource,
            namespace,
            name: None,
            subresource: None,
        },
        [resource, name] => Target {
            group,
            version,
            resource,
            namespace,
            name: Some(name),
            subresource: None,
        },
        [resource, name, subresource] => Target {
            group,
            version,
            resource,
            namespace,
            name: Some(name),
            subresource: Some(subresource),
        },
        _ => return None,
    };
    Some(ApiPath::Resource(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: Option<&'a str>,
        subresource: Option<&'a str>,
    ) -> Option<ApiPath<'a>> {
        Some(ApiPath::Resource(Target {
            group,
            version: "v1",
            resource,
            namespace,
            name,
            subresource,
        }))
    }

    #[test]
    fn roots_and_group_versions() {
        assert_eq!(parse("/api"), Some(ApiPath::LegacyRoot));
        assert_eq!(parse("/api/"), Some(ApiPath::LegacyRoot));
        assert_eq!(parse("/apis"), Some(ApiPath::GroupsRoot));
        assert_eq!(parse("/apis/apps"), Some(ApiPath::Group { group: "apps" }));
        assert_eq!(
            parse("/api/v1"),
            Some(ApiPath::GroupVersion {
                group: "",
                version: "v1"
            })
        );
        assert_eq!(
            parse("/apis/apps/v1/"),
            Some(ApiPath::GroupVersion {
                group: "apps",
                version: "v1"
            })
        );
        assert_eq!(parse("/version"), None);
    }

    #[test]
    fn collections_objects_and_subresources() {
        assert_eq!(
            parse("/api/v1/configmaps"),
            target("", "configmaps", None, None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/configmaps"),
            target("", "configmaps", Some("ns"), None, None)
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/ns/deployments/web/scale"),
            target("apps", "deployments", Some("ns"), Some("web"), Some("scale"))
        );
        assert_eq!(
            parse("/api/v1/namespaces"),
            target("", "namespaces", None, None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns"),
            target("", "namespaces", Some("ns"), Some("ns"), None)
        );
    }

    #[test]
    fn namespace_objects_and_their_subresources() {
        // `status` and `finalize` after a namespace name are its subresources, not resources inside it.
        assert_eq!(
            parse("/api/v1/namespaces/ns/status"),
            target("", "namespaces", Some("ns"), Some("ns"), Some("status"))
        );
        assert_eq!(
            parse("/api/v1/namespaces/ns/finalize"),
            target("", "namespaces", Some("ns"), Some("ns"), Some("finalize"))
        );
    }

    #[test]
    fn malformed_paths_are_none() {
        assert_eq!(parse("/api/v1/namespaces/ns/configmaps/a/b/c"), None);
        assert_eq!(parse("/api/v1//configmaps"), None);
    }
}
