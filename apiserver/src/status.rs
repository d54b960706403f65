//! The one mapping from every apiserver error to a Kubernetes `Status` response.
//!
//! Handlers return `Result<_, ApiError>`; nothing else builds a `Status` body. Codes, reasons and message
//! wording follow kube-apiserver, because clients print them and branch on them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flotilla_api::resources::Resource;
use serde_json::{Value, json};

/// One field's problem in a 422 Invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// kube's cause type, such as `FieldValueRequired` or `FieldValueInvalid`.
    pub kind: &'static str,
    pub field: String,
    pub message: String,
}

/// What a request refers to, for error details.
#[derive(Clone, Debug)]
pub struct Subject {
    pub resource: &'static Resource,
    pub name: String,
}

impl Subject {
    pub fn new(resource: &'static Resource, name: &str) -> Self {
        Subject {
            resource,
            name: name.to_owned(),
        }
    }

    /// `deployments.apps`, as kube names resources in messages.
    pub fn qualified(&self) -> String {
        self.resource.qualified_name()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed request: bad body, bad query, mismatched names.
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials we do not know.
    #[error("Unauthorized")]
    Unauthorized,
    /// A request the server refuses, such as creating in a terminating namespace.
    #[error("{message}")]
    Forbidden { subject: Subject, message: String },
    #[error("{} \"{}\" not found", .0.qualified(), .0.name)]
    NotFound(Subject),
    /// The path names nothing we serve.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// A write to a kind Flotilla lists but does not federate (`Access::ReadOnly`).
    #[error(
        "{resource} are not federated: Flotilla lists them, always empty, but does not accept them; run workloads \
             through Deployments, ReplicaSets, StatefulSets, DaemonSets or Jobs, which it propagates to the member clusters"
    )]
    NotFederated { resource: String },
    #[error("{} \"{}\" already exists", .0.qualified(), .0.name)]
    AlreadyExists(Subject),
    /// The object moved under the request (stale resourceVersion, failed precondition).
    #[error("Operation cannot be fulfilled on {} \"{}\": {message}", subject.qualified(), subject.name)]
    Conflict { subject: Subject, message: String },
    /// A server-side apply would change fields other managers own (`conflicts`: field, "conflict with …").
    #[error("{message}")]
    ApplyConflict {
        subject: Subject,
        message: String,
        conflicts: Vec<(String, String)>,
    },
    /// A resourceVersion or continue token older than the store keeps.
    #[error("{0}")]
    Expired(String),
    #[error("the request body is too large (limit {limit} bytes)")]
    TooLarge { limit: usize },
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType { accepted: &'static str },
    /// No media type in `Accept` that the server can answer in.
    #[error("only the following media types are accepted: {accepted}")]
    NotAcceptable { accepted: &'static str },
    /// Validation failed; one cause per problem.
    #[error("{} \"{}\" is invalid: {}", qualified_kind(subject.resource), subject.name, causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", "))]
    Invalid { subject: Subject, causes: Vec<Cause> },
    /// A resourceVersion newer than the store's, after waiting for it.
    #[error("Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: i64, current: i64 },
    /// The store is down or slow.
    #[error("{0}")]
    Unavailable(String),
    /// A bug.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::NoSuchResource => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed | ApiError::NotFederated { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AlreadyExists(_) | ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => {
                StatusCode::CONFLICT
            }
            ApiError::Expired(_) => StatusCode::GONE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLargeResourceVersion { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::NotFound(_) | ApiError::NoSuchResource => "NotFound",
            ApiError::MethodNotAllowed | ApiError::NotFederated { .. } => "MethodNotAllowed",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Expired(_) => "Expired",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::NotAcceptable { .. } => "NotAcceptable",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::TooLargeResourceVersion { .. } => "Timeout",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Internal(_) => "InternalError",
        }
    }

    fn details(&self) -> Option<Value> {
        let subject = match self {
            ApiError::NotFound(subject)
            | ApiError::AlreadyExists(subject)
            | ApiError::Conflict { subject, .. }
            | ApiError::Forbidden { subject, .. } => subject,
            ApiError::Invalid { subject, causes, .. } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": c.kind, "message": c.message, "field": c.field}))
                    .collect();
                // kube names the kind here, not the resource: `The Deployment "x" is invalid`.
                let mut details = subject_details(subject);
                details["kind"] = Value::String(subject.resource.kind.to_owned());
                details["causes"] = Value::Array(causes);
                return Some(details);
            }
            ApiError::ApplyConflict {
                subject, conflicts, ..
            } => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|(field, message)| json!({"reason": "FieldManagerConflict", "message": message, "field": field}))
                    .collect();
                let mut details = subject_details(subject);
                details["causes"] = Value::Array(causes);
                return Some(details);
            }
            ApiError::TooLargeResourceVersion { .. } => return Some(json!({"retryAfterSeconds": 1})),
            _ => return None,
        };
        Some(subject_details(subject))
    }

    /// The `Status` object (also sent inside watch ERROR events).
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }
}

