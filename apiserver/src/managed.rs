//! Field ownership (`metadata.managedFields`) and server-side apply, after kube's structured-merge-diff.
//!
//! No crate implements it, so it is written here, reduced to what the served types need. Field sets are kept in
//! kube's `FieldsV1` form: a tree whose keys are path elements — `f:<field>`, `k:{"<key>":<value>}` for an element
//! of a list merged by key, `v:<value>` for an element of a set, `.` for such an element itself — and whose
//! leaves are empty. Lists follow the same strategies as strategic merge (`crate::patch`): merged by one key
//! (`containers` by `name`), sets of primitives (`finalizers`), or atomic (replaced whole, owned as one field);
//! their elements are keyed as kube's `x-kubernetes-list-map-keys` key them (container `ports` by `containerPort`
//! and `protocol`, a protocol left out counting as TCP). Maps and structs are merged field by field and owned per
//! field, but for
//! those the served schemas mark `x-kubernetes-map-type: atomic` (a `LabelSelector`, an `OwnerReference`, a pod's
//! `nodeSelector`), which are replaced whole and owned as one field (`f:selector`, `k:{"uid":…}`), as in kube.
//!
//! Every write records who set what: an update (`PUT`, the three patch types, a create) gives the fields it
//! changed to its manager (`fieldManager`, or the client's user agent up to the first `/`) with operation
//! `Update`; an apply (`application/apply-patch+yaml`) merges the manager's configuration into the object,
//! removes the fields the manager applied before and no longer does (unless someone else owns them), and makes
//! the configuration the manager's `Apply` set. Applying a value over a field another manager owns is a conflict
//! (409) unless forced, which takes the field over.

use std::collections::BTreeMap;

use flotilla_api::resources::Resource;
use serde_json::{Map, Value, json};

use crate::openapi::definitions::Schema;
use crate::patch::{ListStrategy, list_strategy};

/// A set of fields in kube's `FieldsV1` form; a node without children is a leaf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(BTreeMap<String, Fields>);

/// One path into an object, as `FieldsV1` elements.
pub type Path = Vec<String>;

