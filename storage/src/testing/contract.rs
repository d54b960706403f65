//! The store contract suite: one function per case, generic over [`Store`], run against every backend.
//!
//! Ported in spirit from kube-apiserver's `k8s.io/apiserver/pkg/storage/testing` cases (create, get, update with
//! preconditions, delete with the previous value, consistent paginated lists, watch from a revision, compaction),
//! with Flotilla's own additions (10,000-write watch, 100,000 keys, 1.5 MiB values).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{Error, KeyValue, ListOptions, Revision, Store, WatchEvent, WatchStream, guaranteed_update};

/// How long a case waits for an event before it fails.
const PATIENCE: Duration = Duration::from_secs(30);

fn bytes(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Instantiates every contract case as a `#[tokio::test]` for one backend. `$fixture` is an async function
/// returning something with a `store` field that implements [`Store`] (and keeps whatever it needs alive).
#[macro_export]
macro_rules! store_contract_tests {
    ($fixture:path) => {
        $crate::store_contract_tests!(@cases $fixture;
            create_get_and_revisions,
            create_of_existing_key_is_already_exists,
            get_of_missing_key_is_not_found,
            update_with_current_revision_succeeds,
            update_with_stale_revision_is_conflict_carrying_current,
            update_of_missing_key_is_not_found,
            delete_returns_previous_value,
            delete_with_stale_precondition_is_conflict,
            delete_of_missing_key_is_not_found,
            recreate_after_delete_starts_a_new_life,
            guaranteed_update_skips_unchanged_values,
            concurrent_cas_increments_lose_no_update,
            concurrent_gets_each_see_their_key_and_every_completed_write,
            watch_sees_10000_writes_in_order_without_gaps,
            watch_from_a_past_revision_replays_history,
            watch_only_sees_its_prefix,
            watch_delete_carries_previous_value,
            watch_reports_progress_when_quiet,
            list_is_sorted_and_paginated,
            list_pagination_stays_consistent_while_writes_continue,
            list_at_an_older_revision_sees_the_past,
            list_rejects_bad_arguments,
            list_at_a_future_revision_is_refused,
            compaction_expires_old_revisions,
            values_of_one_and_a_half_mib_round_trip,
            oversized_values_are_refused,
            hundred_thousand_keys,
        );
    };
    (@cases $fixture:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = $fixture().await;
                $crate::testing::contract::$case(&fixture.store).await;
            }
        )*
    };
}

async fn next_event(watch: &mut WatchStream) -> WatchEvent {
    loop {
        match next_raw(watch).await {
            WatchEvent::Progress { .. } => continue,
            event => return event,
        }
    }
}

async fn next_raw(watch: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(PATIENCE, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {PATIENCE:?}"),
    }
}

fn put_kv(event: WatchEvent) -> (KeyValue, Option<KeyValue>) {
    match event {
        WatchEvent::Put { kv, prev } => (kv, prev),
        other => panic!("expected a put, got {other:?}"),
    }
}

pub async fn create_get_and_revisions<S: Store>(store: &S) {
    let first = store.create("/t/a", bytes("1")).await.unwrap();
    let second = store.create("/t/b", bytes("2")).await.unwrap();
    assert!(second > first, "revisions increase: {first} then {second}");
    let a = store.get("/t/a").await.unwrap();
    assert_eq!(a.key, "/t/a");
    assert_eq!(a.value, bytes("1"));
    assert_eq!(a.create_revision, first);
    assert_eq!(a.mod_revision, first);
    assert_eq!(store.current_revision().await.unwrap(), second);
}

pub async fn create_of_existing_key_is_already_exists<S: Store>(store: &S) {
    store.create("/t/a", bytes("1")).await.unwrap();
    let revision = store.current_revision().await.unwrap();
    let err = store.create("/t/a", bytes("2")).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { ref key } if key == "/t/a"),
        "{err:?}"
    );
    assert_eq!(store.get("/t/a").await.unwrap().value, bytes("1"));
    assert_eq!(
        store.current_revision().await.unwrap(),
        revision,
        "a failed create writes nothing"
    );
}