/// `Deployment.apps`, `ConfigMap`: how kube names a kind in validation messages.
fn qualified_kind(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.kind.to_owned()
    } else {
        format!("{}.{}", resource.kind, resource.group)
    }
}

fn subject_details(subject: &Subject) -> Value {
    let mut details = json!({"name": subject.name, "kind": subject.resource.plural});
    if !subject.resource.group.is_empty() {
        details["group"] = Value::String(subject.resource.group.to_owned());
    }
    details
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code().is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = serde_json::to_vec(&self.status()).expect("a Status serialises");
        let mut response = (self.code(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl ApiError {
    /// kube's 409 for a write based on an object that has since changed.
    pub fn modified(subject: &Subject) -> ApiError {
        ApiError::Conflict {
            subject: subject.clone(),
            message:
                "the object has been modified; please apply your changes to the latest version and try again"
                    .to_owned(),
        }
    }
}

/// Maps a storage failure about `subject`.
pub fn from_storage(err: flotilla_storage::Error, subject: &Subject) -> ApiError {
    use flotilla_storage::Error as E;
    match err {
        E::NotFound { .. } => ApiError::NotFound(subject.clone()),
        E::AlreadyExists { .. } => ApiError::AlreadyExists(subject.clone()),
        E::Conflict { .. } => ApiError::modified(subject),
        E::Expired { requested, oldest } => ApiError::Expired(match oldest {
            Some(oldest) => format!("too old resource version: {requested} ({oldest})"),
            None => format!("too old resource version: {requested}"),
        }),
        E::FutureRevision { requested, current } => ApiError::TooLargeResourceVersion {
            requested: requested.get(),
            current: current.map_or(0, |c| c.get()),
        },
        E::ValueTooLarge { size, .. } => ApiError::TooLarge { limit: size },
        E::InvalidArgument(message) => ApiError::BadRequest(message),
        E::Unsupported(what) => ApiError::BadRequest(format!("unsupported: {what}")),
        E::Unavailable { message, .. } => ApiError::Unavailable(format!("storage unavailable: {message}")),
        err @ E::Internal { .. } => ApiError::Internal(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_status_matches_kube() {
        let subject = Subject::new(
            flotilla_api::resources::lookup(
                flotilla_api::resources::Profile::Federation,
                "apps",
                "v1",
                "deployments",
            )
            .unwrap(),
            "web",
        );
        assert_eq!(
            ApiError::NotFound(subject).status(),
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "deployments.apps \"web\" not found", "reason": "NotFound",
                "details": {"name": "web", "group": "apps", "kind": "deployments"}, "code": 404
            })
        );
    }

    #[test]
    fn invalid_lists_each_cause() {
        let subject = Subject::new(
            flotilla_api::resources::lookup(
                flotilla_api::resources::Profile::Federation,
                "",
                "v1",
                "configmaps",
            )
            .unwrap(),
            "x_y",
        );
        let err = ApiError::Invalid {
            subject,
            causes: vec![Cause {
                kind: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: "Invalid value: \"x_y\"".into(),
            }],
        };
        let status = err.status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
        assert_eq!(
            status["message"],
            "ConfigMap \"x_y\" is invalid: metadata.name: Invalid value: \"x_y\""
        );
    }
}
