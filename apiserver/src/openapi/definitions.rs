//! The schema definitions of the OpenAPI documents: generated from the k8s-openapi Rust types Flotilla serves
//! (their `schemars` schemas carry kube's names, descriptions and structure), plus what those schemas lack: the
//! list types, and the `x-kubernetes-*` extensions (group-version-kind, patch merge keys and strategies, list and
//! map types, unions) from `extensions.tsv`, the facts kube's 1.33 spec holds for these types. Each of its rows is
//! (definition, field, extension, value): an empty field puts the extension on the definition itself (a kind's
//! `gvk`, a struct's `map-type`), and a value that parses as JSON is that JSON, any other a string. Where
//! k8s-openapi's schemas differ from kube's (the types of `IntOrString` and `Quantity`, fields kube leaves
//! optional), kube's forms are put back.
//! `conformance-tests/tests/conformance/explain.rs` compares the result, extensions included, with kube 1.33's own
//! schemas.
//! Server-side apply reads the result too ([`Schema`]): which maps and structs kube treats as atomic.

use std::sync::OnceLock;

use flotilla_api::resources::Profile;
use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, networking, rbac};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// One served kind and the names of its definitions.
#[derive(Clone, Debug)]
pub struct ServedKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Definition name of the object, such as `io.k8s.api.apps.v1.Deployment`.
    pub definition: String,
    /// Definition name of its list.
    pub list_definition: String,
}

const EXTENSIONS: &str = include_str!("extensions.tsv");

pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// Apimachinery's scalar unions, which kube-openapi writes in two forms: a type and format in v2
/// (`OpenAPISchemaType`, `OpenAPISchemaFormat`), a `oneOf` of types in v3 (`OpenAPIV3OneOfTypes`). k8s-openapi
/// writes them as a CRD schema would (`x-kubernetes-int-or-string`, no type), which kubectl's v2 `explain` prints
/// as `port <>`. Each is (definition, v2 type, format, v3 types).
const SCALAR_UNIONS: &[(&str, &str, Option<&str>, &[&str])] = &[
    (
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "string",
        Some("int-or-string"),
        &["integer", "string"],
    ),
    (
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        "string",
        None,
        &["string", "number"],
    ),
];

/// Fields k8s-openapi's schemas list as required because its Rust types hold them as plain values, where kube's
/// spec leaves them optional (and `kubectl explain` would mark them `-required-`): besides the `metadata` of every
/// kind but [`METADATA_REQUIRED`], the `name` of the references that inline `LocalObjectReference` (a string
/// defaulting to "" since kube 1.30).
const OPTIONAL_IN_KUBE: &[(&str, &str)] = &[
    ("io.k8s.api.core.v1.ConfigMapEnvSource", "name"),
    ("io.k8s.api.core.v1.ConfigMapKeySelector", "name"),
    ("io.k8s.api.core.v1.ConfigMapProjection", "name"),
    ("io.k8s.api.core.v1.ConfigMapVolumeSource", "name"),
    ("io.k8s.api.core.v1.LocalObjectReference", "name"),
    ("io.k8s.api.core.v1.SecretEnvSource", "name"),
    ("io.k8s.api.core.v1.SecretKeySelector", "name"),
    ("io.k8s.api.core.v1.SecretProjection", "name"),
];

/// The one served kind whose `metadata` kube's spec requires too (its Go field has no `omitempty`).
const METADATA_REQUIRED: &str = "io.k8s.api.core.v1.Event";

fn served<T: JsonSchema + k8s_openapi::Resource>(generator: &mut SchemaGenerator) -> ServedKind {
    generator.subschema_for::<T>();
    let definition = T::schema_name().into_owned();
    ServedKind {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_definition: format!("{definition}List"),
        definition,
    }
}

