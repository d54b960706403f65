//! Apiserver benchmark: the real `flotilla-apiserver` binary, over HTTPS (HTTP/2) with a bearer token, on the
//! embedded store and on etcd, with raw `etcd-client` calls against the same etcd as the baseline, in one run.
//! Measures start to ready, idle memory, create, update and GET throughput (and GET latency: under 64 clients, one
//! at a time, and at a steady 10,000 a second), the CPU time of a create and of an update in each process, a LIST
//! of 10,000 ConfigMaps (consistent from storage, and `resourceVersion=0` from the watch cache), delivery to 1,000
//! concurrent watchers, and memory holding many objects.
//!
//! Run: `cargo bench -p flotilla-apiserver --bench apiserver` (`-- --objects N` for the memory step).

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use flotilla_storage::testing::{EtcdServer, free_port};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Https = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

const CONCURRENCY: usize = 64;
const CREATES: usize = 10_000;
const GETS: usize = 20_000;
/// GETs made one at a time, for the latency of a request with nothing queued in front of it.
const SINGLE_GETS: usize = 5_000;
const WATCHED_WRITES: usize = 100;

/// A ConfigMap body of about 1 KiB, like the storage benchmark's values.
fn configmap(name: &str, stamp: u128) -> Bytes {
    let filler = "x".repeat(900);
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"t":"{stamp}","filler":"{filler}"}}}}"#
    ))
}

struct Server {
    child: Child,
    url: String,
    token: String,
    client: Https,
    connector: hyper_rustls::HttpsConnector<HttpConnector>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts the binary; returns it and the time from spawn to `/readyz` answering 200.
    async fn start(binary: &std::path::Path, etcd: Option<&str>) -> Result<(Server, Duration)> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let started = Instant::now();
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--bind-address", "127.0.0.1", "--secure-port", &port.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(endpoint) = etcd {
            command.args(["--etcd-servers", endpoint]);
        }
        let child = command.spawn().context("spawn flotilla-apiserver")?;
        // The CA and token appear on first start; wait for them, then for /readyz.
        let (ca, token) = loop {
            let ca = std::fs::read(dir.path().join("pki/ca.crt"));
            let token = std::fs::read_to_string(dir.path().join("admin-token"));
            if let (Ok(ca), Ok(token)) = (ca, token)
                && !token.trim().is_empty()
            {
                break (ca, token.trim().to_owned());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(20),
                "no credentials written"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            <rustls_pki_types::CertificateDer<'_> as rustls_pki_types::pem::PemObject>::pem_slice_iter(&ca)
        {
            roots.add(cert?)?;
        }
        let tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        // As Go clients (kubectl, client-go informers) do: without TCP_NODELAY a request's DATA frame, written
        // after its HEADERS, waits for the server's delayed ACK (40 ms).
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector.clone());
        let url = format!("https://127.0.0.1:{port}");
        let server = Server {
            child,
            url,
            token,
            client,
            connector,
            _dir: dir,
        };
        loop {
            if let Ok((StatusCode::OK, _)) = server
                .call(Method::GET, "/readyz", None, "application/json")
                .await
            {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(20), "not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok((server, started.elapsed()))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        content_type: &str,
    ) -> Result<(StatusCode, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", content_type)
            .body(Full::new(body.unwrap_or_default()))?;
        let response = self.client.request(request).await?;
        let status = response.status();
        Ok((status, response.into_body().collect().await?.to_bytes()))
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        code: StatusCode,
    ) -> Result<Bytes> {
        let (status, body) = self.call(method, path, body, "application/json").await?;
        if status != code {
            bail!("{path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        kib / 1024.0
    }
}

/// Runs `n` operations over `concurrency` tasks; returns operations per second and sorted latencies.
async fn load<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<(f64, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks = (0..concurrency).map(|_| {
        let (op, next) = (op.clone(), next.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let one = Instant::now();
                op(i).await?;
                latencies.push(one.elapsed());
            }
        })
    });
    let mut latencies = Vec::with_capacity(n);
    for task in futures::future::join_all(tasks).await {
        latencies.extend(task??);
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Ok((rate, latencies))
}

/// GETs per second of the paced run: the issue's throughput target, at which its latency target applies.
const PACED_RATE: usize = 10_000;
/// How long the paced run lasts.
const PACED_FOR: Duration = Duration::from_secs(2);

/// Starts `op` `rate` times a second, evenly spaced, for `duration`, whatever the answers (an open loop, as
/// independent clients arrive), and returns the sorted latencies, each counted from when its operation was due: a
/// server that falls behind shows it in the latencies rather than by slowing the load down. Also returns how late
/// the generator itself started each operation (sorted), so that its own delay can be told apart.
///
/// The pacing runs on a thread of its own with the OS's sleep (tens of microseconds late), not on a tokio timer:
/// tokio's timers have millisecond granularity and fire up to a millisecond after their deadline, which added about
/// a millisecond to every latency measured from the due time.
async fn paced<F, Fut>(rate: usize, duration: Duration, op: F) -> Result<(Vec<Duration>, Vec<Duration>)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    let operations = (rate as f64 * duration.as_secs_f64()) as usize;
    let spacing = Duration::from_secs(1) / rate as u32;
    let (tasks, mut lateness) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(operations);
        let mut lateness = Vec::with_capacity(operations);
        for i in 0..operations {
            let due = start + spacing * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            lateness.push(due.elapsed());
            let operation = op(i);
            tasks.push(runtime.spawn(async move {
                operation.await?;
                Ok::<_, anyhow::Error>(due.elapsed())
            }));
        }
        (tasks, lateness)
    })
    .await?;
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in futures::future::join_all(tasks).await {
        latencies.push(task??);
    }
    latencies.sort();
    lateness.sort();
    Ok((latencies, lateness))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[derive(Default)]