impl Fields {
    pub fn from_json(value: &Value) -> Fields {
        Fields(
            value
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), Fields::from_json(v)))
                .collect(),
        )
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
    }

    pub fn into_json(self) -> Value {
        Value::Object(self.0.into_iter().map(|(k, v)| (k, v.into_json())).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every leaf's path.
    pub fn leaves(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for (element, child) in &self.0 {
            prefix.push(element.clone());
            if child.0.is_empty() {
                out.push(prefix.clone());
            } else {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// Whether `path` is in the set, as a leaf or under one (a field of a struct owned whole).
    fn covers(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => true,
            Some((first, rest)) => self
                .0
                .get(first)
                .is_some_and(|child| child.0.is_empty() || child.covers(rest)),
        }
    }

    pub fn contains(&self, path: &[String]) -> bool {
        match path.split_first() {
            None => self.0.is_empty(),
            Some((first, rest)) => self.0.get(first).is_some_and(|child| child.contains(rest)),
        }
    }

    pub fn insert(&mut self, path: &[String]) {
        if let Some((first, rest)) = path.split_first() {
            self.0.entry(first.clone()).or_default().insert(rest);
        }
    }

    /// Removes the leaf at `path`, and the parents it leaves empty.
    pub fn remove(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        if rest.is_empty() {
            if self.0.get(first).is_some_and(|c| c.0.is_empty()) {
                self.0.remove(first);
            }
            return;
        }
        if let Some(child) = self.0.get_mut(first) {
            child.remove(rest);
            if child.0.is_empty() {
                self.0.remove(first);
            }
        }
    }
}

/// The fields `object` sets, as a manager of it would own them: its spec and metadata (labels, annotations,
/// finalizers, owner references; not its identity or what the server sets), or only its status for the status
/// subresource.
pub fn fields_of(object: &Value, resource: &Resource, status: bool) -> Fields {
    let mut fields = Fields::default();
    let Some(map) = object.as_object() else {
        return fields;
    };
    let schema = schema_of(object, resource);
    for (key, value) in map {
        let owned = match key.as_str() {
            "apiVersion" | "kind" => false,
            "status" => status,
            "metadata" => !status,
            _ => !status,
        };
        if !owned || value.is_null() {
            continue;
        }
        let child = if key == "metadata" {
            let mut meta = Fields::default();
            for field in ["labels", "annotations", "finalizers", "ownerReferences"] {
                if let Some(v) = value.get(field).filter(|v| !v.is_null()) {
                    meta.0.insert(
                        format!("f:{field}"),
                        walk(
                            v,
                            &mut vec!["metadata".to_owned(), field.to_owned()],
                            resource,
                            schema.field("metadata").field(field),
                        ),
                    );
                }
            }
            if meta.is_empty() {
                continue;
            }
            meta
        } else {
            walk(value, &mut vec![key.clone()], resource, schema.field(key))
        };
        fields.0.insert(format!("f:{key}"), child);
    }
    fields
}

/// The schema of objects of `resource` in the version `object` names (else the preferred one).
fn schema_of(object: &Value, resource: &Resource) -> Schema {
    let version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(|api_version| api_version.rsplit('/').next())
        .filter(|version| resource.versions.contains(version))
        .or_else(|| resource.versions.first().copied())
        .unwrap_or_default();
    Schema::of_kind(resource.group, version, resource.kind)
}

/// The fields `value` sets at `path` (whose schema is `schema`); an atomic map or struct is one field, a leaf.
fn walk(value: &Value, path: &mut Vec<String>, resource: &Resource, schema: Schema) -> Fields {
    let mut fields = Fields::default();
    match value {
        Value::Object(_) if schema.is_atomic() => {}
        Value::Object(map) => {
            for (key, child) in map {
                if child.is_null() {
                    continue;
                }
                path.push(key.clone());
                fields
                    .0
                    .insert(format!("f:{key}"), walk(child, path, resource, schema.field(key)));
                path.pop();
            }
        }
        Value::Array(items) => match list_strategy(resource, path) {
            ListStrategy::Merge(key) => {
                let item_schema = schema.items();
                for item in items {
                    let Some(element) = key_element(item, key) else {
                        continue;
                    };
                    // An atomic element is owned whole: its key alone, without `.` or fields.
                    let mut child = walk(item, path, resource, item_schema);
                    if !(item.is_object() && item_schema.is_atomic()) {
                        child.0.insert(".".to_owned(), Fields::default());
                    }
                    fields.0.insert(element, child);
                }
            }
            ListStrategy::Primitive => {
                for item in items {
                    fields.0.insert(format!("v:{item}"), Fields::default());
                }
            }
            ListStrategy::Replace => {}
        },
        _ => {}
    }
    fields
}

/// The keys of an associative list as kube's schemas declare them (`x-kubernetes-list-map-keys`): strategic
/// merge's key, joined by `protocol` for ports and `whenUnsatisfiable` for spread constraints.
fn list_keys(merge_key: &'static str) -> impl Iterator<Item = &'static str> {
    let second = match merge_key {
        "containerPort" | "port" => Some("protocol"),
        "topologyKey" => Some("whenUnsatisfiable"),
        _ => None,
    };
    std::iter::once(merge_key).chain(second)
}

/// An element's value for `key`, with the default of a key a configuration may leave out (a port's protocol),
/// as kube fills list-map keys before it merges.
fn key_value<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    match item.get(key) {
        Some(value) if !value.is_null() => Some(value),
        _ if key == "protocol" => Some(&DEFAULT_PROTOCOL),
        _ => None,
    }
}

static DEFAULT_PROTOCOL: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!("TCP"));

/// The element's name in `fieldsV1`: `k:{"containerPort":80,"protocol":"TCP"}`.
fn key_element(item: &Value, merge_key: &'static str) -> Option<String> {
    let mut key = Map::new();
    for name in list_keys(merge_key) {
        key.insert(name.to_owned(), key_value(item, name)?.clone());
    }
    Some(format!("k:{}", Value::Object(key)))
}

/// Whether two elements of an associative list are the same element.
fn same_element(a: &Value, b: &Value, merge_key: &'static str) -> bool {
    list_keys(merge_key).all(|k| key_value(a, k).is_some() && key_value(a, k) == key_value(b, k))
}

/// The value at `path` in `object`, if any.
pub fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    let Some((first, rest)) = path.split_first() else {
        return Some(object);
    };
    let next = match first.strip_prefix("f:") {
        _ if first == "." => return Some(object),
        Some(field) => object.get(field)?,
        None => {
            let items = object.as_array()?;
            &items[element_index(items, first)?]
        }
    };
    value_at(next, rest)
}

/// Where the list element `element` (`k:{…}` or `v:…`) sits in `items`.
fn element_index(items: &[Value], element: &str) -> Option<usize> {
    if let Some(key) = element.strip_prefix("k:") {
        let wanted: Map<String, Value> = serde_json::from_str(key).ok()?;
        items
            .iter()
            .position(|item| wanted.iter().all(|(k, v)| key_value(item, k) == Some(v)))
    } else {
        let wanted: Value = serde_json::from_str(element.strip_prefix("v:")?).ok()?;
        items.iter().position(|item| *item == wanted)
    }
}

/// Removes what `path` names from `object`: a field, an element of a keyed list or set.
fn remove_at(object: &mut Value, path: &[String]) {
    let path: Vec<&String> = path.iter().filter(|e| *e != ".").collect();
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = &mut *object;
    for element in parents {
        let next = match element.strip_prefix("f:") {
            Some(field) => target.get_mut(field),
            None => target.as_array_mut().and_then(|items| {
                let index = element_index(items, element)?;
                items.get_mut(index)
            }),
        };
        let Some(next) = next else { return };
        target = next;
    }
    match last.strip_prefix("f:") {
        Some(field) => {
            if let Some(map) = target.as_object_mut() {
                map.remove(field);
            }
        }
        None => {
            if let Some(items) = target.as_array_mut()
                && let Some(index) = element_index(items, last)
            {
                items.remove(index);
            }
        }
    }
}

/// Merges an applied configuration into `live` (whose schema is `schema`): maps field by field, keyed lists
/// element by element, sets as a union; anything else (scalars, atomic lists, atomic maps and structs) is
/// replaced.
fn merge(live: &mut Value, config: &Value, path: &mut Vec<String>, resource: &Resource, schema: Schema) {
    match (live, config) {
        (Value::Object(live), Value::Object(config)) if !schema.is_atomic() => {
            for (key, value) in config {
                if value.is_null() {
                    continue;
                }
                path.push(key.clone());
                match live.get_mut(key) {
                    Some(existing) => merge(existing, value, path, resource, schema.field(key)),
                    None => {
                        live.insert(key.clone(), value.clone());
                    }
                }
                path.pop();
            }
        }
        (Value::Array(live), Value::Array(config)) => match list_strategy(resource, path) {
            ListStrategy::Merge(key) => {
                for item in config {
                    match live.iter_mut().find(|l| same_element(l, item, key)) {
                        Some(existing) => merge(existing, item, path, resource, schema.items()),
                        None => live.push(item.clone()),
                    }
                }
            }
            ListStrategy::Primitive => {
                for item in config {
                    if !live.contains(item) {
                        live.push(item.clone());
                    }
                }
            }
            ListStrategy::Replace => *live = config.clone(),
        },
        (live, config) => *live = config.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: Fields,
}

impl Entry {
    /// Whether this is `writer`'s entry for `operation`.
    fn is(&self, writer: &Writer<'_>, operation: &str) -> bool {
        self.manager == writer.manager
            && self.operation == operation
            && self.subresource.as_deref() == writer.subresource
    }

    fn new(writer: &Writer<'_>, operation: &str, fields: Fields) -> Entry {
        Entry {
            manager: writer.manager.to_owned(),
            operation: operation.to_owned(),
            api_version: writer.api_version.to_owned(),
            time: writer.time.to_owned(),
            subresource: writer.subresource.map(str::to_owned),
            fields,
        }
    }

    /// An entry as a client may send it: a manager, an `Apply` or `Update` operation, `FieldsV1`.
    fn parse_valid(value: &Value) -> Option<Entry> {
        let fields_type = value.get("fieldsType").and_then(Value::as_str);
        let entry = Entry::parse(value)?;
        let valid = !entry.manager.is_empty()
            && matches!(entry.operation.as_str(), "Apply" | "Update")
            && matches!(fields_type, None | Some("FieldsV1"));
        valid.then_some(entry)
    }

    fn parse(value: &Value) -> Option<Entry> {
        Some(Entry {
            manager: value.get("manager")?.as_str()?.to_owned(),
            operation: value.get("operation")?.as_str()?.to_owned(),
            api_version: value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            time: value
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            subresource: value
                .get("subresource")
                .and_then(Value::as_str)
                .map(str::to_owned),
            fields: Fields::from_json(value.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }

    fn into_json(self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".to_owned(), Value::String(self.manager));
        entry.insert("operation".to_owned(), Value::String(self.operation));
        entry.insert("apiVersion".to_owned(), Value::String(self.api_version));
        entry.insert("time".to_owned(), Value::String(self.time));
        entry.insert("fieldsType".to_owned(), Value::from("FieldsV1"));
        entry.insert("fieldsV1".to_owned(), self.fields.into_json());
        if let Some(subresource) = self.subresource {
            entry.insert("subresource".to_owned(), Value::String(subresource));
        }
        Value::Object(entry)
    }
}

fn entries_of(object: &Value) -> Vec<Entry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Entry::parse)
        .collect()
}

fn set_entries(object: &mut Value, entries: Vec<Entry>) {
    let entries: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::into_json)
        .collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(entries));
        }
    }
}

