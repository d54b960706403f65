//! The `paths` of the v2 document, in kube-apiserver's layout: for each served resource and version, the
//! namespaced (or cluster) collection and object paths, the all-namespaces list, and the subresources, each
//! operation with kube's operation id, `x-kubernetes-action`, `x-kubernetes-group-version-kind` and the query
//! parameters kubectl looks for (`fieldValidation` on writes, which is how kubectl detects server-side
//! validation).

use flotilla_api::resources::{Resource, Subresource};
use serde_json::{Map, Value, json};

use super::definitions::{DELETE_OPTIONS, PATCH, SCALE, STATUS, ServedKind};

/// The patch types the server implements (server-side apply comes later, so `apply-patch+yaml` is not listed).
pub const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];
const PRODUCES: &[&str] = &["application/json", "application/yaml"];

fn reference(definition: &str) -> Value {
    json!({"$ref": format!("#/definitions/{definition}")})
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "type": kind, "uniqueItems": true, "description": description})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": description})
}

fn body(definition: &str) -> Value {
    json!({"name": "body", "in": "body", "required": true, "schema": reference(definition)})
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        query(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        query(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        query(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        query(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        query(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        query(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn responses(code: &str, definition: &str) -> Value {
    let mut responses = Map::new();
    responses.insert(
        code.to_owned(),
        json!({"description": "OK", "schema": reference(definition)}),
    );
    responses.insert("401".to_owned(), json!({"description": "Unauthorized"}));
    Value::Object(responses)
}

struct Op<'a> {
    action: &'a str,
    id: String,
    description: String,
    consumes: &'a [&'a str],
    parameters: Vec<Value>,
    response: (&'a str, &'a str),
    gvk: Value,
    tag: String,
}

impl Op<'_> {
    fn render(self) -> Value {
        let mut operation = json!({
            "description": self.description,
            "operationId": self.id,
            "produces": PRODUCES,
            "schemes": ["https"],
            "tags": [self.tag],
            "responses": responses(self.response.0, self.response.1),
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        if !self.consumes.is_empty() {
            operation["consumes"] = json!(self.consumes);
        }
        if !self.parameters.is_empty() {
            operation["parameters"] = Value::Array(self.parameters);
        }
        operation
    }
}

/// kube's operation id group-version prefix: `AppsV1`, `CoreV1`, `NetworkingV1`.
fn id_prefix(group: &str, version: &str) -> String {
    let group = match group {
        "" => "core".to_owned(),
        group => group.split('.').next().unwrap_or(group).to_owned(),
    };
    format!("{}{}", capitalise(&group), capitalise(version))
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Adds every path of `resource` at `kind.version` to `paths`.
pub fn add(paths: &mut Map<String, Value>, resource: &Resource, kind: &ServedKind) {
    let version = kind.version;
    let base = if resource.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", resource.group)
    };
    let prefix = id_prefix(resource.group, version);
    let namespaced = if resource.namespaced { "Namespaced" } else { "" };
    let tag = format!(
        "{}_{version}",
        if resource.group.is_empty() {
            "core"
        } else {
            resource.group.split('.').next().unwrap_or("")
        }
    );
    let gvk = json!({"group": resource.group, "kind": resource.kind, "version": version});
    let (collection, object) = if resource.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", resource.plural),
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", resource.plural),
        )
    } else {
        (
            format!("{base}/{}", resource.plural),
            format!("{base}/{}/{{name}}", resource.plural),
        )
    };
    let scope_params = || {
        let mut params = vec![query(
            "pretty",
            "string",
            "If 'true', then the output is pretty printed.",
        )];
        if resource.namespaced {
            params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects",
            ));
        }
        params
    };
    let op = |action: &'static str,
              verb: &str,
              suffix: &str,
              description: String,
              consumes: &'static [&'static str],
              parameters: Vec<Value>,
              response: (&'static str, &str)|
     -> Value {
        Op {
            action,
            id: format!("{verb}{prefix}{namespaced}{}{suffix}", resource.kind),
            description,
            consumes,
            parameters,
            response: (response.0, response.1),
            gvk: gvk.clone(),
            tag: tag.clone(),
        }
        .render()
    };
    let object_def = kind.definition.as_str();
    let list_def = kind.list_definition.as_str();

    let mut create_params = vec![body(object_def)];
    create_params.extend(write_params());
    let mut delete_params = vec![body(DELETE_OPTIONS)];
    delete_params.extend([
        query(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed.",
        ),
    ]);
    let mut collection_item = json!({
        "get": op("list", "list", "", format!("list or watch objects of kind {}", resource.kind), &[], list_params(), ("200", list_def)),
        "post": op("post", "create", "", format!("create a {}", resource.kind), &[], create_params.clone(), ("201", object_def)),
        "delete": op("deletecollection", "deleteCollection", "", format!("delete collection of {}", resource.kind), &[], delete_params.clone(), ("200", STATUS)),
    });
    if !resource.is_writable() {
        collection_item = json!({"get": collection_item["get"].take()});
    }
    collection_item["parameters"] = Value::Array(scope_params());
    paths.insert(collection, collection_item);

    let mut object_item = json!({
        "get": op("get", "read", "", format!("read the specified {}", resource.kind), &[], vec![], ("200", object_def)),
        "put": op("put", "replace", "", format!("replace the specified {}", resource.kind), &[], create_params.clone(), ("200", object_def)),
        "patch": op("patch", "patch", "", format!("partially update the specified {}", resource.kind), PATCH_TYPES, patch_params(), ("200", object_def)),
        "delete": op("delete", "delete", "", format!("delete a {}", resource.kind), &[], delete_params, ("200", STATUS)),
    });
    if !resource.is_writable() {
        object_item = json!({"get": object_item["get"].take()});
    }
    let mut object_params = vec![path_param("name", &format!("name of the {}", resource.kind))];
    object_params.extend(scope_params());
    object_item["parameters"] = Value::Array(object_params.clone());
    paths.insert(object.clone(), object_item);

    if resource.namespaced {
        let mut all = json!({
            "get": op("list", "list", "ForAllNamespaces", format!("list or watch objects of kind {}", resource.kind), &[], list_params(), ("200", list_def)),
        });
        all["parameters"] = json!([query(
            "pretty",
            "string",
            "If 'true', then the output is pretty printed."
        )]);
        // kube's id for this one has no "Namespaced".
        all["get"]["operationId"] = json!(format!("list{prefix}{}ForAllNamespaces", resource.kind));
        paths.insert(format!("{base}/{}", resource.plural), all);
    }

    for subresource in resource.subresources {
        let (suffix, definition, sub_gvk) = match subresource {
            Subresource::Status => ("Status", object_def, gvk.clone()),
            Subresource::Scale => (
                "Scale",
                SCALE,
                json!({"group": "autoscaling", "kind": "Scale", "version": "v1"}),
            ),
        };
        let mut replace = vec![body(definition)];
        replace.extend(write_params());
        let mut item = json!({
            "get": op("get", "read", suffix, format!("read {} of the specified {}", subresource.name(), resource.kind), &[], vec![], ("200", definition)),
            "put": op("put", "replace", suffix, format!("replace {} of the specified {}", subresource.name(), resource.kind), &[], replace, ("200", definition)),
            "patch": op("patch", "patch", suffix, format!("partially update {} of the specified {}", subresource.name(), resource.kind), PATCH_TYPES, patch_params(), ("200", definition)),
        });
        for method in ["get", "put", "patch"] {
            item[method]["x-kubernetes-group-version-kind"] = sub_gvk.clone();
        }
        item["parameters"] = Value::Array(object_params.clone());
        paths.insert(format!("{object}/{}", subresource.name()), item);
    }
}

fn patch_params() -> Vec<Value> {
    let mut params = vec![body(PATCH)];
    params.extend(write_params());
    params.push(query(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests.",
    ));
    params
}
