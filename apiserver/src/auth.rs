//! Authentication: bearer tokens from a kube-format token file, and x509 client certificates (CN = user,
//! O = groups) verified by the TLS layer against `--client-ca-file`. Every authenticated user may do everything
//! (no authorization yet). `/healthz`, `/livez`, `/readyz` and `/version` are open, as kube-apiserver's default
//! RBAC leaves them to anonymous users.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiServer;
use crate::status::ApiError;

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The identity in a verified client certificate, put on each request of its connection.
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub Option<UserInfo>);

impl ClientCertificate {
    /// Reads CN and O from the leaf certificate the TLS handshake verified.
    pub fn from_der(der: &[u8]) -> Self {
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(der) else {
            return ClientCertificate(None);
        };
        let subject = certificate.subject();
        let name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        ClientCertificate(name.map(|name| UserInfo {
            name,
            uid: String::new(),
            groups,
        }))
    }
}

/// Known bearer tokens.
#[derive(Clone, Debug, Default)]
pub struct Tokens(HashMap<String, UserInfo>);

impl Tokens {
    /// Parses kube's `--token-auth-file` CSV: `token,user,uid[,"group1,group2"]`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut tokens = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
                bail!("line {}: expected token,user,uid[,groups]", number + 1);
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            tokens.insert(
                fields[0].clone(),
                UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(Tokens(tokens))
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("parse {}", path.display()))
    }

    pub fn insert(&mut self, token: String, user: UserInfo) {
        self.0.insert(token, user);
    }

    pub fn lookup(&self, token: &str) -> Option<&UserInfo> {
        self.0.get(token)
    }
}

/// Splits one CSV line, honouring double quotes.
fn split_csv(line: &str) -> Vec<String> {
    let (mut fields, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    fields.into_iter().map(|f| f.trim().to_owned()).collect()
}

const OPEN_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The authentication middleware: puts the [`UserInfo`] on the request, or answers 401.
pub async fn authenticate(
    State(server): State<Arc<ApiServer>>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let from_certificate = request
        .extensions()
        .get::<ClientCertificate>()
        .and_then(|c| c.0.clone());
    let from_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|token| server.tokens.lookup(token.trim()).cloned());
    match from_certificate.or(from_token) {
        Some(user) => {
            request.extensions_mut().insert(user);
            next.run(request).await
        }
        None => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_like_kube() {
        let tokens = Tokens::parse("# admin\nabc,admin,1,\"system:masters,ops\"\ndef,bob,2\n").unwrap();
        let admin = tokens.lookup("abc").unwrap();
        assert_eq!(admin.name, "admin");
        assert_eq!(admin.groups, vec!["system:masters", "ops"]);
        assert!(tokens.lookup("def").unwrap().groups.is_empty());
        assert!(tokens.lookup("nope").is_none());
        assert!(Tokens::parse("onlytoken\n").is_err());
    }
}
