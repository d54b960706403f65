//! The OpenAPI documents kubectl needs before it applies anything: `/openapi/v2` (JSON, or gnostic protobuf
//! for kubectl 1.27 and 1.28, which require it) and `/openapi/v3` with one document per group-version (what
//! 1.29+ read for strategic-merge metadata, `fieldValidation` support and `kubectl explain`).
//!
//! Everything is generated once per process from the resource table and the Rust types ([`definitions`],
//! [`paths`]), then served with an `ETag` so that re-fetches get 304; no upstream spec file is involved.

pub(crate) mod definitions;
mod gnostic;
mod paths;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::ApiServer;
use crate::status::ApiError;
use flotilla_api::resources::Profile;

const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
const PROTOBUF_V2_RESPONSE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// One served document and its validator.
#[derive(Debug)]
struct Served {
    body: Bytes,
    etag: String,
}

impl Served {
    fn new(body: Vec<u8>) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        Served {
            etag: format!("{:016X}", hasher.finish()),
            body: Bytes::from(body),
        }
    }
}

#[derive(Debug)]
struct Documents {
    v2_json: Served,
    v2_proto: Served,
    v3_index: Served,
    /// Keyed by `api/v1`, `apis/apps/v1`, …
    v3: BTreeMap<String, Served>,
}

/// The documents of `profile`, built once per process.
fn documents(profile: Profile) -> &'static Documents {
    static FEDERATION: OnceLock<Documents> = OnceLock::new();
    static MEMBER: OnceLock<Documents> = OnceLock::new();
    let cell = match profile {
        Profile::Federation => &FEDERATION,
        Profile::Member => &MEMBER,
    };
    cell.get_or_init(|| build(profile))
}

/// Builds the documents ahead of the first request (it takes a moment), off the request path.
pub fn warm_up(profile: Profile) {
    tokio::task::spawn_blocking(move || documents(profile));
}

async fn documents_of(server: &ApiServer) -> &'static Documents {
    let profile = server.profile;
    tokio::task::spawn_blocking(move || documents(profile))
        .await
        .expect("building the documents does not panic")
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR)})
}

/// The v2 document as JSON.
fn v2_document(profile: Profile) -> Value {
    let (kinds, definitions) = definitions::built();
    let mut paths = Map::new();
    for resource in flotilla_api::resources::served(profile) {
        for version in resource.versions {
            let kind = kinds
                .iter()
                .find(|k| k.group == resource.group && k.version == *version && k.kind == resource.kind)
                .unwrap_or_else(|| panic!("no Rust type for {}/{version} {}", resource.group, resource.kind));
            paths::add(&mut paths, resource, kind);
        }
    }
    json!({
        "swagger": "2.0",
        "info": info(),
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}},
        "security": [{"BearerToken": []}],
    })
}

fn build(profile: Profile) -> Documents {
    let v2 = v2_document(profile);
    let v2_proto = gnostic::encode(&v2);
    let mut v3 = BTreeMap::new();
    for (group, versions) in flotilla_api::resources::groups(profile) {
        for version in versions {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            let document = v3_document(&v2, &format!("/{key}/"));
            v3.insert(
                key,
                Served::new(serde_json::to_vec(&document).expect("JSON serialises")),
            );
        }
    }
    let index: Map<String, Value> = v3
        .iter()
        .map(|(key, served)| {
            (
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", served.etag)}),
            )
        })
        .collect();
    Documents {
        v2_json: Served::new(serde_json::to_vec(&v2).expect("JSON serialises")),
        v2_proto: Served::new(v2_proto),
        v3_index: Served::new(serde_json::to_vec(&json!({"paths": index})).expect("JSON serialises")),
        v3,
    }
}

/// Rewrites v2 references and `$ref` siblings for OpenAPI 3 (`allOf` carries the reference, as in kube's v3).
fn to_v3_schema(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), to_v3_schema(v))).collect();
            if let Some(Value::String(reference)) = out.get("$ref").cloned() {
                let reference = reference.replace("#/definitions/", "#/components/schemas/");
                if out.len() > 1 {
                    out.remove("$ref");
                    out.insert("allOf".to_owned(), json!([{"$ref": reference}]));
                } else {
                    out.insert("$ref".to_owned(), Value::String(reference));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v3_schema).collect()),
        other => other.clone(),
    }
}

fn v3_parameter(parameter: &Value) -> Value {
    let mut out =
        json!({"name": parameter["name"], "in": parameter["in"], "description": parameter["description"]});
    if parameter["in"] == "path" {
        out["required"] = json!(true);
    }
    out["schema"] = json!({"type": parameter["type"], "uniqueItems": true});
    out
}