pub async fn get_of_missing_key_is_not_found<S: Store>(store: &S) {
    let err = store.get("/t/nope").await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref key } if key == "/t/nope"),
        "{err:?}"
    );
}

pub async fn update_with_current_revision_succeeds<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    let updated = store.update("/t/a", bytes("2"), created).await.unwrap();
    assert!(updated > created);
    let a = store.get("/t/a").await.unwrap();
    assert_eq!(
        (a.value, a.create_revision, a.mod_revision),
        (bytes("2"), created, updated)
    );
}

pub async fn update_with_stale_revision_is_conflict_carrying_current<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    let updated = store.update("/t/a", bytes("2"), created).await.unwrap();
    let err = store.update("/t/a", bytes("3"), created).await.unwrap_err();
    match err {
        Error::Conflict {
            key,
            expected,
            current,
        } => {
            assert_eq!((key.as_str(), expected), ("/t/a", created));
            assert_eq!((current.value, current.mod_revision), (bytes("2"), updated));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get("/t/a").await.unwrap().value,
        bytes("2"),
        "nothing written on conflict"
    );
}

pub async fn update_of_missing_key_is_not_found<S: Store>(store: &S) {
    let err = store
        .update("/t/nope", bytes("1"), Revision(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        matches!(store.get("/t/nope").await, Err(Error::NotFound { .. })),
        "update must not create"
    );
}

pub async fn delete_returns_previous_value<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    let deleted = store.delete("/t/a", Some(created)).await.unwrap();
    assert_eq!(deleted.prev.value, bytes("1"));
    assert_eq!(deleted.prev.mod_revision, created);
    assert!(deleted.revision > created);
    assert!(matches!(store.get("/t/a").await, Err(Error::NotFound { .. })));
    assert_eq!(store.current_revision().await.unwrap(), deleted.revision);
    store.create("/t/b", bytes("2")).await.unwrap();
    let unconditional = store.delete("/t/b", None).await.unwrap();
    assert_eq!(unconditional.prev.value, bytes("2"));
}

pub async fn delete_with_stale_precondition_is_conflict<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    store.update("/t/a", bytes("2"), created).await.unwrap();
    let err = store.delete("/t/a", Some(created)).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(store.get("/t/a").await.unwrap().value, bytes("2"));
}

