//! Test support: a real etcd process for tests, and the store contract suite that every backend must pass.
//!
//! The suite is written once, generic over [`Store`], and instantiated per backend by
//! [`store_contract_tests!`](crate::store_contract_tests) in `tests/contract_etcd.rs` and
//! `tests/contract_embedded.rs`.

pub mod contract;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often etcd sends progress notifications to quiet watches in tests.
pub const ETCD_PROGRESS_INTERVAL: &str = "500ms";

/// A real etcd (`etcd` from `PATH`, or `$ETCD_BIN`) on free loopback ports with a temporary data directory,
/// killed when dropped. [`EtcdServer::stop`] and [`EtcdServer::start_again`] simulate an outage.
#[derive(Debug)]
pub struct EtcdServer {
    child: Option<Child>,
    data_dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("bound socket has an address").port()
}

fn etcd_binary() -> PathBuf {
    std::env::var_os("ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("etcd"))
}

impl EtcdServer {
    /// Starts etcd and waits until it reports itself healthy.
    pub fn start() -> std::io::Result<Self> {
        let mut server = EtcdServer {
            child: None,
            data_dir: tempfile::Builder::new().prefix("flotilla-etcd-").tempdir()?,
            client_port: free_port(),
            peer_port: free_port(),
        };
        server.start_again()?;
        Ok(server)
    }

    /// The etcd process's id, for measuring what it costs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client URL, for `--etcd-servers`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Kills etcd (SIGKILL) and waits for it to exit; its data stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd on the same ports and data directory, and waits until it is healthy.
    pub fn start_again(&mut self) -> std::io::Result<()> {
        self.stop();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new(etcd_binary())
            .args(["--name", "flotilla-test"])
            .arg("--data-dir")
            .arg(self.data_dir.path().join("etcd"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("flotilla-test={peer}")])
            // kube-apiserver objects can reach 1.5 MiB; leave room for the request around them.
            .args(["--max-request-bytes", "10485760"])
            .args([
                "--experimental-watch-progress-notify-interval",
                ETCD_PROGRESS_INTERVAL,
            ])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| {
                std::io::Error::new(
                    err.kind(),
                    format!(
                        "cannot run {:?} ({err}); install Debian's etcd-server or set ETCD_BIN",
                        etcd_binary()
                    ),
                )
            })?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(20))
    }

    fn wait_healthy(&mut self, patience: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + patience;
        let address = SocketAddr::from(([127, 0, 0, 1], self.client_port));
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                return Err(std::io::Error::other(format!("etcd exited early: {status}")));
            }
            if health_ok(address) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("etcd did not become healthy in time"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// etcd's `/health` on the client port says `"health":"true"` once it serves requests.
fn health_ok(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.contains("\"health\":\"true\"")
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
