//! WATCH: a chunked stream of JSON watch events, one per line.
//!
//! An unset or `0` `resourceVersion` first sends the current state as ADDED events (the Python client relies on
//! it); `N` sends every change after N. An object that stops matching the selectors is DELETED for this watcher,
//! one that starts matching is ADDED, as kube-apiserver does. Store progress notifications become BOOKMARKs when
//! asked for; a revision the store no longer has ends the stream with an ERROR event carrying 410 Expired.

use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_storage::{ListOptions, Revision, WatchEvent};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::Ctx;
use super::read::{Filter, decode, parse_resource_version};
use crate::status::{ApiError, from_storage};

/// kube-apiserver closes watches after a random 30–60 minutes unless asked for less.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn watch(ctx: Ctx) -> Result<Response, ApiError> {
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
    let send_initial = match ctx.param("sendInitialEvents") {
        Some("true") => {
            if ctx.param("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks {
                return Err(ApiError::BadRequest(
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true"
                        .to_owned(),
                ));
            }
            true
        }
        Some("false") | None => requested.is_none_or(|rv| rv == Revision::ZERO),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "invalid sendInitialEvents {other:?}"
            )));
        }
    };
    let (sender, receiver) = mpsc::channel::<Result<Bytes, std::convert::Infallible>>(64);
    tokio::spawn(async move {
        let stream = WatchStream {
            ctx,
            filter,
            bookmarks,
            sender,
        };
        let _ = tokio::time::timeout(timeout, stream.run(requested, send_initial)).await;
    });
    let body = Body::from_stream(ReceiverStream::new(receiver));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response())
}

struct WatchStream {
    ctx: Ctx,
    filter: Filter,
    bookmarks: bool,
    sender: mpsc::Sender<Result<Bytes, std::convert::Infallible>>,
}

/// The client went away.
struct Gone;

impl WatchStream {
    async fn send(&self, kind: &str, object: Value) -> Result<(), Gone> {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).expect("JSON serialises");
        line.push(b'\n');
        self.sender.send(Ok(Bytes::from(line))).await.map_err(|_| Gone)
    }

    async fn send_error(&self, err: ApiError) {
        let _ = self.send("ERROR", err.status()).await;
    }

    fn bookmark(&self, revision: Revision, initial_events_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.get().to_string()});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({
            "kind": self.ctx.resource.kind,
            "apiVersion": self.ctx.resource.api_version(&self.ctx.version),
            "metadata": metadata,
        })
    }

    async fn run(self, requested: Option<Revision>, send_initial: bool) -> Result<(), Gone> {
        let store = self.ctx.server.store.clone();
        let subject = self.ctx.subject("");
        let prefix = self.ctx.collection_prefix();
        let mut from = requested.unwrap_or(Revision::ZERO);
        if send_initial {
            // The current state, all pages at one revision, as ADDED events.
            let mut options = ListOptions {
                limit: Some(500),
                ..Default::default()
            };
            loop {
                let page = match store.list(&prefix, &options).await {
                    Ok(page) => page,
                    Err(err) => {
                        self.send_error(from_storage(err, &subject)).await;
                        return Ok(());
                    }
                };
                for kv in &page.items {
                    match decode(&self.ctx, kv) {
                        Ok(object) if self.filter.matches(&object) => self.send("ADDED", object).await?,
                        Ok(_) => {}
                        Err(err) => {
                            self.send_error(err).await;
                            return Ok(());
                        }
                    }
                }
                from = page.revision;
                match page.continue_token {
                    Some(token) => {
                        options = ListOptions {
                            limit: Some(500),
                            continue_token: Some(token),
                            revision: None,
                        }
                    }
                    None => break,
                }
            }
            if self.bookmarks && self.ctx.param("sendInitialEvents") == Some("true") {
                self.send("BOOKMARK", self.bookmark(from, true)).await?;
            }
        }
        let mut events = match store.watch(&prefix, from).await {
            Ok(events) => events,
            Err(err) => {
                self.send_error(from_storage(err, &subject)).await;
                return Ok(());
            }
        };
        loop {
            let event = tokio::select! {
                () = self.sender.closed() => return Err(Gone),
                event = events.next() => event,
            };
            match event {
                None => return Ok(()),
                Some(Err(err)) => {
                    self.send_error(from_storage(err, &subject)).await;
                    return Ok(());
                }
                Some(Ok(event)) => self.forward(event).await?,
            }
        }
    }

    async fn forward(&self, event: WatchEvent) -> Result<(), Gone> {
        let decoded = |kv: &flotilla_storage::KeyValue| decode(&self.ctx, kv);
        let result = match event {
            WatchEvent::Progress { revision } => {
                if self.bookmarks {
                    self.send("BOOKMARK", self.bookmark(revision, false)).await?;
                }
                return Ok(());
            }
            WatchEvent::Put { kv, prev } => decoded(&kv).and_then(|new| {
                let old = prev.as_ref().map(decoded).transpose()?;
                Ok(
                    match (
                        old.map(|old| self.filter.matches(&old)),
                        self.filter.matches(&new),
                    ) {
                        (None | Some(false), true) => Some(("ADDED", new)),
                        (Some(true), true) => Some(("MODIFIED", new)),
                        (Some(true), false) => Some(("DELETED", new)),
                        (_, false) => None,
                    },
                )
            }),
            WatchEvent::Delete { revision, prev } => decoded(&prev).map(|mut old| {
                crate::object::set_resource_version(&mut old, revision.get());
                self.filter.matches(&old).then_some(("DELETED", old))
            }),
        };
        match result {
            Ok(Some((kind, object))) => self.send(kind, object).await,
            Ok(None) => Ok(()),
            Err(err) => {
                self.send_error(err).await;
                Err(Gone)
            }
        }
    }
}
