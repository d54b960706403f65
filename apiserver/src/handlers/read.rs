//! GET and LIST.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use flotilla_api::resources::{Resource, Subresource};
use flotilla_storage::{ListOptions, Revision};
use serde_json::{Value, json};

use super::Ctx;
use crate::object::{self, meta_str};
use crate::status::{ApiError, from_storage};

/// Decodes a stored object and sets its `resourceVersion`, `apiVersion` and `kind` (of the stored version: the
/// request's version is made at the edge, [`Ctx::served`]).
pub fn decode(ctx: &Ctx, kv: &flotilla_storage::KeyValue) -> Result<Value, ApiError> {
    let mut object: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    object::set_type(&mut object, ctx.resource, ctx.storage_version());
    object::set_resource_version(&mut object, kv.mod_revision.get());
    Ok(object)
}

/// The named object as storage holds it (a consistent read).
async fn read_stored(ctx: &Ctx) -> Result<flotilla_storage::KeyValue, ApiError> {
    let name = ctx.name.as_deref().expect("get has a name");
    ctx.server
        .store
        .get(&ctx.key(name))
        .await
        .map_err(|e| from_storage(e, &ctx.subject(name)))
}

/// A consistent GET of the main resource in its stored version, answered from the stored bytes: only the top
/// level and the metadata are parsed (to add the `resourceVersion`), not the spec, data or managed fields.
pub async fn get_stored(ctx: &Ctx) -> Result<Response, ApiError> {
    let kv = read_stored(ctx).await?;
    let body = object::with_resource_version(&kv.value, kv.mod_revision.get())
        .map_err(|e| ApiError::Internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

pub async fn get(ctx: &Ctx) -> Result<Value, ApiError> {
    let name = ctx.name.as_deref().expect("get has a name");
    let object = if ctx.param("resourceVersion") == Some("0") {
        // Any recent state will do: the watch cache.
        let cache = ctx.server.caches.of(ctx.resource);
        cache
            .wait_for(0)
            .await
            .map_err(|_| ApiError::Unavailable("the watch cache is not ready".to_owned()))?;
        let cached = cache
            .get(&ctx.key(name))
            .ok_or_else(|| ApiError::NotFound(ctx.subject(name)))?;
        let mut object: Value = serde_json::from_slice(&cached.item_json)
            .map_err(|e| ApiError::Internal(format!("cached object is not JSON: {e}")))?;
        object::set_type(&mut object, ctx.resource, ctx.storage_version());
        object
    } else {
        decode(ctx, &read_stored(ctx).await?)?
    };
    match ctx.subresource {
        Some(Subresource::Scale) => Ok(super::write::scale_of(&object)),
        _ => Ok(object),
    }
}

/// Whether `field` can be used in a field selector on `resource`.
pub fn field_value_supported(resource: &Resource, field: &str) -> bool {
    object::selectable_fields(resource).contains(&field)
}

/// Whether `object` passes the request's label and field selectors.
pub struct Filter {
    labels: flotilla_api::selector::LabelSelector,
    fields: flotilla_api::selector::FieldSelector,
}

impl Filter {
    pub fn new(ctx: &Ctx) -> Result<Self, ApiError> {
        Ok(Filter {
            labels: ctx.label_selector()?,
            fields: ctx.field_selector()?,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.labels.matches(&object::labels(object))
            && self.fields.matches(|field| object::field_value(object, field))
    }

    /// The same, for an object the watch cache holds.
    pub fn matches_index(&self, index: &crate::cache::Index) -> bool {
        self.labels.matches(&index.labels)
            && self.fields.matches(|field| index.field(field).map(str::to_owned))
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
}

/// Parses a `resourceVersion` parameter.
pub fn parse_resource_version(value: &str) -> Result<Revision, ApiError> {
    value
        .parse::<i64>()
        .ok()
        .filter(|rv| *rv >= 0)
        .map(Revision)
        .ok_or_else(|| ApiError::BadRequest(format!("invalid resource version: {value:?}")))
}

/// LIST from the watch cache: the whole collection at the cache's revision, built from each object's
/// pre-serialised item. `limit` is not applied here (kube-apiserver's cache may ignore it too, and clients that
/// page get storage's consistent pages).
async fn list_from_cache(ctx: &Ctx, filter: &Filter, requested: i64) -> Result<Response, ApiError> {
    let cache = ctx.server.caches.of(ctx.resource);
    cache.wait_for(requested).await.map_err(|err| match err {
        crate::cache::CacheError::TooLarge { requested, current } => {
            ApiError::TooLargeResourceVersion { requested, current }
        }
        crate::cache::CacheError::Expired { requested, .. } => {
            ApiError::Expired(format!("too old resource version: {requested}"))
        }
    })?;
    Ok(cached_list(ctx, filter, cache))
}

/// The list response of what `cache` holds under the request's collection, filtered.
fn cached_list(ctx: &Ctx, filter: &Filter, cache: &crate::cache::ResourceCache) -> Response {
    let (cached, revision) = cache.list(&ctx.collection_prefix());
    let head = json!({
        "kind": format!("{}List", ctx.resource.kind),
        "apiVersion": ctx.resource.api_version(&ctx.version),
        "metadata": {"resourceVersion": revision.to_string()},
    });
    let head = serde_json::to_vec(&head).expect("JSON serialises");
    let mut body =
        Vec::with_capacity(head.len() + cached.iter().map(|c| c.item_json.len() + 1).sum::<usize>() + 16);
    body.extend_from_slice(&head[..head.len() - 1]); // without the closing brace
    body.extend_from_slice(b",\"items\":[");
    let mut first = true;
    for item in cached.iter().filter(|cached| filter.matches_index(&cached.index)) {
        if !first {
            body.push(b',');
        }
        first = false;
        body.extend_from_slice(&item.item_json);
    }
    body.extend_from_slice(b"]}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A consistent LIST from the cache, as kube-apiserver's consistent reads from cache: once the cache has seen
/// the store's current revision (it follows one watch of every write, so that takes moments). `None` when it
/// does not get there quickly (for example, another federation sharing the etcd wrote last).
async fn consistent_list_from_cache(ctx: &Ctx, filter: &Filter) -> Result<Option<Response>, ApiError> {
    let current = ctx
        .server
        .store
        .current_revision()
        .await
        .map_err(|e| from_storage(e, &ctx.subject("")))?;
    let cache = ctx.server.caches.of(ctx.resource);
    match cache
        .wait_for_within(current.get(), std::time::Duration::from_millis(250))
        .await
    {
        Ok(()) => Ok(Some(cached_list(ctx, filter, cache))),
        Err(_) => Ok(None),
    }
}

/// LIST: a consistent page at one revision, filtered by the selectors.
///
/// `resourceVersion` semantics as kube-apiserver's: unset for the latest; `0` for any (here, the latest);
/// `N` with `resourceVersionMatch=NotOlderThan` (the default) for the latest once it has reached N (410/504
/// otherwise), and with `Exact` for exactly N. With a selector, storage pages are read until the page is full
/// or the collection ends, as kube does.
pub async fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let filter = Filter::new(ctx)?;
    let limit = match ctx.param("limit") {
        None => None,
        Some(limit) => Some(
            limit
                .parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit {limit:?}")))?,
        )
        .filter(|limit| *limit > 0)
        .map(|limit| limit as usize),
    };
    let continue_token = ctx.param("continue").map(str::to_owned);
    let requested = ctx
        .param("resourceVersion")
        .map(parse_resource_version)
        .transpose()?;
    let exact = match ctx.param("resourceVersionMatch") {
        None | Some("NotOlderThan") => false,
        Some("Exact") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown resourceVersionMatch {other:?}"
            )));
        }
    };
    if continue_token.is_some() && requested.is_some_and(|rv| rv > Revision::ZERO) {
        return Err(ApiError::BadRequest(
            "specifying resource version is not allowed when using continue".to_owned(),
        ));
    }
    if exact && requested.is_none_or(|rv| rv == Revision::ZERO) {
        return Err(ApiError::BadRequest(
            "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\" or unset".to_owned(),
        ));
    }
    if continue_token.is_none() && !exact {
        match requested {
            Some(requested) => return list_from_cache(ctx, &filter, requested.get()).await,
            None if limit.is_none() => {
                if let Some(response) = consistent_list_from_cache(ctx, &filter).await? {
                    return Ok(response);
                }
            }
            None => {}
        }
    }
    let store = &ctx.server.store;
    let subject = ctx.subject("");
    // Storage serves consistent reads, continuations and exact revisions.
    let mut revision = if exact { requested } else { None };
    let prefix = ctx.collection_prefix();
    let name_only = ctx
        .field_selector()?
        .required_value("metadata.name")
        .map(str::to_owned);
    let mut items = Vec::new();
    let mut token = continue_token;
    let (list_revision, next_token, remaining) = loop {
        let options = ListOptions {
            limit,
            continue_token: token.take(),
            revision: revision.take(),
        };
        let page = store.list(&prefix, &options).await.map_err(|e| match e {
            flotilla_storage::Error::Expired { .. } if options.continue_token.is_some() => ApiError::Expired(
                "The provided continue parameter is too old to display a consistent list result. You can start \
                 a new list without the continue parameter, or use the continue token in this response to \
                 retrieve the remainder of the results. Continuing with the provided token results in an \
                 inconsistent list - objects that were created, modified, or deleted between the time the first \
                 chunk was returned and now may show up in the list."
                    .to_owned(),
            ),
            e => from_storage(e, &subject),
        })?;
        for kv in &page.items {
            // Keys of other namespaces' collections share no prefix, but a cluster-wide list of a namespaced
            // resource sees every namespace: all of them belong.
            let object = decode(ctx, kv)?;
            if name_only
                .as_deref()
                .is_some_and(|name| meta_str(&object, "name") != Some(name))
            {
                continue;
            }
            if filter.matches(&object) {
                items.push(object);
            }
        }
        let full = limit.is_some_and(|limit| items.len() >= limit);
        match page.continue_token {
            Some(next) if !full && !filter.is_everything() => token = Some(next),
            next => {
                let remaining = if filter.is_everything() {
                    page.remaining
                } else {
                    None
                };
                break (page.revision, next, remaining);
            }
        }
    };
    for item in &mut items {
        if let Some(map) = item.as_object_mut() {
            // Items of a typed list carry no type meta, as from kube-apiserver.
            map.remove("apiVersion");
            map.remove("kind");
        }
    }
    let mut metadata = json!({"resourceVersion": list_revision.get().to_string()});
    if let Some(next) = next_token {
        metadata["continue"] = Value::String(next);
        if let Some(remaining) = remaining {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    Ok(super::json_response(json!({
        "kind": format!("{}List", ctx.resource.kind),
        "apiVersion": ctx.resource.api_version(&ctx.version),
        "metadata": metadata,
        "items": items,
    })))
}
