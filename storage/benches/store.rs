//! Storage benchmark: the store contract's operations on both backends, with raw `etcd-client` calls (the same
//! transactions kube-apiserver sends, without any Flotilla layer) as the baseline, all in one run against one
//! etcd started on a free loopback port. Each figure is the median of `--repeat` runs; the table it prints is
//! what `docs/benchmarks.md` records.
//!
//! Run with `bash .ci/run-bench` (or `cargo bench -p flotilla-storage --bench store -- --repeat 5`).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use etcd_client::{Compare, CompareOp, GetOptions, KvClient, Txn, TxnOp, WatchOptions};
use flotilla_storage::embedded::{EmbeddedConfig, EmbeddedStore};
use flotilla_storage::etcd::{EtcdConfig, EtcdStore};
use flotilla_storage::testing::EtcdServer;
use flotilla_storage::{ListOptions, Revision, Store, WatchEvent};
use futures::StreamExt;

const WRITERS: usize = 64;
const KEYS: usize = 10_000;
const READS: usize = 50_000;
const LISTS: usize = 20;
/// A value the size of a small Kubernetes object.
const VALUE_BYTES: usize = 1024;

struct Options {
    repeat: usize,
}

fn options() -> Result<Options> {
    let mut options = Options { repeat: 3 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => options.repeat = args.next().context("--repeat N")?.parse()?,
            "--bench" => {} // cargo bench passes it
            "--help" | "-h" => {
                println!("store bench [--repeat N]: median of N runs of each figure (default 3)");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    Ok(options)
}

/// The operations under test, for one system (raw etcd-client, or a `Store`).
trait System: Send + Sync + 'static {
    fn create(&self, key: String, value: Bytes) -> impl Future<Output = Result<Revision>> + Send;
    fn get(&self, key: String) -> impl Future<Output = Result<()>> + Send;
    fn update(
        &self,
        key: String,
        value: Bytes,
        expected: Revision,
    ) -> impl Future<Output = Result<Revision>> + Send;
    fn list(&self, prefix: String) -> impl Future<Output = Result<usize>> + Send;
    /// Counts events under `prefix` after `from` until `n` have arrived; returns each one's delivery latency.
    fn watch_latencies(
        &self,
        prefix: String,
        from: Revision,
        n: usize,
        epoch: Instant,
    ) -> impl Future<Output = Result<Vec<Duration>>> + Send;
}

struct Raw(KvClient, etcd_client::WatchClient);

impl System for Raw {
    async fn create(&self, key: String, value: Bytes) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value.to_vec(), None)]);
        let response = self.0.clone().txn(txn).await?;
        anyhow::ensure!(response.succeeded(), "key exists");
        Ok(Revision(response.header().context("header")?.revision()))
    }
    async fn get(&self, key: String) -> Result<()> {
        let response = self.0.clone().get(key, None).await?;
        anyhow::ensure!(!response.kvs().is_empty(), "missing");
        Ok(())
    }
    async fn update(&self, key: String, value: Bytes, expected: Revision) -> Result<Revision> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, expected.0)])
            .and_then([TxnOp::put(key.as_str(), value.to_vec(), None)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let response = self.0.clone().txn(txn).await?;
        anyhow::ensure!(response.succeeded(), "conflict");
        Ok(Revision(response.header().context("header")?.revision()))
    }
    async fn list(&self, prefix: String) -> Result<usize> {
        let response = self
            .0
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(response.kvs().len())
    }
    async fn watch_latencies(
        &self,
        prefix: String,
        from: Revision,
        n: usize,
        epoch: Instant,
    ) -> Result<Vec<Duration>> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_start_revision(from.0 + 1);
        let mut stream = self.1.clone().watch(prefix, Some(options)).await?;
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let response = stream.message().await?.context("watch ended")?;
            for event in response.events() {
                let value = event.kv().context("kv")?.value();
                latencies.push(latency(value, epoch));
            }
        }
        Ok(latencies)
    }
}

struct Contract<S>(S);

