//! The etcd backend: the store contract on a real etcd (v3 API) through `etcd-client`.
//!
//! Writes are single transactions comparing the key's mod revision, as kube-apiserver's etcd3 store does:
//! create is `If(mod == 0) Then(Put)`, update and conditional delete `If(mod == expected) Then(…) Else(Get)`, so
//! a conflict returns the current value in the same round trip. Watches ask for previous values and for etcd's
//! progress notifications; a watch whose connection breaks (etcd restarted, network blip) reconnects from the
//! revision after the last one it delivered, so nothing is lost or repeated.
//!
//! Progress notifications come from etcd's periodic `progress_notify`, which etcd sends only to a watcher that
//! has delivered every event up to the revision it reports; their interval is etcd's
//! `--experimental-watch-progress-notify-interval` (10 minutes unless set; our harness and deploy set 5 s).
//! etcd 3.4's on-demand `RequestProgress` answer can overtake pending events, so it is not used.
//!
//! GETs are linearizable reads, as kube-apiserver's. Those that arrive while other reads are in flight are
//! gathered into one read-only transaction (up to etcd's default `--max-txn-ops` of 128 keys): etcd answers it
//! with one linearizable read at one revision, so each GET still sees every write that completed before it
//! arrived, for one request's overhead instead of many. A failed batch is retried key by key, so each caller
//! gets its own error.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KvClient, Txn, TxnOp,
    TxnOpResponse, WatchClient, WatchOptions,
};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    ContinueToken, Deleted, Error, KeyValue, ListOptions, ListResult, Result, Revision, Store, WatchEvent,
    WatchStream, prefix_end,
};

/// How to reach etcd.
#[derive(Clone, Debug)]
pub struct EtcdConfig {
    /// Client URLs, such as `http://127.0.0.1:2379`.
    pub endpoints: Vec<String>,
    /// How long one request may take before it fails with [`Error::Unavailable`].
    pub request_timeout: Duration,
    /// How long to wait for a connection to an endpoint.
    pub connect_timeout: Duration,
    /// The largest message accepted from etcd (a list of many large values can be big).
    pub max_message_bytes: usize,
    /// TLS to etcd (`https://` endpoints), as kube-apiserver's `--etcd-cafile`, `--etcd-certfile` and
    /// `--etcd-keyfile`.
    pub tls: Option<EtcdTls>,
}

/// PEM files for TLS to etcd: the CA that signed etcd's serving certificates and, when etcd checks client
/// certificates (`--client-cert-auth`), the client's certificate and key.
#[derive(Clone, Debug, Default)]
pub struct EtcdTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl EtcdTls {
    fn options(&self) -> Result<etcd_client::TlsOptions> {
        let read = |path: &PathBuf| {
            std::fs::read(path)
                .map_err(|err| Error::InvalidArgument(format!("read {}: {err}", path.display())))
        };
        let mut options = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca_file {
            options = options.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
        }
        match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                options = options.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "an etcd client certificate and key go together".to_owned(),
                ));
            }
        }
        Ok(options)
    }
}

impl EtcdConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        EtcdConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            max_message_bytes: 256 << 20,
            tls: None,
        }
    }
}

/// The store contract on etcd. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watch: WatchClient,
    reads: mpsc::UnboundedSender<Read>,
}

/// A GET waiting for its batch.
struct Read {
    key: String,
    reply: oneshot::Sender<Result<KeyValue>>,
}

/// Keys in one read transaction: etcd's default `--max-txn-ops`.
const READS_PER_BATCH: usize = 128;
/// Read batches in flight at once. GETs arriving meanwhile queue for the next batch, so under load a batch holds
/// every GET that arrived during the previous round trip.
const READ_BATCHES_IN_FLIGHT: usize = 1;

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore").finish_non_exhaustive()
    }
}

/// What an operation was about, so that an etcd error can name it.
#[derive(Clone, Copy)]
struct Op<'a> {
    key: &'a str,
    value_len: usize,
    revision: Revision,
}

impl<'a> Op<'a> {
    fn key(key: &'a str) -> Self {
        Op {
            key,
            value_len: 0,
            revision: Revision::ZERO,
        }
    }
}

