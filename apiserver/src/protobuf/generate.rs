//! Generates `messages.rs`, the decoder's table, and proves the committed one current.
//!
//! Each fact has one source, and a fact that cannot be matched fails the test rather than being guessed:
//!
//! - tags, kinds and labels (repeated, map): k8s-pb's prost attributes (`#[prost(int32, optional, tag = "1")]`),
//!   read from the crate's source, which `cargo metadata` locates;
//! - JSON names and the message a field refers to: the OpenAPI definitions the apiserver serves (k8s-openapi's
//!   schemas). A field's JSON name is the property whose snake case is the prost
//!   field's name (both come from the same camel-case name through heck, as prost-build names fields), and the
//!   property's schema must agree with the field's kind;
//! - a field with no property of its own whose message's fields are all properties of the parent is Go's
//!   `json:",inline"` (such as `Volume.volumeSource`);
//! - how Go declares each singular scalar field (a pointer, `omitempty`, or neither), which decides whether a zero
//!   is kept: `go_fields.tsv`, facts read from the `types.go` files of k8s.io/api and k8s.io/apimachinery at the
//!   served version. It lists exactly the table's singular scalar fields, so a table that grows without it fails.
//!
//! k8s-pb 0.9.0 is generated from Kubernetes 1.35, two minors newer than the served 1.33, so its fields that the
//! served schemas lack are listed in [`NEWER_THAN_SERVED`] and left out (a 1.33 apiserver skips them too).
//!
//! Refresh `messages.rs` with `UPDATE_EXPECT=1 cargo test -p flotilla-apiserver protobuf::generate`. To refresh
//! `go_fields.tsv` as well, point `FLOTILLA_KUBE_SOURCES` at a directory holding `api/` and `apimachinery/`, those
//! repositories' trees at the served version's tag, for instance:
//!
//! ```text
//! git -C kubernetes-api archive v0.33.9 | tar -x -C "$dir/api"
//! git -C kubernetes-apimachinery archive v0.33.9 | tar -x -C "$dir/apimachinery"
//! FLOTILLA_KUBE_SOURCES="$dir" UPDATE_EXPECT=1 cargo test -p flotilla-apiserver protobuf::generate
//! ```
//!
//! Without `FLOTILLA_KUBE_SOURCES` the committed `go_fields.tsv` is used.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use heck::ToSnakeCase;
use serde_json::{Map, Value};

/// Fields of k8s-pb (Kubernetes 1.35) that the served 1.33 schemas do not have: (message, prost field). Each was
/// checked absent from k8s.io/api v0.33.9's types.go and present in v0.35.0's.
const NEWER_THAN_SERVED: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.Container", "restart_policy_rules"),
    ("io.k8s.api.core.v1.EnvVarSource", "file_key_ref"),
    (
        "io.k8s.api.core.v1.EphemeralContainerCommon",
        "restart_policy_rules",
    ),
    ("io.k8s.api.core.v1.PodSpec", "hostname_override"),
    ("io.k8s.api.core.v1.PodSpec", "workload_ref"),
    ("io.k8s.api.core.v1.VolumeProjection", "pod_certificate"),
];

const MESSAGES_RS: &str = "src/protobuf/messages.rs";
const GO_FIELDS_TSV: &str = "src/protobuf/go_fields.tsv";

/// The fields of a message as (prost name, tag, type).
type Layout = &'static [(&'static str, u32, &'static str)];

/// Kubernetes' messages whose JSON is not an object: definition, the decoder's kind, and the layout each must
/// have in k8s-pb.
const SPECIALS: &[(&str, &str, Layout)] = &[
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.Time",
        "Kind::Time",
        &[("seconds", 1, "int64"), ("nanos", 2, "int32")],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
        "Kind::MicroTime",
        &[("seconds", 1, "int64"), ("nanos", 2, "int32")],
    ),
    (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "Kind::Quantity",
        &[("string", 1, "string")],
    ),
    (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "Kind::IntOrString",
        &[
            ("type", 1, "int64"),
            ("int_val", 2, "int32"),
            ("str_val", 3, "string"),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
        "Kind::RawJson",
        &[("raw", 1, "bytes")],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1",
        "Kind::RawJson",
        &[("raw", 1, "bytes")],
    ),
];

