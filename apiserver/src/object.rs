//! Objects as kube-apiserver keeps them: metadata set by the server on create and update, on plain JSON values.
//!
//! Objects are handled as `serde_json::Value` so that every served type goes through the same code; what
//! differs per type lives in [`Behaviour`]. The stored form has no `resourceVersion`: as in kube-apiserver it is
//! the storage revision, set on every object read back.

use bytes::Bytes;
use flotilla_api::resources::{Resource, Subresource};
use serde_json::{Map, Value, json};

use crate::status::{ApiError, Cause, Subject};

/// What differs per resource in how the server treats writes.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// `metadata.generation` is set to 1 on create and bumped on every spec change.
    pub generation: bool,
    /// The main resource ignores `status` on writes and the `status` subresource ignores everything else.
    pub status_subresource: bool,
    /// Names are DNS-1123 labels (at most 63 characters, no dots) rather than subdomains.
    pub label_names: bool,
}

impl Behaviour {
    pub fn of(resource: &Resource) -> Self {
        Behaviour {
            generation: matches!(
                (resource.group, resource.plural),
                ("apps", _) | ("batch", "jobs") | ("networking.k8s.io", "ingresses")
            ),
            status_subresource: resource.has_subresource(Subresource::Status),
            label_names: matches!(
                (resource.group, resource.plural),
                ("", "namespaces" | "services") | ("federation", "clusters")
            ),
        }
    }
}

pub fn metadata(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata")?.as_object()
}

pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    metadata(object)?.get(field)?.as_str()
}

