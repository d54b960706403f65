//! Test support for Flotilla's end-to-end tests: a federation apiserver on a free loopback port over either
//! storage backend (a real etcd, started here, or the embedded store), a kubeconfig for it, and the real
//! kubectl binaries (1.27 … 1.33 from the machine image) to drive it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_storage::testing::EtcdServer;

/// Which store the apiserver under test uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    Etcd,
}

/// The kubectl binary of one minor version (`"1.27"` … `"1.33"`), as the machine image ships them.
pub fn kubectl_binary(version: &str) -> PathBuf {
    let versioned = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.{version}"));
    if versioned.exists() {
        versioned
    } else {
        PathBuf::from("kubectl")
    }
}

/// A `PATH` whose `kubectl` is the one of `version`, for scripts that run `kubectl` themselves: links it as
/// `dir/bin/kubectl` and puts that directory first.
pub fn path_with_kubectl(dir: &Path, version: &str) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("create the bin directory");
    let kubectl = bin.join("kubectl");
    if !kubectl.exists() {
        std::os::unix::fs::symlink(kubectl_binary(version), &kubectl).expect("link kubectl");
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// A running federation apiserver, stopped when dropped.
#[derive(Debug)]
pub struct TestApiserver {
    pub backend: Backend,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub token: String,
    pub ca_file: PathBuf,
    dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
    _etcd: Option<EtcdServer>,
}

impl TestApiserver {
    pub async fn start(backend: Backend) -> Result<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with settings changed by `configure` (to test what expires, say).
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(&mut flotilla_apiserver::Config),
    ) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("flotilla-conformance-")
            .tempdir()?;
        let (etcd, storage) = match backend {
            Backend::Embedded => (None, flotilla_apiserver::StorageConfig::Embedded),
            Backend::Etcd => {
                let etcd = tokio::task::spawn_blocking(EtcdServer::start).await??;
                let endpoints = vec![etcd.endpoint()];
                (
                    Some(etcd),
                    flotilla_apiserver::StorageConfig::Etcd { endpoints, tls: None },
                )
            }
        };
        let data_dir = dir.path().join("data");
        let kubeconfig = dir.path().join("kubeconfig");
        let mut config = flotilla_apiserver::Config {
            write_kubeconfig: Some(kubeconfig.clone()),
            ..flotilla_apiserver::Config::new(storage, data_dir.clone())
        };
        configure(&mut config);
        let running = flotilla_apiserver::start(config)
            .await
            .context("start the apiserver")?;
        let server = TestApiserver {
            backend,
            kubeconfig,
            url: format!("https://{}", running.address),
            token: std::fs::read_to_string(data_dir.join("admin-token"))?
                .trim()
                .to_owned(),
            ca_file: data_dir.join("pki").join("ca.crt"),
            dir,
            task: running.task,
            _etcd: etcd,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Waits for `/readyz` and for the default namespace.
    async fn wait_ready(&self) -> Result<()> {
        for _ in 0..200 {
            let ready = self
                .curl(&["/readyz"])
                .await
                .map(|r| r.code == 200)
                .unwrap_or(false);
            let default = self
                .curl(&["/api/v1/namespaces/default"])
                .await
                .map(|r| r.code == 200)
                .unwrap_or(false);
            if ready && default {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("apiserver not ready")
    }

    /// The client URL of the etcd this apiserver stores in (`None` on the embedded store), for tests that write
    /// behind the apiserver's back as another replica would.
    pub fn etcd_endpoint(&self) -> Option<String> {
        self._etcd.as_ref().map(EtcdServer::endpoint)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs kubectl `version` (such as `"1.30"`) with a cold cache of its own.
    pub async fn kubectl(&self, version: &str, args: &[&str]) -> Result<Output> {
        self.kubectl_with(version, args, None, &[]).await
    }

    /// Runs kubectl with standard input and extra environment variables.
    pub async fn kubectl_with(
        &self,
        version: &str,
        args: &[&str],
        stdin: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Output> {
        kubectl_at(&self.kubeconfig, self.dir.path(), version, args, stdin, env).await
    }

    /// Sends one HTTPS request with curl (a real client, verifying the server against the generated CA)
    /// using the admin token; `args` are curl arguments after the path, such as `-X POST`.
    pub async fn curl(&self, args: &[&str]) -> Result<HttpResponse> {
        self.curl_as(Some(&self.token), args).await
    }

    /// Like [`TestApiserver::curl`], with the given token or none.
    pub async fn curl_as(&self, token: Option<&str>, args: &[&str]) -> Result<HttpResponse> {
        let (path, rest) = args.split_first().context("a path")?;
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&self.ca_file);
        if let Some(token) = token {
            command.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        command
            .args(["-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.url))
            .args(rest);
        let output = command.output().await.context("run curl")?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').context("curl printed no status code")?;
        Ok(HttpResponse {
            code: code.trim().parse().unwrap_or(0),
            body: body.to_owned(),
        })
    }
}

impl Drop for TestApiserver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs kubectl `version` against `kubeconfig`, with a discovery cache of its own under `dir`, standard input
/// and extra environment variables.
pub async fn kubectl_at(
    kubeconfig: &Path,
    dir: &Path,
    version: &str,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Result<Output> {
    let cache = dir.join(format!("kube-cache-{version}"));
    let mut command = tokio::process::Command::new(kubectl_binary(version));
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache);
    run_command(command, args, stdin, env, &format!("kubectl {version}")).await
}

/// Runs a program to completion (at most 60 s), with standard input and extra environment variables.
pub async fn run_command(
    mut command: tokio::process::Command,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
    what: &str,
) -> Result<Output> {
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().with_context(|| format!("run {what}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use tokio::io::AsyncWriteExt;
        pipe.write_all(input.as_bytes()).await?;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .with_context(|| format!("{what} took over 60 s"))??;
    Ok(Output {
        success: output.status.success(),
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// What a kubectl (or other command) run printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with everything kubectl printed unless it succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.success,
            "kubectl failed ({}):\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless kubectl failed, returning what it said.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert!(
            !self.success,
            "kubectl unexpectedly succeeded:\nstdout: {}",
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub code: u16,
    pub body: String,
}

impl HttpResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Polls `check` until it returns `Some`, for at most `FLOTILLA_TEST_PATIENCE_SECS` (default 30) seconds.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let patience: u64 = std::env::var("FLOTILLA_TEST_PATIENCE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(patience);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A long-running process under test (a `flotilla up`, a simulated member), its output in a log file; killed
/// (SIGKILL, like a crash) when dropped.
#[derive(Debug)]
pub struct Daemon {
    child: tokio::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts `program` with `args`, appending its stdout and stderr to `log`.
    pub fn spawn(program: &Path, args: &[&str], log: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("open {}", log.display()))?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", program.display()))?;
        Ok(Daemon {
            child,
            log: log.to_owned(),
        })
    }

    /// Kills the process (SIGKILL) and waits for it to be gone.
    pub async fn kill(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// What the process has printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