/// Who is writing, and how: the manager's name, the request's `apiVersion`, the subresource.
#[derive(Clone, Debug)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'static str>,
    pub time: &'a str,
}

/// Records an update (or a create, with `old` `None`): the fields it set or changed become `writer`'s, and are
/// no longer anyone else's; fields it removed are no longer anyone's. Entries the client sent replace the stored
/// ones when they differ and are valid, and `[]` or `[{}]` clears them (as kube does). Nothing changes when the
/// object did not.
pub fn track_update(new: &mut Value, old: Option<&Value>, writer: &Writer<'_>, resource: &Resource) {
    let sent = new.pointer("/metadata/managedFields").and_then(Value::as_array);
    // As kube: `[]` or `[{}]` clears the bookkeeping; a list of valid entries other than the stored one (a
    // client restoring or editing them) replaces it; anything else keeps what was stored.
    let reset = sent.is_some_and(|sent| {
        sent.is_empty() || (sent.len() == 1 && sent[0].as_object().is_some_and(Map::is_empty))
    });
    let replaced: Option<Vec<Entry>> = sent
        .filter(|sent| {
            old.and_then(|o| o.pointer("/metadata/managedFields"))
                .and_then(Value::as_array)
                != Some(*sent)
        })
        .and_then(|sent| sent.iter().map(Entry::parse_valid).collect());
    let status = writer.subresource == Some("status");
    let after = fields_of(new, resource, status);
    let Some(old) = old.filter(|_| !reset) else {
        // A create (or a reset): everything set is the writer's.
        set_entries(new, vec![Entry::new(writer, "Update", after)]);
        return;
    };
    let mut entries = replaced.filter(|_| !reset).unwrap_or_else(|| entries_of(old));
    // A keyed element's own marker changes hands only when the element is new, not when a field in it changes.
    let changed: Vec<Path> = after
        .leaves()
        .into_iter()
        .filter(|path| match path.last() {
            Some(last) if last == "." => value_at(old, path).is_none(),
            _ => value_at(old, path) != value_at(new, path),
        })
        .collect();
    let removed: Vec<Path> = fields_of(old, resource, status)
        .leaves()
        .into_iter()
        .filter(|path| !after.contains(path))
        .collect();
    if changed.is_empty() && removed.is_empty() {
        set_entries(new, entries);
        return;
    }
    for entry in &mut entries {
        for path in changed.iter().chain(&removed) {
            entry.fields.remove(path);
        }
    }
    let index = match entries.iter().position(|e| e.is(writer, "Update")) {
        Some(index) => index,
        None => {
            entries.push(Entry::new(writer, "Update", Fields::default()));
            entries.len() - 1
        }
    };
    let entry = &mut entries[index];
    for path in &changed {
        entry.fields.insert(path);
    }
    entry.api_version = writer.api_version.to_owned();
    entry.time = writer.time.to_owned();
    set_entries(new, entries);
}