pub fn labels(object: &Value) -> std::collections::BTreeMap<String, String> {
    metadata(object)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub fn finalizers(object: &Value) -> Vec<String> {
    metadata(object)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// The fields a field selector may name on `resource`, as kube-apiserver allows them.
pub fn selectable_fields(resource: &Resource) -> &'static [&'static str] {
    match (resource.group, resource.plural) {
        ("", "events") => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "namespaces") => &["metadata.name", "metadata.namespace", "status.phase"],
        ("", "secrets") => &["metadata.name", "metadata.namespace", "type"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// The value of a selectable field of `object` (empty when unset, as kube compares it).
pub fn field_value(object: &Value, field: &str) -> Option<String> {
    Some(match field {
        "metadata.name" => meta_str(object, "name").unwrap_or_default().to_owned(),
        "metadata.namespace" => meta_str(object, "namespace").unwrap_or_default().to_owned(),
        "source" => object
            .pointer("/source/component")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        other => match object.pointer(&format!("/{}", other.replace('.', "/"))) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        },
    })
}

/// A stored object parsed only at its top level and its metadata's top level: every value stays its raw JSON,
/// borrowed from the stored bytes, so that serving or caching it copies a ConfigMap's data instead of parsing and
/// writing it again.
#[derive(Debug)]
pub struct RawObject<'a> {
    pub top: std::collections::BTreeMap<String, &'a serde_json::value::RawValue>,
    pub metadata: std::collections::BTreeMap<String, &'a serde_json::value::RawValue>,
}

impl<'a> RawObject<'a> {
    pub fn parse(stored: &'a [u8]) -> Result<Self, serde_json::Error> {
        let top: std::collections::BTreeMap<String, &'a serde_json::value::RawValue> =
            serde_json::from_slice(stored)?;
        let metadata = match top.get("metadata") {
            Some(raw) => serde_json::from_str(raw.get())?,
            None => Default::default(),
        };
        Ok(RawObject { top, metadata })
    }

    /// The object's JSON with `resourceVersion` set, and without `apiVersion` and `kind` unless `typed`.
    pub fn to_vec(&self, revision: i64, typed: bool) -> Result<Vec<u8>, serde_json::Error> {
        use serde_json::value::RawValue;
        use std::collections::BTreeMap;
        let version = RawValue::from_string(format!("\"{revision}\""))?;
        let mut metadata: BTreeMap<&str, &RawValue> =
            self.metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        metadata.insert("resourceVersion", &version);
        let metadata = serde_json::value::to_raw_value(&metadata)?;
        let mut top: BTreeMap<&str, &RawValue> = self
            .top
            .iter()
            .filter(|(key, _)| typed || (key.as_str() != "apiVersion" && key.as_str() != "kind"))
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        top.insert("metadata", &metadata);
        serde_json::to_vec(&top)
    }
}

/// A stored object's JSON with its `resourceVersion` set, parsing only its top level and metadata (the rest is
/// copied as it is).
pub fn with_resource_version(stored: &[u8], revision: i64) -> Result<Vec<u8>, serde_json::Error> {
    RawObject::parse(stored)?.to_vec(revision, true)
}

/// An object serialised for storage, remembering where its metadata's fields begin, so that the response to the
/// write can be the stored bytes with the new `resourceVersion` spliced in rather than the object serialised again.
#[derive(Debug)]
pub struct Encoded {
    pub bytes: Bytes,
    /// Just past `"metadata":{`, when the metadata has no `resourceVersion` (stored objects have none).
    metadata_fields: Option<usize>,
}

impl Encoded {
    /// The same bytes as `serde_json::to_vec(object)`.
    pub fn new(object: &Value) -> Encoded {
        const SERIALISES: &str = "JSON values serialise";
        let Some(fields) = object.as_object() else {
            return Encoded {
                bytes: Bytes::from(serde_json::to_vec(object).expect(SERIALISES)),
                metadata_fields: None,
            };
        };
        let mut out = Vec::with_capacity(1024);
        let mut metadata_fields = None;
        out.push(b'{');
        for (i, (key, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key).expect(SERIALISES);
            out.push(b':');
            if key == "metadata"
                && value
                    .as_object()
                    .is_some_and(|meta| !meta.contains_key("resourceVersion"))
            {
                metadata_fields = Some(out.len() + 1);
            }
            serde_json::to_writer(&mut out, value).expect(SERIALISES);
        }
        out.push(b'}');
        Encoded {
            bytes: Bytes::from(out),
            metadata_fields,
        }
    }

    /// The object's JSON with `metadata.resourceVersion` set to `revision`; `None` when it has no metadata to put
    /// it in (or one already).
    pub fn with_resource_version(&self, revision: i64) -> Option<Vec<u8>> {
        use std::io::Write as _;
        let at = self.metadata_fields?;
        let (head, tail) = self.bytes.split_at(at);
        let mut out = Vec::with_capacity(self.bytes.len() + 32);
        out.extend_from_slice(head);
        write!(out, "\"resourceVersion\":\"{revision}\"").expect("writing to a Vec succeeds");
        if tail.first() != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(tail);
        Some(out)
    }
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    metadata_mut(object).insert("resourceVersion".to_owned(), Value::String(revision.to_string()));
}

/// Sets `apiVersion` and `kind` as served at `version`.
pub fn set_type(object: &mut Value, resource: &Resource, version: &str) {
    if let Some(map) = object.as_object_mut() {
        map.insert(
            "apiVersion".to_owned(),
            Value::String(resource.api_version(version)),
        );
        map.insert("kind".to_owned(), Value::String(resource.kind.to_owned()));
    }
}

/// The current time as kube writes timestamps (RFC 3339, seconds, UTC).
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// kube's `generateName` suffix alphabet (no vowels, no confusable characters).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub fn generate_name(base: &str) -> String {
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| NAME_ALPHABET[*b as usize % NAME_ALPHABET.len()] as char)
        .collect();
    // kube truncates the base so that the whole name stays within 63 characters.
    let base: String = base.chars().take(63 - 5).collect();
    format!("{base}{suffix}")
}

/// DNS-1123 subdomain (`label_only`: label) checks, with kube's messages.
pub fn name_problems(name: &str, label_only: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let max = if label_only { 63 } else { 253 };
    if name.len() > max {
        problems.push(format!("must be no more than {max} characters"));
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && label.starts_with(|c: char| c.is_ascii_alphanumeric())
            && label.ends_with(|c: char| c.is_ascii_alphanumeric())
    };
    let ok = if label_only {
        valid_label(name)
    } else {
        name.split('.').all(valid_label)
    };
    if !ok {
        problems.push(if label_only {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start \
             and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .to_owned()
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and \
             must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .to_owned()
        });
    }
    problems
}