/// Every served kind and all definitions they need, extensions applied.
pub fn build() -> (Vec<ServedKind>, Map<String, Value>) {
    let settings = schemars::generate::SchemaSettings::draft07().with(|settings| {
        settings.meta_schema = None;
        // Keep `$ref` siblings (descriptions) as kube's v2 document does; v3 wraps them in `allOf`.
        settings.transforms.clear();
    });
    let mut generator = settings.into_generator();
    let kinds = vec![
        served::<core::v1::Namespace>(&mut generator),
        served::<core::v1::ConfigMap>(&mut generator),
        served::<core::v1::Secret>(&mut generator),
        served::<core::v1::Service>(&mut generator),
        served::<core::v1::Event>(&mut generator),
        served::<core::v1::ServiceAccount>(&mut generator),
        served::<apps::v1::Deployment>(&mut generator),
        served::<apps::v1::ReplicaSet>(&mut generator),
        served::<apps::v1::DaemonSet>(&mut generator),
        served::<apps::v1::StatefulSet>(&mut generator),
        served::<batch::v1::Job>(&mut generator),
        served::<autoscaling::v2::HorizontalPodAutoscaler>(&mut generator),
        served::<autoscaling::v1::HorizontalPodAutoscaler>(&mut generator),
        served::<networking::v1::Ingress>(&mut generator),
        served::<rbac::v1::ClusterRole>(&mut generator),
        served::<rbac::v1::ClusterRoleBinding>(&mut generator),
        served::<rbac::v1::Role>(&mut generator),
        served::<rbac::v1::RoleBinding>(&mut generator),
        served::<coordination::v1::Lease>(&mut generator),
        served::<core::v1::Node>(&mut generator),
        served::<core::v1::Pod>(&mut generator),
        served::<core::v1::ReplicationController>(&mut generator),
        served::<core::v1::Endpoints>(&mut generator),
        served::<core::v1::PersistentVolumeClaim>(&mut generator),
        served::<core::v1::PersistentVolume>(&mut generator),
        served::<batch::v1::CronJob>(&mut generator),
        served::<flotilla_api::federation::Cluster>(&mut generator),
    ];
    generator.subschema_for::<meta::Status>();
    generator.subschema_for::<meta::DeleteOptions>();
    generator.subschema_for::<meta::ListMeta>();
    generator.subschema_for::<autoscaling::v1::Scale>();
    let mut definitions = generator.take_definitions(false);
    for schema in definitions.values_mut() {
        without_null_types(schema);
    }
    for (name, v2_type, format, _) in SCALAR_UNIONS {
        if let Some(schema) = definitions.get_mut(*name) {
            *schema = scalar_union(schema, json!({"type": v2_type}), *format);
        }
    }
    let metadata = kinds
        .iter()
        .filter(|kind| kind.definition != METADATA_REQUIRED)
        .map(|kind| (kind.definition.as_str(), "metadata"));
    for (name, field) in metadata.chain(OPTIONAL_IN_KUBE.iter().copied()) {
        if let Some(schema) = definitions.get_mut(name) {
            not_required(schema, field);
        }
    }
    for kind in &kinds {
        definitions.insert(kind.list_definition.clone(), list_schema(kind));
    }
    definitions.insert(
        PATCH.to_owned(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    definitions.insert(
        WATCH_EVENT.to_owned(),
        json!({
            "description": "Event represents a single event to a watched resource.",
            "type": "object",
            "required": ["type", "object"],
            "properties": {
                "object": {"description": "Object is: * If Type is Added or Modified: the new state of the object. * If Type is Deleted: the state of the object immediately before deletion. * If Type is Error: *Status is recommended; other types may make sense depending on context.", "type": "object"},
                "type": {"type": "string"}
            }
        }),
    );
    apply_extensions(&mut definitions);
    (kinds, definitions)
}

/// The result of [`build`], built once per process, for the documents and for what reads the schemas while
/// serving.
pub fn built() -> &'static (Vec<ServedKind>, Map<String, Value>) {
    static BUILT: OnceLock<(Vec<ServedKind>, Map<String, Value>)> = OnceLock::new();
    BUILT.get_or_init(build)
}

/// A place in the served schemas, followed down an object field by field (a field, a map value, a list's items):
/// the schema there as a field has it (a `$ref` with the field's own extensions, or the schema inline), or
/// nothing past where the schemas stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Schema(Option<&'static Value>);

impl Schema {
    /// The schema of a kind's objects, if it is served.
    pub fn of_kind(group: &str, version: &str, kind: &str) -> Schema {
        let (kinds, definitions) = built();
        Schema(
            kinds
                .iter()
                .find(|k| k.group == group && k.version == version && k.kind == kind)
                .and_then(|k| definitions.get(&k.definition)),
        )
    }

    /// The schema of the field `name`, or of a map's values.
    pub fn field(self, name: &str) -> Schema {
        let Some(schema) = self.resolved() else {
            return Schema(None);
        };
        let property = schema.get("properties").and_then(|p| p.get(name));
        Schema(property.or_else(|| schema.get("additionalProperties").filter(|v| v.is_object())))
    }

    /// The schema of a list's items.
    pub fn items(self) -> Schema {
        Schema(self.resolved().and_then(|schema| schema.get("items")))
    }

    /// Whether kube treats the map or struct here as one value (`x-kubernetes-map-type: atomic`): the field's own
    /// extension decides (`claimRef` is `granular` where its type is atomic), else its type's.
    pub fn is_atomic(self) -> bool {
        fn map_type(schema: &Value) -> Option<&str> {
            schema.get("x-kubernetes-map-type").and_then(Value::as_str)
        }
        let own = self.0.and_then(map_type);
        own.or_else(|| self.resolved().and_then(map_type)) == Some("atomic")
    }

    /// The definition a `$ref` names, or the schema itself.
    fn resolved(self) -> Option<&'static Value> {
        let schema = self.0?;
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next()?;
                built().1.get(name)
            }
            None => Some(schema),
        }
    }
}