struct Figures {
    ready_ms: f64,
    idle_rss: f64,
    creates: f64,
    /// Merge patches of the created ConfigMaps (raw etcd-client: compare-and-swap puts at the revision each create
    /// returned, the one round trip an update takes when the current object is at hand).
    updates: f64,
    update_cpu: Cpu,
    gets: f64,
    get_p50: f64,
    get_p99: f64,
    /// One GET at a time: the latency of the request itself, with no queue in front of it.
    single_p50: f64,
    single_p99: f64,
    /// GETs started at a steady [`PACED_RATE`] a second.
    paced_p50: f64,
    paced_p99: f64,
    /// How late the paced generator started its operations, p99.
    paced_late_p99: f64,
    list_storage_ms: f64,
    list_cache_ms: f64,
    watch_p50: f64,
    watch_p99: f64,
    watch_delivered: usize,
    objects: usize,
    full_rss: f64,
    /// CPU time per create (µs): of the server (the apiserver; none for raw etcd-client), of etcd, and of this
    /// process, the load generator.
    create_cpu: Cpu,
}

/// CPU time of each process: used so far (seconds), or per operation (microseconds).
#[derive(Clone, Copy, Debug, Default)]
struct Cpu {
    server: f64,
    etcd: f64,
    client: f64,
}

impl Cpu {
    fn total(&self) -> f64 {
        self.server + self.etcd + self.client
    }
}

/// User plus system CPU time a process has used, in seconds (`/proc/PID/stat`, in clock ticks of 10 ms).
fn cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are the 14th and 15th fields; the slice starts at the 3rd.
    (ticks(11) + ticks(12)) / 100.0
}

impl Cpu {
    /// The CPU time, in seconds, the server (if any), etcd (if any) and this process have used so far.
    fn now(server: Option<u32>, etcd: Option<u32>) -> Self {
        Cpu {
            server: server.map_or(0.0, |pid| cpu_seconds(Some(pid))),
            etcd: etcd.map_or(0.0, |pid| cpu_seconds(Some(pid))),
            client: cpu_seconds(None),
        }
    }