/// A field another manager owns and an apply would set to another value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub api_version: String,
    pub field: String,
}

/// Server-side apply of `config` (the manager's whole intent) onto `live` (`None`: the object does not exist
/// yet). Returns the new object with its managed fields, or the conflicts when not `force`d.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    writer: &Writer<'_>,
    force: bool,
    resource: &Resource,
) -> Result<Value, Vec<Conflict>> {
    let status = writer.subresource == Some("status");
    let applied = fields_of(config, resource, status);
    let mut entries = live.map(entries_of).unwrap_or_default();
    let mine = |e: &Entry| e.is(writer, "Apply");
    let previous_entry = entries.iter().find(|e| mine(e)).cloned();
    let previous = previous_entry
        .as_ref()
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let leaves: Vec<Path> = applied.leaves();

    // Conflicts: a value this apply changes, on a field someone else owns.
    let mut conflicts = Vec::new();
    let mut taken = Vec::new();
    if let Some(live) = live {
        for path in leaves.iter().filter(|p| p.last().is_some_and(|e| e != ".")) {
            let (Some(now), Some(wanted)) = (value_at(live, path), value_at(config, path)) else {
                continue;
            };
            if now == wanted {
                continue;
            }
            for entry in entries.iter().filter(|e| !mine(e) && e.fields.contains(path)) {
                conflicts.push(Conflict {
                    manager: entry.manager.clone(),
                    api_version: entry.api_version.clone(),
                    field: display(path),
                });
                taken.push(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }

    let mut object = live.cloned().unwrap_or_else(|| json!({}));
    let mut path = Vec::new();
    merge(
        &mut object,
        config,
        &mut path,
        resource,
        schema_of(config, resource),
    );
    // What this manager applied before and no longer does goes, unless someone else owns it too. A field inside a
    // struct now applied whole (recorded field by field before the struct was atomic) is still applied.
    let mut dropped: Vec<Path> = previous
        .leaves()
        .into_iter()
        .filter(|p| !applied.covers(p))
        .filter(|p| !entries.iter().any(|e| !mine(e) && e.fields.contains(p)))
        .collect();
    // Keyed elements as a whole first (while their keys are still there to find them), then fields, deepest first.
    dropped.sort_by_key(|p| (p.last().is_none_or(|e| e != "."), std::cmp::Reverse(p.len())));
    for path in &dropped {
        remove_at(&mut object, path);
    }
    for entry in &mut entries {
        for path in &taken {
            entry.fields.remove(path);
        }
        for path in &dropped {
            entry.fields.remove(path);
        }
    }
    // Re-applying what is already there changes nothing, not even the entry's time (as in kube).
    let unchanged = live.is_some_and(|live| without_entries(live) == without_entries(&object));
    let entry = match previous_entry {
        Some(previous) if unchanged && previous.fields == applied => previous,
        _ => Entry::new(writer, "Apply", applied),
    };
    match entries.iter().position(mine) {
        Some(index) => entries[index] = entry,
        None => entries.push(entry),
    }
    set_entries(&mut object, entries);
    Ok(object)
}

fn without_entries(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// A path as kube prints it in conflicts: `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(field) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(key) = element.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let parts: Vec<String> = key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        }
    }
    out
}

/// kube's message for apply conflicts (409): `Apply failed with 1 conflict: conflict with "m" using apps/v1: .spec.replicas`.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            only.manager, only.api_version, only.field
        );
    }
    let mut message = format!("Apply failed with {} conflicts: ", conflicts.len());
    let mut by_manager: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for conflict in conflicts {
        by_manager
            .entry((&conflict.manager, &conflict.api_version))
            .or_default()
            .push(&conflict.field);
    }
    let parts: Vec<String> = by_manager
        .iter()
        .map(|((manager, version), fields)| {
            let lines: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
            format!(
                "conflicts with \"{manager}\" using {version}:\n{}",
                lines.join("\n")
            )
        })
        .collect();
    message.push_str(&parts.join("\n"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> &'static Resource {
        flotilla_api::resources::RESOURCES
            .iter()
            .find(|r| r.plural == "deployments")
            .unwrap()
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "apps/v1",
            subresource: None,
            time: "2026-11-24T00:00:00Z",
        }
    }

    fn apply_as(
        live: Option<&Value>,
        config: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, Vec<Conflict>> {
        apply(live, config, &writer(manager), force, deployments())
    }

    fn config(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn fields_follow_kubes_form() {
        let fields = fields_of(&config(2, "nginx"), deployments(), false);
        assert_eq!(
            fields.to_json(),
            json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {},
                "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}})
        );
        assert_eq!(
            display(&[
                "f:spec".into(),
                "f:template".into(),
                "f:spec".into(),
                "f:containers".into(),
                "k:{\"name\":\"web\"}".into(),
                "f:image".into()
            ]),
            ".spec.template.spec.containers[name=\"web\"].image"
        );
    }

    #[test]
    fn ports_are_keyed_by_port_and_protocol() {
        let mut two = config(1, "dns");
        two["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 53}, {"containerPort": 53, "protocol": "UDP"}]);
        let fields = fields_of(&two, deployments(), false).to_json();
        let ports =
            &fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"];
        let keys: Vec<&String> = ports.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "k:{\"containerPort\":53,\"protocol\":\"TCP\"}",
                "k:{\"containerPort\":53,\"protocol\":\"UDP\"}"
            ],
            "the protocol left out is kube's default"
        );
        // Applied again with the UDP port's name added, the two ports stay two.
        let created = apply_as(None, &two, "alice", false).unwrap();
        let mut named = two.clone();
        named["spec"]["template"]["spec"]["containers"][0]["ports"][1]["name"] = json!("dns-udp");
        let applied = apply_as(Some(&created), &named, "alice", false).unwrap();
        let ports = &applied["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert_eq!(ports.as_array().map(Vec::len), Some(2), "{ports}");
        assert_eq!(ports[1]["name"], "dns-udp");
        assert!(ports[0].get("name").is_none());
    }

    #[test]
    fn atomic_structs_and_maps_are_owned_and_replaced_whole() {
        let mut selected = config(2, "nginx");
        selected["spec"]["selector"] = json!({"matchLabels": {"app": "web"}});
        selected["spec"]["template"]["spec"]["nodeSelector"] = json!({"disk": "ssd"});
        selected["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u1"}]);
        let created = apply_as(None, &selected, "alice", false).unwrap();
        let fields = &created["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fields["f:spec"]["f:selector"],
            json!({}),
            "a LabelSelector: {fields}"
        );
        assert_eq!(
            fields["f:spec"]["f:template"]["f:spec"]["f:nodeSelector"],
            json!({}),
            "a map typed atomic on the field"
        );
        assert_eq!(
            fields["f:metadata"]["f:ownerReferences"],
            json!({"k:{\"uid\":\"u1\"}": {}}),
            "an atomic element: its key alone"
        );
        // Another selector conflicts on the selector as a whole, and forced replaces it whole.
        let mut wider = selected.clone();
        wider["spec"]["selector"] = json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]});
        let conflicts = apply_as(Some(&created), &wider, "bob", false).unwrap_err();
        let fields: Vec<&str> = conflicts.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, [".spec.selector"]);
        let forced = apply_as(Some(&created), &wider, "bob", true).unwrap();
        assert_eq!(forced["spec"]["selector"], wider["spec"]["selector"]);
        let alice = Entry::parse(&forced["metadata"]["managedFields"][0]).unwrap();
        assert!(!alice.fields.contains(&["f:spec".into(), "f:selector".into()]));
        // An entry recorded field by field inside the selector still applies it: re-applied, nothing is dropped.
        let mut recorded = created.clone();
        recorded["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:selector"] =
            json!({"f:matchLabels": {"f:app": {}}});
        let reapplied = apply_as(Some(&recorded), &selected, "alice", false).unwrap();
        assert_eq!(reapplied["spec"]["selector"], selected["spec"]["selector"]);
    }

    #[test]
    fn two_appliers_conflict_on_a_value_and_force_takes_it_over() {
        let created = apply_as(None, &config(2, "nginx"), "alice", false).unwrap();
        assert_eq!(created["spec"]["replicas"], 2);
        // The same values from someone else: shared, no conflict.
        let shared = apply_as(Some(&created), &config(2, "nginx"), "bob", false).unwrap();
        let managers: Vec<&str> = shared["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["alice", "bob"]);
        // Another value: a conflict with alice (bob shares, and is the applier).
        let conflicts = apply_as(Some(&shared), &config(5, "nginx"), "bob", false).unwrap_err();
        assert_eq!(
            conflicts,
            [Conflict {
                manager: "alice".into(),
                api_version: "apps/v1".into(),
                field: ".spec.replicas".into()
            }]
        );
        assert_eq!(
            conflict_message(&conflicts),
            "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
        );
        let forced = apply_as(Some(&shared), &config(5, "nginx"), "bob", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 5);
        let alice = Entry::parse(&forced["metadata"]["managedFields"][0]).unwrap();
        assert!(!alice.fields.contains(&["f:spec".into(), "f:replicas".into()]));
    }

    #[test]
    fn fields_an_applier_drops_are_removed_unless_someone_else_owns_them() {
        let mut first = config(2, "nginx");
        first["metadata"]["labels"]["tier"] = json!("front");
        let live = apply_as(None, &first, "alice", false).unwrap();
        assert_eq!(live["metadata"]["labels"]["tier"], "front");
        let live = apply_as(Some(&live), &config(2, "nginx"), "alice", false).unwrap();
        assert!(live["metadata"]["labels"].get("tier").is_none(), "{live}");
        // A second container applied, then dropped: the element goes.
        let mut two = config(2, "nginx");
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "side", "image": "busybox"}));
        let live = apply_as(Some(&live), &two, "alice", false).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let live = apply_as(Some(&live), &config(2, "nginx"), "alice", false).unwrap();
        assert_eq!(
            live["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "nginx"}])
        );
    }

    #[test]
    fn updates_take_the_fields_they_change() {
        let created = apply_as(None, &config(2, "nginx"), "alice", false).unwrap();
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(4);
        track_update(&mut scaled, Some(&created), &writer("kubectl"), deployments());
        let entries = entries_of(&scaled);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].operation, "Update");
        assert_eq!(entries[1].fields.to_json(), json!({"f:spec": {"f:replicas": {}}}));
        assert!(
            !entries[0]
                .fields
                .contains(&["f:spec".into(), "f:replicas".into()])
        );
        // alice applying her old value now conflicts with the updater.
        let conflicts = apply_as(Some(&scaled), &config(2, "nginx"), "alice", false).unwrap_err();
        assert_eq!(conflicts[0].manager, "kubectl");
        // An update that changes nothing leaves the entries alone.
        let mut same = scaled.clone();
        track_update(&mut same, Some(&scaled), &writer("other"), deployments());
        assert_eq!(same, scaled);
    }

    #[test]
    fn managed_fields_sent_by_a_client_are_taken_as_kube_takes_them() {
        let created = apply_as(None, &config(2, "nginx"), "alice", false).unwrap();
        // A valid list of its own replaces the stored one (here: the whole object handed to "restored").
        let mut restored = created.clone();
        restored["metadata"]["managedFields"] = json!([{"manager": "restored", "operation": "Update",
            "apiVersion": "apps/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        track_update(&mut restored, Some(&created), &writer("kubectl"), deployments());
        let managers: Vec<String> = entries_of(&restored).into_iter().map(|e| e.manager).collect();
        assert_eq!(managers, ["restored"]);
        // `[{}]` clears it: the writer alone owns what is set.
        let mut cleared = created.clone();
        cleared["metadata"]["managedFields"] = json!([{}]);
        track_update(&mut cleared, Some(&created), &writer("kubectl"), deployments());
        let managers: Vec<String> = entries_of(&cleared).into_iter().map(|e| e.manager).collect();
        assert_eq!(managers, ["kubectl"]);
        // An invalid list is ignored: the stored entries stay.
        let mut invalid = created.clone();
        invalid["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Delete"}]);
        track_update(&mut invalid, Some(&created), &writer("kubectl"), deployments());
        let managers: Vec<String> = entries_of(&invalid).into_iter().map(|e| e.manager).collect();
        assert_eq!(managers, ["alice"]);
    }
}
