//! Continue tokens in kube-apiserver's format, so clients see the same opaque strings as from a kube-apiserver.
//!
//! A token is base64url (no padding) of `{"v":"meta.k8s.io/v1","rv":<revision>,"start":"<next key>"}`, where
//! the next key is relative to the listed prefix and ends with `\0` (the smallest key after the last one
//! returned).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::{Error, Revision};

const TOKEN_VERSION: &str = "meta.k8s.io/v1";

#[derive(Serialize, Deserialize)]
struct Wire {
    v: String,
    rv: i64,
    start: String,
}

/// Where the next page of a list starts, and at which revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContinueToken {
    /// The revision of the first page; every page is read at it.
    pub revision: Revision,
    /// The first key of the next page, relative to the listed prefix.
    pub start: String,
}

impl ContinueToken {
    /// The token for a page whose last key was `last_key` in a list of `prefix` at `revision`.
    pub fn after(prefix: &str, last_key: &str, revision: Revision) -> Self {
        let relative = last_key.strip_prefix(prefix).unwrap_or(last_key);
        ContinueToken {
            revision,
            start: format!("{relative}\0"),
        }
    }

    pub fn encode(&self) -> String {
        let wire = Wire {
            v: TOKEN_VERSION.to_owned(),
            rv: self.revision.0,
            start: self.start.clone(),
        };
        let json = serde_json::to_vec(&wire).expect("a struct of strings and integers serialises");
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidArgument(format!("invalid continue token: {why}"));
        let json = URL_SAFE_NO_PAD
            .decode(token.trim_end_matches('='))
            .map_err(|_| invalid("not base64url"))?;
        let wire: Wire = serde_json::from_slice(&json).map_err(|_| invalid("not a continue token"))?;
        if wire.v != TOKEN_VERSION {
            return Err(invalid("unknown version"));
        }
        if wire.rv <= 0 {
            return Err(invalid("no resource version"));
        }
        if wire.start.is_empty() || wire.start.starts_with('/') || wire.start.split('/').any(|s| s == "..") {
            return Err(invalid("start key outside the listed collection"));
        }
        Ok(ContinueToken {
            revision: Revision(wire.rv),
            start: wire.start,
        })
    }

    /// The absolute key the next page starts at.
    pub fn start_key(&self, prefix: &str) -> String {
        format!("{prefix}{}", self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_matches_kube_shape() {
        let token = ContinueToken::after("/registry/configmaps/", "/registry/configmaps/ns/a", Revision(42));
        assert_eq!(token.start, "ns/a\0");
        let encoded = token.encode();
        let json = URL_SAFE_NO_PAD.decode(&encoded).unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":42,"start":"ns/a\u0000"}"#
        );
        assert_eq!(ContinueToken::decode(&encoded).unwrap(), token);
        assert_eq!(
            token.start_key("/registry/configmaps/"),
            "/registry/configmaps/ns/a\0"
        );
    }

    #[test]
    fn malformed_tokens_are_invalid_arguments() {
        for bad in [
            "!!!",
            &URL_SAFE_NO_PAD.encode(b"{}"),
            &URL_SAFE_NO_PAD.encode(br#"{"v":"x","rv":1,"start":"a"}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":3,"start":"/etc"}"#),
            &URL_SAFE_NO_PAD.encode(br#"{"v":"meta.k8s.io/v1","rv":3,"start":"../x"}"#),
        ] {
            assert!(
                matches!(ContinueToken::decode(bad), Err(Error::InvalidArgument(_))),
                "{bad}"
            );
        }
    }
}