/// Checks what every object needs whatever its type, and reports all problems at once (422).
pub fn validate_metadata(
    object: &Value,
    resource: &'static Resource,
    behaviour: Behaviour,
) -> Result<(), ApiError> {
    let name = meta_str(object, "name").unwrap_or_default();
    let mut causes = Vec::new();
    if name.is_empty() {
        causes.push(Cause {
            kind: "FieldValueRequired",
            field: "metadata.name".to_owned(),
            message: "Required value: name or generateName is required".to_owned(),
        });
    } else {
        for problem in name_problems(name, behaviour.label_names) {
            causes.push(Cause {
                kind: "FieldValueInvalid",
                field: "metadata.name".to_owned(),
                message: format!("Invalid value: \"{name}\": {problem}"),
            });
        }
    }
    for (field, map) in [("labels", true), ("annotations", false)] {
        if let Some(value) = metadata(object).and_then(|m| m.get(field)) {
            let Some(entries) = value.as_object() else {
                causes.push(Cause {
                    kind: "FieldValueInvalid",
                    field: format!("metadata.{field}"),
                    message: "Invalid value: must be a map of strings".to_owned(),
                });
                continue;
            };
            for (key, value) in entries {
                if !value.is_string() {
                    causes.push(Cause {
                        kind: "FieldValueInvalid",
                        field: format!("metadata.{field}"),
                        message: format!("Invalid value: the value of {key:?} must be a string"),
                    });
                } else if map
                    && flotilla_api::selector::LabelSelector::parse(&format!(
                        "{key}={}",
                        value.as_str().unwrap_or_default()
                    ))
                    .is_err()
                {
                    causes.push(Cause {
                        kind: "FieldValueInvalid",
                        field: "metadata.labels".to_owned(),
                        message: format!("Invalid value: {key:?}: {:?} is not a valid label", value),
                    });
                }
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            subject: Subject::new(resource, name),
            causes,
        })
    }
}

/// What kube-apiserver rewrites in an object on every write: its type's defaults ([`crate::defaults`]), and a Secret's
/// `stringData` merged into `data` (base64) and dropped, as kube's Secret conversion does.
pub fn normalize(object: &mut Value, resource: &Resource) {
    use base64::Engine as _;
    crate::defaults::apply(object, resource);
    if !(resource.group.is_empty() && resource.plural == "secrets") {
        return;
    }
    let Some(map) = object.as_object_mut() else { return };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            data.insert(
                key,
                Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
            );
        }
    }
}

/// Decodes `object` as its Rust type, as kube-apiserver decodes every body into its Go type: a field of the wrong
/// shape (`"spec": "x"`, `"replicas": "two"`) is a 400. Fields the type does not have are dropped from `object`,
/// as kube's decoding drops them, and their paths returned (`spec.template.spec.containers[0].imagePolicy`), for
/// the request's `fieldValidation` to report.
pub fn check_decodes(object: &mut Value, resource: &Resource) -> Result<Vec<String>, ApiError> {
    use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, networking, rbac};
    fn decode<T: serde::de::DeserializeOwned>(object: &mut Value) -> Result<Vec<String>, String> {
        // The fields the type's decoder skips, as paths, in one pass; nothing is serialised again to compare.
        let mut skipped = Vec::new();
        let _: T = serde_ignored::deserialize(&*object, |path| skipped.push(steps(&path)))
            .map_err(|e| e.to_string())?;
        Ok(skipped
            .into_iter()
            .filter_map(|steps| drop_at(object, &steps))
            .collect())
    }
    let result = match (resource.group, resource.plural) {
        ("", "namespaces") => decode::<core::v1::Namespace>(object),
        ("", "configmaps") => decode::<core::v1::ConfigMap>(object),
        ("", "secrets") => decode::<core::v1::Secret>(object),
        ("", "services") => decode::<core::v1::Service>(object),
        ("", "events") => decode::<core::v1::Event>(object),
        ("", "serviceaccounts") => decode::<core::v1::ServiceAccount>(object),
        ("apps", "deployments") => decode::<apps::v1::Deployment>(object),
        ("apps", "replicasets") => decode::<apps::v1::ReplicaSet>(object),
        ("apps", "daemonsets") => decode::<apps::v1::DaemonSet>(object),
        ("apps", "statefulsets") => decode::<apps::v1::StatefulSet>(object),
        ("batch", "jobs") => decode::<batch::v1::Job>(object),
        ("autoscaling", "horizontalpodautoscalers") => {
            decode::<autoscaling::v2::HorizontalPodAutoscaler>(object)
        }
        ("networking.k8s.io", "ingresses") => decode::<networking::v1::Ingress>(object),
        ("coordination.k8s.io", "leases") => decode::<coordination::v1::Lease>(object),
        ("rbac.authorization.k8s.io", "clusterroles") => decode::<rbac::v1::ClusterRole>(object),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => {
            decode::<rbac::v1::ClusterRoleBinding>(object)
        }
        ("rbac.authorization.k8s.io", "roles") => decode::<rbac::v1::Role>(object),
        ("rbac.authorization.k8s.io", "rolebindings") => decode::<rbac::v1::RoleBinding>(object),
        ("", "nodes") => decode::<core::v1::Node>(object),
        ("federation", "clusters") => decode::<flotilla_api::federation::Cluster>(object),
        _ => Ok(Vec::new()),
    };
    let result = result.and_then(|unknown| {
        let hpa = resource.plural == "horizontalpodautoscalers";
        check_quantities(object, hpa, false).map(|()| unknown)
    });
    result.map_err(|error| {
        ApiError::BadRequest(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {error}",
            kind = resource.kind,
            version = resource.versions[0],
        ))
    })
}

