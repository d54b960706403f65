//! Prometheus metrics, with kube-apiserver's names: `apiserver_request_total` (by verb, resource, code) and
//! `apiserver_request_duration_seconds` (by verb, resource); and Flotilla's own
//! `flotilla_apiserver_write_retries_total` (by verb and reason): updates and deletes made again from a newer copy
//! of their object.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flotilla_api::request::ApiPath;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::ApiServer;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    verb: &'static str,
    reason: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    write_retries: Family<RetryLabels, Counter>,
}

/// Why an update (or a delete) was made again from a newer copy of its object.
#[derive(Clone, Copy, Debug)]
pub enum Retry {
    /// Storage refused the watch cache's copy as behind, and answered with its own.
    StaleCache,
    /// The attempt on the watch cache's copy failed or changed nothing: checked again on storage's.
    Recheck,
    /// Another writer came first, after a read from storage.
    Conflict,
}

impl Retry {
    /// A lost compare-and-swap, from storage's copy (`fresh`) or the watch cache's.
    pub fn lost_race(fresh: bool) -> Retry {
        if fresh { Retry::Conflict } else { Retry::StaleCache }
    }

    fn reason(self) -> &'static str {
        match self {
            Retry::StaleCache => "stale_cache",
            Retry::Recheck => "recheck",
            Retry::Conflict => "conflict",
        }
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations =
            Family::<DurationLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        registry.register(
            "apiserver_request",
            "Counter of apiserver requests by verb, resource and code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Response latency distribution in seconds by verb and resource",
            durations.clone(),
        );
        let write_retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "flotilla_apiserver_write_retries",
            "Updates and deletes made again from a newer copy of their object, by verb and reason",
            write_retries.clone(),
        );
        Metrics {
            registry,
            requests,
            durations,
            write_retries,
        }
    }
}

impl Metrics {
    /// `verb`: kube's, `UPDATE` (for patches too) or `DELETE`.
    pub fn write_retried(&self, verb: &'static str, why: Retry) {
        self.write_retries
            .get_or_create(&RetryLabels {
                verb,
                reason: why.reason(),
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// kube's verb for a request: LIST and WATCH are told apart from GET, DELETECOLLECTION from DELETE.
fn verb_and_resource(method: &Method, path: &str, query: Option<&str>) -> (String, String) {
    let target = match flotilla_api::request::parse(path) {
        Some(ApiPath::Resource(target)) => Some(target),
        _ => None,
    };
    let resource = target.as_ref().map(|t| t.resource.to_owned()).unwrap_or_default();
    let named = target.as_ref().is_some_and(|t| t.name.is_some());
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (method.as_str(), named) {
        ("GET", false) if watch => "WATCH",
        ("GET", false) if target.is_some() => "LIST",
        ("DELETE", false) if target.is_some() => "DELETECOLLECTION",
        (method, _) => method,
    };
    (verb.to_owned(), resource)
}

/// The request-metrics middleware.
pub async fn track(State(server): State<Arc<ApiServer>>, request: Request, next: Next) -> Response {
    let (verb, resource) = verb_and_resource(request.method(), request.uri().path(), request.uri().query());
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16().to_string();
    server
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            verb: verb.clone(),
            resource: resource.clone(),
            code,
        })
        .inc();
    server
        .metrics
        .durations
        .get_or_create(&DurationLabels { verb, resource })
        .observe(started.elapsed().as_secs_f64());
    response
}

pub async fn serve_metrics(State(server): State<Arc<ApiServer>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        server.metrics.encode(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_follow_kube() {
        let check = |method: Method, path: &str, query: Option<&str>, verb: &str, resource: &str| {
            assert_eq!(
                verb_and_resource(&method, path, query),
                (verb.to_owned(), resource.to_owned())
            );
        };
        check(
            Method::GET,
            "/api/v1/namespaces/a/configmaps",
            None,
            "LIST",
            "configmaps",
        );
        check(
            Method::GET,
            "/api/v1/namespaces/a/configmaps",
            Some("watch=true"),
            "WATCH",
            "configmaps",
        );
        check(
            Method::GET,
            "/apis/apps/v1/namespaces/a/deployments/x",
            None,
            "GET",
            "deployments",
        );
        check(
            Method::DELETE,
            "/api/v1/namespaces/a/configmaps",
            None,
            "DELETECOLLECTION",
            "configmaps",
        );
        check(Method::GET, "/version", None, "GET", "");
    }
}
