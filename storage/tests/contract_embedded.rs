//! The store contract suite on the embedded (redb) backend, plus what only the embedded store promises.

use std::time::Duration;

use bytes::Bytes;
use flotilla_storage::embedded::{EmbeddedConfig, EmbeddedStore};
use flotilla_storage::{ListOptions, Store};

struct Fixture {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = EmbeddedConfig::new(dir.path());
    config.progress_interval = Duration::from_millis(200);
    // A small broadcast buffer makes the 10,000-write watch exercise the lag-and-replay path too.
    config.watch_buffer_batches = 16;
    let store = EmbeddedStore::open(config).expect("open embedded store");
    Fixture { store, _dir: dir }
}

flotilla_storage::store_contract_tests!(fixture);

#[tokio::test]
async fn reopening_keeps_data_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let (revision, compacted_list) = {
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path())).unwrap();
        let a = store.create("/t/a", Bytes::from_static(b"1")).await.unwrap();
        store.update("/t/a", Bytes::from_static(b"2"), a).await.unwrap();
        let last = store.create("/t/b", Bytes::from_static(b"3")).await.unwrap();
        store.compact(a).await.unwrap();
        let listed = store.list("/t/", &ListOptions::default()).await.unwrap();
        (last, listed)
    };
    // The writer thread lets go of the database once the store is dropped; wait for the file lock.
    let store = loop {
        match EmbeddedStore::open(EmbeddedConfig::new(dir.path())) {
            Ok(store) => break store,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    assert_eq!(store.current_revision().await.unwrap(), revision);
    assert_eq!(
        store.list("/t/", &ListOptions::default()).await.unwrap(),
        compacted_list
    );
    let next = store.create("/t/c", Bytes::from_static(b"4")).await.unwrap();
    assert_eq!(
        next.get(),
        revision.get() + 1,
        "revisions continue where they stopped"
    );
}
