"""The official Python `kubernetes` client against a Flotilla apiserver: argv[1] is the kubeconfig."""

import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def expect_error(status, reason, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ApiException as error:
        body = json.loads(error.body)
        assert error.status == status, (error.status, body)
        assert body["reason"] == reason, body
        return
    raise AssertionError(f"expected {status} {reason}")


def main():
    config.load_kube_config(config_file=sys.argv[1])
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    ns = "default"

    assert client.VersionApi().get_code().minor == "33"

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm", labels={"app": "py"}), data={"a": "1"})
    created = core.create_namespaced_config_map(ns, cm)
    assert created.metadata.resource_version and created.metadata.uid
    expect_error(409, "AlreadyExists", core.create_namespaced_config_map, ns, cm)

    listed = core.list_namespaced_config_map(ns, label_selector="app=py")
    assert [item.metadata.name for item in listed.items] == ["py-cm"]

    patched = core.patch_namespaced_config_map("py-cm", ns, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}, patched.data

    created.data = {"stale": "write"}
    expect_error(409, "Conflict", core.replace_namespaced_config_map, "py-cm", ns, created)

    # A watch without a resourceVersion starts with the current objects as ADDED.
    events = watch.Watch().stream(core.list_namespaced_config_map, ns, timeout_seconds=2)
    seen = [(event["type"], event["object"].metadata.name) for event in events]
    assert ("ADDED", "py-cm") in seen, seen

    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="py-web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "py-web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "py-web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx")]),
            ),
        ),
    )
    apps.create_namespaced_deployment(ns, deployment)
    apps.patch_namespaced_deployment_scale("py-web", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment_scale("py-web", ns).spec.replicas == 3
    assert apps.read_namespaced_deployment("py-web", ns).metadata.generation == 2

    core.delete_namespaced_config_map("py-cm", ns)
    expect_error(404, "NotFound", core.read_namespaced_config_map, "py-cm", ns)
    apps.delete_namespaced_deployment("py-web", ns, propagation_policy="Background")
    expect_error(404, "NotFound", apps.read_namespaced_deployment, "py-web", ns)
    print("python client: ok")


if __name__ == "__main__":
    main()