pub async fn delete_of_missing_key_is_not_found<S: Store>(store: &S) {
    assert!(matches!(
        store.delete("/t/nope", None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.delete("/t/nope", Some(Revision(3))).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn recreate_after_delete_starts_a_new_life<S: Store>(store: &S) {
    let first = store.create("/t/a", bytes("1")).await.unwrap();
    store.delete("/t/a", None).await.unwrap();
    let second = store.create("/t/a", bytes("2")).await.unwrap();
    let a = store.get("/t/a").await.unwrap();
    assert!(second > first);
    assert_eq!((a.create_revision, a.mod_revision), (second, second));
}

pub async fn guaranteed_update_skips_unchanged_values<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    let same = guaranteed_update::<_, _, Error>(store, "/t/a", |kv| Ok(kv.value.clone()))
        .await
        .unwrap();
    assert_eq!(same.mod_revision, created, "an unchanged value is not written");
    assert_eq!(store.current_revision().await.unwrap(), created);
    let changed = guaranteed_update::<_, _, Error>(store, "/t/a", |_| Ok(bytes("2")))
        .await
        .unwrap();
    assert!(changed.mod_revision > created);
    assert_eq!(store.get("/t/a").await.unwrap(), changed);
    let missing = guaranteed_update::<_, _, Error>(store, "/t/nope", |_| Ok(bytes("x"))).await;
    assert!(matches!(missing, Err(Error::NotFound { .. })));
}

pub async fn concurrent_cas_increments_lose_no_update<S: Store>(store: &S) {
    const TASKS: usize = 16;
    const INCREMENTS: usize = 25;
    store.create("/t/counter", bytes("0")).await.unwrap();
    let increments = (0..TASKS).map(|_| async {
        for _ in 0..INCREMENTS {
            guaranteed_update::<_, _, Error>(store, "/t/counter", |kv| {
                let n: usize = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                Ok(Bytes::from((n + 1).to_string()))
            })
            .await
            .unwrap();
        }
    });
    futures::future::join_all(increments).await;
    let counter = store.get("/t/counter").await.unwrap();
    assert_eq!(counter.value, Bytes::from((TASKS * INCREMENTS).to_string()));
}

/// Many GETs at once (etcd gathers them into shared read transactions): each answers for its own key, a
/// missing key is `NotFound`, and a GET made after a write completed sees that write.
pub async fn concurrent_gets_each_see_their_key_and_every_completed_write<S: Store>(store: &S) {
    const KEYS: usize = 300;
    for i in (0..KEYS).step_by(2) {
        store
            .create(&format!("/t/k{i:03}"), bytes(&format!("v{i}")))
            .await
            .unwrap();
    }
    let reads = (0..KEYS * 3).map(|n| async move {
        let i = n % KEYS;
        let key = format!("/t/k{i:03}");
        match store.get(&key).await {
            Ok(kv) => {
                assert_eq!(i % 2, 0, "{key} was never written");
                assert_eq!(
                    (kv.key.as_str(), kv.value),
                    (key.as_str(), bytes(&format!("v{i}")))
                );
            }
            Err(Error::NotFound { key: missing }) => {
                assert_eq!(i % 2, 1, "{key} exists");
                assert_eq!(missing, key);
            }
            Err(err) => panic!("{err:?}"),
        }
    });
    futures::future::join_all(reads).await;
    let writes = (0..64).map(|i| async move {
        let key = format!("/t/rw{i:02}");
        for round in 0..10 {
            let value = bytes(&format!("{i}-{round}"));
            match round {
                0 => store.create(&key, value.clone()).await.map(drop).unwrap(),
                _ => {
                    let current = store.get(&key).await.unwrap();
                    store
                        .update(&key, value.clone(), current.mod_revision)
                        .await
                        .map(drop)
                        .unwrap();
                }
            }
            assert_eq!(
                store.get(&key).await.unwrap().value,
                value,
                "{key} reads its own write"
            );
        }
    });
    futures::future::join_all(writes).await;
}

pub async fn watch_sees_10000_writes_in_order_without_gaps<S: Store>(store: &S) {
    const WRITERS: usize = 16;
    const WRITES: usize = 10_000;
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/", start).await.unwrap();
    let writes = (0..WRITERS).map(|writer| async move {
        let mut revisions = Vec::new();
        for i in (writer..WRITES).step_by(WRITERS) {
            revisions.push(
                store
                    .create(&format!("/t/{i:05}"), Bytes::from(i.to_string()))
                    .await
                    .unwrap(),
            );
        }
        revisions
    });
    let acknowledged: BTreeSet<Revision> = futures::future::join_all(writes)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(acknowledged.len(), WRITES, "every write has its own revision");
    let mut seen = Vec::with_capacity(WRITES);
    while seen.len() < WRITES {
        let (kv, prev) = put_kv(next_event(&mut watch).await);
        assert!(prev.is_none());
        let index: usize = kv.key["/t/".len()..].parse().unwrap();
        assert_eq!(kv.value, Bytes::from(index.to_string()), "value of {}", kv.key);
        seen.push(kv.mod_revision);
    }
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "events arrive in revision order"
    );
    let seen: BTreeSet<Revision> = seen.into_iter().collect();
    assert_eq!(
        seen, acknowledged,
        "exactly the acknowledged writes, no gap and no duplicate"
    );
}

pub async fn watch_from_a_past_revision_replays_history<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("1")).await.unwrap();
    let updated = store.update("/t/a", bytes("2"), created).await.unwrap();
    let deleted = store.delete("/t/a", None).await.unwrap();
    let mut watch = store.watch("/t/", created).await.unwrap();
    let (kv, prev) = put_kv(next_event(&mut watch).await);
    assert_eq!((kv.value, kv.mod_revision), (bytes("2"), updated));
    assert_eq!(
        prev.map(|prev| (prev.value, prev.mod_revision)),
        Some((bytes("1"), created))
    );
    match next_event(&mut watch).await {
        WatchEvent::Delete { revision, prev } => {
            assert_eq!(revision, deleted.revision);
            assert_eq!((prev.value, prev.mod_revision), (bytes("2"), updated));
        }
        other => panic!("expected the delete, got {other:?}"),
    }
    // From revision zero: only what happens from now on.
    let mut from_now = store.watch("/t/", Revision::ZERO).await.unwrap();
    let later = store.create("/t/b", bytes("3")).await.unwrap();
    assert_eq!(next_event(&mut from_now).await.revision(), later);
}