/// A field as k8s-pb declares it.
#[derive(Clone, Debug)]
struct ProtoField {
    /// The prost name, without `r#`.
    name: String,
    tag: u32,
    label: Label,
    /// A scalar type name (`string`, `int32`, `bytes`…) or `message`.
    kind: String,
    /// For messages: the k8s-pb path of the message (`api::core::v1::PodSpec`).
    message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Optional,
    Repeated,
    Map,
}

/// A field of the generated table, before presence is known.
#[derive(Debug)]
struct TableField {
    tag: u32,
    json: String,
    shape: &'static str,
    /// The Rust expression of its kind.
    kind: String,
    /// A singular scalar: presence matters.
    singular_scalar: bool,
}

/// How Go declares a singular scalar field, which decides whether Go's JSON writes its zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GoField {
    /// `*int32` and the like: written whenever set, zero included.
    Pointer,
    /// A value with `omitempty`: a zero is left out.
    OmitEmpty,
    /// A value without `omitempty`: always written.
    Always,
}

impl GoField {
    fn name(self) -> &'static str {
        match self {
            GoField::Pointer => "pointer",
            GoField::OmitEmpty => "omitempty",
            GoField::Always => "always",
        }
    }
}

/// The Go declaration of each singular scalar field: (message, JSON name) → how it is declared.
type GoFields = BTreeMap<(String, String), GoField>;