fn etcd_error(err: etcd_client::Error, op: Op<'_>) -> Error {
    use tonic::Code;
    let unavailable = |message: String, err: etcd_client::Error| Error::Unavailable {
        message,
        source: Some(Box::new(err)),
    };
    match &err {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("required revision has been compacted") {
                Error::Expired {
                    requested: op.revision,
                    oldest: None,
                }
            } else if message.contains("required revision is a future revision") {
                Error::FutureRevision {
                    requested: op.revision,
                    current: None,
                }
            } else if message.contains("request is too large") || status.code() == Code::ResourceExhausted {
                Error::ValueTooLarge {
                    key: op.key.to_owned(),
                    size: op.value_len,
                }
            } else if matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown | Code::Aborted
            ) {
                unavailable(format!("etcd: {message}"), err)
            } else {
                Error::internal_from(format!("etcd: {message}"), err)
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            unavailable("cannot reach etcd".to_owned(), err)
        }
        _ => Error::internal_from("etcd client", err),
    }
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    let key = std::str::from_utf8(kv.key())
        .map_err(|e| Error::internal_from("etcd returned a key that is not UTF-8", e))?;
    Ok(KeyValue {
        key: key.to_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: Revision(kv.create_revision()),
        mod_revision: Revision(kv.mod_revision()),
    })
}

/// Like [`key_value`], taking the buffers instead of copying them (lists move megabytes).
fn owned_key_value(kv: etcd_client::KeyValue) -> Result<KeyValue> {
    let (create_revision, mod_revision) = (Revision(kv.create_revision()), Revision(kv.mod_revision()));
    let (key, value) = kv.into_key_value();
    let key = String::from_utf8(key)
        .map_err(|e| Error::internal_from("etcd returned a key that is not UTF-8", e))?;
    Ok(KeyValue {
        key,
        value: Bytes::from(value),
        create_revision,
        mod_revision,
    })
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| Revision(h.revision()))
        .ok_or_else(|| Error::internal("etcd response without a header"))
}

/// The `Else(Get)` branch of a failed compare: the key's current value, or `NotFound`.
fn current_after_failed_compare(responses: Vec<TxnOpResponse>, key: &str, expected: Revision) -> Error {
    let current = responses.into_iter().find_map(|response| match response {
        TxnOpResponse::Get(get) => get.kvs().first().map(key_value),
        _ => None,
    });
    match current {
        None => Error::NotFound { key: key.to_owned() },
        Some(Ok(current)) => Error::Conflict {
            key: key.to_owned(),
            expected,
            current: Box::new(current),
        },
        Some(Err(err)) => err,
    }
}

impl EtcdStore {
    /// Connects lazily: this succeeds while etcd is down, and calls fail with [`Error::Unavailable`] until it
    /// answers.
    pub async fn connect(config: &EtcdConfig) -> Result<Self> {
        let mut options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls.options()?);
        }
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(|err| etcd_error(err, Op::key("")))?;
        let kv = client
            .kv_client()
            .max_decoding_message_size(config.max_message_bytes)
            .max_encoding_message_size(config.max_message_bytes);
        let (reads, queue) = mpsc::unbounded_channel();
        tokio::spawn(gather_reads(kv.clone(), queue));
        Ok(EtcdStore {
            kv,
            watch: client
                .watch_client()
                .max_decoding_message_size(config.max_message_bytes),
            reads,
        })
    }
}

