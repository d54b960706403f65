//! Propagation benchmark: how long from a write at the federation to the object being present in every member,
//! what the controller manager costs while nothing changes, and its memory.
//!
//! Everything but the controller manager runs in this process (the federation apiserver on the embedded store,
//! N simulated members); the controller manager is the real binary, so that its CPU and RSS are its own.
//!
//! `cargo bench -p flotilla-controller-manager --bench propagation -- --members 10 --objects 1000 --kind deployments`
//!
//! `--rate N` paces the creates at N per second (the latency of propagation itself rather than of a backlog);
//! `--controller-manager PATH` runs another build, such as the previous version, for a baseline;
//! `--state-dir /dev/shm` keeps the stores (and the disk's fsync latency) in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flotilla_api::federation::{
    Cluster, ClusterSpec, MANAGED_LABEL, SYSTEM_NAMESPACE, ServerAddressByClientCIDR,
};
use flotilla_conformance_tests::Daemon;
use flotilla_simulator::{MemberConfig, SimulatedMember};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

/// Per object: when each member was first seen holding it (member index, instant), in order.
type Sightings = HashMap<String, Vec<(usize, Instant)>>;

const CONTROLLER_MANAGER: &str = env!("CARGO_BIN_EXE_flotilla-controller-manager");

struct Args {
    members: usize,
    objects: usize,
    kind: String,
    idle: Duration,
    /// Creates per second; unpaced (16 at a time, as fast as the federation takes them) when absent.
    rate: Option<f64>,
    /// The controller manager binary: another build (the previous version) for a baseline in the same run.
    controller_manager: std::path::PathBuf,
    /// Where the stores of the federation and the members live (the system's temp dir when absent); `/dev/shm`
    /// keeps the disk's fsync latency out of what is measured.
    state_dir: Option<std::path::PathBuf>,
    /// Where to keep the controller manager's log (it goes with the temp dir otherwise).
    cm_log: Option<std::path::PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        members: 10,
        objects: 1000,
        kind: "deployments".to_owned(),
        idle: Duration::from_secs(20),
        rate: None,
        controller_manager: CONTROLLER_MANAGER.into(),
        state_dir: None,
        cm_log: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--members" => args.members = it.next().and_then(|v| v.parse().ok()).expect("--members N"),
            "--objects" => args.objects = it.next().and_then(|v| v.parse().ok()).expect("--objects N"),
            "--kind" => args.kind = it.next().expect("--kind deployments|configmaps"),
            "--rate" => args.rate = Some(it.next().and_then(|v| v.parse().ok()).expect("--rate N")),
            "--state-dir" => args.state_dir = Some(it.next().expect("--state-dir DIR").into()),
            "--cm-log" => args.cm_log = Some(it.next().expect("--cm-log PATH").into()),
            "--controller-manager" => {
                args.controller_manager = it.next().expect("--controller-manager PATH").into()
            }
            "--idle-secs" => {
                args.idle =
                    Duration::from_secs(it.next().and_then(|v| v.parse().ok()).expect("--idle-secs N"))
            }
            _ => {}
        }
    }
    args
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "configmaps" => ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        _ => ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
    }
}