    /// From this reading to `later`, in microseconds per operation.
    fn per_operation(&self, later: &Cpu, operations: usize) -> Cpu {
        let micros = |from: f64, to: f64| (to - from) * 1e6 / operations as f64;
        Cpu {
            server: micros(self.server, later.server),
            etcd: micros(self.etcd, later.etcd),
            client: micros(self.client, later.client),
        }
    }
}

/// Watchers per HTTP/2 connection (as informers, each client has its own connection).
const WATCHERS_PER_CONNECTION: usize = 100;

/// Opens one watch and collects the delivery latency of the next `WATCHED_WRITES` events.
async fn watcher(
    server: &Server,
    client: &Https,
    rv: &str,
    epoch: Instant,
) -> Result<tokio::task::JoinHandle<Vec<Duration>>> {
    let request = Request::builder()
        .uri(format!(
            "{}/api/v1/namespaces/watch-bench/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=120",
            server.url
        ))
        .header("authorization", format!("Bearer {}", server.token))
        .body(Full::new(Bytes::new()))?;
    let response = client.request(request).await?;
    anyhow::ensure!(response.status() == StatusCode::OK, "watch refused");
    Ok(tokio::spawn(async move {
        let mut body = response.into_body();
        let (mut buffer, mut latencies) = (Vec::new(), Vec::with_capacity(WATCHED_WRITES));
        while latencies.len() < WATCHED_WRITES {
            let Some(Ok(frame)) = body.frame().await else {
                break;
            };
            let Some(data) = frame.data_ref() else { continue };
            buffer.extend_from_slice(data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                let event: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                let sent: u128 = event["object"]["data"]["t"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                let waited = epoch.elapsed().as_nanos().saturating_sub(sent);
                latencies.push(Duration::from_nanos(u64::try_from(waited).unwrap_or(u64::MAX)));
            }
        }
        latencies
    }))
}

async fn measure(
    binary: &std::path::Path,
    etcd: Option<(&str, Option<u32>)>,
    objects: usize,
    watchers_n: usize,
) -> Result<Figures> {
    let (etcd, etcd_pid) = match etcd {
        Some((endpoint, pid)) => (Some(endpoint), pid),
        None => (None, None),
    };
    let (server, ready) = Server::start(binary, etcd).await?;
    let server = Arc::new(server);
    let mut figures = Figures {
        ready_ms: ready.as_secs_f64() * 1e3,
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    figures.idle_rss = server.rss_mib();
    let epoch = Instant::now();

    for namespace in ["bench", "watch-bench", "bulk"] {
        let body = Bytes::from(format!(r#"{{"metadata":{{"name":"{namespace}"}}}}"#));
        server
            .expect(
                Method::POST,
                "/api/v1/namespaces",
                Some(body),
                StatusCode::CREATED,
            )
            .await?;
    }
    eprintln!("  creates…");
    let s = server.clone();
    let server_pid = Some(server.child.id());
    let before = Cpu::now(server_pid, etcd_pid);
    (figures.creates, _) = load(CREATES, CONCURRENCY, move |i| {
        let s = s.clone();
        async move {
            let body = configmap(&format!("cm-{i:06}"), epoch.elapsed().as_nanos());
            let path = "/api/v1/namespaces/bench/configmaps";
            s.expect(Method::POST, path, Some(body), StatusCode::CREATED)
                .await
                .map(drop)
        }
    })
    .await?;
    figures.create_cpu = before.per_operation(&Cpu::now(server_pid, etcd_pid), CREATES);

    // The i-th GET of a phase: the created ConfigMaps in a scattered order.
    let get = |s: Arc<Server>, i: usize| async move {
        let path = format!(
            "/api/v1/namespaces/bench/configmaps/cm-{:06}",
            (i * 7919) % CREATES
        );
        s.expect(Method::GET, &path, None, StatusCode::OK).await.map(drop)
    };
    let gets_of = |n: usize, concurrency: usize| {
        let s = server.clone();
        load(n, concurrency, move |i| get(s.clone(), i))
    };
    eprintln!("  GETs…");
    let (gets, latencies) = gets_of(GETS, CONCURRENCY).await?;
    (figures.gets, figures.get_p50, figures.get_p99) =
        (gets, percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let (_, latencies) = gets_of(SINGLE_GETS, 1).await?;
    (figures.single_p50, figures.single_p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let s = server.clone();
    let (latencies, late) = paced(PACED_RATE, PACED_FOR, move |i| get(s.clone(), i)).await?;
    (figures.paced_p50, figures.paced_p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    figures.paced_late_p99 = percentile(&late, 0.99);

    eprintln!("  updates…");
    let s = server.clone();
    let before = Cpu::now(server_pid, etcd_pid);
    (figures.updates, _) = load(CREATES, CONCURRENCY, move |i| {
        let s = s.clone();
        async move {
            let patch = Bytes::from(format!(r#"{{"data":{{"t":"{}"}}}}"#, epoch.elapsed().as_nanos()));
            let path = format!("/api/v1/namespaces/bench/configmaps/cm-{i:06}");
            let (status, body) = s
                .call(Method::PATCH, &path, Some(patch), "application/merge-patch+json")
                .await?;
            anyhow::ensure!(
                status == StatusCode::OK,
                "{path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        }
    })
    .await?;
    figures.update_cpu = before.per_operation(&Cpu::now(server_pid, etcd_pid), CREATES);

    eprintln!("  LISTs…");
    let (mut storage_ms, mut cache_ms) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        for (path, times) in [
            ("/api/v1/namespaces/bench/configmaps", &mut storage_ms),
            (
                "/api/v1/namespaces/bench/configmaps?resourceVersion=0",
                &mut cache_ms,
            ),
        ] {
            let started = Instant::now();
            let body = server.expect(Method::GET, path, None, StatusCode::OK).await?;
            times.push(started.elapsed().as_secs_f64() * 1e3);
            let list: serde_json::Value = serde_json::from_slice(&body)?;
            anyhow::ensure!(
                list["items"].as_array().map_or(0, Vec::len) == CREATES,
                "short list"
            );
        }
    }
    (figures.list_storage_ms, figures.list_cache_ms) = (median(storage_ms), median(cache_ms));

    // 1,000 watchers of one namespace; each update carries the moment it was sent.
    let path = "/api/v1/namespaces/watch-bench/configmaps";
    let created = server
        .expect(Method::POST, path, Some(configmap("w", 0)), StatusCode::CREATED)
        .await?;
    let created: serde_json::Value = serde_json::from_slice(&created)?;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let mut watchers = Vec::with_capacity(watchers_n);
    let mut client = server.client.clone();
    for i in 0..watchers_n {
        if i % WATCHERS_PER_CONNECTION == 0 {
            client = Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(server.connector.clone());
        }
        watchers.push(watcher(&server, &client, &rv, epoch).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!("  {watchers_n} watchers open; updating…");
    for _ in 0..WATCHED_WRITES {
        let patch = Bytes::from(format!(r#"{{"data":{{"t":"{}"}}}}"#, epoch.elapsed().as_nanos()));
        let path = "/api/v1/namespaces/watch-bench/configmaps/w";
        let (status, _) = server
            .call(Method::PATCH, path, Some(patch), "application/merge-patch+json")
            .await?;
        anyhow::ensure!(status == StatusCode::OK, "patch failed: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut all = Vec::new();
    for watcher in watchers {
        let latencies = tokio::time::timeout(Duration::from_secs(60), watcher).await??;
        figures.watch_delivered += latencies.len();
        all.extend(latencies);
    }
    all.sort();
    (figures.watch_p50, figures.watch_p99) = (percentile(&all, 0.5), percentile(&all, 0.99));

    // Memory holding many objects (every one of them is also in the watch cache).
    let s = server.clone();
    let bulk = objects.saturating_sub(CREATES + 1);
    load(bulk, CONCURRENCY, move |i| {
        let s = s.clone();
        async move {
            let body = configmap(&format!("bulk-{i:06}"), 0);
            let path = "/api/v1/namespaces/bulk/configmaps";
            s.expect(Method::POST, path, Some(body), StatusCode::CREATED)
                .await
                .map(drop)
        }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    figures.objects = CREATES + 1 + bulk;
    figures.full_rss = server.rss_mib();
    Ok(figures)
}

/// Raw etcd-client: creates (compare-and-swap put) and gets at the same concurrency, and a range of 10k keys (as
/// `list_storage_ms`); the other figures stay zero.
async fn raw_etcd(endpoint: &str, etcd_pid: Option<u32>) -> Result<Figures> {
    let client = etcd_client::Client::connect([endpoint], None).await?;
    let kv = client.kv_client().max_decoding_message_size(256 << 20);
    let epoch = Instant::now();
    eprintln!("  creates…");
    let before = Cpu::now(None, etcd_pid);
    let k = kv.clone();
    // Each key's revision, for the updates.
    let revisions: Arc<Vec<AtomicI64>> = Arc::new((0..CREATES).map(|_| AtomicI64::new(0)).collect());
    let r = revisions.clone();
    let (creates, _) = load(CREATES, CONCURRENCY, move |i| {
        let (mut k, r) = (k.clone(), r.clone());
        async move {
            let key = format!("/raw/configmaps/bench/cm-{i:06}");
            let value = configmap("x", epoch.elapsed().as_nanos()).to_vec();
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), value, None)]);
            let response = k.txn(txn).await?;
            anyhow::ensure!(response.succeeded(), "exists");
            let revision = response.header().map_or(0, |h| h.revision());
            r[i].store(revision, Ordering::Relaxed);
            Ok(())
        }
    })
    .await?;
    let create_cpu = before.per_operation(&Cpu::now(None, etcd_pid), CREATES);
    let gets_of = |n: usize, concurrency: usize| {
        let k = kv.clone();
        load(n, concurrency, move |i| {
            let mut k = k.clone();
            async move {
                let key = format!("/raw/configmaps/bench/cm-{:06}", (i * 7919) % CREATES);
                anyhow::ensure!(!k.get(key, None).await?.kvs().is_empty(), "missing");
                Ok(())
            }
        })
    };
    eprintln!("  GETs…");
    let (gets, latencies) = gets_of(GETS, CONCURRENCY).await?;
    let (_, single) = gets_of(SINGLE_GETS, 1).await?;
    let k = kv.clone();
    let (paced_gets, paced_late) = paced(PACED_RATE, PACED_FOR, move |i| {
        let mut k = k.clone();
        async move {
            let key = format!("/raw/configmaps/bench/cm-{:06}", (i * 7919) % CREATES);
            anyhow::ensure!(!k.get(key, None).await?.kvs().is_empty(), "missing");
            Ok(())
        }
    })
    .await?;
    eprintln!(
        "  paced GETs: the generator's own lateness p99 {:.2} ms",
        percentile(&paced_late, 0.99)
    );
    eprintln!("  updates…");
    let before = Cpu::now(None, etcd_pid);
    let k = kv.clone();
    let (updates, _) = load(CREATES, CONCURRENCY, move |i| {
        let (mut k, revisions) = (k.clone(), revisions.clone());
        async move {
            let key = format!("/raw/configmaps/bench/cm-{i:06}");
            let value = configmap("x", epoch.elapsed().as_nanos()).to_vec();
            let revision = revisions[i].load(Ordering::Relaxed);
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, revision)])
                .and_then([TxnOp::put(key.as_str(), value, None)]);
            anyhow::ensure!(k.txn(txn).await?.succeeded(), "moved");
            Ok(())
        }
    })
    .await?;
    let update_cpu = before.per_operation(&Cpu::now(None, etcd_pid), CREATES);
    eprintln!("  LISTs…");
    let mut times = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let response = kv
            .clone()
            .get("/raw/configmaps/bench/", Some(GetOptions::new().with_prefix()))
            .await?;
        anyhow::ensure!(response.kvs().len() == CREATES, "short range");
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Figures {
        creates,
        updates,
        update_cpu,
        gets,
        get_p50: percentile(&latencies, 0.5),
        get_p99: percentile(&latencies, 0.99),
        single_p50: percentile(&single, 0.5),
        single_p99: percentile(&single, 0.99),
        paced_p50: percentile(&paced_gets, 0.5),
        paced_p99: percentile(&paced_gets, 0.99),
        paced_late_p99: percentile(&paced_late, 0.99),
        list_storage_ms: median(times),
        create_cpu,
        ..Figures::default()
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut objects = 100_000;
    let mut watchers = 1000;
    let mut only_embedded = false;
    let mut binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_flotilla-apiserver"));
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--objects" => objects = args.next().context("--objects N")?.parse()?,
            "--watchers" => watchers = args.next().context("--watchers N")?.parse()?,
            "--embedded-only" => only_embedded = true,
            // Another build (the previous version) for a baseline in the same run.
            "--apiserver" => binary = args.next().context("--apiserver PATH")?.into(),
            "--bench" => {}
            other => bail!("unknown argument {other:?} (try --objects N)"),
        }
    }
    // Raw etcd-client and the apiserver each get an etcd of their own, started empty, so that neither pays for
    // the keys and history the other left.
    let raw = {
        let etcd = tokio::task::spawn_blocking(EtcdServer::start).await??;
        eprintln!("raw etcd…");
        raw_etcd(&etcd.endpoint(), etcd.pid()).await?
    };
    eprintln!("apiserver on the embedded store…");
    let embedded = measure(&binary, None, objects, watchers).await?;
    let on_etcd = if only_embedded {
        Figures::default()
    } else {
        let etcd = tokio::task::spawn_blocking(EtcdServer::start).await??;
        eprintln!("apiserver on etcd…");
        measure(&binary, Some((&etcd.endpoint(), etcd.pid())), objects, watchers).await?
    };

    println!(
        "| measure | raw etcd-client | apiserver on etcd | ratio | apiserver, embedded store | ratio to raw etcd |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row =
        |name: &str, baseline: Option<f64>, etcd: f64, embedded: f64, unit: &str, higher_is_better: bool| {
            let ratio = |x: f64| match baseline {
                Some(base) if higher_is_better => format!("{:.2}×", x / base),
                Some(base) => format!("{:.2}×", base / x),
                None => "–".to_owned(),
            };
            let baseline_text = baseline.map_or("–".to_owned(), |base| format!("{base:.1} {unit}"));
            println!(
                "| {name} | {baseline_text} | {etcd:.1} {unit} | {} | {embedded:.1} {unit} | {} |",
                ratio(etcd),
                ratio(embedded)
            );
        };
    row(
        "create ConfigMap, 64 clients",
        Some(raw.creates),
        on_etcd.creates,
        embedded.creates,
        "ops/s",
        true,
    );
    row(
        "update ConfigMap (merge patch), 64 clients",
        Some(raw.updates),
        on_etcd.updates,
        embedded.updates,
        "ops/s",
        true,
    );
    row(
        "GET ConfigMap, 64 clients",
        Some(raw.gets),
        on_etcd.gets,
        embedded.gets,
        "ops/s",
        true,
    );
    row(
        "GET latency p50, 64 clients",
        Some(raw.get_p50),
        on_etcd.get_p50,
        embedded.get_p50,
        "ms",
        false,
    );
    row(
        "GET latency p99, 64 clients",
        Some(raw.get_p99),
        on_etcd.get_p99,
        embedded.get_p99,
        "ms",
        false,
    );
    row(
        "GET latency p50, 1 client",
        Some(raw.single_p50),
        on_etcd.single_p50,
        embedded.single_p50,
        "ms",
        false,
    );
    row(
        "GET latency p99, 1 client",
        Some(raw.single_p99),
        on_etcd.single_p99,
        embedded.single_p99,
        "ms",
        false,
    );
    row(
        &format!("GET latency p50, {PACED_RATE} GETs/s paced"),
        Some(raw.paced_p50),
        on_etcd.paced_p50,
        embedded.paced_p50,
        "ms",
        false,
    );
    row(
        &format!("GET latency p99, {PACED_RATE} GETs/s paced"),
        Some(raw.paced_p99),
        on_etcd.paced_p99,
        embedded.paced_p99,
        "ms",
        false,
    );
    row(
        "paced GETs: the generator's own lateness, p99",
        None,
        on_etcd.paced_late_p99,
        embedded.paced_late_p99,
        "ms",
        false,
    );
    let (storage, cache) = (on_etcd.list_storage_ms, on_etcd.list_cache_ms);
    row(
        "LIST 10,000 ConfigMaps, consistent (storage)",
        Some(raw.list_storage_ms),
        storage,
        embedded.list_storage_ms,
        "ms",
        false,
    );
    row(
        "LIST 10,000 ConfigMaps, resourceVersion=0 (cache)",
        Some(raw.list_storage_ms),
        cache,
        embedded.list_cache_ms,
        "ms",
        false,
    );
    row(
        &format!("{watchers} watchers: delivery latency p50"),
        None,
        on_etcd.watch_p50,
        embedded.watch_p50,
        "ms",
        false,
    );
    row(
        &format!("{watchers} watchers: delivery latency p99"),
        None,
        on_etcd.watch_p99,
        embedded.watch_p99,
        "ms",
        false,
    );
    row(
        "start to ready (first start, generates PKI)",
        None,
        on_etcd.ready_ms,
        embedded.ready_ms,
        "ms",
        false,
    );
    row(
        "RSS idle",
        None,
        on_etcd.idle_rss,
        embedded.idle_rss,
        "MiB",
        false,
    );
    let holding = format!("RSS holding {} ConfigMaps", embedded.objects);
    row(&holding, None, on_etcd.full_rss, embedded.full_rss, "MiB", false);
    // Where a write's CPU goes: on 2 saturated cores, throughput is the inverse of the total, so the total's
    // ratio is the ratio the machine allows, steadier than the throughput of one noisy run.
    for (write, of_figures) in [
        ("create", (|f: &Figures| f.create_cpu) as fn(&Figures) -> Cpu),
        ("update", |f: &Figures| f.update_cpu),
    ] {
        let (raw_cpu, etcd_cpu, embedded_cpu) =
            (of_figures(&raw), of_figures(&on_etcd), of_figures(&embedded));
        let cpu_row = |name: &str, raw_cell: String, baseline: Option<f64>, of: &dyn Fn(&Cpu) -> f64| {
            let ratio = |x: f64| baseline.map_or("–".to_owned(), |base| format!("{:.2}×", base / x));
            let (etcd_value, embedded_value) = (of(&etcd_cpu), of(&embedded_cpu));
            println!(
                "| CPU per {write}: {name} | {raw_cell} | {etcd_value:.1} µs | {} | {embedded_value:.1} µs | {} |",
                ratio(etcd_value),
                ratio(embedded_value),
            );
        };
        cpu_row("apiserver", "–".to_owned(), None, &|c| c.server);
        cpu_row("etcd", format!("{:.1} µs", raw_cpu.etcd), None, &|c| c.etcd);
        cpu_row(
            "load generator",
            format!("{:.1} µs", raw_cpu.client),
            None,
            &|c| c.client,
        );
        cpu_row(
            "all three",
            format!("{:.1} µs", raw_cpu.total()),
            Some(raw_cpu.total()),
            &Cpu::total,
        );
    }
    println!();
    let expected = watchers * WATCHED_WRITES;
    println!(
        "Watch events delivered: {} of {expected} on etcd, {} of {expected} on the embedded store.",
        on_etcd.watch_delivered, embedded.watch_delivered
    );
    Ok(())
}
