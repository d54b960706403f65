//! Discovery, as kubectl 1.27–1.33 read it: `/api` and `/apis` (legacy `APIVersions`/`APIGroupList`, or the
//! aggregated `APIGroupDiscoveryList` in `apidiscovery.k8s.io/v2` or `v2beta1` when the Accept header asks for
//! it), `/apis/<group>` and the per-group-version `APIResourceList`s. Everything is derived from the resource
//! table.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::request::ApiPath;
use flotilla_api::resources::{self, Profile, Resource};
use serde_json::{Value, json};

use crate::status::ApiError;

const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// Which discovery document the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Legacy,
    Aggregated(&'static str),
}

/// The first media type in Accept that we serve decides (clients list their preference first).
fn format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for media_type in accept.split(',') {
        let params: Vec<&str> = media_type.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Format::Aggregated("v2");
            }
            if has("v=v2beta1") {
                return Format::Aggregated("v2beta1");
            }
            continue;
        }
        return Format::Legacy;
    }
    Format::Legacy
}

fn json(value: Value, content_type: &str) -> Response {
    let body = serde_json::to_vec(&value).expect("JSON serialises");
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type.to_owned())],
        body,
    )
        .into_response()
}

pub fn serve(profile: Profile, path: &ApiPath<'_>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let format = format(headers);
    match (path, format) {
        (ApiPath::LegacyRoot, Format::Aggregated(version)) => Ok(aggregated(profile, version, true)),
        (ApiPath::GroupsRoot, Format::Aggregated(version)) => Ok(aggregated(profile, version, false)),
        (ApiPath::LegacyRoot, Format::Legacy) => Ok(json(
            json!({"kind": "APIVersions", "versions": ["v1"],
                   "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
            "application/json",
        )),
        (ApiPath::GroupsRoot, Format::Legacy) => {
            let groups: Vec<Value> = resources::groups(profile)
                .into_iter()
                .filter(|(group, _)| !group.is_empty())
                .map(|(g, v)| api_group(g, &v))
                .collect();
            Ok(json(
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                "application/json",
            ))
        }
        (ApiPath::Group { group }, _) => {
            let versions = resources::groups(profile)
                .into_iter()
                .find(|(g, _)| g == group)
                .map(|(_, v)| v);
            match versions {
                Some(versions) if !group.is_empty() => {
                    let mut document = api_group(group, &versions);
                    document["kind"] = json!("APIGroup");
                    document["apiVersion"] = json!("v1");
                    Ok(json(document, "application/json"))
                }
                _ => Err(ApiError::NoSuchResource),
            }
        }
        (ApiPath::GroupVersion { group, version }, _) => {
            let served: Vec<&Resource> = resources::in_group_version(profile, group, version).collect();
            if served.is_empty() {
                return Err(ApiError::NoSuchResource);
            }
            let group_version = if group.is_empty() {
                (*version).to_owned()
            } else {
                format!("{group}/{version}")
            };
            let mut list = Vec::new();
            for resource in served {
                list.push(json!({
                    "name": resource.plural,
                    "singularName": resource.singular,
                    "namespaced": resource.namespaced,
                    "kind": resource.kind,
                    "verbs": resource.verbs(),
                    "shortNames": resource.short_names,
                    "categories": resource.categories,
                }));
                for subresource in resource.subresources {
                    let mut entry = json!({
                        "name": format!("{}/{}", resource.plural, subresource.name()),
                        "singularName": "",
                        "namespaced": resource.namespaced,
                        "kind": resource.kind,
                        "verbs": SUBRESOURCE_VERBS,
                    });
                    if *subresource == resources::Subresource::Scale {
                        entry["group"] = json!("autoscaling");
                        entry["version"] = json!("v1");
                        entry["kind"] = json!("Scale");
                    }
                    list.push(entry);
                }
            }
            Ok(json(
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
                "application/json",
            ))
        }
        (ApiPath::Resource(_), _) => Err(ApiError::NoSuchResource),
    }
}

fn api_group(group: &str, versions: &[&str]) -> Value {
    let version = |v: &&str| json!({"groupVersion": format!("{group}/{v}"), "version": v});
    json!({
        "name": group,
        "versions": versions.iter().map(version).collect::<Vec<_>>(),
        "preferredVersion": version(&versions[0]),
    })
}

/// The aggregated document: the core group for `/api`, every named group for `/apis`.
fn aggregated(profile: Profile, discovery_version: &str, core: bool) -> Response {
    let items: Vec<Value> = resources::groups(profile)
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|version| {
                    let resources: Vec<Value> = resources::in_group_version(profile, group, version)
                        .map(|r| aggregated_resource(r, version))
                        .collect();
                    json!({"version": version, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
        })
        .collect();
    json(
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": format!("apidiscovery.k8s.io/{discovery_version}"),
            "metadata": {},
            "items": items,
        }),
        &format!("application/json;g=apidiscovery.k8s.io;v={discovery_version};as=APIGroupDiscoveryList"),
    )
}

fn aggregated_resource(resource: &Resource, version: &str) -> Value {
    let subresources: Vec<Value> = resource
        .subresources
        .iter()
        .map(|subresource| {
            let response_kind = match subresource {
                resources::Subresource::Scale => json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                resources::Subresource::Status => json!({"group": resource.group, "version": version, "kind": resource.kind}),
            };
            json!({"subresource": subresource.name(), "responseKind": response_kind, "verbs": SUBRESOURCE_VERBS})
        })
        .collect();
    let mut entry = json!({
        "resource": resource.plural,
        "responseKind": {"group": resource.group, "version": version, "kind": resource.kind},
        "scope": if resource.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": resource.singular,
        "verbs": resource.verbs(),
    });
    if !resource.short_names.is_empty() {
        entry["shortNames"] = json!(resource.short_names);
    }
    if !resource.categories.is_empty() {
        entry["categories"] = json!(resource.categories);
    }
    if !subresources.is_empty() {
        entry["subresources"] = json!(subresources);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn the_accept_header_picks_the_document() {
        let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        let v2beta1 =
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(format(&accept(v2)), Format::Aggregated("v2"));
        assert_eq!(format(&accept(v2beta1)), Format::Aggregated("v2beta1"));
        assert_eq!(format(&accept("application/json, */*")), Format::Legacy);
        assert_eq!(format(&HeaderMap::new()), Format::Legacy);
    }
}