impl<S: Store> System for Contract<S> {
    async fn create(&self, key: String, value: Bytes) -> Result<Revision> {
        Ok(self.0.create(&key, value).await?)
    }
    async fn get(&self, key: String) -> Result<()> {
        self.0.get(&key).await?;
        Ok(())
    }
    async fn update(&self, key: String, value: Bytes, expected: Revision) -> Result<Revision> {
        Ok(self.0.update(&key, value, expected).await?)
    }
    async fn list(&self, prefix: String) -> Result<usize> {
        Ok(self.0.list(&prefix, &ListOptions::default()).await?.items.len())
    }
    async fn watch_latencies(
        &self,
        prefix: String,
        from: Revision,
        n: usize,
        epoch: Instant,
    ) -> Result<Vec<Duration>> {
        let mut watch = self.0.watch(&prefix, from).await?;
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            match watch.next().await.context("watch ended")?? {
                WatchEvent::Put { kv, .. } => latencies.push(latency(&kv.value, epoch)),
                WatchEvent::Delete { .. } => anyhow::bail!("unexpected delete"),
                WatchEvent::Progress { .. } => {}
            }
        }
        Ok(latencies)
    }
}

/// A value that carries the moment it was written (nanoseconds since `epoch`), padded to `VALUE_BYTES`.
fn stamped_value(epoch: Instant) -> Bytes {
    let mut value = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
    value.resize(VALUE_BYTES, b'x');
    value.into()
}

fn latency(value: &[u8], epoch: Instant) -> Duration {
    let written = u64::from_le_bytes(value[..8].try_into().expect("stamped value"));
    epoch.elapsed().saturating_sub(Duration::from_nanos(written))
}

