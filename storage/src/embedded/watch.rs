//! Watches on the embedded store.
//!
//! A watch subscribes to the writer's broadcast of committed batches *before* it reads the current revision,
//! then replays the log from its start revision up to that revision. From then on it forwards broadcast
//! batches, skipping what it has already seen. If it falls behind the broadcast buffer (or a batch arrives
//! after a gap), it replays the missing revisions from the log, so a slow watch never loses an event and never
//! holds the writer back. `seen` is the revision up to which every change has been looked at; it is also what
//! progress notifications report.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use redb::ReadableDatabase;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::commit::Batch;
use super::{LOG, Shared, VERSIONS, read_version, revision};
use crate::{Error, Result, Revision, WatchEvent, WatchStream};

pub(super) fn start(
    shared: Arc<Shared>,
    events: &broadcast::Sender<Arc<Batch>>,
    prefix: &str,
    from: Revision,
) -> Result<WatchStream> {
    let live = events.subscribe();
    let current = Revision(shared.revision.load(Ordering::Acquire));
    let from = if from > Revision::ZERO { from } else { current };
    let compacted = Revision(shared.compacted.load(Ordering::Acquire));
    if from.0 + 1 < compacted.0 {
        return Err(Error::Expired {
            requested: from,
            oldest: Some(compacted),
        });
    }
    let (sender, receiver) = mpsc::channel(256);
    let watch = EmbeddedWatch {
        shared,
        prefix: prefix.to_owned(),
        seen: from,
        sender,
    };
    tokio::spawn(watch.run(live, current));
    Ok(Box::pin(ReceiverStream::new(receiver)))
}

struct EmbeddedWatch {
    shared: Arc<Shared>,
    prefix: String,
    /// Every change up to this revision has been delivered or did not concern the prefix.
    seen: Revision,
    sender: mpsc::Sender<Result<WatchEvent>>,
}

/// The consumer dropped the stream.
struct Closed;

impl EmbeddedWatch {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<Batch>>, current: Revision) {
        if self.replay(current).await.is_err() {
            return;
        }
        let mut progress = tokio::time::interval(self.shared.config.progress_interval);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress.tick().await;
        let mut sent_since_progress = false;
        loop {
            let outcome = tokio::select! {
                () = self.sender.closed() => return,
                _ = progress.tick() => {
                    if !sent_since_progress {
                        let event = WatchEvent::Progress { revision: self.seen };
                        if self.sender.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    sent_since_progress = false;
                    continue;
                }
                batch = live.recv() => batch,
            };
            let delivered = match outcome {
                Ok(batch) => self.forward(&batch).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(prefix = %self.prefix, missed, "watch lagged; replaying from the log");
                    let current = Revision(self.shared.revision.load(Ordering::Acquire));
                    self.replay(current).await
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let stopped = Error::Unavailable {
                        message: "embedded store closed".to_owned(),
                        source: None,
                    };
                    let _ = self.sender.send(Err(stopped)).await;
                    return;
                }
            };
            match delivered {
                Ok(any) => sent_since_progress |= any,
                Err(Closed) => return,
            }
        }
    }

    /// Delivers a committed batch's events that are new and under the prefix; returns whether any was sent.
    async fn forward(&mut self, batch: &Batch) -> Result<bool, Closed> {
        if batch.last <= self.seen {
            return Ok(false);
        }
        let mut sent = false;
        if batch.after > self.seen {
            // Revisions between what we saw and this batch never reached us: read them from the log.
            sent |= self.replay(batch.after).await?;
        }
        for event in &batch.events {
            if event.revision() > self.seen && event.key().is_some_and(|key| key.starts_with(&self.prefix)) {
                self.send(Ok(event.clone())).await?;
                sent = true;
            }
        }
        self.seen = batch.last;
        Ok(sent)
    }

    async fn send(&self, event: Result<WatchEvent>) -> Result<(), Closed> {
        self.sender.send(event).await.map_err(|_| Closed)
    }

    /// Delivers every logged change in `seen + 1 ..= until` under the prefix.
    async fn replay(&mut self, until: Revision) -> Result<bool, Closed> {
        let mut sent = false;
        while self.seen < until {
            // Read a bounded chunk at a time so that a long replay does not hold one read transaction forever.
            let chunk_end = Revision((self.seen.0 + 1024).min(until.0));
            match read_log(&self.shared, &self.prefix, self.seen, chunk_end) {
                Ok(events) => {
                    for event in events {
                        self.send(Ok(event)).await?;
                        sent = true;
                    }
                    self.seen = chunk_end;
                }
                Err(err) => {
                    let _ = self.send(Err(err)).await;
                    return Err(Closed);
                }
            }
        }
        Ok(sent)
    }
}

/// The changes under `prefix` in `after + 1 ..= until`, rebuilt from the log and the stored versions.
fn read_log(shared: &Shared, prefix: &str, after: Revision, until: Revision) -> Result<Vec<WatchEvent>> {
    let storage = |context: &'static str| move |e: redb::Error| Error::internal_from(context, e);
    let txn = shared
        .db
        .begin_read()
        .map_err(|e| storage("begin read")(e.into()))?;
    let compacted = shared.compacted.load(Ordering::Acquire);
    if after.0 + 1 < compacted {
        return Err(Error::Expired {
            requested: after,
            oldest: Some(Revision(compacted)),
        });
    }
    let log = txn.open_table(LOG).map_err(|e| storage("open log")(e.into()))?;
    let versions = txn
        .open_table(VERSIONS)
        .map_err(|e| storage("open versions")(e.into()))?;
    let mut events = Vec::new();
    let lower = after.0 as u64 + 1;
    for entry in log
        .range(lower..=until.0 as u64)
        .map_err(|e| storage("range log")(e.into()))?
    {
        let (rev, key) = entry.map_err(|e| storage("read log")(e.into()))?;
        let (rev, key) = (rev.value(), key.value());
        if !key.starts_with(prefix.as_bytes()) {
            continue;
        }
        let record = read_version(&versions, key, rev)?.ok_or_else(|| Error::Expired {
            requested: after,
            oldest: Some(Revision(compacted)),
        })?;
        let prev = match record.prev_revision {
            0 => None,
            prev_rev => Some(
                read_version(&versions, key, prev_rev)?
                    .ok_or_else(|| Error::internal("logged write without the version it replaced"))?
                    .key_value(key, prev_rev)?,
            ),
        };
        if record.deleted {
            let prev = prev.ok_or_else(|| Error::internal("tombstone without the version it deleted"))?;
            events.push(WatchEvent::Delete {
                revision: revision(rev),
                prev,
            });
        } else {
            events.push(WatchEvent::Put {
                kv: record.key_value(key, rev)?,
                prev,
            });
        }
    }
    Ok(events)
}
