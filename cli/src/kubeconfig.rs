//! Kubeconfig files as kubectl reads them: pick a context, build a client, and make the self-contained
//! (minified and flattened) copy of one context that a member's credential Secret holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedContext};

/// A kubeconfig and the directory its relative paths are relative to.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Kubeconfig,
    pub dir: PathBuf,
}

/// Reads `path`, or `$KUBECONFIG` / `~/.kube/config` as kubectl does.
pub fn load(path: Option<&Path>) -> Result<Loaded> {
    match path {
        Some(path) => Ok(Loaded {
            config: Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?,
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        }),
        None => {
            let first = std::env::var_os("KUBECONFIG")
                .and_then(|paths| std::env::split_paths(&paths).next())
                .or_else(|| {
                    std::env::var_os("HOME").map(|home| Path::new(&home).join(".kube").join("config"))
                });
            Ok(Loaded {
                config: Kubeconfig::read().context("read the kubeconfig ($KUBECONFIG or ~/.kube/config)")?,
                dir: first
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or_default(),
            })
        }
    }
}

impl Loaded {
    /// `context`, or the current context; an error naming it when it does not exist.
    pub fn context_name(&self, context: Option<&str>, what: &str) -> Result<String> {
        let name =
            match context {
                Some(name) => name.to_owned(),
                None => self.config.current_context.clone().ok_or_else(|| {
                    anyhow!("the kubeconfig has no current context; name the {what} context")
                })?,
            };
        if !self.config.contexts.iter().any(|c| c.name == name) {
            bail!("{what} context {name:?} not found in the kubeconfig");
        }
        Ok(name)
    }

    /// A client for `context` (the current one when `None`).
    pub async fn client(&self, context: Option<&str>, what: &str) -> Result<kube::Client> {
        let name = self.context_name(context, what)?;
        let options = KubeConfigOptions {
            context: Some(name.clone()),
            ..Default::default()
        };
        let config = kube::Config::from_custom_kubeconfig(self.config.clone(), &options)
            .await
            .with_context(|| format!("load {what} context {name:?}"))?;
        kube::Client::try_from(config).with_context(|| format!("build a client for context {name:?}"))
    }

    /// The server URL of `context`.
    pub fn server(&self, context: &str) -> Option<String> {
        let cluster = &self
            .config
            .contexts
            .iter()
            .find(|c| c.name == context)?
            .context
            .as_ref()?
            .cluster;
        self.config
            .clusters
            .iter()
            .find(|c| &c.name == cluster)?
            .cluster
            .as_ref()?
            .server
            .clone()
    }

    /// A kubeconfig with only `context`, its cluster and user, every file it names read in (what kubectl's
    /// `config view --minify --flatten` prints), so that it works anywhere.
    pub fn minified(&self, context: &str) -> Result<Kubeconfig> {
        let named = self
            .config
            .contexts
            .iter()
            .find(|c| c.name == context)
            .ok_or_else(|| anyhow!("context {context:?} not found in the kubeconfig"))?;
        let inner = named
            .context
            .clone()
            .ok_or_else(|| anyhow!("context {context:?} is empty"))?;
        let mut cluster = self
            .config
            .clusters
            .iter()
            .find(|c| c.name == inner.cluster)
            .cloned()
            .ok_or_else(|| anyhow!("cluster {:?} of context {context:?} not found", inner.cluster))?;
        if let Some(c) = cluster.cluster.as_mut()
            && let Some(file) = c.certificate_authority.take()
        {
            c.certificate_authority_data = Some(self.read_base64(&file)?);
        }
        let mut users = Vec::new();
        if let Some(user) = &inner.user {
            let mut named_user: NamedAuthInfo = self
                .config
                .auth_infos
                .iter()
                .find(|u| &u.name == user)
                .cloned()
                .ok_or_else(|| anyhow!("user {user:?} of context {context:?} not found"))?;
            if let Some(auth) = named_user.auth_info.as_mut() {
                if let Some(file) = auth.client_certificate.take() {
                    auth.client_certificate_data = Some(self.read_base64(&file)?);
                }
                if let Some(file) = auth.client_key.take() {
                    auth.client_key_data = Some(self.read_base64(&file)?.into());
                }
                if let Some(file) = auth.token_file.take() {
                    let token = std::fs::read_to_string(self.dir.join(&file))
                        .with_context(|| format!("read token file {file}"))?;
                    auth.token = Some(token.trim().to_owned().into());
                }
            }
            users.push(named_user);
        }
        Ok(Kubeconfig {
            clusters: vec![cluster],
            auth_infos: users,
            contexts: vec![NamedContext {
                context: Some(inner),
                ..named.clone()
            }],
            current_context: Some(context.to_owned()),
            kind: Some("Config".to_owned()),
            api_version: Some("v1".to_owned()),
            ..Kubeconfig::default()
        })
    }

    fn read_base64(&self, file: &str) -> Result<String> {
        let bytes = std::fs::read(self.dir.join(file)).with_context(|| format!("read {file}"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// A kubeconfig as YAML.
pub fn to_yaml(config: &Kubeconfig) -> Result<String> {
    serde_saphyr::to_string(config).context("serialise the kubeconfig")
}

/// One kubeconfig holding every context of `configs`, the current context being `current`.
pub fn merge(configs: Vec<Kubeconfig>, current: &str) -> Kubeconfig {
    let mut merged = Kubeconfig {
        kind: Some("Config".to_owned()),
        api_version: Some("v1".to_owned()),
        ..Kubeconfig::default()
    };
    for config in configs {
        merged.clusters.extend(config.clusters);
        merged.auth_infos.extend(config.auth_infos);
        merged.contexts.extend(config.contexts);
    }
    merged.current_context = Some(current.to_owned());
    merged
}
