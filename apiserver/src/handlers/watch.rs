//! WATCH: a chunked stream of JSON watch events, one per line, served from the watch cache.
//!
//! An unset or `0` `resourceVersion` first sends the current state as ADDED events (the Python client relies on
//! it); `N` sends every change after N. An object that stops matching the selectors is DELETED for this watcher,
//! one that starts matching is ADDED, as kube-apiserver does. Progress becomes BOOKMARKs when asked for; a
//! revision older than the cache's history is one ERROR event carrying 410 Expired. A watcher that falls behind
//! the cache's broadcast is closed, and re-watches from its last revision like any kube client.
//!
//! When the `Accept` header asks for a Table (`kubectl get -w`), each event carries a one-row Table; as in kube, only
//! the first one has the column definitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_storage::Revision;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Ctx;
use super::read::{Filter, parse_resource_version};
use crate::cache::{CacheError, CacheEvent, Cached, Subscription};
use crate::status::ApiError;

/// kube-apiserver closes watches after a random 30–60 minutes unless asked for less.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// `table`: the Table version the client asked for, if any.
pub async fn watch(ctx: Ctx, table: Option<&'static str>) -> Result<Response, ApiError> {
    let filter = Filter::new(&ctx)?;
    let bookmarks = ctx.param("allowWatchBookmarks") == Some("true");
    let timeout = match ctx.param("timeoutSeconds") {
        Some(seconds) => Duration::from_secs(
            seconds
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {seconds:?}")))?,
        ),
        None => DEFAULT_TIMEOUT,
    };
    let requested = ctx
        .param("resourceVersion")
        .map(parse_resource_version)
        .transpose()?;
    let initial_events_end = match ctx.param("sendInitialEvents") {
        Some("true") => {
            if ctx.param("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks {
                return Err(ApiError::BadRequest(
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true"
                        .to_owned(),
                ));
            }
            true
        }
        Some("false") | None => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid sendInitialEvents {other:?}"
            )));
        }
    };
    // Unset or 0 (or an explicit request for them): start with the current objects.
    let from = match requested {
        Some(rv) if rv > Revision::ZERO && !initial_events_end => Some(rv.get()),
        _ => None,
    };
    let cache = ctx.server.caches.of(ctx.resource).clone();
    let wait_until = match (from, requested) {
        (Some(rv), _) => rv,
        (None, Some(rv)) => rv.get(),
        (None, None) => 0,
    };
    cache.wait_for(wait_until).await.map_err(|err| match err {
        CacheError::TooLarge { requested, current } => {
            ApiError::TooLargeResourceVersion { requested, current }
        }
        CacheError::Expired { requested, oldest } => {
            ApiError::Expired(format!("too old resource version: {requested} ({oldest})"))
        }
    })?;
    let prefix = ctx.collection_prefix();
    let subscription = cache.subscribe(&prefix, from);
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    let api_version = ctx.resource.api_version(&ctx.version);
    let stream = WatchStream {
        ctx,
        api_version,
        filter,
        prefix,
        bookmarks,
        sender,
        table,
        headers_sent: AtomicBool::new(false),
    };
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, stream.run(subscription, initial_events_end)).await;
    });
    let body = Body::from_stream(ReceiverStream::new(receiver));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

struct WatchStream {
    ctx: Ctx,
    api_version: String,
    filter: Filter,
    prefix: String,
    bookmarks: bool,
    sender: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
    /// Events as one-row Tables of this version.
    table: Option<&'static str>,
    /// The column definitions went out with the first Table.
    headers_sent: AtomicBool,
}

/// The client went away, or the watch is over.
struct Done;

impl WatchStream {
    async fn send_line(&self, line: Bytes) -> Result<(), Done> {
        self.sender.send(Ok(line)).await.map_err(|_| Done)
    }

