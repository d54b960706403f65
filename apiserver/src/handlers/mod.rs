//! The generic resource handler: one code path for every resource in the table, dispatched by verb.

mod read;
mod watch;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use flotilla_api::request::{ApiPath, Target};
use flotilla_api::resources::{self, Resource, Subresource};
use flotilla_api::selector::{FieldSelector, LabelSelector};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::ApiServer;
use crate::object::Behaviour;
use crate::status::{ApiError, Subject};

/// Bodies over this size are refused with 413, as kube-apiserver's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 << 20;

/// Everything a resource handler needs to know about the request.
pub struct Ctx {
    pub server: Arc<ApiServer>,
    pub resource: &'static Resource,
    pub behaviour: Behaviour,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    /// `Warning` headers for the response (kubectl prints them).
    pub warnings: Arc<Mutex<Vec<String>>>,
}

impl Ctx {
    pub fn subject(&self, name: &str) -> Subject {
        Subject::new(self.resource, name)
    }

    /// The storage key of the named object.
    pub fn key(&self, name: &str) -> String {
        flotilla_api::keys::object_key(
            &self.server.prefix,
            self.resource.group,
            self.resource.plural,
            self.namespace.as_deref(),
            name,
        )
    }

    /// The key prefix of the collection (in one namespace, or all).
    pub fn collection_prefix(&self) -> String {
        flotilla_api::keys::collection_prefix(
            &self.server.prefix,
            self.resource.group,
            self.resource.plural,
            self.namespace.as_deref(),
        )
    }