pub async fn watch_only_sees_its_prefix<S: Store>(store: &S) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/in/", start).await.unwrap();
    store.create("/t/out/a", bytes("x")).await.unwrap();
    store.create("/t/inside", bytes("x")).await.unwrap();
    let inside = store.create("/t/in/a", bytes("y")).await.unwrap();
    let (kv, _) = put_kv(next_event(&mut watch).await);
    assert_eq!((kv.key.as_str(), kv.mod_revision), ("/t/in/a", inside));
}

pub async fn watch_delete_carries_previous_value<S: Store>(store: &S) {
    let created = store.create("/t/a", bytes("last words")).await.unwrap();
    let mut watch = store.watch("/t/", created).await.unwrap();
    let deleted = store.delete("/t/a", None).await.unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            revision: deleted.revision,
            prev: deleted.prev.clone()
        }
    );
    assert_eq!(deleted.prev.value, bytes("last words"));
}

pub async fn watch_reports_progress_when_quiet<S: Store>(store: &S) {
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/quiet/", start).await.unwrap();
    let elsewhere = store.create("/t/busy/a", bytes("x")).await.unwrap();
    loop {
        match next_raw(&mut watch).await {
            WatchEvent::Progress { revision } if revision >= elsewhere => break,
            WatchEvent::Progress { revision } => assert!(revision >= start),
            other => panic!("nothing changed under the prefix, yet {other:?}"),
        }
    }
}

async fn create_keys<S: Store>(store: &S, prefix: &str, n: usize, writers: usize) {
    let writes = (0..writers).map(|writer| async move {
        for i in (writer..n).step_by(writers) {
            store
                .create(&format!("{prefix}{i:06}"), Bytes::from(format!("v{i}")))
                .await
                .unwrap();
        }
    });
    futures::future::join_all(writes).await;
}

/// Reads a whole collection page by page.
async fn list_all<S: Store>(store: &S, prefix: &str, page: usize) -> (Vec<KeyValue>, Revision, usize) {
    let mut options = ListOptions {
        limit: Some(page),
        ..ListOptions::default()
    };
    let mut items = Vec::new();
    let mut pages = 0;
    let mut revision = None;
    loop {
        let result = store.list(prefix, &options).await.unwrap();
        pages += 1;
        assert!(result.items.len() <= page);
        assert_eq!(
            *revision.get_or_insert(result.revision),
            result.revision,
            "every page at one revision"
        );
        items.extend(result.items);
        match result.continue_token {
            Some(token) => {
                assert!(result.remaining.is_some_and(|remaining| remaining > 0));
                options.continue_token = Some(token);
            }
            None => return (items, revision.expect("at least one page"), pages),
        }
    }
}

pub async fn list_is_sorted_and_paginated<S: Store>(store: &S) {
    create_keys(store, "/t/items/", 25, 4).await;
    store
        .create("/t/itemsX", bytes("not in the collection"))
        .await
        .unwrap();
    let all = store.list("/t/items/", &ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), 25);
    assert!(
        all.items.windows(2).all(|pair| pair[0].key < pair[1].key),
        "sorted by key"
    );
    assert_eq!((all.continue_token, all.remaining), (None, None));
    let first = store
        .list(
            "/t/items/",
            &ListOptions {
                limit: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.remaining, Some(15));
    let (paged, _, pages) = list_all(store, "/t/items/", 10).await;
    assert_eq!(pages, 3);
    assert_eq!(paged, all.items);
    let empty = store.list("/t/none/", &ListOptions::default()).await.unwrap();
    assert!(empty.items.is_empty());
    assert_eq!(empty.revision, store.current_revision().await.unwrap());
}