#[test]
fn messages_rs_is_current() {
    let k8s_pb = K8sPb::load();
    let (_, definitions) = crate::openapi::definitions::build();
    let mut table = Table::new(&k8s_pb, &definitions);
    let roots = roots();
    for (_, _, definition) in &roots {
        table.visit_root(definition);
    }
    table.check_newer_than_served_is_used();

    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let go_fields = match std::env::var_os("FLOTILLA_KUBE_SOURCES") {
        Some(sources) => {
            let go_fields = go_fields_from_sources(&table, Path::new(&sources));
            check_or_update(&manifest_dir.join(GO_FIELDS_TSV), &render_go_fields(&go_fields));
            go_fields
        }
        None => read_go_fields(&manifest_dir.join(GO_FIELDS_TSV)),
    };
    let scalars: BTreeSet<(String, String)> = table
        .messages
        .iter()
        .flat_map(|(message, fields)| {
            fields
                .iter()
                .filter(|f| f.singular_scalar)
                .map(move |f| (message.clone(), f.json.clone()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = go_fields.keys().cloned().collect();
    assert!(
        scalars == listed,
        "go_fields.tsv is stale (refresh it with FLOTILLA_KUBE_SOURCES): it lacks {:?} and has extra {:?}",
        scalars.difference(&listed).collect::<Vec<_>>(),
        listed.difference(&scalars).collect::<Vec<_>>()
    );
    let rendered = render_messages(&table, &roots, &go_fields, &k8s_pb.version);
    check_or_update(&manifest_dir.join(MESSAGES_RS), &rendered);
}

/// Compares `path` with `expected`, or writes it when `UPDATE_EXPECT` is set.
fn check_or_update(path: &Path, expected: &str) {
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(path, expected).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is stale; refresh it with UPDATE_EXPECT=1 cargo test -p flotilla-apiserver protobuf::generate",
        path.display()
    );
}

/// Every kind a body may carry: (apiVersion, kind, definition). Flotilla's own group has no protobuf form
/// (as for custom resources, clients send it JSON), nodes exist only on simulated members, which create
/// them in JSON, and read-only kinds take no bodies.
fn roots() -> Vec<(String, String, String)> {
    let (kinds, _) = crate::openapi::definitions::build();
    let mut roots: Vec<(String, String, String)> = kinds
        .iter()
        .filter(|kind| has_protobuf(kind.group, kind.kind))
        .map(|kind| {
            let api_version = if kind.group.is_empty() {
                kind.version.to_owned()
            } else {
                format!("{}/{}", kind.group, kind.version)
            };
            (api_version, kind.kind.to_owned(), kind.definition.clone())
        })
        .collect();
    roots.push((
        "autoscaling/v1".to_owned(),
        "Scale".to_owned(),
        crate::openapi::definitions::SCALE.to_owned(),
    ));
    roots
}

/// Whether bodies of this kind may come as protobuf.
pub fn has_protobuf(group: &str, kind: &str) -> bool {
    group != flotilla_api::federation::GROUP
        && kind != "Node"
        && flotilla_api::resources::RESOURCES
            .iter()
            .any(|r| r.group == group && r.kind == kind && r.is_writable())
}

/// k8s-pb's messages, by path (`api::apps::v1::Deployment`).
struct K8sPb {
    version: String,
    messages: HashMap<String, Vec<ProtoField>>,
}

impl K8sPb {
    fn load() -> Self {
        let (version, src) = locate_k8s_pb();
        let mut messages = HashMap::new();
        let mut files = Vec::new();
        collect_rs_files(&src, &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).expect("found under src");
            let mut module: Vec<String> = relative
                .parent()
                .map(|p| p.iter().map(|s| s.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let stem = relative.file_stem().expect("a file name").to_string_lossy();
            if stem != "mod" && stem != "lib" {
                module.push(stem.into_owned());
            }
            let text = std::fs::read_to_string(&file).expect("read k8s-pb source");
            let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {}: {e}", file.display()));
            for item in parsed.items {
                if let syn::Item::Struct(item) = item {
                    let fields = proto_fields(&item, &module);
                    if !fields.is_empty() {
                        let mut path = module.clone();
                        path.push(item.ident.to_string());
                        messages.insert(path.join("::"), fields);
                    }
                }
            }
        }
        assert!(
            messages.len() > 500,
            "k8s-pb's source yielded only {} messages",
            messages.len()
        );
        K8sPb { version, messages }
    }

    /// The path of an OpenAPI definition's message: `io.k8s.api.core.v1.HTTPGetAction` is
    /// `api::core::v1::HttpGetAction`. Names are compared without case: prost camel-cases acronyms, and k8s-pb
    /// keeps some of them (`DownwardAPIVolumeSource`).
    fn path_of(&self, definition: &str) -> String {
        let rest = definition
            .strip_prefix("io.k8s.")
            .unwrap_or_else(|| panic!("{definition} is not a Kubernetes definition"));
        let (package, name) = rest.rsplit_once('.').expect("a package and a name");
        let prefix = format!("{}::", package.replace('.', "::"));
        let found: Vec<&String> = self
            .messages
            .keys()
            .filter(|path| {
                path.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(name))
            })
            .collect();
        match found.as_slice() {
            [path] => (*path).clone(),
            other => panic!("{definition} is {other:?} in k8s-pb"),
        }
    }

    fn message(&self, path: &str) -> &[ProtoField] {
        self.messages
            .get(path)
            .unwrap_or_else(|| panic!("k8s-pb has no message {path}"))
    }
}

/// k8s-pb's version and `src` directory, from `cargo metadata` (for the host platform only, so nothing is
/// downloaded that the build did not need, and `--locked`, so it never rewrites `Cargo.lock`).
fn locate_k8s_pb() -> (String, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let rustc = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let rustc = String::from_utf8_lossy(&rustc.stdout).into_owned();
    let host = rustc
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--locked",
            "--format-version",
            "1",
            "--filter-platform",
            host,
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-pb")
        .expect("k8s-pb is a dependency");
    let manifest_path = PathBuf::from(package["manifest_path"].as_str().expect("a manifest path"));
    let version = package["version"].as_str().expect("a version").to_owned();
    (
        version,
        manifest_path.parent().expect("a package directory").join("src"),
    )
}

fn collect_rs_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_rs_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The fields of one prost struct, from their `#[prost(...)]` attributes.
fn proto_fields(item: &syn::ItemStruct, module: &[String]) -> Vec<ProtoField> {
    let mut fields = Vec::new();
    for field in &item.fields {
        let Some(attr) = field.attrs.iter().find(|a| a.path().is_ident("prost")) else {
            continue;
        };
        let metas = attr
            .parse_args_with(syn::punctuated::Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
            .expect("a prost attribute is a list");
        let mut tag = None;
        let mut kind = None;
        let mut label = Label::Optional;
        for meta in metas {
            match meta {
                syn::Meta::Path(path) => {
                    let word = path.get_ident().expect("a plain word").to_string();
                    match word.as_str() {
                        "optional" | "boxed" => {}
                        "repeated" => label = Label::Repeated,
                        other => kind = Some(other.to_owned()),
                    }
                }
                syn::Meta::NameValue(pair) => {
                    let name = pair.path.get_ident().expect("a plain name").to_string();
                    let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(value),
                        ..
                    }) = &pair.value
                    else {
                        panic!("prost {name} is not a string");
                    };
                    match name.as_str() {
                        "tag" => tag = Some(value.value().parse::<u32>().expect("a numeric tag")),
                        "bytes" => kind = Some("bytes".to_owned()),
                        "btree_map" | "map" | "hash_map" => {
                            let value = value.value();
                            let (key, val) = value.split_once(',').expect("a key and a value type");
                            assert_eq!(key.trim(), "string", "map keys are strings");
                            label = Label::Map;
                            kind = Some(val.trim().to_owned());
                        }
                        "packed" => {}
                        other => panic!("unexpected prost attribute {other}"),
                    }
                }
                syn::Meta::List(list) => panic!("unexpected prost attribute {:?}", list.path.get_ident()),
            }
        }
        let kind = kind.expect("a prost field has a type");
        let message = (kind == "message").then(|| message_path(&field.ty, module));
        let ident = field.ident.as_ref().expect("named fields").to_string();
        fields.push(ProtoField {
            name: ident.trim_start_matches("r#").to_owned(),
            tag: tag.expect("a prost field has a tag"),
            label,
            kind,
            message,
        });
    }
    fields
}

/// The k8s-pb path of the message in a field's type (inside `Option`, `Vec`, `Box` or a map's value).
fn message_path(ty: &syn::Type, module: &[String]) -> String {
    let syn::Type::Path(type_path) = ty else {
        panic!("unexpected field type");
    };
    let last = type_path.path.segments.last().expect("a type name");
    let name = last.ident.to_string();
    if matches!(name.as_str(), "Option" | "Vec" | "Box" | "BTreeMap" | "HashMap") {
        let syn::PathArguments::AngleBracketed(arguments) = &last.arguments else {
            panic!("{name} without arguments");
        };
        let inner = arguments
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(ty) => Some(ty),
                _ => None,
            })
            .last()
            .expect("a type argument");
        return message_path(inner, module);
    }
    let mut path: Vec<String> = module.to_vec();
    for segment in &type_path.path.segments {
        match segment.ident.to_string().as_str() {
            "super" => {
                path.pop().expect("super within the crate");
            }
            "crate" => path.clear(),
            other => path.push(other.to_owned()),
        }
    }
    path.join("::")
}