    /// The version this resource's objects are stored in (its preferred version); handlers work on that form.
    pub fn storage_version(&self) -> &'static str {
        self.resource.versions[0]
    }

    /// Whether the request's version differs from the stored one, so objects convert at the edge.
    pub fn converts(&self) -> bool {
        crate::conversion::needed(self.resource, &self.version)
    }

    /// An object of the stored version as the request's version shows it (other kinds pass unchanged).
    pub fn served(&self, object: Value) -> Value {
        crate::conversion::to_served(self.resource, &self.version, object)
    }

    /// A write's answer as the request's version shows it.
    fn written(&self, code: StatusCode, written: write::Written) -> Response {
        match written {
            write::Written::Json(json) => json_bytes(code, json),
            write::Written::Object(object) => json_status(code, self.served(object)),
        }
    }

    /// An object of the request's version in the stored version.
    pub fn stored(&self, object: Value) -> Result<Value, ApiError> {
        crate::conversion::to_stored(self.resource, &self.version, object)
            .map_err(|err| ApiError::BadRequest(err.to_string()))
    }

    /// A LIST response of stored objects as the request's version shows them.
    async fn served_list(&self, list: Response) -> Result<Response, ApiError> {
        if !self.converts() || !list.status().is_success() {
            return Ok(list);
        }
        let mut list = read_json(list).await?;
        if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
            for item in items {
                *item = self.served_item(std::mem::take(item));
            }
        }
        Ok(json_response(list))
    }

    /// A list item (no `apiVersion` and `kind`) of the stored version as the request's version shows it.
    fn served_item(&self, mut item: Value) -> Value {
        crate::object::set_type(&mut item, self.resource, self.storage_version());
        let mut item = self.served(item);
        if let Some(map) = item.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        item
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    pub fn dry_run(&self) -> Result<bool, ApiError> {
        match self.param("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!(
                "unsupported dry run value {other:?}, only \"All\""
            ))),
        }
    }

    /// What `fieldValidation` makes of `problems` (`unknown field "x"`, dropped from the object, or `duplicate
    /// field "x"`, of which the last was kept): `Strict` (kubectl's default) refuses the request with kube's strict
    /// decoding error, `Warn` (the default without the parameter) answers with a `Warning` per problem, `Ignore`
    /// says nothing.
    pub fn field_validation(&self, problems: Vec<String>) -> Result<(), ApiError> {
        self.judge_fields(problems, |problems| {
            format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {problems}",
                kind = self.resource.kind,
                version = self.version,
            )
        })
    }

    /// [`Ctx::field_validation`] of a merge or strategic merge patch body, in kube's words for patches.
    pub fn patch_field_validation(&self, problems: Vec<String>) -> Result<(), ApiError> {
        self.judge_fields(problems, |problems| format!("strict decoding error: {problems}"))
    }

    /// Refuses, warns about or ignores `problems` as `fieldValidation` asks; `refusal` words the 400.
    fn judge_fields(&self, problems: Vec<String>, refusal: impl Fn(&str) -> String) -> Result<(), ApiError> {
        let directive = self.param("fieldValidation").unwrap_or("Warn");
        if !matches!(directive, "Strict" | "Warn" | "Ignore") {
            return Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", not {directive:?}"
            )));
        }
        if problems.is_empty() || directive == "Ignore" {
            return Ok(());
        }
        if directive == "Strict" {
            return Err(ApiError::BadRequest(refusal(&problems.join(", "))));
        }
        self.warnings.lock().expect("not poisoned").extend(problems);
        Ok(())
    }

    pub fn label_selector(&self) -> Result<LabelSelector, ApiError> {
        LabelSelector::parse(self.param("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    }

    /// The field selector, refusing fields this resource cannot select on (kube's message).
    pub fn field_selector(&self) -> Result<FieldSelector, ApiError> {
        let selector = FieldSelector::parse(self.param("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if let Some(field) = selector.unsupported(&|field| read::field_value_supported(self.resource, field))
        {
            return Err(ApiError::BadRequest(format!(
                "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            )));
        }
        Ok(selector)
    }
}

/// The JSON body of a response.
async fn read_json(response: Response) -> Result<Value, ApiError> {
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read the list: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| ApiError::Internal(format!("the list is not JSON: {e}")))
}

/// Stored objects as a Table (server-side printing for `kubectl get`): cells from the stored form, the rows'
/// objects as the request's version shows them.
fn table_of(ctx: &Ctx, objects: Vec<Value>, list_metadata: Value, version: &str) -> Value {
    let include = ctx.param("includeObject").unwrap_or("Metadata");
    let mut table = crate::table::table(ctx.resource, &objects, list_metadata, include, version);
    if ctx.converts()
        && let Some(rows) = table["rows"].as_array_mut()
    {
        for (row, object) in rows.iter_mut().zip(objects) {
            match row.get_mut("object") {
                Some(Value::Object(shown)) if include == "Object" => {
                    *shown = match ctx.served(object) {
                        Value::Object(served) => served,
                        _ => Default::default(),
                    }
                }
                Some(Value::Object(shown)) => {
                    if let Some(metadata) = ctx.served(object).get("metadata") {
                        shown.insert("metadata".to_owned(), metadata.clone());
                    }
                }
                _ => {}
            }
        }
    }
    table
}

/// A LIST response of stored objects turned into a Table.
async fn as_table(ctx: &Ctx, list: Response, version: &str) -> Result<Response, ApiError> {
    if !list.status().is_success() {
        return Ok(list);
    }
    let list = read_json(list).await?;
    // List items carry no apiVersion and kind; rows with whole objects do.
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    for item in &mut items {
        crate::object::set_type(item, ctx.resource, ctx.storage_version());
    }
    Ok(json_response(table_of(
        ctx,
        items,
        list["metadata"].clone(),
        version,
    )))
}

/// Serves every path under `/api/` and `/apis/` that is not discovery.
pub async fn resource_request(State(server): State<Arc<ApiServer>>, request: Request) -> Response {
    match dispatch(server, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn dispatch(server: Arc<ApiServer>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // Read the body before anything can fail, so that an early error answers a fully read request (HTTP/2
    // clients report a reset stream otherwise).
    let body = match parts.method {
        Method::GET | Method::HEAD => Bytes::new(),
        _ => read_body(body).await?,
    };
    let path = parts.uri.path().to_owned();
    let Some(ApiPath::Resource(target)) = flotilla_api::request::parse(&path) else {
        return Err(ApiError::NoSuchResource);
    };
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {e}")))?;
    let ctx = context(server, &target, query, parts.headers)?;
    if let Some(accept) = ctx.headers.get(header::ACCEPT) {
        let accept = accept.to_str().unwrap_or_default();
        if !answers_in_json(accept) {
            return Err(ApiError::NotAcceptable {
                accepted: "application/json, application/json;as=Table;v=v1;g=meta.k8s.io",
            });
        }
    }
    let warnings = ctx.warnings.clone();
    let mut response = respond(ctx, &parts.method, &body).await?;
    for warning in warnings.lock().expect("not poisoned").iter() {
        // kube's form: code 299, no agent, the text quoted.
        let value = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(response)
}

async fn respond(ctx: Ctx, method: &Method, body: &Bytes) -> Result<Response, ApiError> {
    if !ctx.resource.is_writable() && !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::NotFederated {
            resource: ctx.resource.qualified_name(),
        });
    }
    let is_watch = matches!(ctx.param("watch"), Some("true" | "1"));
    let table = ctx
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::table::requested)
        .filter(|_| ctx.subresource.is_none());
    match (method, ctx.name.is_some()) {
        (&Method::GET, false) if is_watch => watch::watch(ctx, table).await,
        (&Method::GET, false) if table.is_some() => {
            let list = read::list(&ctx).await?;
            as_table(&ctx, list, table.unwrap_or("v1")).await
        }
        (&Method::GET, false) => {
            let list = read::list(&ctx).await?;
            ctx.served_list(list).await
        }
        (&Method::GET, true) if table.is_some() => {
            let object = read::get(&ctx).await?;
            let metadata =
                serde_json::json!({"resourceVersion": object.pointer("/metadata/resourceVersion")});
            Ok(json_response(table_of(
                &ctx,
                vec![object],
                metadata,
                table.unwrap_or("v1"),
            )))
        }
        // Handlers work on the stored version; the request's version is made here, on the way out.
        (&Method::GET, true)
            if ctx.subresource.is_none() && !ctx.converts() && ctx.param("resourceVersion").is_none() =>
        {
            read::get_stored(&ctx).await
        }
        (&Method::GET, true) => read::get(&ctx).await.map(|o| json_response(ctx.served(o))),
        (&Method::POST, false) => write::create(&ctx, body)
            .await
            .map(|written| ctx.written(StatusCode::CREATED, written)),
        (&Method::PUT, true) => write::update(&ctx, body)
            .await
            .map(|written| ctx.written(StatusCode::OK, written)),
        (&Method::PATCH, true) => write::patch(&ctx, body)
            .await
            .map(|written| ctx.written(StatusCode::OK, written)),
        (&Method::DELETE, true) => write::delete(&ctx, body)
            .await
            .map(|(code, object)| json_status(code, ctx.served(object))),
        (&Method::DELETE, false) => {
            let mut list = write::delete_collection(&ctx, body).await?;
            if ctx.converts()
                && let Some(items) = list.get_mut("items").and_then(Value::as_array_mut)
            {
                for item in items {
                    *item = ctx.served_item(std::mem::take(item));
                }
            }
            Ok(json_response(list))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Whether an `Accept` header admits a JSON answer (objects, lists, watch streams or Tables): responses are
/// JSON only, so a client that accepts only protobuf or YAML gets 406, as kube answers a type it cannot produce.
fn answers_in_json(accept: &str) -> bool {
    accept.trim().is_empty()
        || accept.split(',').any(|range| {
            let media = range
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            matches!(media.as_str(), "*/*" | "application/*" | "application/json" | "")
        })
}

fn context(
    server: Arc<ApiServer>,
    target: &Target<'_>,
    query: HashMap<String, String>,
    headers: HeaderMap,
) -> Result<Ctx, ApiError> {
    let resource = resources::lookup(server.profile, target.group, target.version, target.resource)
        .ok_or(ApiError::NoSuchResource)?;
    let is_namespaces = resource.group.is_empty() && resource.plural == "namespaces";
    let namespace = match (resource.namespaced, target.namespace) {
        (true, namespace) => namespace.map(str::to_owned),
        // `/api/v1/namespaces/<name>`: the namespace segment is the object's name.
        (false, Some(_)) if is_namespaces => None,
        (false, Some(_)) => return Err(ApiError::NoSuchResource),
        (false, None) => None,
    };
    if resource.namespaced && namespace.is_none() && target.name.is_some() {
        return Err(ApiError::NoSuchResource);
    }
    let subresource = match target.subresource {
        None => None,
        Some("status") if resource.has_subresource(Subresource::Status) => Some(Subresource::Status),
        Some("scale") if resource.has_subresource(Subresource::Scale) => Some(Subresource::Scale),
        Some(_) => return Err(ApiError::NoSuchResource),
    };
    Ok(Ctx {
        server,
        resource,
        behaviour: Behaviour::of(resource),
        version: target.version.to_owned(),
        namespace,
        name: target.name.map(str::to_owned),
        subresource,
        query,
        headers,
        warnings: Arc::default(),
    })
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge {
            limit: MAX_BODY_BYTES,
        }),
        Err(err) => Err(ApiError::BadRequest(format!("read request body: {err}"))),
    }
}

pub fn json_response(value: Value) -> Response {
    json_status(StatusCode::OK, value)
}

pub fn json_status(code: StatusCode, value: Value) -> Response {
    json_bytes(code, serde_json::to_vec(&value).expect("JSON values serialise"))
}

/// A response of JSON already serialised.
pub fn json_bytes(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::answers_in_json;

    #[test]
    fn json_answers_what_clients_accept() {
        for accept in [
            "",
            "*/*",
            "application/json",
            "application/json;stream=watch",
            "application/vnd.kubernetes.protobuf, application/json",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "application/*;q=0.8",
        ] {
            assert!(answers_in_json(accept), "{accept}");
        }
        for accept in [
            "application/vnd.kubernetes.protobuf",
            "application/yaml",
            "text/html, application/xml",
        ] {
            assert!(!answers_in_json(accept), "{accept}");
        }
    }
}