/// Quantities (resource limits and requests, capacities, `sizeLimit`, an HPA's metric values) must parse as
/// kube's `resource.Quantity`; k8s-openapi keeps them as plain strings, so they are checked here, with the errors
/// kube's decoding gives. `in_metric`: inside an HPA's metric, where `value` and `averageValue` are quantities.
fn check_quantities(value: &Value, hpa: bool, in_metric: bool) -> Result<(), String> {
    const MAPS: &[&str] = &["limits", "requests", "overhead", "capacity", "allocatable"];
    const SINGLE: &[&str] = &["sizeLimit"];
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                if matches!(
                    key.as_str(),
                    "data" | "binaryData" | "stringData" | "labels" | "annotations"
                ) {
                    continue; // user maps: their keys are no field names
                }
                if MAPS.contains(&key.as_str())
                    && let Value::Object(quantities) = field
                {
                    for quantity in quantities.values() {
                        parse_quantity(quantity)?;
                    }
                } else if SINGLE.contains(&key.as_str())
                    || (in_metric && (key == "value" || key == "averageValue"))
                {
                    parse_quantity(field)?;
                } else {
                    let metric = hpa && (in_metric || key == "metrics" || key == "currentMetrics");
                    check_quantities(field, hpa, metric)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| check_quantities(item, hpa, in_metric)),
        _ => Ok(()),
    }
}

/// kube's quantity syntax: a decimal number, then nothing, a binary (`Ki`…`Ei`) or decimal (`n`…`E`) suffix or an
/// exponent (`e3`). JSON numbers and null pass.
fn parse_quantity(value: &Value) -> Result<(), String> {
    const FORMAT: &str =
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    let text = match value {
        Value::String(text) => text.as_str(),
        Value::Number(_) | Value::Null => return Ok(()),
        _ => return Err(FORMAT.to_owned()),
    };
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits);
    let regex_suffix = suffix
        .trim_start_matches(|c: char| "eEinumkKMGTP".contains(c))
        .trim_start_matches(['+', '-'])
        .chars()
        .all(|c| c.is_ascii_digit());
    if number.is_empty() || !regex_suffix {
        return Err(FORMAT.to_owned());
    }
    if !number.chars().any(|c| c.is_ascii_digit()) || number.matches('.').count() > 1 {
        return Err(FORMAT.to_owned());
    }
    const SUFFIXES: &[&str] = &[
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()));
    if SUFFIXES.contains(&suffix) || exponent {
        Ok(())
    } else {
        Err("unable to parse quantity's suffix".to_owned())
    }
}

/// Parses a JSON body as kube's strict decoder reads it: the value (where a field repeats, the last one wins, as in
/// kube) and the paths of the repeated fields, for `fieldValidation` to report. One pass, no second parse; a path
/// is only spelt out for a repeated field.
pub fn parse_json(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    use serde::de::DeserializeSeed as _;
    let duplicates = std::cell::RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Tracked {
        at: None,
        duplicates: &duplicates,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok((value, duplicates.into_inner()))
}

/// Where a value sits: its key or index, under its parent's place.
struct Place<'a> {
    parent: Option<&'a Place<'a>>,
    key: Option<&'a str>,
    index: usize,
}