/// The JSON properties whose snake case is a prost field's name. Where heck splits an acronym differently
/// from k8s-pb's names (`clusterIPs` is `cluster_i_ps` to heck, `cluster_ips` in k8s-pb), the names are
/// compared without case and underscores instead.
fn matching_properties<'m>(properties: &'m Map<String, Value>, prost_name: &str) -> Vec<&'m String> {
    let exact: Vec<&String> = properties
        .keys()
        .filter(|json| json.to_snake_case() == prost_name)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let loose = |name: &str| name.replace('_', "").to_lowercase();
    properties
        .keys()
        .filter(|json| loose(json) == loose(prost_name))
        .collect()
}

/// The table being built: messages by name, each with its fields.
struct Table<'a> {
    k8s_pb: &'a K8sPb,
    definitions: &'a Map<String, Value>,
    messages: BTreeMap<String, Vec<TableField>>,
    /// Which [`NEWER_THAN_SERVED`] entries were needed.
    newer_used: BTreeSet<(String, String)>,
}

impl<'a> Table<'a> {
    fn new(k8s_pb: &'a K8sPb, definitions: &'a Map<String, Value>) -> Self {
        Table {
            k8s_pb,
            definitions,
            messages: BTreeMap::new(),
            newer_used: BTreeSet::new(),
        }
    }