fn object(kind: &str, name: &str) -> DynamicObject {
    let value = match kind {
        "configmaps" => {
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
        }
        _ => serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
        }),
    };
    serde_json::from_value(value).expect("a valid object")
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// The machine's CPU time since boot from `/proc/stat`, in clock ticks: (busy, stolen by the hypervisor, all).
/// Read at both ends of the write phase, it tells a slow run on a loaded or oversubscribed host apart from a
/// slow controller.
fn host_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let (idle, steal) = (at(3) + at(4), at(7));
    let all: u64 = fields.iter().take(8).sum();
    (all - idle - steal, steal, all)
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn metric(port: u16, name: &str) -> f64 {
    let text = tokio::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Where the time of the slowest objects went: when each was created, and how long after that the first and
/// the last member held it (and which member was last), so that a stall can be told apart as the controller's
/// (every member late) or one member's.
fn report_slowest(seen: &Sightings, written: &HashMap<String, Instant>, start: Instant, members: usize) {
    let mut slowest: Vec<(Duration, &String, Instant)> = written
        .iter()
        .filter_map(|(name, at)| {
            let last = seen.get(name).filter(|s| s.len() == members)?.last()?.1;
            Some((last.saturating_duration_since(*at), name, *at))
        })
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    for (latency, name, created) in slowest.iter().take(5) {
        let sightings = &seen[*name];
        let first = sightings[0].1.saturating_duration_since(*created);
        let (last_member, _) = sightings[sightings.len() - 1];
        eprintln!(
            "slow: {name} created at +{:.2} s: first member after {} ms, last (m{last_member}) after {} ms",
            created.duration_since(start).as_secs_f64(),
            first.as_millis(),
            latency.as_millis()
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = args();
    let dir = match &args.state_dir {
        Some(parent) => tempfile::tempdir_in(parent).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let kubeconfig = dir.path().join("federation.kubeconfig");
    let config = flotilla_apiserver::Config {
        write_kubeconfig: Some(kubeconfig.clone()),
        ..flotilla_apiserver::Config::new(
            flotilla_apiserver::StorageConfig::Embedded,
            dir.path().join("federation"),
        )
    };
    let running = flotilla_apiserver::start(config).await.unwrap();
    let federation = flotilla_simulator::client(&running.kubeconfig).await.unwrap();
    let system: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NAMESPACE}})).unwrap();
    Api::<Namespace>::all(federation.clone())
        .create(&PostParams::default(), &system)
        .await
        .unwrap();

    let started = Instant::now();
    let mut configs = Vec::new();
    for i in 0..args.members {
        let mut member = MemberConfig::new(&format!("m{i}"), &dir.path().join("members"));
        member.nodes = 1;
        member.behaviour.ready_delay = Duration::from_millis(100);
        configs.push(member);
    }
    let mut members = Vec::new();
    for chunk in configs.chunks(10) {
        for member in futures::future::join_all(chunk.iter().cloned().map(SimulatedMember::start)).await {
            members.push(member.unwrap());
        }
    }
    for member in &members {
        let secrets: Api<Secret> = Api::namespaced(federation.clone(), SYSTEM_NAMESPACE);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(member.name.clone()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "kubeconfig".to_owned(),
                ByteString(member.kubeconfig.clone().into_bytes()),
            )])),
            ..Secret::default()
        };
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        let cluster = Cluster {
            metadata: ObjectMeta {
                name: Some(member.name.clone()),
                ..ObjectMeta::default()
            },
            spec: ClusterSpec {
                server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                    client_cidr: "0.0.0.0/0".to_owned(),
                    server_address: format!("https://{}", member.address),
                }],
                secret_ref: Some(LocalObjectReference {
                    name: member.name.clone(),
                }),
            },
            ..Cluster::default()
        };
        Api::<Cluster>::all(federation.clone())
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
    }
    eprintln!("{} members up in {:?}", members.len(), started.elapsed());

    let metrics_port = flotilla_storage::testing::free_port();
    let metrics_address = format!("127.0.0.1:{metrics_port}");
    let cm = Daemon::spawn(
        &args.controller_manager,
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--leader-elect=false",
            "--metrics-bind-address",
            &metrics_address,
            "--cluster-monitor-period",
            "5s",
        ],
        &dir.path().join("cm.log"),
    )
    .unwrap();
    let pid = cm.id().unwrap();
    loop {
        let list = Api::<Cluster>::all(federation.clone())
            .list(&ListParams::default())
            .await
            .unwrap();
        if list.items.iter().filter(|c| c.is_ready()).count() == args.members {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "all members Ready; controller manager RSS {} MiB",
        memory_kib(pid, "VmRSS:") / 1024
    );

    // Watch every member for copies: when each object is first present in all of them.
    let seen: Arc<Mutex<Sightings>> = Arc::new(Mutex::new(HashMap::new()));
    let resource = resource(&args.kind);
    let mut watchers = Vec::new();
    for (index, member) in members.iter().enumerate() {
        let client = flotilla_simulator::client(&member.kubeconfig).await.unwrap();
        let api: Api<DynamicObject> = Api::all_with(client, &resource);
        let seen = seen.clone();
        let config = watcher::Config::default().labels(&format!("{MANAGED_LABEL}=true"));
        watchers.push(tokio::spawn(async move {
            let mut names = std::collections::HashSet::new();
            let mut stream = std::pin::pin!(watcher(api, config).applied_objects());
            while let Some(Ok(object)) = stream.next().await {
                let name = object.metadata.name.clone().unwrap_or_default();
                if names.insert(name.clone()) {
                    seen.lock()
                        .unwrap()
                        .entry(name)
                        .or_default()
                        .push((index, Instant::now()));
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let api: Api<DynamicObject> = Api::namespaced_with(federation.clone(), "default", &resource);
    let written: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let first_write = Instant::now();
    let host_before = host_ticks();
    futures::stream::iter(0..args.objects)
        .for_each_concurrent(16, |i| {
            let (api, written, kind) = (api.clone(), written.clone(), args.kind.clone());
            let slot = args
                .rate
                .map(|rate| first_write + Duration::from_secs_f64(i as f64 / rate));
            async move {
                if let Some(slot) = slot {
                    tokio::time::sleep_until(slot.into()).await;
                }
                let name = format!("bench-{i}");
                let at = Instant::now();
                api.create(&PostParams::default(), &object(&kind, &name))
                    .await
                    .unwrap();
                written.lock().unwrap().insert(name, at);
            }
        })
        .await;
    let writes_took = first_write.elapsed();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let done = seen
            .lock()
            .unwrap()
            .values()
            .filter(|sightings| sightings.len() == args.members)
            .count();
        if done == args.objects || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_present = first_write.elapsed();
    let host = {
        let after = host_ticks();
        let all = (after.2 - host_before.2).max(1) as f64;
        (
            (after.0 - host_before.0) as f64 / all * 100.0,
            (after.1 - host_before.1) as f64 / all * 100.0,
        )
    };
    let mut latencies: Vec<Duration> = {
        let seen = seen.lock().unwrap();
        let written = written.lock().unwrap();
        report_slowest(&seen, &written, first_write, args.members);
        written
            .iter()
            .filter_map(|(name, at)| {
                let sightings = seen.get(name).filter(|s| s.len() == args.members)?;
                Some(sightings.last()?.1.saturating_duration_since(*at))
            })
            .collect()
    };
    latencies.sort();
    let peak = memory_kib(pid, "VmHWM:") / 1024;

    // Quiet: let the members' status settle, then measure what the controller manager does with nothing changing.
    // Settled: no backlog and no reconcile for 5 s in a row (the members' status keeps flowing back for a while).
    let settle_deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet_since = Instant::now();
    let mut last = metric(metrics_port, "flotilla_sync_reconcile_duration_seconds_count").await;
    while Instant::now() < settle_deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let count = metric(metrics_port, "flotilla_sync_reconcile_duration_seconds_count").await;
        let depth = metric(metrics_port, "flotilla_sync_queue_depth").await;
        if count != last || depth > 0.0 {
            quiet_since = Instant::now();
            last = count;
        } else if quiet_since.elapsed() >= Duration::from_secs(5) {
            break;
        }
    }
    eprintln!(
        "settled {:.1} s after the last write",
        first_write.elapsed().as_secs_f64() - all_present.as_secs_f64()
    );
    let writes_before = metric(metrics_port, "flotilla_member_writes_total").await;
    let reconciles_before = metric(metrics_port, "flotilla_sync_reconcile_duration_seconds_count").await;
    let ticks_before = cpu_ticks(pid);
    let idle_start = Instant::now();
    tokio::time::sleep(args.idle).await;
    let idle_cpu =
        (cpu_ticks(pid) - ticks_before) as f64 / 100.0 / idle_start.elapsed().as_secs_f64() * 100.0;
    let writes_after = metric(metrics_port, "flotilla_member_writes_total").await;
    let reconciles =
        metric(metrics_port, "flotilla_sync_reconcile_duration_seconds_count").await - reconciles_before;
    let depth = metric(metrics_port, "flotilla_sync_queue_depth").await;
    eprintln!("while idle: {reconciles} reconciles, backlog {depth}");
    let rss = memory_kib(pid, "VmRSS:") / 1024;

    println!(
        "| {} members × {} {}{} | {}/{} present in every member | p50 {:.0} ms | p99 {:.0} ms | max {:.0} ms | writes took {:.1} s, all present after {:.1} s | idle CPU {:.2}% | member writes while idle {} | RSS {} MiB (peak {} MiB) | host busy {:.0}%, stolen {:.1}% |",
        args.members,
        args.objects,
        args.kind,
        args.rate.map(|r| format!(" at {r}/s")).unwrap_or_default(),
        latencies.len(),
        args.objects,
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        writes_took.as_secs_f64(),
        all_present.as_secs_f64(),
        idle_cpu,
        writes_after - writes_before,
        rss,
        peak,
        host.0,
        host.1,
    );
    if rss == 0 {
        let log = cm.output();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!("the controller manager exited; its last lines: {tail:#?}");
    }
    if idle_cpu > 1.0 || writes_after != writes_before {
        let log = cm.output();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        eprintln!(
            "controller manager warnings: {}; last: {:?}",
            warnings.len(),
            warnings.iter().rev().take(3).collect::<Vec<_>>()
        );
    }
    drop(cm);
    if let Some(path) = &args.cm_log {
        std::fs::copy(dir.path().join("cm.log"), path).unwrap();
    }
    for watcher in watchers {
        watcher.abort();
    }
}