pub async fn list_pagination_stays_consistent_while_writes_continue<S: Store>(store: &S) {
    create_keys(store, "/t/c/", 200, 8).await;
    let snapshot = store.list("/t/c/", &ListOptions::default()).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = async {
        let mut i = 0usize;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let victim = format!("/t/c/{:06}", i % 200);
            let _ =
                guaranteed_update::<_, _, Error>(store, &victim, |_| Ok(Bytes::from(format!("churn{i}"))))
                    .await;
            if i.is_multiple_of(3) {
                let _ = store.delete(&format!("/t/c/{:06}", (i * 7) % 200), None).await;
                store
                    .create(&format!("/t/c/new{i:06}"), bytes("new"))
                    .await
                    .unwrap();
            }
            i += 1;
            tokio::task::yield_now().await;
        }
        i
    };
    let reader = async {
        // Page through the snapshot's revision while the churn goes on.
        let mut options = ListOptions {
            limit: Some(7),
            revision: Some(snapshot.revision),
            ..Default::default()
        };
        let mut items = Vec::new();
        loop {
            let page = store.list("/t/c/", &options).await.unwrap();
            assert_eq!(page.revision, snapshot.revision);
            items.extend(page.items);
            tokio::time::sleep(Duration::from_millis(2)).await;
            match page.continue_token {
                Some(token) => {
                    options = ListOptions {
                        limit: Some(7),
                        continue_token: Some(token),
                        revision: None,
                    }
                }
                None => break,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        items
    };
    let (churned, items) = tokio::join!(churn, reader);
    assert!(churned > 0, "writes went on during the list");
    assert_eq!(
        items, snapshot.items,
        "the pages add up to the snapshot, whatever changed meanwhile"
    );
}

pub async fn list_at_an_older_revision_sees_the_past<S: Store>(store: &S) {
    let a = store.create("/t/a", bytes("a1")).await.unwrap();
    store.create("/t/b", bytes("b1")).await.unwrap();
    let then = store.current_revision().await.unwrap();
    store.update("/t/a", bytes("a2"), a).await.unwrap();
    store.delete("/t/b", None).await.unwrap();
    store.create("/t/c", bytes("c1")).await.unwrap();
    let past = store
        .list(
            "/t/",
            &ListOptions {
                revision: Some(then),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let past: BTreeMap<_, _> = past.items.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(
        past,
        BTreeMap::from([("/t/a".to_owned(), bytes("a1")), ("/t/b".to_owned(), bytes("b1"))])
    );
    let now = store.list("/t/", &ListOptions::default()).await.unwrap();
    let now: BTreeMap<_, _> = now.items.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(
        now,
        BTreeMap::from([("/t/a".to_owned(), bytes("a2")), ("/t/c".to_owned(), bytes("c1"))])
    );
    let first_page = ListOptions {
        revision: Some(then),
        limit: Some(1),
        ..Default::default()
    };
    let paged = store.list("/t/", &first_page).await.unwrap();
    let rest = ListOptions {
        continue_token: paged.continue_token,
        ..Default::default()
    };
    let rest = store.list("/t/", &rest).await.unwrap();
    assert_eq!(
        rest.items.iter().map(|kv| kv.value.clone()).collect::<Vec<_>>(),
        vec![bytes("b1")]
    );
}

pub async fn list_rejects_bad_arguments<S: Store>(store: &S) {
    store.create("/t/a", bytes("1")).await.unwrap();
    store.create("/t/b", bytes("1")).await.unwrap();
    let page = store
        .list(
            "/t/",
            &ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let both = ListOptions {
        continue_token: page.continue_token,
        revision: Some(page.revision),
        limit: None,
    };
    assert!(matches!(
        store.list("/t/", &both).await,
        Err(Error::InvalidArgument(_))
    ));
    let garbage = ListOptions {
        continue_token: Some("not-a-token".to_owned()),
        ..Default::default()
    };
    assert!(matches!(
        store.list("/t/", &garbage).await,
        Err(Error::InvalidArgument(_))
    ));
}

pub async fn list_at_a_future_revision_is_refused<S: Store>(store: &S) {
    store.create("/t/a", bytes("1")).await.unwrap();
    let future = Revision(store.current_revision().await.unwrap().0 + 1000);
    let err = store
        .list(
            "/t/",
            &ListOptions {
                revision: Some(future),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::FutureRevision { requested, .. } if requested == future),
        "{err:?}"
    );
}

pub async fn compaction_expires_old_revisions<S: Store>(store: &S) {
    let a = store.create("/t/a", bytes("1")).await.unwrap();
    store.create("/t/b", bytes("1")).await.unwrap();
    let page = store
        .list(
            "/t/",
            &ListOptions {
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut revision = a;
    for i in 0..5 {
        revision = store
            .update("/t/a", Bytes::from(format!("{}", i + 2)), revision)
            .await
            .unwrap();
    }
    let deleted = store.delete("/t/b", None).await.unwrap();
    let latest = store.create("/t/c", bytes("1")).await.unwrap();
    store.compact(revision).await.unwrap();
    store.compact(a).await.unwrap(); // compacting below an earlier compaction does nothing

    let old = ListOptions {
        revision: Some(a),
        ..Default::default()
    };
    assert!(matches!(
        store.list("/t/", &old).await,
        Err(Error::Expired { .. })
    ));
    let resumed = ListOptions {
        continue_token: page.continue_token,
        ..Default::default()
    };
    assert!(
        matches!(store.list("/t/", &resumed).await, Err(Error::Expired { .. })),
        "stale continue token"
    );
    assert!(matches!(
        store.watch("/t/", a).await.map(|_| ()),
        Err(Error::Expired { .. })
    ));

    // At and after the compaction revision everything is still exact.
    let at = store
        .list(
            "/t/",
            &ListOptions {
                revision: Some(revision),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let at: Vec<_> = at.items.into_iter().map(|kv| (kv.key, kv.value)).collect();
    assert_eq!(
        at,
        vec![("/t/a".to_owned(), bytes("6")), ("/t/b".to_owned(), bytes("1"))]
    );
    let mut watch = store.watch("/t/", revision).await.unwrap();
    match next_event(&mut watch).await {
        WatchEvent::Delete { revision, prev } => {
            assert_eq!((revision, prev.value), (deleted.revision, bytes("1")));
        }
        other => panic!("expected the delete after the compaction revision, got {other:?}"),
    }
    assert_eq!(next_event(&mut watch).await.revision(), latest);
    assert_eq!(store.get("/t/a").await.unwrap().value, bytes("6"));
}

pub async fn values_of_one_and_a_half_mib_round_trip<S: Store>(store: &S) {
    let big: Bytes = (0..1_572_864u32)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let start = store.current_revision().await.unwrap();
    let mut watch = store.watch("/t/", start).await.unwrap();
    let created = store.create("/t/big", big.clone()).await.unwrap();
    assert_eq!(store.get("/t/big").await.unwrap().value, big);
    store.update("/t/big", big.slice(1..), created).await.unwrap();
    let listed = store.list("/t/", &ListOptions::default()).await.unwrap();
    assert_eq!(listed.items[0].value, big.slice(1..));
    let (kv, _) = put_kv(next_event(&mut watch).await);
    assert_eq!(kv.value, big);
    let (kv, prev) = put_kv(next_event(&mut watch).await);
    assert_eq!(
        (kv.value, prev.map(|prev| prev.value)),
        (big.slice(1..), Some(big))
    );
}

pub async fn oversized_values_are_refused<S: Store>(store: &S) {
    let huge = Bytes::from(vec![7u8; 12 << 20]);
    let err = store.create("/t/huge", huge).await.unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    assert!(matches!(store.get("/t/huge").await, Err(Error::NotFound { .. })));
}

pub async fn hundred_thousand_keys<S: Store>(store: &S) {
    const KEYS: usize = 100_000;
    create_keys(store, "/t/many/", KEYS, 64).await;
    let all = store.list("/t/many/", &ListOptions::default()).await.unwrap();
    assert_eq!(all.items.len(), KEYS);
    let (paged, revision, pages) = list_all(store, "/t/many/", 5_000).await;
    assert_eq!(pages, KEYS / 5_000);
    assert_eq!(revision, all.revision);
    assert_eq!(paged, all.items);
    let expected: Vec<String> = (0..KEYS).map(|i| format!("/t/many/{i:06}")).collect();
    assert_eq!(
        paged.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        expected
    );
}