    fn definition(&self, name: &str) -> &'a Map<String, Value> {
        self.definitions
            .get(name)
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("no OpenAPI definition {name}"))
    }

    fn visit_root(&mut self, definition: &str) {
        let pb_path = self.k8s_pb.path_of(definition);
        self.visit(definition, &pb_path, definition);
    }

    /// Adds message `name` (k8s-pb `pb_path`), whose JSON properties are those of `schema_of` (the message's
    /// own definition, or its parent's for an inline message), then every message it refers to.
    fn visit(&mut self, name: &str, pb_path: &str, schema_of: &str) {
        if self.messages.contains_key(name) {
            return;
        }
        self.messages.insert(name.to_owned(), Vec::new());
        let schema = self.definition(schema_of);
        let empty = Map::new();
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let mut fields = Vec::new();
        let mut covered = BTreeSet::new();
        let k8s_pb = self.k8s_pb;
        for proto in k8s_pb.message(pb_path) {
            let matches = matching_properties(properties, &proto.name);
            let json = match matches.as_slice() {
                [json] => (*json).clone(),
                [] if self.is_newer_than_served(name, &proto.name) => continue,
                [] if self.is_inline(proto, properties) => {
                    let inline_pb = proto.message.as_deref().expect("inline fields are messages");
                    let (package, struct_name) = inline_pb.rsplit_once("::").expect("a module path");
                    let inline_name = format!("io.k8s.{}.{struct_name}", package.replace("::", "."));
                    for inner in k8s_pb.message(inline_pb) {
                        covered.extend(matching_properties(properties, &inner.name).into_iter().cloned());
                    }
                    self.visit(&inline_name, inline_pb, schema_of);
                    fields.push(TableField {
                        tag: proto.tag,
                        json: String::new(),
                        shape: "Shape::Inline",
                        kind: format!("Kind::Message({inline_name:?})"),
                        singular_scalar: false,
                    });
                    continue;
                }
                [] => panic!(
                    "{name}: the protobuf field {} (tag {}) matches no JSON property of {schema_of}; if Kubernetes \
                     added it after the served version, list it in NEWER_THAN_SERVED",
                    proto.name, proto.tag
                ),
                several => panic!("{name}: the protobuf field {} matches {several:?}", proto.name),
            };
            covered.insert(json.clone());
            let property = &properties[&json];
            let (shape, element) = match proto.label {
                Label::Optional => ("Shape::One", property),
                Label::Repeated => {
                    assert_eq!(
                        property["type"], "array",
                        "{name}.{json} is repeated but not an array"
                    );
                    ("Shape::Repeated", &property["items"])
                }
                Label::Map => {
                    assert_eq!(
                        property["type"], "object",
                        "{name}.{json} is a map but not an object"
                    );
                    ("Shape::Map", &property["additionalProperties"])
                }
            };
            let kind = self.kind(name, &json, proto, element);
            fields.push(TableField {
                tag: proto.tag,
                singular_scalar: proto.label == Label::Optional && proto.kind != "message",
                json,
                shape,
                kind,
            });
        }
        // Every property of an object's own definition must come from some field.
        if name == schema_of {
            for json in properties.keys() {
                assert!(
                    covered.contains(json) || json == "apiVersion" || json == "kind",
                    "{name}: the JSON property {json} has no protobuf field"
                );
            }
        }
        fields.sort_by_key(|f| f.tag);
        self.messages.insert(name.to_owned(), fields);
    }

    fn is_newer_than_served(&mut self, message: &str, field: &str) -> bool {
        let listed = NEWER_THAN_SERVED.contains(&(message, field));
        if listed {
            self.newer_used.insert((message.to_owned(), field.to_owned()));
        }
        listed
    }

    /// A message field without a property of its own whose fields are all the parent's properties (or newer
    /// than the served version).
    fn is_inline(&self, proto: &ProtoField, properties: &Map<String, Value>) -> bool {
        let Some(inline_pb) = proto.message.as_deref() else {
            return false;
        };
        if proto.label != Label::Optional {
            return false;
        }
        let (package, struct_name) = inline_pb.rsplit_once("::").expect("a module path");
        let inline_name = format!("io.k8s.{}.{struct_name}", package.replace("::", "."));
        self.k8s_pb.message(inline_pb).iter().all(|inner| {
            !matching_properties(properties, &inner.name).is_empty()
                || NEWER_THAN_SERVED.contains(&(inline_name.as_str(), inner.name.as_str()))
        })
    }

    fn check_newer_than_served_is_used(&self) {
        for (message, field) in NEWER_THAN_SERVED {
            assert!(
                self.newer_used
                    .contains(&((*message).to_owned(), (*field).to_owned())),
                "NEWER_THAN_SERVED lists {message}.{field}, which the table no longer meets"
            );
        }
    }

    /// The Rust expression of the kind of field `json` of `message`, checked against its JSON schema.
    fn kind(&mut self, message: &str, json: &str, proto: &ProtoField, schema: &Value) -> String {
        let schema_type = schema.get("type").and_then(Value::as_str);
        let format = schema.get("format").and_then(Value::as_str);
        let (kind, expected) = match proto.kind.as_str() {
            "string" => ("Kind::String", (Some("string"), None)),
            "bytes" => ("Kind::Bytes", (Some("string"), Some("byte"))),
            "int32" => ("Kind::Int32", (Some("integer"), Some("int32"))),
            "int64" => ("Kind::Int64", (Some("integer"), Some("int64"))),
            "bool" => ("Kind::Bool", (Some("boolean"), None)),
            "message" => return self.message_kind(message, json, proto, schema),
            other => panic!("{message}.{json}: unexpected protobuf type {other}"),
        };
        assert_eq!(
            (schema_type, format),
            expected,
            "{message}.{json}: the JSON schema {schema} does not fit protobuf {}",
            proto.kind
        );
        kind.to_owned()
    }

    fn message_kind(&mut self, message: &str, json: &str, proto: &ProtoField, schema: &Value) -> String {
        let target = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .unwrap_or_else(|| panic!("{message}.{json}: a message field without a $ref: {schema}"));
        let pb_path = proto.message.as_deref().expect("message fields have a type");
        assert_eq!(
            self.k8s_pb.path_of(target),
            pb_path,
            "{message}.{json}: the JSON schema and k8s-pb disagree on the message"
        );
        if let Some((_, kind, layout)) = SPECIALS.iter().find(|(name, _, _)| *name == target) {
            let fields: Vec<(&str, u32, &str)> = self
                .k8s_pb
                .message(pb_path)
                .iter()
                .map(|f| (f.name.as_str(), f.tag, f.kind.as_str()))
                .collect();
            assert_eq!(fields, *layout, "{target} changed its layout in k8s-pb");
            return (*kind).to_owned();
        }
        self.visit(target, pb_path, target);
        format!("Kind::Message({target:?})")
    }
}

