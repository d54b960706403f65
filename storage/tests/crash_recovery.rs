//! `kill -9` of a process using the embedded store, right in the middle of acknowledged writes, loses none of
//! them.
//!
//! This binary (`harness = false`) is both sides: run plainly it is the test, which re-executes itself with
//! `FLOTILLA_CRASH_CHILD=<dir>` as the writer child, reads the child's acknowledgements from its stdout, kills it
//! with SIGKILL mid-stream, reopens the store and checks that every acknowledged write is there at the
//! acknowledged revision. Three rounds run on the same data directory, so recovery also survives repeated
//! crashes. It prints the plain `N passed, N failed` closing line.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use flotilla_storage::embedded::{EmbeddedConfig, EmbeddedStore};
use flotilla_storage::{Error, Revision, Store};

const CHILD_ENV: &str = "FLOTILLA_CRASH_CHILD";
const ROUND_ENV: &str = "FLOTILLA_CRASH_ROUND";
const WRITERS: usize = 32;
const ROUNDS: usize = 3;
const ACKS_BEFORE_KILL: usize = 3_000;

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let round = std::env::var(ROUND_ENV).unwrap_or_default();
        return match child(dir.into(), &round) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("crash child failed: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let name = "embedded_acknowledged_writes_survive_kill_9";
    match parent() {
        Ok(summary) => {
            println!("test {name} ... ok ({summary})");
            println!("1 passed, 0 failed");
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("test {name} ... FAILED: {err:#}");
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn open(dir: &std::path::Path) -> Result<EmbeddedStore> {
    // A previous holder of the file lock may still be letting go of it.
    let mut attempts = 0;
    loop {
        match EmbeddedStore::open(EmbeddedConfig::new(dir)) {
            Ok(store) => return Ok(store),
            Err(err) if attempts < 250 => {
                attempts += 1;
                if attempts == 250 {
                    return Err(err).context("open the embedded store");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(err).context("open the embedded store"),
        }
    }
}

/// Writes forever from many tasks, printing `ack <key> <revision>` once each write is acknowledged.
fn child(dir: std::path::PathBuf, round: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = Arc::new(open(&dir)?);
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let writers = (0..WRITERS).map(|writer| {
            let (store, stdout) = (store.clone(), stdout.clone());
            let round = round.to_owned();
            tokio::spawn(async move {
                for i in 0u64.. {
                    let key = format!("/crash/{round}/{writer:02}/{i:08}");
                    let revision = store.create(&key, Bytes::from(format!("{key}={i}"))).await?;
                    let mut out = stdout.lock().expect("stdout lock");
                    writeln!(out, "ack {key} {revision}")?;
                    out.flush()?;
                }
                Ok::<(), anyhow::Error>(())
            })
        });
        for writer in futures::future::join_all(writers).await {
            writer??;
        }
        Ok(())
    })
}

fn parent() -> Result<String> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut acknowledged: Vec<(String, Revision)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .env(CHILD_ENV, dir.path())
            .env(ROUND_ENV, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("spawn the writer child")?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut acks_this_round = 0;
        while acks_this_round < ACKS_BEFORE_KILL {
            let Some(line) = lines.next() else {
                bail!("child stopped before it was killed")
            };
            acknowledged.push(parse_ack(&line?)?);
            acks_this_round += 1;
        }
        child.kill().context("kill -9 the child")?; // SIGKILL on Unix
        child.wait()?;
        // Acknowledgements the child printed before it died are acknowledged writes too.
        // (A last line cut short by the kill does not parse, and was not a complete acknowledgement.)
        for line in lines {
            if let Ok(ack) = parse_ack(&line?) {
                acknowledged.push(ack);
            }
        }
        verify(dir.path(), &acknowledged).with_context(|| format!("after round {round}"))?;
    }
    Ok(format!(
        "{} acknowledged writes over {ROUNDS} kill -9 rounds, all present",
        acknowledged.len()
    ))
}

fn parse_ack(line: &str) -> Result<(String, Revision)> {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("ack"), Some(key), Some(revision)) => Ok((key.to_owned(), Revision(revision.parse()?))),
        _ => bail!("unexpected child output {line:?}"),
    }
}

fn verify(dir: &std::path::Path, acknowledged: &[(String, Revision)]) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = open(dir)?;
        for (key, revision) in acknowledged {
            match store.get(key).await {
                Ok(kv) => {
                    ensure!(
                        kv.mod_revision == *revision,
                        "{key} at {} but acknowledged at {revision}",
                        kv.mod_revision
                    );
                    ensure!(kv.value.starts_with(key.as_bytes()), "{key} has the wrong value");
                }
                Err(Error::NotFound { .. }) => bail!("acknowledged write of {key} at {revision} was lost"),
                Err(err) => return Err(err.into()),
            }
        }
        let last = acknowledged
            .iter()
            .map(|(_, revision)| *revision)
            .max()
            .unwrap_or_default();
        ensure!(
            store.current_revision().await? >= last,
            "the store's revision went backwards"
        );
        Ok(())
    })
}