/// Optional fields are simply not required in kube's schemas: schemars writes `Option<T>` as
/// `"type": [T, "null"]` (or `anyOf` with a null schema), which kubectl rejects ("definitions with multiple
/// types aren't supported"). Only Flotilla's own types have them; k8s-openapi's schemas have none.
fn without_null_types(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get("type") {
                let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if rest.len() == 1 {
                    map.insert("type".to_owned(), rest[0].clone());
                }
            }
            if let Some(Value::Array(options)) = map.get("anyOf") {
                let rest: Vec<Value> = options
                    .iter()
                    .filter(|o| o.get("type") != Some(&json!("null")))
                    .cloned()
                    .collect();
                if rest.len() == 1 {
                    map.remove("anyOf");
                    if let Value::Object(only) = &rest[0] {
                        for (key, value) in only {
                            map.entry(key.clone()).or_insert_with(|| value.clone());
                        }
                    }
                }
            }
            for value in map.values_mut() {
                without_null_types(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_null_types),
        _ => {}
    }
}

/// The v3 forms of the scalar unions (see [`SCALAR_UNIONS`]) in place of the v2 ones.
pub fn v3_scalar_unions(schemas: &mut Map<String, Value>) {
    for (name, _, format, v3_types) in SCALAR_UNIONS {
        if let Some(schema) = schemas.get_mut(*name) {
            let one_of: Vec<Value> = v3_types.iter().map(|t| json!({"type": t})).collect();
            *schema = scalar_union(schema, json!({"oneOf": one_of}), *format);
        }
    }
}

/// `form` (a type or a `oneOf`) with `schema`'s description and `format`.
fn scalar_union(schema: &Value, mut form: Value, format: Option<&str>) -> Value {
    if let Some(description) = schema.get("description") {
        form["description"] = description.clone();
    }
    if let Some(format) = format {
        form["format"] = json!(format);
    }
    form
}

/// Takes `field` out of `schema`'s `required`, and drops the list when that empties it.
fn not_required(schema: &mut Value, field: &str) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(required)) = map.get_mut("required") {
        required.retain(|name| name != field);
        if required.is_empty() {
            map.remove("required");
        }
    }
}

fn list_schema(kind: &ServedKind) -> Value {
    json!({
        "description": format!("{}List is a list of {}.", kind.kind, kind.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": "APIVersion defines the versioned schema of this representation of an object.", "type": "string"},
            "items": {"description": format!("Items is the list of {}.", kind.kind), "type": "array", "items": {"$ref": format!("#/definitions/{}", kind.definition)}},
            "kind": {"description": "Kind is a string value representing the REST resource this object represents.", "type": "string"},
            "metadata": {"description": "Standard list metadata.", "$ref": format!("#/definitions/{LIST_META}")}
        }
    })
}

fn apply_extensions(definitions: &mut Map<String, Value>) {
    for line in EXTENSIONS.lines().skip(1) {
        let mut columns = line.split('\t');
        let (Some(definition), Some(field), Some(extension), Some(value)) =
            (columns.next(), columns.next(), columns.next(), columns.next())
        else {
            continue;
        };
        let Some(schema) = definitions.get_mut(definition).and_then(Value::as_object_mut) else {
            continue;
        };
        let value: Value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        let name = match extension {
            "gvk" => "x-kubernetes-group-version-kind".to_owned(),
            other => format!("x-kubernetes-{other}"),
        };
        if field.is_empty() {
            schema.insert(name, value);
        } else if let Some(property) = schema
            .get_mut("properties")
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            property.insert(name, value);
        }
    }
    // The list types and the shared meta types carry their kinds too.
    let gvk =
        |group: &str, version: &str, kind: &str| json!([{"group": group, "kind": kind, "version": version}]);
    for (name, value) in [
        (STATUS, gvk("", "v1", "Status")),
        (SCALE, gvk("autoscaling", "v1", "Scale")),
        (DELETE_OPTIONS, delete_options_kinds()),
    ] {
        if let Some(schema) = definitions.get_mut(name).and_then(Value::as_object_mut) {
            schema.entry("x-kubernetes-group-version-kind").or_insert(value);
        }
    }
}

