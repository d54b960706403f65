//! Serving certificates: a CA and a serving certificate generated into the data directory on first start and
//! reused afterwards (as kubeadm's `pki/`), or files given by flags; and the rustls configuration, which asks
//! for (but does not require) client certificates when a client CA is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Paths of the serving credentials.
#[derive(Clone, Debug)]
pub struct ServingFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes sure `<pki_dir>/{ca.crt,ca.key,apiserver.crt,apiserver.key}` exist, generating them for `hosts`
/// (DNS names or IP addresses) the first time.
pub fn ensure_generated(pki_dir: &Path, hosts: &[String]) -> Result<ServingFiles> {
    let files = ServingFiles {
        ca_cert: pki_dir.join("ca.crt"),
        cert: pki_dir.join("apiserver.crt"),
        key: pki_dir.join("apiserver.key"),
    };
    if files.ca_cert.exists() && files.cert.exists() && files.key.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(pki_dir).with_context(|| format!("create {}", pki_dir.display()))?;
    let ca_key = KeyPair::generate().context("generate the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).context("self-sign the CA")?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let serving_key = KeyPair::generate().context("generate the serving key")?;
    let mut params = CertificateParams::new(hosts.to_vec()).context("serving certificate names")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-apiserver");
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let serving = params
        .signed_by(&serving_key, &issuer)
        .context("sign the serving certificate")?;

    crate::kubeconfig::write(&pki_dir.join("ca.key"), &ca_key.serialize_pem())?;
    crate::kubeconfig::write(&files.key, &serving_key.serialize_pem())?;
    std::fs::write(&files.cert, serving.pem())?;
    std::fs::write(&files.ca_cert, ca_cert.pem())?;
    Ok(files)
}

/// The rustls server configuration: h2 and http/1.1, optional client certificates signed by `client_ca`.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("read {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parse {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("read {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in
                CertificateDer::pem_file_iter(path).with_context(|| format!("read {}", path.display()))?
            {
                roots.add(ca?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .context("serving certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