fn read_go_fields(path: &Path) -> GoFields {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let [message, json, declared] = columns[..] else {
                panic!("{}: expected three columns in {line:?}", path.display());
            };
            let declared = [GoField::Pointer, GoField::OmitEmpty, GoField::Always]
                .into_iter()
                .find(|d| d.name() == declared)
                .unwrap_or_else(|| panic!("{}: unknown declaration {declared:?}", path.display()));
            ((message.to_owned(), json.to_owned()), declared)
        })
        .collect()
}

fn render_go_fields(go_fields: &GoFields) -> String {
    let mut out = String::from(
        "# How Go declares each singular scalar field of the protobuf decoder's messages, read from the types.go\n\
         # files of k8s.io/api and k8s.io/apimachinery v0.33.9 by apiserver/src/protobuf/generate.rs.\n\
         # Columns: message (OpenAPI definition name), JSON name, declaration: pointer (an explicit zero is a value),\n\
         # omitempty (a zero is absent), always (no omitempty: Go's JSON writes the zero).\n",
    );
    for ((message, json), declared) in go_fields {
        writeln!(out, "{message}\t{json}\t{}", declared.name()).expect("write to a string");
    }
    out
}

/// How Go declares each of the table's singular scalar fields, from the struct definitions in `sources`.
fn go_fields_from_sources(table: &Table<'_>, sources: &Path) -> GoFields {
    let mut packages: HashMap<PathBuf, HashMap<String, HashMap<String, GoField>>> = HashMap::new();
    let mut go_fields = GoFields::new();
    for (message, fields) in &table.messages {
        let scalars: Vec<&TableField> = fields.iter().filter(|f| f.singular_scalar).collect();
        if scalars.is_empty() {
            continue;
        }
        let rest = message.strip_prefix("io.k8s.").expect("a Kubernetes message");
        let (package, go_struct) = rest.rsplit_once('.').expect("a package and a name");
        let dir = sources.join(package.replace('.', "/"));
        let structs = packages.entry(dir.clone()).or_insert_with(|| go_structs(&dir));
        let declared = structs
            .get(go_struct)
            .unwrap_or_else(|| panic!("no Go struct {go_struct} in {}", dir.display()));
        for field in scalars {
            let declaration = declared.get(&field.json).unwrap_or_else(|| {
                panic!("Go struct {go_struct} has no field with JSON name {}", field.json)
            });
            go_fields.insert((message.clone(), field.json.clone()), *declaration);
        }
    }
    go_fields
}