/// DeleteOptions is accepted in every served group-version.
fn delete_options_kinds() -> Value {
    let mut kinds: Vec<Value> = flotilla_api::resources::groups(Profile::Federation)
        .into_iter()
        .flat_map(|(group, versions)| {
            versions
                .into_iter()
                .map(move |version| json!({"group": group, "kind": "DeleteOptions", "version": version}))
        })
        .collect();
    kinds.dedup();
    Value::Array(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_carry_kube_names_and_extensions() {
        let (kinds, definitions) = build();
        assert_eq!(
            kinds.len(),
            flotilla_api::resources::RESOURCES
                .iter()
                .map(|r| r.versions.len())
                .sum::<usize>(),
            "one Rust type per served resource version"
        );
        let deployment = &definitions["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let pod_spec = &definitions["io.k8s.api.core.v1.PodSpec"];
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        assert_eq!(
            pod_spec["properties"]["containers"]["x-kubernetes-patch-strategy"],
            "merge"
        );
        assert_eq!(
            definitions["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"],
            "atomic",
            "an empty field column puts the extension on the definition"
        );
        assert_eq!(
            definitions["io.k8s.api.core.v1.SeccompProfile"]["x-kubernetes-unions"][0]["discriminator"],
            "type"
        );
        assert_eq!(
            definitions["io.k8s.api.core.v1.PersistentVolumeSpec"]["properties"]["claimRef"]["x-kubernetes-map-type"],
            "granular"
        );
        assert!(definitions.contains_key("io.k8s.api.apps.v1.DeploymentList"));
        assert!(definitions.contains_key(LIST_META));
        let text =
            serde_json::to_string(&definitions["io.flotilla.federation.v1beta1.ClusterCondition"]).unwrap();
        assert!(!text.contains("null"), "kubectl rejects null types: {text}");
        let text = serde_json::to_string(&definitions).unwrap();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("odd reference {target}"));
            assert!(definitions.contains_key(name), "dangling reference to {name}");
        }
    }

    #[test]
    fn schema_places_tell_atomic_maps_and_structs() {
        let deployment = Schema::of_kind("apps", "v1", "Deployment");
        let spec = deployment.field("spec");
        assert!(spec.field("selector").is_atomic(), "a LabelSelector");
        assert!(!spec.is_atomic());
        assert!(
            !spec
                .field("template")
                .field("metadata")
                .field("labels")
                .is_atomic()
        );
        let pod_spec = spec.field("template").field("spec");
        assert!(
            pod_spec.field("nodeSelector").is_atomic(),
            "the field's own map-type"
        );
        let container = pod_spec.field("containers").items();
        let value_from = container.field("env").items().field("valueFrom");
        assert!(value_from.field("configMapKeyRef").is_atomic());
        assert!(!value_from.is_atomic());
        let meta = deployment.field("metadata");
        assert!(meta.field("ownerReferences").items().is_atomic());
        assert!(!meta.field("labels").field("app").is_atomic());
        let volume = Schema::of_kind("", "v1", "PersistentVolume").field("spec");
        assert!(
            !volume.field("claimRef").is_atomic(),
            "granular on the field, over its atomic type"
        );
        assert!(volume.field("cephfs").field("secretRef").is_atomic());
        assert!(
            Schema::of_kind("autoscaling", "v1", "HorizontalPodAutoscaler")
                .field("spec")
                .field("scaleTargetRef")
                .is_atomic()
        );
        assert!(
            !Schema::of_kind("autoscaling", "v2", "HorizontalPodAutoscaler")
                .field("spec")
                .field("scaleTargetRef")
                .is_atomic()
        );
        assert!(
            !Schema::of_kind("apps", "v9", "Deployment")
                .field("spec")
                .field("selector")
                .is_atomic()
        );
    }
}
