//! Services get cluster IPs and node ports as on a cluster: allocated from the service ranges, kept across
//! re-applies, refused with kube's messages when taken or out of range (dry runs too), released by the write
//! that drops them.

use flotilla_conformance_tests::{Backend, TestApiserver};
use serde_json::Value;

crate::on_both_backends!(services_get_cluster_ips_and_node_ports);

const KUBECTL: &str = "1.33";

async fn apply(server: &TestApiserver, manifest: &str) -> flotilla_conformance_tests::Output {
    let file = server.dir().join("service.yaml");
    std::fs::write(&file, manifest).unwrap();
    server
        .kubectl(KUBECTL, &["apply", "-f", file.to_str().unwrap()])
        .await
        .unwrap()
}

async fn spec(server: &TestApiserver, name: &str) -> Value {
    let out = server
        .kubectl(KUBECTL, &["get", "service", name, "-o", "json"])
        .await
        .unwrap()
        .ok();
    out.json()["spec"].clone()
}

fn node_ports(spec: &Value) -> Vec<i64> {
    spec["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

const NODE_PORT: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: np}\nspec:\n  type: NodePort\n  \
    selector: {app: np}\n  ports: [{name: http, port: 80}, {name: https, port: 443}]\n";

async fn services_get_cluster_ips_and_node_ports(backend: Backend) {
    let server = TestApiserver::start(backend).await.unwrap();
    apply(
        &server,
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  \
         ports: [{port: 80}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: headless}\nspec:\n  clusterIP: None\n  \
         selector: {app: db}\n  ports: [{port: 5432}]\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  type: ExternalName\n  \
         externalName: db.example.com\n",
    )
    .await
    .ok();
    apply(&server, NODE_PORT).await.ok();

    let web = spec(&server, "web").await;
    let ip: std::net::Ipv4Addr = web["clusterIP"].as_str().unwrap().parse().unwrap();
    assert!(
        ip.octets()[0] == 10 && (96..112).contains(&ip.octets()[1]),
        "{ip}"
    );
    assert_eq!(web["clusterIPs"], serde_json::json!([ip.to_string()]));
    assert!(node_ports(&web).is_empty());
    assert_eq!(spec(&server, "headless").await["clusterIP"], "None");
    assert!(spec(&server, "ext").await.get("clusterIP").is_none());
    let np = spec(&server, "np").await;
    let allocated = node_ports(&np);
    assert_eq!(allocated.len(), 2, "{np}");
    assert!(allocated.iter().all(|p| (30000..=32767).contains(p)) && allocated[0] != allocated[1]);
    assert_ne!(np["clusterIP"], web["clusterIP"]);

    // kubectl shows them as a cluster's apiserver does.
    let table = server
        .kubectl(KUBECTL, &["get", "service", "np", "web"])
        .await
        .unwrap()
        .ok();
    assert!(table.stdout.contains(&ip.to_string()), "{}", table.stdout);
    assert!(
        table
            .stdout
            .contains(&format!("80:{}/TCP,443:{}/TCP", allocated[0], allocated[1])),
        "{}",
        table.stdout
    );

    // Re-applying the manifest, which names neither, keeps both.
    let again = apply(&server, NODE_PORT).await.ok();
    assert!(again.stdout.contains("unchanged"), "{}", again.stdout);
    assert_eq!(node_ports(&spec(&server, "np").await), allocated);

    // What is taken, out of range, or not for this type, is refused in kube's words, and nothing is written.
    let taken = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: taken}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 80}}]\n"
    );
    let refused = [
        (
            taken.clone(),
            format!(
                "The Service \"taken\" is invalid: spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to \
                 allocate IP {ip}: provided IP is already allocated"
            ),
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: taken}\nspec:\n  clusterIP: 192.168.0.10\n  \
             ports: [{port: 80}]\n"
                .to_owned(),
            "spec.clusterIPs: Invalid value: []string{\"192.168.0.10\"}: failed to allocate IP 192.168.0.10: the \
             provided network does not match the current range"
                .to_owned(),
        ),
        (
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: taken}}\nspec:\n  type: NodePort\n  \
                 ports: [{{port: 80, nodePort: {}}}]\n",
                allocated[0]
            ),
            format!(
                "spec.ports[0].nodePort: Invalid value: {}: provided port is already allocated",
                allocated[0]
            ),
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: taken}\nspec:\n  type: NodePort\n  \
             ports: [{port: 80, nodePort: 8080}]\n"
                .to_owned(),
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of \
             valid ports is 30000-32767"
                .to_owned(),
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: taken}\nspec:\n  ports: [{port: 80, nodePort: 30500}]\n"
                .to_owned(),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'".to_owned(),
        ),
    ];
    // A server-side dry run is refused alike (it checks, claims nothing).
    let file = server.dir().join("dry-run.yaml");
    std::fs::write(&file, &taken).unwrap();
    let dry = server
        .kubectl(
            KUBECTL,
            &["apply", "--dry-run=server", "-f", file.to_str().unwrap()],
        )
        .await
        .unwrap()
        .failed();
    assert!(
        dry.stderr.contains("provided IP is already allocated"),
        "{}",
        dry.stderr
    );
    for (manifest, message) in &refused {
        let out = apply(&server, manifest).await.failed();
        assert!(out.stderr.contains(message.as_str()), "{}", out.stderr);
        server
            .kubectl(KUBECTL, &["get", "service", "taken"])
            .await
            .unwrap()
            .failed();
    }

    // Asked for by address (in the lower band, kept for that), it is given.
    apply(
        &server,
        "apiVersion: v1\nkind: Service\nmetadata: {name: dns}\nspec:\n  clusterIP: 10.96.0.10\n  \
         ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]\n  type: NodePort\n",
    )
    .await
    .ok();
    let dns = spec(&server, "dns").await;
    assert_eq!(dns["clusterIP"], "10.96.0.10");
    // Two ports of one number share a node port.
    let shared = node_ports(&dns);
    assert_eq!(shared.len(), 2);
    assert_eq!(shared[0], shared[1]);

    // Back to ClusterIP: the node ports go (and are free again), the address stays.
    apply(&server, &NODE_PORT.replace("type: NodePort", "type: ClusterIP"))
        .await
        .ok();
    let np_now = spec(&server, "np").await;
    assert!(node_ports(&np_now).is_empty(), "{np_now}");
    assert_eq!(np_now["clusterIP"], np["clusterIP"]);
    let reuse = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: reuse}}\nspec:\n  type: NodePort\n  \
         ports: [{{port: 80, nodePort: {}}}]\n",
        allocated[0]
    );
    apply(&server, &reuse).await.ok();

    // Deleted, its address is free for the next Service at once (as `kubectl replace --force` needs).
    server
        .kubectl(KUBECTL, &["delete", "service", "web"])
        .await
        .unwrap()
        .ok();
    apply(&server, &taken).await.ok();
    assert_eq!(spec(&server, "taken").await["clusterIP"], ip.to_string());

    // A changed address is refused: it may not change once set.
    let moved = taken.replace(&ip.to_string(), "10.96.0.11");
    let out = apply(&server, &moved).await.failed();
    assert!(
        out.stderr
            .contains("spec.clusterIPs[0]: Invalid value: \"10.96.0.11\": may not change once set"),
        "{}",
        out.stderr
    );
}