/// Runs `n` operations over `concurrency` tasks; returns operations per second.
async fn throughput<F, Fut>(n: usize, concurrency: usize, op: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks = (0..concurrency).map(|_| {
        let (op, next) = (op.clone(), next.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                op(i).await?;
            }
        })
    });
    for task in futures::future::join_all(tasks).await {
        task??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[derive(Default, Clone, Copy)]
struct Figures {
    create_1: f64,
    create_64: f64,
    get_64: f64,
    update_64: f64,
    list_ms: f64,
    watch_events_per_s: f64,
    watch_p50_ms: f64,
    watch_p99_ms: f64,
}

async fn measure<S: System>(system: Arc<S>, name: &str, run: usize) -> Result<Figures> {
    let prefix = format!("/bench/{name}/{run}/");
    let epoch = Instant::now();
    let mut figures = Figures::default();

    // One writer at a time: each create waits for its own fsync.
    let (s, p) = (system.clone(), prefix.clone());
    figures.create_1 = throughput(500, 1, move |i| {
        let (s, key) = (s.clone(), format!("{p}single/{i:06}"));
        async move { s.create(key, stamped_value(epoch)).await.map(drop) }
    })
    .await?;

    // 64 concurrent writers, with a watch on the prefix measuring delivery at the same time.
    let keys = format!("{prefix}keys/");
    let start = system
        .create(format!("{prefix}start"), Bytes::from_static(b"0"))
        .await?;
    let watcher = {
        let (s, k) = (system.clone(), keys.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let latencies = s.watch_latencies(k, start, KEYS, epoch).await?;
            Ok::<_, anyhow::Error>((latencies, started.elapsed()))
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let revisions = Arc::new(std::sync::Mutex::new(vec![Revision::ZERO; KEYS]));
    let (s, k, r) = (system.clone(), keys.clone(), revisions.clone());
    figures.create_64 = throughput(KEYS, WRITERS, move |i| {
        let (s, key, r) = (s.clone(), format!("{k}{i:06}"), r.clone());
        async move {
            let revision = s.create(key, stamped_value(epoch)).await?;
            r.lock().expect("revisions")[i] = revision;
            Ok(())
        }
    })
    .await?;
    let (mut latencies, watch_elapsed) = watcher.await??;
    latencies.sort();
    figures.watch_events_per_s = KEYS as f64 / watch_elapsed.as_secs_f64();
    figures.watch_p50_ms = percentile(&latencies, 0.50).as_secs_f64() * 1e3;
    figures.watch_p99_ms = percentile(&latencies, 0.99).as_secs_f64() * 1e3;

    let (s, k) = (system.clone(), keys.clone());
    figures.get_64 = throughput(READS, WRITERS, move |i| {
        let (s, key) = (s.clone(), format!("{k}{:06}", (i * 7919) % KEYS));
        async move { s.get(key).await }
    })
    .await?;

    let (s, k, r) = (system.clone(), keys.clone(), revisions.clone());
    figures.update_64 = throughput(KEYS, WRITERS, move |i| {
        let (s, key, r) = (s.clone(), format!("{k}{i:06}"), r.clone());
        async move {
            let expected = r.lock().expect("revisions")[i];
            s.update(key, stamped_value(epoch), expected).await.map(drop)
        }
    })
    .await?;

    Ok(figures)
}

async fn measure_median<S: System>(system: Arc<S>, name: &str, repeat: usize) -> Result<Figures> {
    let mut runs = Vec::new();
    for run in 0..repeat {
        runs.push(
            measure(system.clone(), name, run)
                .await
                .with_context(|| format!("{name} run {run}"))?,
        );
        eprintln!("  {name}: run {} of {repeat} done", run + 1);
    }
    let pick = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    Ok(Figures {
        create_1: pick(|f| f.create_1),
        create_64: pick(|f| f.create_64),
        get_64: pick(|f| f.get_64),
        update_64: pick(|f| f.update_64),
        list_ms: 0.0, // measured apart, interleaved: see `list_ms`
        watch_events_per_s: pick(|f| f.watch_events_per_s),
        watch_p50_ms: pick(|f| f.watch_p50_ms),
        watch_p99_ms: pick(|f| f.watch_p99_ms),
    })
}

/// Median milliseconds to list 10k keys for raw etcd-client, `EtcdStore` and `EmbeddedStore`, interleaved list
/// by list so that each sees the same moment of the machine's noise; raw and `EtcdStore` read the very same keys.
async fn list_ms(
    raw: &Raw,
    etcd: &Contract<EtcdStore>,
    embedded: &Contract<EmbeddedStore>,
) -> Result<[f64; 3]> {
    let (etcd_keys, embedded_keys) = ("/bench/etcd/0/keys/", "/bench/embedded/0/keys/");
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..LISTS {
        for (i, times) in times.iter_mut().enumerate() {
            let started = Instant::now();
            let n = match i {
                0 => raw.list(etcd_keys.to_owned()).await?,
                1 => etcd.list(etcd_keys.to_owned()).await?,
                _ => embedded.list(embedded_keys.to_owned()).await?,
            };
            times.push(started.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(n == KEYS, "listed {n} keys, expected {KEYS}");
        }
    }
    Ok(times.map(median))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let options = options()?;
    let etcd = tokio::task::spawn_blocking(EtcdServer::start).await??;
    let config = EtcdConfig::new([etcd.endpoint()]);
    let client = etcd_client::Client::connect([etcd.endpoint()], None).await?;
    let raw = Arc::new(Raw(
        client.kv_client().max_decoding_message_size(256 << 20),
        client.watch_client(),
    ));
    let etcd_store = Arc::new(Contract(EtcdStore::connect(&config).await?));
    let dir = tempfile::tempdir()?;
    let embedded = Arc::new(Contract(EmbeddedStore::open(EmbeddedConfig::new(dir.path()))?));

    eprintln!("measuring (median of {} runs each)…", options.repeat);
    let mut raw_figures = measure_median(raw.clone(), "raw", options.repeat).await?;
    let mut etcd_figures = measure_median(etcd_store.clone(), "etcd", options.repeat).await?;
    let mut embedded_figures = measure_median(embedded.clone(), "embedded", options.repeat).await?;
    [
        raw_figures.list_ms,
        etcd_figures.list_ms,
        embedded_figures.list_ms,
    ] = list_ms(&raw, &etcd_store, &embedded).await?;

    println!(
        "| operation | raw etcd-client | EtcdStore | ratio to raw | EmbeddedStore | ratio to raw etcd |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, unit: &str, f: fn(&Figures) -> f64, higher_is_better: bool| {
        let (raw, etcd, embedded) = (f(&raw_figures), f(&etcd_figures), f(&embedded_figures));
        let ratio = |x: f64| if higher_is_better { x / raw } else { raw / x };
        println!(
            "| {name} | {raw:.1} {unit} | {etcd:.1} {unit} | {:.2}× | {embedded:.1} {unit} | {:.2}× |",
            ratio(etcd),
            ratio(embedded)
        );
    };
    row("create, 1 writer", "ops/s", |f| f.create_1, true);
    row("create, 64 writers", "ops/s", |f| f.create_64, true);
    row("update (CAS), 64 writers", "ops/s", |f| f.update_64, true);
    row("get, 64 readers", "ops/s", |f| f.get_64, true);
    row("list 10k keys", "ms", |f| f.list_ms, false);
    row(
        "watch delivery during 64-writer creates",
        "events/s",
        |f| f.watch_events_per_s,
        true,
    );
    row(
        "watch latency p50 (write issued → event)",
        "ms",
        |f| f.watch_p50_ms,
        false,
    );
    row("watch latency p99", "ms", |f| f.watch_p99_ms, false);
    println!();
    println!(
        "Ratios are throughput ÷ raw etcd-client's (for times: raw's time ÷ this one), so above 1× is faster."
    );
    drop(etcd);
    Ok(())
}