impl Place<'_> {
    fn path(&self) -> String {
        let mut path = self.parent.map(Place::path).unwrap_or_default();
        match self.key {
            Some(key) if path.is_empty() => path.push_str(key),
            Some(key) => {
                path.push('.');
                path.push_str(key);
            }
            None => path.push_str(&format!("[{}]", self.index)),
        }
        path
    }
}

/// A JSON value at a place, recording repeated object keys.
struct Tracked<'a> {
    at: Option<&'a Place<'a>>,
    duplicates: &'a std::cell::RefCell<Vec<String>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for Tracked<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Tracked<'_> {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let place = Place {
                parent: self.at,
                key: None,
                index: items.len(),
            };
            let item = Tracked {
                at: Some(&place),
                duplicates: self.duplicates,
            };
            match seq.next_element_seed(item)? {
                Some(value) => items.push(value),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let place = Place {
                parent: self.at,
                key: Some(&key),
                index: 0,
            };
            let value = map.next_value_seed(Tracked {
                at: Some(&place),
                duplicates: self.duplicates,
            })?;
            if fields.contains_key(&key) {
                self.duplicates.borrow_mut().push(place.path());
            }
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

/// One step of a path into a JSON value.
enum Step {
    Key(String),
    Index(usize),
}

/// The steps of a path `serde_ignored` reports, from the root; options and newtypes take no step.
fn steps(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    use serde_ignored::Path;
    let mut steps = Vec::new();
    let mut at = path;
    loop {
        at = match at {
            Path::Root => break,
            Path::Seq { parent, index } => {
                steps.push(Step::Index(*index));
                parent
            }
            Path::Map { parent, key } => {
                steps.push(Step::Key(key.clone()));
                parent
            }
            Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
                parent
            }
        };
    }
    steps.reverse();
    steps
}

/// Removes the field at `steps` from `object` and returns its path as kube spells it
/// (`spec.template.spec.containers[0].imagePolicy`). A null is no field at all: it stays, unreported.
fn drop_at(object: &mut Value, steps: &[Step]) -> Option<String> {
    use std::fmt::Write as _;
    let (Step::Key(field), parents) = steps.split_last()? else {
        return None;
    };
    let mut path = String::new();
    let mut at = object;
    for step in parents {
        at = match step {
            Step::Key(key) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                at.get_mut(key.as_str())?
            }
            Step::Index(index) => {
                let _ = write!(path, "[{index}]");
                at.get_mut(*index)?
            }
        };
    }
    let fields = at.as_object_mut()?;
    if fields.get(field)?.is_null() {
        return None;
    }
    fields.remove(field);
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(field);
    Some(path)
}

/// The rules of a type beyond its shape (422 with one cause per problem): kube's for the built-in types
/// ([`crate::validation`]), the federation's for Clusters. `old` is the stored object on update.
pub fn validate_type(
    object: &Value,
    old: Option<&Value>,
    resource: &'static Resource,
) -> Result<(), ApiError> {
    if resource.group != "federation" {
        let causes = crate::validation::validate(object, old, resource);
        if causes.is_empty() {
            return Ok(());
        }
        return Err(ApiError::Invalid {
            subject: Subject::new(resource, meta_str(object, "name").unwrap_or_default()),
            causes,
        });
    }
    let name = meta_str(object, "name").unwrap_or_default();
    let cluster: flotilla_api::federation::Cluster =
        serde_json::from_value(object.clone()).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut causes: Vec<Cause> = flotilla_api::federation::validate_cluster(&cluster)
        .into_iter()
        .map(|(field, message)| Cause {
            kind: if message.starts_with("Required") {
                "FieldValueRequired"
            } else {
                "FieldValueInvalid"
            },
            field,
            message,
        })
        .collect();
    // Cluster names are DNS-1035 labels: a DNS-1123 label that starts with a letter.
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        causes.push(Cause {
            kind: "FieldValueInvalid",
            field: "metadata.name".to_owned(),
            message: format!(
                "Invalid value: \"{name}\": a DNS-1035 label must start with an alphabetic character"
            ),
        });
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            subject: Subject::new(resource, name),
            causes,
        })
    }
}