fn v3_operation(operation: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in operation.as_object().into_iter().flatten() {
        match key.as_str() {
            "consumes" | "produces" | "schemes" | "parameters" | "responses" => {}
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    let parameters = operation["parameters"].as_array().cloned().unwrap_or_default();
    let consumes: Vec<String> = match operation["consumes"].as_array() {
        Some(types) => types
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        None => vec!["*/*".to_owned()],
    };
    let v3_parameters: Vec<Value> = parameters
        .iter()
        .filter(|p| p["in"] != "body")
        .map(v3_parameter)
        .collect();
    if !v3_parameters.is_empty() {
        out.insert("parameters".to_owned(), Value::Array(v3_parameters));
    }
    if let Some(body) = parameters.iter().find(|p| p["in"] == "body") {
        let schema = to_v3_schema(&body["schema"]);
        let content: Map<String, Value> = consumes
            .iter()
            .map(|t| (t.clone(), json!({"schema": schema})))
            .collect();
        out.insert(
            "requestBody".to_owned(),
            json!({"content": content, "required": true}),
        );
    }
    let produces: Vec<String> = operation["produces"]
        .as_array()
        .map(|types| {
            types
                .iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut responses = Map::new();
    for (code, response) in operation["responses"].as_object().into_iter().flatten() {
        let mut v3 = json!({"description": response["description"]});
        if let Some(schema) = response.get("schema") {
            let schema = to_v3_schema(schema);
            let content: Map<String, Value> = produces
                .iter()
                .map(|t| (t.clone(), json!({"schema": schema})))
                .collect();
            v3["content"] = Value::Object(content);
        }
        responses.insert(code.clone(), v3);
    }
    out.insert("responses".to_owned(), Value::Object(responses));
    Value::Object(out)
}

/// The OpenAPI 3 document of the paths under `prefix` (such as `/apis/apps/v1/`).
fn v3_document(v2: &Value, prefix: &str) -> Value {
    let mut paths = Map::new();
    for (path, item) in v2["paths"].as_object().into_iter().flatten() {
        if !path.starts_with(prefix) {
            continue;
        }
        let mut v3_item = Map::new();
        for (key, value) in item.as_object().into_iter().flatten() {
            let converted = match key.as_str() {
                "parameters" => {
                    Value::Array(value.as_array().into_iter().flatten().map(v3_parameter).collect())
                }
                _ => v3_operation(value),
            };
            v3_item.insert(key.clone(), converted);
        }
        paths.insert(path.clone(), Value::Object(v3_item));
    }
    let mut schemas: Map<String, Value> = v2["definitions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), to_v3_schema(v)))
        .collect();
    definitions::v3_scalar_unions(&mut schemas);
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    })
}

fn respond(headers: &HeaderMap, served: &Served, content_type: &str, immutable: bool) -> Response {
    let etag = format!("\"{}\"", served.etag);
    let mut response =
        if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (StatusCode::OK, served.body.clone()).into_response()
        };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("a valid content type"),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a valid header"),
    );
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub async fn serve_v2(State(server): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let documents = documents_of(&server).await;
    if accept.contains(PROTOBUF_V2) {
        respond(&headers, &documents.v2_proto, PROTOBUF_V2_RESPONSE, false)
    } else {
        respond(&headers, &documents.v2_json, "application/json", false)
    }
}

pub async fn serve_v3_index(State(server): State<Arc<ApiServer>>, headers: HeaderMap) -> Response {
    let documents = documents_of(&server).await;
    respond(&headers, &documents.v3_index, "application/json", false)
}

pub async fn serve_v3(
    State(server): State<Arc<ApiServer>>,
    Path(group_version): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let documents = documents_of(&server).await;
    match documents.v3.get(group_version.trim_end_matches('/')) {
        Some(served) => {
            let immutable = query.get("hash").is_some_and(|hash| *hash == served.etag);
            respond(&headers, served, "application/json", immutable)
        }
        None => ApiError::NoSuchResource.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_patch_operations_advertise_strategic_merge_and_field_validation() {
        let documents = documents(Profile::Federation);
        let apps: Value = serde_json::from_slice(&documents.v3["apis/apps/v1"].body).unwrap();
        let patch = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(patch["requestBody"]["content"]["application/strategic-merge-patch+json"].is_object());
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(names.contains(&"fieldValidation"), "{names:?}");
        let deployment = &apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let text = String::from_utf8_lossy(&documents.v3["apis/apps/v1"].body).into_owned();
        assert!(
            !text.contains("#/definitions/"),
            "v3 references point at components"
        );
    }

    #[test]
    fn v2_protobuf_decodes_back() {
        use prost::Message;
        let documents = documents(Profile::Federation);
        let decoded = gnostic::Document::decode(documents.v2_proto.body.clone()).unwrap();
        assert_eq!(decoded.swagger, "2.0");
        let definitions = decoded.definitions.unwrap().additional_properties;
        let pod_spec = definitions
            .iter()
            .find(|d| d.name == "io.k8s.api.core.v1.PodSpec")
            .unwrap();
        let containers = pod_spec
            .value
            .as_ref()
            .unwrap()
            .properties
            .as_ref()
            .unwrap()
            .additional_properties
            .iter()
            .find(|p| p.name == "containers")
            .unwrap();
        let merge_key = containers
            .value
            .as_ref()
            .unwrap()
            .vendor_extension
            .iter()
            .find(|e| e.name == "x-kubernetes-patch-merge-key")
            .unwrap();
        assert_eq!(merge_key.value.as_ref().unwrap().yaml, "\"name\"");
        let index: Value = serde_json::from_slice(&documents.v3_index.body).unwrap();
        assert!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
