//! `kubectl explain` documents every served built-in type as kube 1.33 does, field by field: the OpenAPI v3
//! documents are compared with kube 1.33's own schemas, and real kubectl (1.33, and 1.27 reading both v3 and v2)
//! lists kube's fields and prints kube's descriptions.
//!
//! Flotilla's documents are generated from k8s-openapi, so comparing them with k8s-openapi would prove nothing:
//! kube's schemas come from an independent copy, the definitions of kube v1.33.0 that the PyPI package
//! `kubernetes-validate` ships (kube's `swagger.json` converted to JSON Schema by openapi2jsonschema), which this
//! test installs with pip.
//! That conversion changes three things, which the comparison undoes: optional fields get a `null` type, so the
//! `null` is ignored; `apiVersion` and `kind` get an `enum` of the kind's values, so `enum` is ignored; and the
//! definitions of `IntOrString` and `Quantity` are replaced by a bare `oneOf` of their types (no description, no
//! format, no extensions), so only those types are compared there.
//! The conversion keeps the `x-kubernetes-*` extensions as kube's spec has them, under the same names and with
//! the same values, on definitions and on fields (list-type, list-map-keys, map-type, patch-strategy,
//! patch-merge-key, unions, group-version-kind, …), so every one of them is compared both ways on every field and
//! every definition the walk from the served kinds reaches (not the list kinds, `Status` or `DeleteOptions`, which
//! no kind refers to): one kube has and Flotilla lacks, one Flotilla has and kube lacks, and a different value are
//! all differences. The one place they cannot be compared is the two stand-ins above, whose definitions the
//! conversion replaced whole (kube's v2 spec gives `IntOrString` and `Quantity` a type and a format, no extension).
//! The served types are those discovery lists (which `flotilla_api::resources::RESOURCES` decides), but for
//! Flotilla's own group (`federation`), which kube has not, plus [`MEMBER_ONLY`] kinds, which a member cluster
//! serves from the same definitions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use flotilla_conformance_tests::{Backend, TestApiserver};
use serde_json::{Map, Value, json};

/// kube 1.33's schemas: kubernetes-validate 1.33.1 holds kube v1.33.0's definitions (1.33.1 is the package's
/// release, not kube's; its later releases ship the same v1.33.0 files).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.33.1";

/// kube v1.33.0's definitions inside the package, without the `-strict` variant's `additionalProperties: false`.
const DEFINITIONS: &str = "kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json";

/// The group of Flotilla's own kinds.
const FEDERATION_GROUP: &str = "federation";

/// Kinds served only by member clusters (`Profile::Member`), whose definitions every document carries all the
/// same: (group-version, kind).
const MEMBER_ONLY: &[(&str, &str)] = &[("v1", "Node")];