/// The structs of one Go package: for each, its fields by JSON name and how each is declared.
fn go_structs(dir: &Path) -> HashMap<String, HashMap<String, GoField>> {
    let mut structs = HashMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        if !name.ends_with(".go") || name.ends_with("_test.go") || name.contains("generated") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a Go file");
        let mut current: Option<(String, HashMap<String, GoField>)> = None;
        for line in text.lines() {
            if let Some(name) = line
                .strip_prefix("type ")
                .and_then(|rest| rest.strip_suffix(" struct {"))
            {
                current = Some((name.trim().to_owned(), HashMap::new()));
            } else if line == "}" {
                if let Some((name, fields)) = current.take() {
                    structs.insert(name, fields);
                }
            } else if let Some((_, fields)) = current.as_mut() {
                let trimmed = line.trim();
                if trimmed.starts_with("//") {
                    continue;
                }
                let mut words = trimmed.split_whitespace();
                let (Some(_field), Some(go_type)) = (words.next(), words.next()) else {
                    continue;
                };
                let Some(json_tag) = trimmed
                    .split("json:\"")
                    .nth(1)
                    .and_then(|tag| tag.split('"').next())
                else {
                    continue;
                };
                let mut options = json_tag.split(',');
                let json = options.next().unwrap_or_default();
                let declared = if go_type.starts_with('*') {
                    GoField::Pointer
                } else if options.any(|option| option == "omitempty") {
                    GoField::OmitEmpty
                } else {
                    GoField::Always
                };
                if !json.is_empty() && json != "-" {
                    fields.insert(json.to_owned(), declared);
                }
            }
        }
    }
    structs
}

fn render_messages(
    table: &Table<'_>,
    roots: &[(String, String, String)],
    go_fields: &GoFields,
    k8s_pb_version: &str,
) -> String {
    let mut out = format!(
        "//! The protobuf decoder's message table, generated by `generate.rs` from k8s-pb {k8s_pb_version}, the \
         served OpenAPI\n\
         //! definitions and `go_fields.tsv`. Do not edit; refresh with\n\
         //! `UPDATE_EXPECT=1 cargo test -p flotilla-apiserver protobuf::generate`.\n\
         \n\
         use super::table::{{Field, Kind, Message, Presence, Root, Shape}};\n\
         \n\
         pub static ROOTS: &[Root] = &[\n"
    );
    for (api_version, kind, message) in roots {
        writeln!(
            out,
            "    Root {{ api_version: {api_version:?}, kind: {kind:?}, message: {message:?} }},"
        )
        .expect("write to a string");
    }
    out.push_str("];\n\npub static MESSAGES: &[Message] = &[\n");
    for (message, fields) in &table.messages {
        writeln!(out, "    Message {{ name: {message:?}, fields: &[").expect("write to a string");
        for field in fields {
            let presence = match go_fields.get(&(message.clone(), field.json.clone())) {
                Some(GoField::Pointer) => "Presence::Pointer",
                Some(GoField::Always) => "Presence::Always",
                Some(GoField::OmitEmpty) | None => "Presence::OmitEmpty",
            };
            writeln!(
                out,
                "        Field {{ tag: {}, json: {:?}, shape: {}, kind: {}, presence: {presence} }},",
                field.tag, field.json, field.shape, field.kind
            )
            .expect("write to a string");
        }
        out.push_str("    ] },\n");
    }
    out.push_str("];\n");
    out
}