/// Sends queued GETs to etcd in batches until every clone of the store is gone.
async fn gather_reads(kv: KvClient, mut queue: mpsc::UnboundedReceiver<Read>) {
    let in_flight = std::sync::Arc::new(Semaphore::new(READ_BATCHES_IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < READS_PER_BATCH {
            match queue.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let kv = kv.clone();
        tokio::spawn(async move {
            read_batch(kv, batch).await;
            drop(permit);
        });
    }
}

async fn read_batch(mut kv: KvClient, mut batch: Vec<Read>) {
    if batch.len() == 1 {
        let read = batch.pop().expect("one read");
        let _ = read.reply.send(get_one(kv, &read.key).await);
        return;
    }
    let txn = Txn::new().and_then(
        batch
            .iter()
            .map(|read| TxnOp::get(read.key.as_str(), None))
            .collect::<Vec<_>>(),
    );
    match kv.txn(txn).await {
        Ok(response) => {
            for (read, response) in batch.into_iter().zip(response.op_responses()) {
                let result = match response {
                    TxnOpResponse::Get(mut get) => match get.take_kvs().pop() {
                        Some(kv) => owned_key_value(kv),
                        None => Err(Error::NotFound { key: read.key }),
                    },
                    _ => Err(Error::internal("etcd answered a read with a write")),
                };
                let _ = read.reply.send(result);
            }
        }
        Err(_) => {
            // Each caller gets its own error (or its value, if the failure was passing).
            futures::future::join_all(batch.into_iter().map(|read| {
                let kv = kv.clone();
                async move {
                    let _ = read.reply.send(get_one(kv, &read.key).await);
                }
            }))
            .await;
        }
    }
}

async fn get_one(mut kv: KvClient, key: &str) -> Result<KeyValue> {
    let mut response = kv
        .get(key, None)
        .await
        .map_err(|err| etcd_error(err, Op::key(key)))?;
    match response.take_kvs().pop() {
        Some(kv) => owned_key_value(kv),
        None => Err(Error::NotFound { key: key.to_owned() }),
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        let op = Op {
            key,
            value_len: value.len(),
            revision: Revision::ZERO,
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)]);
        let response = self
            .kv
            .clone()
            .txn(txn)
            .await
            .map_err(|err| etcd_error(err, op))?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists { key: key.to_owned() });
        }
        header_revision(response.header())
    }

    async fn get(&self, key: &str) -> Result<KeyValue> {
        let (reply, answer) = oneshot::channel();
        let read = Read {
            key: key.to_owned(),
            reply,
        };
        if self.reads.send(read).is_err() {
            return get_one(self.kv.clone(), key).await;
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the etcd read batcher stopped")))
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListResult> {
        let (start, revision) = match (&options.continue_token, options.revision) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "a revision cannot be given together with a continue token".to_owned(),
                ));
            }
            (Some(token), None) => {
                let token = ContinueToken::decode(token)?;
                (token.start_key(prefix), token.revision)
            }
            (None, revision) => (prefix.to_owned(), revision.unwrap_or(Revision::ZERO)),
        };
        let mut get = GetOptions::new().with_revision(revision.0);
        get = match prefix_end(prefix.as_bytes()) {
            Some(end) => get.with_range(end),
            None => get.with_from_key(),
        };
        if let Some(limit) = options.limit.filter(|limit| *limit > 0) {
            get = get.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let op = Op {
            key: prefix,
            value_len: 0,
            revision,
        };
        let mut response = self
            .kv
            .clone()
            .get(start, Some(get))
            .await
            .map_err(|err| etcd_error(err, op))?;
        let list_revision = if revision > Revision::ZERO {
            revision
        } else {
            header_revision(response.header())?
        };
        let items = response
            .take_kvs()
            .into_iter()
            .map(owned_key_value)
            .collect::<Result<Vec<_>>>()?;
        let (continue_token, remaining) = match items.last() {
            Some(last) if response.more() => {
                let remaining = u64::try_from(response.count())
                    .unwrap_or(0)
                    .saturating_sub(items.len() as u64);
                (
                    Some(ContinueToken::after(prefix, &last.key, list_revision).encode()),
                    Some(remaining),
                )
            }
            _ => (None, None),
        };
        Ok(ListResult {
            items,
            revision: list_revision,
            continue_token,
            remaining,
        })
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<Revision> {
        if expected <= Revision::ZERO {
            return Err(Error::InvalidArgument(format!(
                "update of {key:?} needs the expected mod revision"
            )));
        }
        let op = Op {
            key,
            value_len: value.len(),
            revision: Revision::ZERO,
        };
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected.0)])
            .and_then([TxnOp::put(key, value.to_vec(), None)])
            .or_else([TxnOp::get(key, None)]);
        let response = self
            .kv
            .clone()
            .txn(txn)
            .await
            .map_err(|err| etcd_error(err, op))?;
        if !response.succeeded() {
            return Err(current_after_failed_compare(
                response.op_responses(),
                key,
                expected,
            ));
        }
        header_revision(response.header())
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        let delete = TxnOp::delete(key, Some(DeleteOptions::new().with_prev_key()));
        let txn = match precondition {
            Some(expected) => Txn::new()
                .when([Compare::mod_revision(key, CompareOp::Equal, expected.0)])
                .and_then([delete])
                .or_else([TxnOp::get(key, None)]),
            None => Txn::new().and_then([delete]),
        };
        let response = self
            .kv
            .clone()
            .txn(txn)
            .await
            .map_err(|err| etcd_error(err, Op::key(key)))?;
        if !response.succeeded() {
            let expected = precondition.unwrap_or_default();
            return Err(current_after_failed_compare(
                response.op_responses(),
                key,
                expected,
            ));
        }
        let revision = header_revision(response.header())?;
        let prev = response
            .op_responses()
            .into_iter()
            .find_map(|response| match response {
                TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(key_value),
                _ => None,
            });
        match prev {
            Some(prev) => Ok(Deleted {
                prev: prev?,
                revision,
            }),
            None => Err(Error::NotFound { key: key.to_owned() }),
        }
    }

    async fn watch(&self, prefix: &str, from: Revision) -> Result<WatchStream> {
        let from = if from > Revision::ZERO {
            from
        } else {
            self.current_revision().await?
        };
        // etcd acknowledges a watch as created before it notices that its start revision is compacted, so ask
        // first: a read at the start revision fails exactly when the watch would. (A compaction racing this
        // check still ends the stream with `Expired` as its first item.)
        let start = Revision(from.0 + 1);
        let probe = GetOptions::new().with_count_only().with_revision(start.0);
        let op = Op {
            key: prefix,
            value_len: 0,
            revision: from,
        };
        match self
            .kv
            .clone()
            .get(prefix, Some(probe))
            .await
            .map_err(|err| etcd_error(err, op))
        {
            Ok(_) | Err(Error::FutureRevision { .. }) => {}
            Err(err) => return Err(err),
        }
        let mut watch = EtcdWatch {
            client: self.watch.clone(),
            prefix: prefix.to_owned(),
            next: from.0 + 1,
        };
        // Open the first watch here, so that an expired revision or an unreachable etcd is the caller's
        // error rather than the stream's.
        let stream = watch.open().await?;
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(watch.run(stream, sender));
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }

    async fn current_revision(&self) -> Result<Revision> {
        // A count-only read of one key costs etcd nothing and carries the store revision in its header.
        let options = GetOptions::new().with_count_only();
        let response = self
            .kv
            .clone()
            .get("\0", Some(options))
            .await
            .map_err(|err| etcd_error(err, Op::key("")))?;
        header_revision(response.header())
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        let op = Op {
            key: "",
            value_len: 0,
            revision,
        };
        match self
            .kv
            .clone()
            .compact(revision.0, None)
            .await
            .map_err(|err| etcd_error(err, op))
        {
            Ok(_) | Err(Error::Expired { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// One logical watch, reconnecting from `next` whenever its etcd stream breaks.
struct EtcdWatch {
    client: WatchClient,
    prefix: String,
    /// The first revision not yet delivered.
    next: i64,
}

/// What became of one etcd watch stream.
enum StreamEnd {
    /// The consumer went away.
    Closed,
    /// The stream broke; open another from `next`.
    Broken,
}

impl EtcdWatch {
    async fn open(&mut self) -> Result<etcd_client::WatchStream> {
        let mut options = WatchOptions::new()
            .with_start_revision(self.next)
            .with_prev_key()
            .with_progress_notify();
        options = match prefix_end(self.prefix.as_bytes()) {
            Some(end) => options.with_range(end),
            None => options.with_from_key(),
        };
        let requested = Revision(self.next - 1);
        let op = Op {
            key: &self.prefix,
            value_len: 0,
            revision: requested,
        };
        let mut stream = self
            .client
            .clone()
            .watch(self.prefix.as_str(), Some(options))
            .await
            .map_err(|e| etcd_error(e, op))?;
        // etcd answers a watch creation with `created`, or with `canceled` when the revision is compacted.
        match stream.message().await.map_err(|err| etcd_error(err, op))? {
            Some(response) if response.canceled() && response.compact_revision() > 0 => Err(Error::Expired {
                requested,
                oldest: Some(Revision(response.compact_revision())),
            }),
            Some(response) if response.created() && !response.canceled() => Ok(stream),
            Some(response) => Err(Error::Unavailable {
                message: format!("etcd refused the watch: {}", response.cancel_reason()),
                source: None,
            }),
            None => Err(Error::Unavailable {
                message: "etcd closed the watch stream".to_owned(),
                source: None,
            }),
        }
    }

    async fn run(mut self, mut stream: etcd_client::WatchStream, sender: mpsc::Sender<Result<WatchEvent>>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.forward(&mut stream, &sender).await {
                StreamEnd::Closed => return,
                StreamEnd::Broken => {}
            }
            // Reconnect from the first undelivered revision until etcd answers or the consumer leaves.
            stream = loop {
                tokio::select! {
                    () = sender.closed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                match self.open().await {
                    Ok(stream) => {
                        tracing::info!(prefix = %self.prefix, from = self.next, "etcd watch resumed");
                        backoff = Duration::from_millis(50);
                        break stream;
                    }
                    Err(err @ Error::Expired { .. }) => {
                        let _ = sender.send(Err(err)).await;
                        return;
                    }
                    Err(err) => {
                        tracing::debug!(prefix = %self.prefix, error = %err, "etcd watch reconnect failed")
                    }
                }
            };
        }
    }

    async fn forward(
        &mut self,
        stream: &mut etcd_client::WatchStream,
        sender: &mpsc::Sender<Result<WatchEvent>>,
    ) -> StreamEnd {
        loop {
            let message = tokio::select! {
                () = sender.closed() => return StreamEnd::Closed,
                message = stream.message() => message,
            };
            let response = match message {
                Ok(Some(response)) => response,
                Ok(None) => return StreamEnd::Broken,
                Err(err) => {
                    tracing::warn!(prefix = %self.prefix, error = %err, "etcd watch stream broke; resuming");
                    return StreamEnd::Broken;
                }
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    let expired = Error::Expired {
                        requested: Revision(self.next - 1),
                        oldest: Some(Revision(response.compact_revision())),
                    };
                    let _ = sender.send(Err(expired)).await;
                    return StreamEnd::Closed;
                }
                tracing::warn!(prefix = %self.prefix, reason = response.cancel_reason(), "etcd canceled the watch");
                return StreamEnd::Broken;
            }
            let events = response.events();
            if events.is_empty() {
                // A progress notification: everything up to the header revision has been delivered.
                if let Some(revision) = response.header().map(|h| h.revision()) {
                    if revision >= self.next {
                        self.next = revision + 1;
                    }
                    if revision >= self.next - 1 {
                        let progress = WatchEvent::Progress {
                            revision: Revision(revision),
                        };
                        if sender.send(Ok(progress)).await.is_err() {
                            return StreamEnd::Closed;
                        }
                    }
                }
                continue;
            }
            for event in events {
                let converted = convert_event(event);
                if let Ok(event) = &converted {
                    let revision = event.revision().0;
                    if revision < self.next {
                        continue; // Already delivered before a reconnect.
                    }
                    self.next = revision + 1;
                }
                let failed = converted.is_err();
                if sender.send(converted).await.is_err() || failed {
                    return StreamEnd::Closed;
                }
            }
        }
    }
}

fn convert_event(event: &etcd_client::Event) -> Result<WatchEvent> {
    let kv = event
        .kv()
        .ok_or_else(|| Error::internal("etcd watch event without a key"))?;
    let prev = event.prev_kv().map(key_value).transpose()?;
    match event.event_type() {
        etcd_client::EventType::Put => Ok(WatchEvent::Put {
            kv: key_value(kv)?,
            prev,
        }),
        etcd_client::EventType::Delete => {
            // As kube-apiserver: a delete without its previous value cannot be reported faithfully.
            let prev = prev.ok_or_else(|| Error::internal("etcd delete event without the previous value"))?;
            Ok(WatchEvent::Delete {
                revision: Revision(kv.mod_revision()),
                prev,
            })
        }
    }
}