/// Fields clients may not set: they come from the server (or from the old object on update).
const SERVER_FIELDS: &[&str] = &[
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// Prepares a new object for storage: server-owned metadata, cleared status where the type has a status
/// subresource (kube resets it on create), and no `resourceVersion` (the store assigns it).
/// The status a new object has, as kube writes its zero Go value: a struct field is never omitted, nor are the
/// fields without `omitempty` (a DaemonSet's counts, a StatefulSet's replicas).
fn zero_status(resource: &Resource) -> Option<Value> {
    Some(match (resource.group, resource.plural) {
        ("", "services") | ("networking.k8s.io", "ingresses") => json!({"loadBalancer": {}}),
        ("apps", "deployments" | "replicasets") | ("batch", "jobs") => json!({}),
        ("apps", "daemonsets") => json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0}),
        ("apps", "statefulsets") => json!({"availableReplicas": 0, "replicas": 0}),
        _ => return None,
    })
}

pub fn prepare_create(object: &mut Value, behaviour: Behaviour, resource: &Resource) {
    let meta = metadata_mut(object);
    for field in SERVER_FIELDS {
        meta.remove(*field);
    }
    meta.insert("uid".to_owned(), Value::String(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".to_owned(), Value::String(now()));
    if behaviour.generation {
        meta.insert("generation".to_owned(), json!(1));
    }
    if behaviour.status_subresource
        && let Some(map) = object.as_object_mut()
    {
        map.remove("status");
        if let Some(zero) = zero_status(resource) {
            map.insert("status".to_owned(), zero);
        }
    }
    if resource.group.is_empty() && resource.plural == "namespaces" {
        object["status"] = json!({"phase": "Active"});
        // kube defaults a namespace's spec.finalizers; a non-object spec is left for validation to refuse.
        if let Some(Value::Object(spec)) = object
            .as_object_mut()
            .map(|o| o.entry("spec").or_insert_with(|| json!({})))
        {
            spec.entry("finalizers").or_insert_with(|| json!(["kubernetes"]));
        }
        let name = meta_str(object, "name").unwrap_or_default().to_owned();
        let labels = metadata_mut(object).entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".to_owned(), Value::String(name));
        }
    }
}

/// Carries the server-owned state of `old` into `new` for an update of the main resource (`subresource`
/// `None`) or of its status: identity and timestamps always, the status from `old` on the main resource, and
/// everything but the status from `old` on the status subresource. Bumps the generation on a spec change.
pub fn prepare_update(new: &mut Value, old: &Value, behaviour: Behaviour, subresource: Option<Subresource>) {
    match subresource {
        Some(Subresource::Status) => {
            let status = new.get("status").cloned();
            *new = old.clone();
            match status {
                Some(status) => new["status"] = status,
                None => {
                    if let Some(map) = new.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            return;
        }
        Some(Subresource::Scale) => unreachable!("scale writes go through the scale handler"),
        None => {}
    }
    {
        let old_meta = metadata(old).cloned().unwrap_or_default();
        let meta = metadata_mut(new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(value) => meta.insert(field.to_owned(), value.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("resourceVersion");
    }
    if behaviour.status_subresource {
        match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        }
    }
    if behaviour.generation && new.get("spec") != old.get("spec") {
        let generation = metadata(old)
            .and_then(|m| m.get("generation"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(new).insert("generation".to_owned(), json!(generation + 1));
    }
    // Namespaces keep the label kube maintains.
    if let Some(label) = metadata(old)
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get("kubernetes.io/metadata.name"))
        .cloned()
    {
        let labels = metadata_mut(new).entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("kubernetes.io/metadata.name".to_owned(), label);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_api::resources::lookup;

    fn served(group: &str, version: &str, plural: &str) -> &'static Resource {
        lookup(
            flotilla_api::resources::Profile::Federation,
            group,
            version,
            plural,
        )
        .expect("served")
    }

    #[test]
    fn stateful_sets_get_kubes_defaults_and_keep_their_own() {
        let statefulsets = served("apps", "v1", "statefulsets");
        let mut bare = json!({"spec": {"serviceName": "db"}});
        normalize(&mut bare, statefulsets);
        assert_eq!(bare["spec"]["replicas"], 1);
        assert_eq!(bare["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            bare["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        let mut on_delete = json!({"spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"}}});
        normalize(&mut on_delete, statefulsets);
        assert_eq!(on_delete["spec"]["replicas"], 3);
        assert_eq!(on_delete["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn secret_string_data_becomes_base64_data() {
        let secrets = served("", "v1", "secrets");
        let mut secret = json!({"data": {"a": "YQ=="}, "stringData": {"b": "s3cret", "a": "override"}});
        normalize(&mut secret, secrets);
        assert_eq!(
            secret,
            json!({"type": "Opaque", "data": {"a": "b3ZlcnJpZGU=", "b": "czNjcmV0"}})
        );
    }

    #[test]
    fn stored_bytes_get_their_resource_version() {
        let stored = br#"{"apiVersion":"v1","data":{"metadata":"{\"x\":1}"},"kind":"ConfigMap","metadata":{"name":"a","uid":"u"}}"#;
        let out: Value = serde_json::from_slice(&with_resource_version(stored, 42).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"metadata": "{\"x\":1}"},
                "metadata": {"name": "a", "uid": "u", "resourceVersion": "42"}})
        );
    }

    #[test]
    fn encoded_objects_are_their_json_and_take_a_resource_version() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"metadata": "{\"x\":1}", "é": "\n"},
            "metadata": {"name": "a", "uid": "u"}});
        let encoded = Encoded::new(&object);
        assert_eq!(encoded.bytes, serde_json::to_vec(&object).unwrap());
        let mut expected = object.clone();
        expected["metadata"]["resourceVersion"] = json!("42");
        let with: Value = serde_json::from_slice(&encoded.with_resource_version(42).unwrap()).unwrap();
        assert_eq!(with, expected);
        // Empty metadata; metadata that already has a resourceVersion; no object at all.
        let with: Value = serde_json::from_slice(
            &Encoded::new(&json!({"metadata": {}}))
                .with_resource_version(7)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(with, json!({"metadata": {"resourceVersion": "7"}}));
        assert!(
            Encoded::new(&json!({"metadata": {"resourceVersion": "1"}}))
                .with_resource_version(7)
                .is_none()
        );
        assert!(
            Encoded::new(&json!({"kind": "ConfigMap"}))
                .with_resource_version(7)
                .is_none()
        );
        assert!(Encoded::new(&json!([1])).with_resource_version(7).is_none());
    }

    #[test]
    fn quantities_parse_as_kube_parses_them() {
        for good in [
            "1", "500m", "1.5", "128Mi", "1Gi", "2e3", "1E-3", "+1k", ".5", "0",
        ] {
            assert_eq!(parse_quantity(&json!(good)), Ok(()), "{good}");
        }
        assert_eq!(parse_quantity(&json!(2)), Ok(()));
        for bad in ["abc", "", "1 Gi", "Mi", "1..2"] {
            assert!(
                parse_quantity(&json!(bad))
                    .unwrap_err()
                    .starts_with("quantities must match"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_quantity(&json!("1mm")).unwrap_err(),
            "unable to parse quantity's suffix"
        );
        let deployments = served("apps", "v1", "deployments");
        let mut bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"},
            "spec": {"selector": {}, "template": {"spec": {"containers": [
                {"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}}}});
        let err = check_decodes(&mut bad, deployments).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            ),
            "{err}"
        );
        // A ConfigMap's data is no quantity, whatever its keys.
        let configmaps = served("", "v1", "configmaps");
        let mut data = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
            "data": {"limits": "none", "sizeLimit": "x"}});
        assert!(check_decodes(&mut data, configmaps).is_ok());
        let hpas = served("autoscaling", "v2", "horizontalpodautoscalers");
        let mut hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "a"},
            "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "w"}, "metrics": [
                {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "ten"}}}]}});
        assert!(check_decodes(&mut hpa, hpas).is_err());
    }

    #[test]
    fn repeated_fields_are_found_and_the_last_wins() {
        let body = br#"{"kind": "ConfigMap", "data": {"a": "1", "a": "2"}, "list": [{"x": 1, "x": 2}], "kind": "ConfigMap"}"#;
        let (value, duplicates) = parse_json(body).unwrap();
        assert_eq!(duplicates, ["data.a", "list[0].x", "kind"]);
        assert_eq!(value["data"]["a"], "2");
        assert_eq!(value["list"][0]["x"], 2);
        let (same, none) = parse_json(br#"{"a": [1, 2.5, null, true, "s"], "b": {}}"#).unwrap();
        assert_eq!(same, json!({"a": [1, 2.5, null, true, "s"], "b": {}}));
        assert!(none.is_empty());
        assert!(parse_json(b"{} x").is_err());
        assert!(parse_json(b"{\"a\": ").is_err());
    }

    #[test]
    fn unknown_fields_are_dropped_and_named() {
        let deployments = served("apps", "v1", "deployments");
        let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment", "bogus": 1,
            "metadata": {"name": "a", "labels": {"any": "key"}, "annotation": {}},
            "spec": {"replicas": 2, "selector": {}, "replica": null, "template": {"spec": {"containers": [
                {"name": "c", "image": "x"}, {"name": "d", "imagePolicy": "Always", "ports": [{"containerPort": 80, "hostport": 1}]}]}}}});
        let unknown = check_decodes(&mut object, deployments).unwrap();
        assert_eq!(
            unknown,
            [
                "bogus",
                "metadata.annotation",
                "spec.template.spec.containers[1].imagePolicy",
                "spec.template.spec.containers[1].ports[0].hostport",
            ]
        );
        assert!(object.get("bogus").is_none());
        assert_eq!(object["metadata"]["labels"], json!({"any": "key"}));
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"][1],
            json!({"name": "d", "ports": [{"containerPort": 80}]})
        );
    }

    #[test]
    fn bodies_must_decode_as_their_type() {
        let deployments = served("apps", "v1", "deployments");
        let mut good = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": {"replicas": 2, "selector": {}, "template": {}}});
        assert_eq!(
            check_decodes(&mut good, deployments).unwrap(),
            Vec::<String>::new()
        );
        let mut bad =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}, "spec": "x"});
        let err = check_decodes(&mut bad, deployments).unwrap_err();
        assert!(
            matches!(err, ApiError::BadRequest(ref m) if m.starts_with("Deployment in version \"v1\" cannot be handled as a Deployment")),
            "{err}"
        );
    }

    #[test]
    fn names_follow_dns_1123() {
        assert!(name_problems("web-1.example", false).is_empty());
        assert!(!name_problems("Web", false).is_empty());
        assert!(!name_problems("a.b", true).is_empty());
        assert!(!name_problems(&"a".repeat(64), true).is_empty());
        assert!(!name_problems("-a", false).is_empty());
    }

    #[test]
    fn generate_name_appends_five_characters() {
        let name = generate_name("web-");
        assert_eq!(name.len(), 9);
        assert!(name.starts_with("web-"));
        assert!(name_problems(&name, true).is_empty());
    }

    #[test]
    fn updates_keep_identity_and_bump_generation_on_spec_change() {
        let deployments = served("apps", "v1", "deployments");
        let behaviour = Behaviour::of(deployments);
        let mut old =
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        prepare_create(&mut old, behaviour, deployments);
        assert_eq!(old["metadata"]["generation"], 1);
        assert_eq!(
            old["status"],
            json!({}),
            "status is reset on create, to kube's zero value"
        );
        old["status"] = json!({"replicas": 1});
        let mut new =
            json!({"metadata": {"name": "web", "uid": "forged"}, "spec": {"replicas": 2}, "status": {}});
        prepare_update(&mut new, &old, behaviour, None);
        assert_eq!(new["metadata"]["uid"], old["metadata"]["uid"]);
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(
            new["status"],
            json!({"replicas": 1}),
            "the main resource does not write status"
        );
        let mut label_only = new.clone();
        label_only["metadata"]["labels"] = json!({"a": "b"});
        prepare_update(&mut label_only, &new, behaviour, None);
        assert_eq!(
            label_only["metadata"]["generation"], 2,
            "metadata changes do not bump the generation"
        );
    }

    #[test]
    fn status_updates_touch_only_status() {
        let deployments = served("apps", "v1", "deployments");
        let old = json!({"metadata": {"name": "web", "generation": 3}, "spec": {"replicas": 1}});
        let mut new =
            json!({"metadata": {"name": "web"}, "spec": {"replicas": 9}, "status": {"readyReplicas": 1}});
        prepare_update(
            &mut new,
            &old,
            Behaviour::of(deployments),
            Some(Subresource::Status),
        );
        assert_eq!(new["spec"]["replicas"], 1);
        assert_eq!(new["status"]["readyReplicas"], 1);
        assert_eq!(new["metadata"]["generation"], 3);
    }
}