/// Deep fields whose `kubectl explain` must print kube's descriptions: (resource, group-version, field path).
const DEEP_FIELDS: &[(&str, &str, &str)] = &[
    (
        "deployments",
        "apps/v1",
        "spec.template.spec.containers.livenessProbe.httpGet.port",
    ),
    (
        "horizontalpodautoscalers",
        "autoscaling/v2",
        "spec.metrics.external.metric.selector",
    ),
    (
        "horizontalpodautoscalers",
        "autoscaling/v1",
        "spec.targetCPUUtilizationPercentage",
    ),
    ("ingresses", "networking.k8s.io/v1", "spec.tls.secretName"),
    ("jobs", "batch/v1", "spec.podFailurePolicy.rules.action"),
    (
        "statefulsets",
        "apps/v1",
        "spec.volumeClaimTemplates.spec.resources.requests",
    ),
    ("services", "v1", "spec.ports.targetPort"),
    (
        "rolebindings",
        "rbac.authorization.k8s.io/v1",
        "subjects.apiGroup",
    ),
    ("leases", "coordination.k8s.io/v1", "spec.renewTime"),
    ("configmaps", "v1", "data"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_schemas_match_kube_1_33_field_by_field() {
    let kube = kube_definitions().await;
    let server = TestApiserver::start(Backend::Embedded).await.unwrap();
    let mut comparison = Comparison {
        kube: &kube,
        visited: BTreeSet::new(),
        differences: Vec::new(),
    };
    let mut kinds: BTreeMap<String, Vec<String>> = served(&server)
        .await
        .into_iter()
        .map(|(group_version, resources)| (group_version, resources.into_iter().map(|r| r.kind).collect()))
        .collect();
    for (group_version, kind) in MEMBER_ONLY {
        kinds
            .get_mut(*group_version)
            .unwrap_or_else(|| panic!("{group_version} is not served"))
            .push((*kind).to_owned());
    }
    for (group_version, kinds) in kinds {
        let document = raw(&server, &format!("/openapi/v3/{}", document_path(&group_version))).await;
        let ours = document["components"]["schemas"]
            .as_object()
            .unwrap_or_else(|| panic!("{group_version}: no components.schemas"));
        for kind in kinds {
            let root = format!("{kind} ({group_version})");
            let Some(kube_name) = definition_of(&kube, &group_version, &kind) else {
                comparison
                    .differences
                    .push(format!("{root}: kube 1.33 has no such kind"));
                continue;
            };
            let Some(our_name) = definition_of(ours, &group_version, &kind) else {
                comparison
                    .differences
                    .push(format!("{root}: no definition carries its group-version-kind"));
                continue;
            };
            let (kube_node, our_node) = (json!({"$ref": kube_name}), json!({"$ref": our_name}));
            comparison.field(&root, &kube_node, &our_node, ours);
        }
    }
    let differences = comparison.differences;
    assert!(
        differences.is_empty(),
        "{} differences from kube 1.33's schemas:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_recursive_lists_kube_1_33_fields_of_every_served_kind() {
    let kube = kube_definitions().await;
    let server = TestApiserver::start(Backend::Embedded).await.unwrap();
    let mut differences = Vec::new();
    for (group_version, resources) in served(&server).await {
        for resource in resources {
            let Some(kube_name) = definition_of(&kube, &group_version, &resource.kind) else {
                differences.push(format!(
                    "{} ({group_version}): kube 1.33 has no such kind",
                    resource.kind
                ));
                continue;
            };
            let mut expected = BTreeSet::new();
            explain_tree(
                &kube,
                &kube[&kube_name],
                "",
                &mut vec![kube_name.clone()],
                &mut expected,
            );
            let paths: BTreeSet<String> = expected.iter().map(|(path, _)| path.clone()).collect();
            let api_version = format!("--api-version={group_version}");
            for (version, output) in [
                ("1.33", None),
                ("1.27", None),
                ("1.27", Some("--output=plaintext-openapiv2")),
            ] {
                let mut args = vec![
                    "explain",
                    resource.name.as_str(),
                    "--recursive",
                    api_version.as_str(),
                ];
                args.extend(output);
                let what = format!("kubectl {version} {}", args.join(" "));
                let out = server.kubectl(version, &args).await.unwrap().ok();
                let listed = listed_fields(&out.stdout);
                if output.is_some() {
                    // The v2 template prints no `-required-` in recursive mode, and never an empty type.
                    let listed: BTreeSet<String> = listed.into_iter().map(|(path, _)| path).collect();
                    differences.extend(set_differences(&what, &paths, &listed));
                    if out.stdout.contains("<>") {
                        differences.push(format!("{what}: a field without a type:\n{}", out.stdout));
                    }
                } else {
                    let show = |(path, required): &(String, bool)| {
                        format!("{path}{}", if *required { " -required-" } else { "" })
                    };
                    let expected: BTreeSet<String> = expected.iter().map(show).collect();
                    let listed: BTreeSet<String> = listed.iter().map(show).collect();
                    differences.extend(set_differences(&what, &expected, &listed));
                }
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences from kube 1.33's fields:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_prints_kube_1_33_descriptions_of_deep_fields() {
    let kube = kube_definitions().await;
    let server = TestApiserver::start(Backend::Embedded).await.unwrap();
    let served = served(&server).await;
    let mut differences = Vec::new();
    for (resource, group_version, path) in DEEP_FIELDS {
        let kind = &served
            .get(*group_version)
            .and_then(|resources| resources.iter().find(|r| r.name == *resource))
            .unwrap_or_else(|| panic!("{resource} is not served in {group_version}"))
            .kind;
        let root = definition_of(&kube, group_version, kind).expect("kube 1.33 has the kind");
        let texts = kube_descriptions(&kube, &root, path);
        assert!(!texts.is_empty(), "kube has no description of {resource}.{path}");
        let field = format!("{resource}.{path}");
        let api_version = format!("--api-version={group_version}");
        for (version, output) in [
            ("1.33", None),
            ("1.27", None),
            ("1.27", Some("--output=plaintext-openapiv2")),
        ] {
            let mut args = vec!["explain", field.as_str(), api_version.as_str()];
            args.extend(output);
            let what = format!("kubectl {version} {}", args.join(" "));
            let out = server.kubectl(version, &args).await.unwrap().ok();
            let printed = normalised(&out.stdout);
            for text in &texts {
                if !printed.contains(text.as_str()) {
                    differences.push(format!(
                        "{what}: kube's description\n  {text}\nis not in\n{}",
                        out.stdout
                    ));
                }
            }
            if output.is_some() && out.stdout.contains("<>") {
                differences.push(format!("{what}: a field without a type:\n{}", out.stdout));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences from kube 1.33's descriptions:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

/// Installs kubernetes-validate once per target directory, with pip (its data only: no dependencies), and reads
/// kube 1.33's definitions from it.
async fn kube_definitions() -> Map<String, Value> {
    static INSTALL: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    let dir = INSTALL
        .get_or_init(|| async {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kubernetes-validate-1.33.1");
            if !dir.join(DEFINITIONS).exists() {
                let status = tokio::process::Command::new("python3")
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                        "--root-user-action=ignore",
                        "--no-deps",
                        "--target",
                    ])
                    .arg(&dir)
                    .arg(KUBERNETES_VALIDATE)
                    .status()
                    .await
                    .expect("run pip");
                assert!(status.success(), "pip install {KUBERNETES_VALIDATE} failed");
            }
            dir
        })
        .await;
    let path = dir.join(DEFINITIONS);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut document: Value = serde_json::from_str(&text).expect("the definitions are JSON");
    match document["$defs"].take() {
        Value::Object(definitions) => definitions,
        _ => panic!("{} has no $defs", path.display()),
    }
}

/// One resource discovery lists.
#[derive(Debug)]
struct Resource {
    name: String,
    kind: String,
}

/// The resources discovery lists (subresources and Flotilla's own group left out), by group-version.
async fn served(server: &TestApiserver) -> BTreeMap<String, Vec<Resource>> {
    let mut group_versions = Vec::new();
    for version in raw(server, "/api").await["versions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        group_versions.push(version.as_str().expect("versions are strings").to_owned());
    }
    for group in raw(server, "/apis").await["groups"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if group["name"] == FEDERATION_GROUP {
            continue;
        }
        for version in group["versions"].as_array().into_iter().flatten() {
            group_versions.push(
                version["groupVersion"]
                    .as_str()
                    .expect("a groupVersion")
                    .to_owned(),
            );
        }
    }
    let mut served = BTreeMap::new();
    for group_version in group_versions {
        let prefix = if group_version.contains('/') {
            "/apis"
        } else {
            "/api"
        };
        let list = raw(server, &format!("{prefix}/{group_version}")).await;
        let resources = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["name"].as_str()?, r["kind"].as_str()?)))
            .filter(|(name, _)| !name.contains('/'))
            .map(|(name, kind)| Resource {
                name: name.to_owned(),
                kind: kind.to_owned(),
            })
            .collect();
        served.insert(group_version, resources);
    }
    let n_resources: usize = served.values().map(Vec::len).sum();
    assert!(
        n_resources > 20,
        "discovery lists only {n_resources} resources: {served:?}"
    );
    served
}

/// `kubectl get --raw path`, as JSON.
async fn raw(server: &TestApiserver, path: &str) -> Value {
    server
        .kubectl("1.33", &["get", "--raw", path])
        .await
        .unwrap()
        .ok()
        .json()
}

/// The path of a group-version's v3 document: `api/v1`, `apis/apps/v1`.
fn document_path(group_version: &str) -> String {
    if group_version.contains('/') {
        format!("apis/{group_version}")
    } else {
        format!("api/{group_version}")
    }
}

/// The definition whose `x-kubernetes-group-version-kind` names `kind` of `group_version`.
fn definition_of(definitions: &Map<String, Value>, group_version: &str, kind: &str) -> Option<String> {
    let (group, version) = group_version.rsplit_once('/').unwrap_or(("", group_version));
    let wanted = json!({"group": group, "version": version, "kind": kind});
    definitions
        .iter()
        .find(|(_, schema)| {
            schema["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|gvks| gvks.contains(&wanted))
        })
        .map(|(name, _)| name.clone())
}

/// The definition a schema refers to, by a bare `$ref` (kube's, and Flotilla's without siblings) or by the
/// `allOf` that carries it beside siblings in Flotilla's v3.
fn reference(node: &Value) -> Option<&str> {
    let reference = node
        .get("$ref")
        .or_else(|| node["allOf"].as_array().filter(|all| all.len() == 1)?[0].get("$ref"))?;
    reference.as_str()?.rsplit('/').next()
}

/// A schema's type, without the `null` openapi2jsonschema adds to optional fields.
fn schema_type(node: &Value) -> Option<String> {
    match node.get("type")? {
        Value::String(single) => Some(single.clone()),
        Value::Array(types) => {
            let types: Vec<&str> = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            Some(types.join(","))
        }
        _ => None,
    }
}

/// The types of a `oneOf`, sorted.
fn one_of_types(node: &Value) -> Vec<String> {
    let mut types: Vec<String> = node["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(schema_type)
        .collect();
    types.sort();
    types
}

/// Text with every run of whitespace made one space.
fn normalised(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn description(node: &Value) -> Option<String> {
    node.get("description").and_then(Value::as_str).map(normalised)
}

fn required(node: &Value) -> BTreeSet<&str> {
    node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// A node's `x-kubernetes-*` extensions, by name.
fn extensions(node: &Value) -> BTreeMap<&str, &Value> {
    node.as_object()
        .into_iter()
        .flatten()
        .filter(|(name, _)| name.starts_with("x-kubernetes-"))
        .map(|(name, value)| (name.as_str(), value))
        .collect()
}

/// A walk of kube's schemas beside Flotilla's, gathering every difference.
struct Comparison<'a> {
    kube: &'a Map<String, Value>,
    /// kube's definitions already compared (each is compared once, at the first path that reaches it).
    visited: BTreeSet<String>,
    differences: Vec<String>,
}

impl Comparison<'_> {
    /// Compares the field at `path` (its description and extensions, the definition it refers to, its schema).
    fn field(&mut self, path: &str, kube: &Value, ours: &Value, our_definitions: &Map<String, Value>) {
        let kube_definitions = self.kube;
        let (kube_description, our_description) = (description(kube), description(ours));
        if kube_description != our_description {
            self.differences.push(format!(
                "{path}: description\n  kube: {}\n  ours: {}",
                kube_description.as_deref().unwrap_or("(none)"),
                our_description.as_deref().unwrap_or("(none)")
            ));
        }
        self.extensions(path, kube, ours);
        match (reference(kube), reference(ours)) {
            (None, None) => self.schema(path, path, kube, ours, our_definitions),
            (Some(kube_name), Some(our_name)) if kube_name == our_name => {
                if !self.visited.insert(kube_name.to_owned()) {
                    return;
                }
                let (Some(kube_schema), Some(our_schema)) =
                    (kube_definitions.get(kube_name), our_definitions.get(our_name))
                else {
                    self.differences
                        .push(format!("{path}: {kube_name} is not defined on both sides"));
                    return;
                };
                let label = format!("{path} <{kube_name}>");
                if kube_schema.get("oneOf").is_some() {
                    // openapi2jsonschema's stand-in for IntOrString and Quantity: only the types are kube's.
                    self.same(
                        &label,
                        "types",
                        one_of_types(kube_schema),
                        one_of_types(our_schema),
                    );
                    return;
                }
                self.same(
                    &label,
                    "type description",
                    description(kube_schema),
                    description(our_schema),
                );
                self.extensions(&label, kube_schema, our_schema);
                self.schema(path, &label, kube_schema, our_schema, our_definitions);
            }
            (kube_name, our_name) => self.differences.push(format!(
                "{path}: refers to {} in kube, {} here",
                kube_name.unwrap_or("no definition"),
                our_name.unwrap_or("no definition")
            )),
        }
    }

    /// Compares two schemas (the value of the field at `path`, named `label` in messages): type, format, required
    /// fields, and each field, item and map value.
    fn schema(
        &mut self,
        path: &str,
        label: &str,
        kube: &Value,
        ours: &Value,
        our_definitions: &Map<String, Value>,
    ) {
        self.same(label, "type", schema_type(kube), schema_type(ours));
        self.same(label, "format", kube.get("format"), ours.get("format"));
        self.same(label, "required fields", required(kube), required(ours));
        let no_properties = Map::new();
        let kube_properties = kube["properties"].as_object().unwrap_or(&no_properties);
        let our_properties = ours["properties"].as_object().unwrap_or(&no_properties);
        for (name, kube_property) in kube_properties {
            match our_properties.get(name) {
                Some(our_property) => self.field(
                    &format!("{path}.{name}"),
                    kube_property,
                    our_property,
                    our_definitions,
                ),
                None => self.differences.push(format!("{path}.{name}: missing here")),
            }
        }
        for name in our_properties
            .keys()
            .filter(|name| !kube_properties.contains_key(*name))
        {
            self.differences.push(format!("{path}.{name}: not in kube"));
        }
        for (key, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
            match (
                kube.get(key).filter(|v| v.is_object()),
                ours.get(key).filter(|v| v.is_object()),
            ) {
                (Some(kube_inner), Some(our_inner)) => {
                    self.field(&format!("{path}{suffix}"), kube_inner, our_inner, our_definitions)
                }
                (None, None) => {}
                (kube_inner, our_inner) => self.differences.push(format!(
                    "{label}: {key} is {kube_inner:?} in kube, {our_inner:?} here"
                )),
            }
        }
    }

    /// Compares the `x-kubernetes-*` extensions of two nodes (a field's, or a definition's), each way.
    fn extensions(&mut self, label: &str, kube: &Value, ours: &Value) {
        let (kube, ours) = (extensions(kube), extensions(ours));
        let names: BTreeSet<&str> = kube.keys().chain(ours.keys()).copied().collect();
        for name in names {
            let (kube_value, our_value) = (kube.get(name), ours.get(name));
            if kube_value != our_value {
                let show =
                    |value: Option<&&Value>| value.map_or_else(|| "(none)".to_owned(), |v| v.to_string());
                self.differences.push(format!(
                    "{label}: {name}\n  kube: {}\n  ours: {}",
                    show(kube_value),
                    show(our_value)
                ));
            }
        }
    }

    fn same<T: PartialEq + std::fmt::Debug>(&mut self, path: &str, what: &str, kube: T, ours: T) {
        if kube != ours {
            self.differences
                .push(format!("{path}: {what}\n  kube: {kube:?}\n  ours: {ours:?}"));
        }
    }
}

/// The schema a field's values have: its definition, or its items' for a list.
fn value_schema<'a>(kube: &'a Map<String, Value>, field: &'a Value) -> (Option<&'a str>, &'a Value) {
    let resolve = |node: &'a Value| match reference(node) {
        Some(name) => (Some(name), kube.get(name).unwrap_or(&Value::Null)),
        None => (None, node),
    };
    let (name, schema) = resolve(field);
    match schema.get("items") {
        Some(items) if schema_type(schema).as_deref() == Some("array") => resolve(items),
        _ => (name, schema),
    }
}

/// The fields `kubectl explain --recursive` lists under `schema`, from kube's definitions: (dotted path, required).
/// `stack` holds the definitions being expanded, so that a recursive type would stop as kubectl stops.
fn explain_tree(
    kube: &Map<String, Value>,
    schema: &Value,
    prefix: &str,
    stack: &mut Vec<String>,
    fields: &mut BTreeSet<(String, bool)>,
) {
    let required_fields = required(schema);
    for (name, field) in schema["properties"].as_object().into_iter().flatten() {
        let path = format!("{prefix}{name}");
        fields.insert((path.clone(), required_fields.contains(name.as_str())));
        let (definition, inner) = value_schema(kube, field);
        if inner.get("properties").is_none() {
            continue;
        }
        if let Some(definition) = definition {
            if stack.iter().any(|d| d == definition) {
                continue;
            }
            stack.push(definition.to_owned());
        }
        explain_tree(kube, inner, &format!("{path}."), stack, fields);
        if definition.is_some() {
            stack.pop();
        }
    }
}

/// The fields under `FIELDS:` in `kubectl explain --recursive` output, nested by indentation: (dotted path,
/// whether marked `-required-`).
fn listed_fields(output: &str) -> BTreeSet<(String, bool)> {
    let mut fields = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    let mut step = 0;
    for line in output
        .lines()
        .skip_while(|line| !line.starts_with("FIELDS:"))
        .skip(1)
    {
        let Some((head, rest)) = line.split_once('\t') else {
            continue;
        };
        let indent = head.len() - head.trim_start().len();
        if step == 0 {
            step = indent.max(1);
        }
        stack.truncate((indent / step).saturating_sub(1));
        stack.push(head.trim().to_owned());
        fields.insert((stack.join("."), rest.contains("-required-")));
    }
    fields
}

/// What `listed` lacks of `expected`, and has beyond it.
fn set_differences(what: &str, expected: &BTreeSet<String>, listed: &BTreeSet<String>) -> Vec<String> {
    let missing: Vec<&String> = expected.difference(listed).collect();
    let extra: Vec<&String> = listed.difference(expected).collect();
    let mut differences = Vec::new();
    if !missing.is_empty() {
        differences.push(format!("{what}: does not list kube's {missing:?}"));
    }
    if !extra.is_empty() {
        differences.push(format!("{what}: lists {extra:?}, which kube does not have"));
    }
    differences
}

/// kube's descriptions `kubectl explain` prints for `path` under the kind `root`: the field's, then its type's.
fn kube_descriptions(kube: &Map<String, Value>, root: &str, path: &str) -> Vec<String> {
    let mut schema = &kube[root];
    let mut field_description = None;
    let mut type_description = None;
    for name in path.split('.') {
        let field = &schema["properties"][name];
        assert!(field.is_object(), "kube 1.33 has no {path} under {root}");
        let (definition, inner) = value_schema(kube, field);
        field_description = description(field);
        type_description = definition.and_then(|_| description(inner));
        schema = inner;
    }
    field_description.into_iter().chain(type_description).collect()
}