    /// `{"type":…,"object":…}` with the object's bytes as the cache serialised them.
    async fn send_object(&self, kind: &str, cached: &Cached) -> Result<(), Done> {
        if let Some(version) = self.table {
            let mut object: Value = serde_json::from_slice(&cached.item_json).unwrap_or_default();
            crate::object::set_type(&mut object, self.ctx.resource, self.ctx.storage_version());
            let metadata = json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
            let mut table = super::table_of(&self.ctx, vec![object], metadata, version);
            if self.headers_sent.swap(true, Ordering::Relaxed) {
                table["columnDefinitions"] = Value::Null;
            }
            return self.send_value(kind, table).await;
        }
        if self.ctx.converts() {
            let mut object: Value = serde_json::from_slice(&cached.item_json).unwrap_or_default();
            crate::object::set_type(&mut object, self.ctx.resource, self.ctx.storage_version());
            return self.send_value(kind, self.ctx.served(object)).await;
        }
        let mut line = Vec::with_capacity(cached.item_json.len() + 96);
        line.extend_from_slice(b"{\"type\":\"");
        line.extend_from_slice(kind.as_bytes());
        line.extend_from_slice(b"\",\"object\":");
        cached.write_typed(&self.api_version, self.ctx.resource.kind, &mut line);
        line.extend_from_slice(b"}\n");
        self.send_line(Bytes::from(line)).await
    }

    async fn send_value(&self, kind: &str, object: Value) -> Result<(), Done> {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON serialises");
        line.push(b'\n');
        self.send_line(Bytes::from(line)).await
    }

    fn bookmark(&self, revision: i64, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({
            "kind": self.ctx.resource.kind,
            "apiVersion": self.ctx.resource.api_version(&self.ctx.version),
            "metadata": metadata,
        })
    }

    async fn run(
        self,
        subscription: Result<Subscription, CacheError>,
        initial_events_end: bool,
    ) -> Result<(), Done> {
        let Subscription {
            initial,
            revision,
            mut live,
        } = match subscription {
            Ok(subscription) => subscription,
            Err(CacheError::Expired { requested, oldest }) => {
                let expired = ApiError::Expired(format!("too old resource version: {requested} ({oldest})"));
                return self.send_value("ERROR", expired.status()).await;
            }
            Err(CacheError::TooLarge { requested, current }) => {
                let err = ApiError::TooLargeResourceVersion { requested, current };
                return self.send_value("ERROR", err.status()).await;
            }
        };
        for event in &initial {
            self.forward(event).await?;
        }
        if initial_events_end {
            self.send_value("BOOKMARK", self.bookmark(revision, true)).await?;
        }
        loop {
            let event = tokio::select! {
                () = self.sender.closed() => return Err(Done),
                event = live.recv() => event,
            };
            match event {
                Ok(event) => self.forward(&event).await?,
                // Too slow for the broadcast, or the cache is relisting: end; the client watches again.
                Err(broadcast::error::RecvError::Lagged(_) | broadcast::error::RecvError::Closed) => {
                    return Ok(());
                }
            }
        }
    }

    async fn forward(&self, event: &Arc<CacheEvent>) -> Result<(), Done> {
        match event.as_ref() {
            CacheEvent::Progress(revision) => {
                if self.bookmarks {
                    self.send_value("BOOKMARK", self.bookmark(*revision, false))
                        .await?;
                }
                Ok(())
            }
            CacheEvent::Put { key, new, prev } if key.starts_with(&self.prefix) => {
                let was = prev.as_ref().map(|prev| self.filter.matches_index(&prev.index));
                match (was, self.filter.matches_index(&new.index)) {
                    (None | Some(false), true) => self.send_object("ADDED", new).await,
                    (Some(true), true) => self.send_object("MODIFIED", new).await,
                    (Some(true), false) => self.send_object("DELETED", new).await,
                    (_, false) => Ok(()),
                }
            }
            CacheEvent::Delete { key, prev }
                if key.starts_with(&self.prefix) && self.filter.matches_index(&prev.index) =>
            {
                self.send_object("DELETED", prev).await
            }
            _ => Ok(()),
        }
    }
}
