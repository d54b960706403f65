//! Events on federation objects (core/v1, which `kubectl describe` reads): where each part was created,
//! updated or deleted, and what failed.

use kube::api::{Api, DynamicObject, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::adapters::Adapter;

/// Records a Normal event.
pub async fn normal(
    client: &Client,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    reason: &str,
    message: &str,
) {
    record(client, adapter, object, "Normal", reason, message).await;
}

/// Records a Warning event.
pub async fn warn(
    client: &Client,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    reason: &str,
    message: &str,
) {
    record(client, adapter, object, "Warning", reason, message).await;
}

async fn record(
    client: &Client,
    adapter: &dyn Adapter,
    object: &DynamicObject,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let namespace = object.namespace().unwrap_or_else(|| "default".to_owned());
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let resource = adapter.resource();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{}.", object.name_any()), "namespace": namespace},
        "involvedObject": {
            "apiVersion": resource.api_version,
            "kind": resource.kind,
            "name": object.name_any(),
            "namespace": object.namespace(),
            "uid": object.uid(),
            "resourceVersion": object.resource_version(),
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "flotilla-controller-manager"},
        "reportingComponent": "flotilla-controller-manager",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&()),
    );
    let Ok(event) = serde_json::from_value::<DynamicObject>(event) else {
        return;
    };
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(error = %err, "cannot record an event");
    }
}
