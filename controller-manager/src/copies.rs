//! Member copies as the sync's caches hold them: one compact JSON text per copy instead of a `serde_json` tree.
//!
//! With 100 members the caches hold 100 copies of every federation object, and a `DynamicObject` of a small
//! ConfigMap takes about 4 KiB in memory (an `ObjectMeta`, a B-tree node per map, a reflector key repeating the
//! type's five names), ten times its JSON. A [`MemberCopy`] keeps the JSON text, the name and namespace that key
//! it, and whether it is being deleted; a reconcile parses the few copies of its object back ([`MemberCopy::value`]).
//! The type is shared by every key through an `Arc`.

use std::borrow::Cow;
use std::sync::Arc;

use kube::Resource;
use kube::api::{ApiResource, DynamicObject, ObjectMeta};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::Value;

/// The type of a cached copy, shared by all the copies and keys of one member cache.
pub type CopyType = Arc<ApiResource>;

/// One member's copy of a federated object, without its managedFields (nothing here reads them, and a real
/// member's can outweigh the object).
#[derive(Clone, Debug)]
pub struct MemberCopy {
    /// Only `name` and `namespace`: the store's key.
    metadata: ObjectMeta,
    deleting: bool,
    json: Box<str>,
}

impl MemberCopy {
    pub fn new(mut object: DynamicObject) -> Self {
        object.metadata.managed_fields = None;
        let json = serde_json::to_string(&object)
            .expect("a DynamicObject serialises")
            .into_boxed_str();
        MemberCopy {
            metadata: ObjectMeta {
                name: object.metadata.name,
                namespace: object.metadata.namespace,
                ..ObjectMeta::default()
            },
            deleting: object.metadata.deletion_timestamp.is_some(),
            json,
        }
    }

    /// Whether the copy has a deletionTimestamp.
    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// The copy as JSON.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("cached from a serialised object")
    }

    /// The copy as an object.
    pub fn object(&self) -> DynamicObject {
        serde_json::from_str(&self.json).expect("cached from a serialised object")
    }

    /// The key of a copy in a cache of `resource`.
    pub fn key(resource: &CopyType, namespace: Option<&str>, name: &str) -> ObjectRef<MemberCopy> {
        let reference = ObjectRef::new_with(name, resource.clone());
        match namespace {
            Some(ns) => reference.within(ns),
            None => reference,
        }
    }

    /// A watcher's event, with its objects made copies.
    pub fn event(event: watcher::Event<DynamicObject>) -> watcher::Event<MemberCopy> {
        match event {
            watcher::Event::Apply(o) => watcher::Event::Apply(MemberCopy::new(o)),
            watcher::Event::Delete(o) => watcher::Event::Delete(MemberCopy::new(o)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitApply(o) => watcher::Event::InitApply(MemberCopy::new(o)),
            watcher::Event::InitDone => watcher::Event::InitDone,
        }
    }
}

impl Resource for MemberCopy {
    type DynamicType = CopyType;
    type Scope = kube::core::DynamicResourceScope;

    fn kind(dt: &CopyType) -> Cow<'_, str> {
        Cow::Borrowed(&dt.kind)
    }

    fn group(dt: &CopyType) -> Cow<'_, str> {
        Cow::Borrowed(&dt.group)
    }

    fn version(dt: &CopyType) -> Cow<'_, str> {
        Cow::Borrowed(&dt.version)
    }

    fn api_version(dt: &CopyType) -> Cow<'_, str> {
        Cow::Borrowed(&dt.api_version)
    }

    fn plural(dt: &CopyType) -> Cow<'_, str> {
        Cow::Borrowed(&dt.plural)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use serde_json::json;

    fn config_map(name: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                "labels": {"federation.flotilla.io/managed": "true"},
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            "data": {"k": "v"}
        }))
        .unwrap()
    }

    #[test]
    fn a_copy_keeps_the_object_but_its_managed_fields() {
        let copy = MemberCopy::new(config_map("a"));
        let value = copy.value();
        assert_eq!(value["data"], json!({"k": "v"}));
        assert_eq!(value["metadata"]["resourceVersion"], "7");
        assert_eq!(value["kind"], "ConfigMap");
        assert!(value["metadata"].get("managedFields").is_none());
        assert!(!copy.deleting());
        assert_eq!(copy.object().metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn copies_are_found_by_their_key() {
        let resource: CopyType = Arc::new(ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()));
        let mut writer = reflector::store::Writer::new(resource.clone());
        let reader = writer.as_reader();
        writer.apply_watcher_event(&MemberCopy::event(watcher::Event::Apply(config_map("a"))));
        let found = reader.get(&MemberCopy::key(&resource, Some("default"), "a"));
        assert_eq!(found.map(|c| c.value()["data"]["k"].clone()), Some(json!("v")));
        assert!(reader.get(&MemberCopy::key(&resource, None, "a")).is_none());
    }
}
