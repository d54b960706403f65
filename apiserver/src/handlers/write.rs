//! CREATE, UPDATE, PATCH, DELETE and DELETECOLLECTION, with the scale subresource.
//!
//! Updates and patches share one read-modify-write loop ([`update_with`]): read the current object, compute
//! the new one from it, carry over what the server owns, and write it if the object has not moved, otherwise
//! start again from the new current object. A `resourceVersion` in the request body is a precondition (409 when
//! stale); without one, a concurrent writer only causes a retry, as in kube-apiserver.

use axum::http::{StatusCode, header};
use bytes::Bytes;
use flotilla_api::resources::{Resource, Subresource};
use flotilla_storage::Revision;
use serde_json::{Value, json};

use super::Ctx;
use super::read::decode;
use crate::managed;
use crate::metrics::Retry;
use crate::object::{self, meta_str};
use crate::services;
use crate::status::{ApiError, Cause, Subject, from_storage};

/// How often an update retries after losing a race to another writer.
const MAX_RETRIES: usize = 32;

fn content_type(ctx: &Ctx) -> String {
    ctx.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes a request body holding an object: JSON (also without a Content-Type, as the Python client sends it)
/// or Kubernetes protobuf (kubectl 1.32+).
fn decode_body(ctx: &Ctx, body: &Bytes) -> Result<Value, ApiError> {
    let object: Value = match content_type(ctx).as_str() {
        "" | "application/json" | "*/*" => {
            let (object, duplicates) = object::parse_json(body).map_err(|e| {
                ApiError::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
            })?;
            ctx.field_validation(field_problems("duplicate", &duplicates))?;
            object
        }
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(body)
            .map_err(|e| ApiError::BadRequest(format!("the protobuf body could not be decoded: {e}")))?,
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/vnd.kubernetes.protobuf",
            });
        }
    };
    if !object.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".to_owned(),
        ));
    }
    check_type(ctx, &object)?;
    Ok(object)
}

/// `unknown field "x"`, `duplicate field "x"`: what `fieldValidation` reports, in kube's words.
fn field_problems(kind: &str, paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|field| format!("{kind} field \"{field}\""))
        .collect()
}

/// `apiVersion` and `kind`, where given, must be what the URL serves.
fn check_type(ctx: &Ctx, object: &Value) -> Result<(), ApiError> {
    let expected_version = ctx.resource.api_version(&ctx.version);
    let (kind, expected_kind) = match ctx.subresource {
        Some(Subresource::Scale) => (object.get("kind"), "Scale"),
        _ => (object.get("kind"), ctx.resource.kind),
    };
    if let Some(version) = object.get("apiVersion").and_then(Value::as_str) {
        let expected = if ctx.subresource == Some(Subresource::Scale) {
            "autoscaling/v1"
        } else {
            &expected_version
        };
        if version != expected {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({version}) does not match the expected API version ({expected})"
            )));
        }
    }
    if let Some(kind) = kind.and_then(Value::as_str)
        && kind != expected_kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({expected_kind})"
        )));
    }
    Ok(())
}

/// The namespace of the object must be the request's; it is set from the URL.
fn set_namespace(ctx: &Ctx, object: &mut Value) -> Result<(), ApiError> {
    let in_body = meta_str(object, "namespace")
        .filter(|ns| !ns.is_empty())
        .map(str::to_owned);
    let meta = object::metadata_mut(object);
    match (&ctx.namespace, in_body) {
        (Some(url), Some(body)) if *url != body => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_owned(),
        )),
        (Some(url), _) => {
            meta.insert("namespace".to_owned(), Value::String(url.clone()));
            Ok(())
        }
        (None, _) => {
            meta.remove("namespace");
            Ok(())
        }
    }
}

/// The namespace must exist and not be terminating. The watch cache answers (as kube's namespace lifecycle
/// admission answers from an informer); storage only when the cache has not seen the namespace yet.
async fn check_namespace(ctx: &Ctx) -> Result<(), ApiError> {
    let Some(namespace) = &ctx.namespace else {
        return Ok(());
    };
    let namespaces = flotilla_api::resources::lookup(
        flotilla_api::resources::Profile::Federation,
        "",
        "v1",
        "namespaces",
    )
    .expect("namespaces are served");
    let key = flotilla_api::keys::object_key(&ctx.server.prefix, "", "namespaces", None, namespace);
    let phase = match ctx.server.caches.of(namespaces).get(&key) {
        Some(cached) => cached.index.field("status.phase").map(str::to_owned),
        None => {
            let subject = Subject::new(namespaces, namespace);
            let kv = ctx
                .server
                .store
                .get(&key)
                .await
                .map_err(|e| from_storage(e, &subject))?;
            let object: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            object
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }
    };
    if phase.as_deref() == Some("Terminating") {
        return Err(ApiError::Forbidden {
            subject: ctx.subject(namespace),
            message: format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        });
    }
    Ok(())
}

fn encode(object: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(object).expect("JSON values serialise"))
}

/// What a write answers with.
pub enum Written {
    /// The object, of the stored version (or a Scale).
    Object(Value),
    /// The object's JSON as just stored, with its new `resourceVersion`: when the request's version is the stored
    /// one, the response needs no conversion and so no second serialisation.
    Json(Vec<u8>),
}

/// The answer to a write of `object`, stored as `encoded` at `revision`.
fn written(ctx: &Ctx, encoded: &object::Encoded, mut object: Value, revision: Revision) -> Written {
    if !ctx.converts()
        && let Some(json) = encoded.with_resource_version(revision.get())
    {
        return Written::Json(json);
    }
    object::set_resource_version(&mut object, revision.get());
    Written::Object(object)
}

pub async fn create(ctx: &Ctx, body: &Bytes) -> Result<Written, ApiError> {
    if ctx.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    let object = ctx.stored(decode_body(ctx, body)?)?;
    create_object(ctx, object, true).await
}

/// Creates `object` (of the stored version); `track`: its fields become the writer's (an apply has already
/// recorded its own).
async fn create_object(ctx: &Ctx, mut object: Value, track: bool) -> Result<Written, ApiError> {
    set_namespace(ctx, &mut object)?;
    let generate = meta_str(&object, "name")
        .filter(|name| !name.is_empty())
        .is_none()
        .then(|| {
            meta_str(&object, "generateName")
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
        })
        .flatten();
    if let Some(base) = &generate {
        object::metadata_mut(&mut object)
            .insert("name".to_owned(), Value::String(object::generate_name(base)));
    }
    object::validate_metadata(&object, ctx.resource, ctx.behaviour)?;
    object::normalize(&mut object, ctx.resource);
    check_namespace(ctx).await?;
    object::prepare_create(&mut object, ctx.behaviour, ctx.resource);
    if ctx.resource.group == "batch" && ctx.resource.plural == "jobs" {
        crate::defaults::generate_job_selector(&mut object);
    }
    object::set_type(&mut object, ctx.resource, ctx.storage_version());
    let unknown = object::check_decodes(&mut object, ctx.resource)?;
    ctx.field_validation(field_problems("unknown", &unknown))?;
    object::validate_type(&object, None, ctx.resource)?;
    if track && ctx.server.track_managed_fields {
        let facts = write_facts(ctx);
        managed::track_update(&mut object, None, &writer(ctx, &facts), ctx.resource);
    }
    if ctx.dry_run()? {
        drop(allocate(ctx, &mut object, None, true).await?);
        return Ok(Written::Object(object));
    }
    let unallocated = generate.is_some().then(|| object.clone());
    for _ in 0..3 {
        // Allocated after the managers are recorded: like kube's, allocated values belong to no manager.
        let claims = allocate(ctx, &mut object, None, false).await?;
        let name = meta_str(&object, "name").unwrap_or_default().to_owned();
        let encoded = object::Encoded::new(&object);
        let result = ctx
            .server
            .store
            .create(&ctx.key(&name), encoded.bytes.clone())
            .await;
        if let Err(err) = &result
            && not_written(err)
        {
            ctx.server.services.release(claims).await;
        }
        match result {
            Ok(revision) => return Ok(written(ctx, &encoded, object, revision)),
            Err(flotilla_storage::Error::AlreadyExists { .. }) if generate.is_some() => {
                // Another name, and the allocation again from scratch.
                if let Some(unallocated) = &unallocated {
                    object = unallocated.clone();
                }
                let base = generate.as_deref().unwrap_or_default();
                object::metadata_mut(&mut object)
                    .insert("name".to_owned(), Value::String(object::generate_name(base)));
            }
            Err(err) => return Err(from_storage(err, &ctx.subject(&name))),
        }
    }
    Err(ApiError::AlreadyExists(
        ctx.subject(meta_str(&object, "name").unwrap_or_default()),
    ))
}

/// The `autoscaling/v1` Scale of an object with `spec.replicas`.
pub fn scale_of(object: &Value) -> Value {
    let selector = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let meta = object::metadata(object).cloned().unwrap_or_default();
    let pick = |field: &str| meta.get(field).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": object.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": object.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// Where an attempt at an update starts: the current object (with its `resourceVersion`), its revision, and whether
/// it was read from storage just now (else it is the watch cache's copy, which may be behind).
struct Start {
    object: Value,
    revision: Revision,
    fresh: bool,
}

impl Start {
    fn read(ctx: &Ctx, kv: &flotilla_storage::KeyValue) -> Result<Start, ApiError> {
        Ok(Start {
            object: decode(ctx, kv)?,
            revision: kv.mod_revision,
            fresh: true,
        })
    }

    /// Storage's copy, read now.
    async fn stored(ctx: &Ctx, key: &str, subject: &Subject) -> Result<Start, ApiError> {
        let kv = ctx
            .server
            .store
            .get(key)
            .await
            .map_err(|e| from_storage(e, subject))?;
        Start::read(ctx, &kv)
    }

    fn cached(ctx: &Ctx, key: &str) -> Option<Start> {
        let cached = ctx.server.caches.of(ctx.resource).get(key)?;
        let mut object: Value = serde_json::from_slice(&cached.item_json).ok()?;
        object::set_type(&mut object, ctx.resource, ctx.storage_version());
        Some(Start {
            object,
            revision: Revision(cached.revision),
            fresh: false,
        })
    }
}

/// What one attempt at an update or a delete came to.
enum Outcome<T> {
    /// Storage took the write.
    Written(T),
    /// Decided without a write (nothing to change, a dry run, a delete already under way, a failed precondition's
    /// error aside).
    Answered(T),
    /// Another writer came first: start again from storage's current object, when the refusal carried it.
    Raced(Option<Start>),
}

impl<T> Outcome<T> {
    /// A compare-and-swap refused because the object moved on to `current`.
    fn raced(ctx: &Ctx, current: &flotilla_storage::KeyValue) -> Result<Outcome<T>, ApiError> {
        Ok(Outcome::Raced(Some(Start::read(ctx, current)?)))
    }
}

/// The loop around the attempts at an update or a delete, as kube-apiserver's `GuaranteedUpdate`. The first attempt
/// starts from the watch cache's copy of the object, as kube's cacher hands its copy over, so that the write costs
/// one storage round trip rather than two. A stale copy costs a retry, no more: the compare-and-swap refuses it and
/// answers with storage's current object; and whatever an attempt on the cache's copy decides without a write (an
/// error included) is decided again on storage's copy before it is answered.
struct Attempts<'a> {
    ctx: &'a Ctx,
    /// Labels the retries: `UPDATE` or `DELETE`.
    verb: &'static str,
    key: &'a str,
    subject: &'a Subject,
    next: Option<Start>,
    left: usize,
}

impl<'a> Attempts<'a> {
    fn new(ctx: &'a Ctx, verb: &'static str, key: &'a str, subject: &'a Subject) -> Self {
        Attempts {
            ctx,
            verb,
            key,
            subject,
            next: Start::cached(ctx, key),
            left: MAX_RETRIES,
        }
    }

    /// Where the next attempt starts; an error when storage cannot be read or the retries are spent.
    async fn start(&mut self) -> Result<Start, ApiError> {
        if self.left == 0 {
            return Err(ApiError::Conflict {
                subject: self.subject.clone(),
                message: "the object is being modified too often; please try again".to_owned(),
            });
        }
        self.left -= 1;
        match self.next.take() {
            Some(start) => Ok(start),
            None => Start::stored(self.ctx, self.key, self.subject).await,
        }
    }

    /// The answer, once an attempt from a copy `fresh` or not came to `outcome`; `None` to attempt again.
    fn settle<T>(
        &mut self,
        fresh: bool,
        outcome: Result<Outcome<T>, ApiError>,
    ) -> Option<Result<T, ApiError>> {
        let retry = match outcome {
            Ok(Outcome::Written(done)) => return Some(Ok(done)),
            Ok(Outcome::Raced(start)) => {
                self.next = start;
                Retry::lost_race(fresh)
            }
            // The cache's copy may be behind: again on storage's before answering.
            _ if !fresh => Retry::Recheck,
            Ok(Outcome::Answered(done)) => return Some(Ok(done)),
            Err(err) => return Some(Err(err)),
        };
        self.ctx.server.metrics.write_retried(self.verb, retry);
        None
    }
}

/// The read-modify-write loop shared by update and patch. `compute` gets the current object (with its
/// `resourceVersion`) and returns the object the client wants; it runs again after a lost race.
async fn update_with(
    ctx: &Ctx,
    track: bool,
    mut compute: impl FnMut(&Value) -> Result<Value, ApiError>,
) -> Result<Written, ApiError> {
    let name = ctx.name.as_deref().expect("updates have a name");
    let subject = ctx.subject(name);
    let key = ctx.key(name);
    let dry_run = ctx.dry_run()?;
    let mut attempts = Attempts::new(ctx, "UPDATE", &key, &subject);
    loop {
        let start = attempts.start().await?;
        let fresh = start.fresh;
        let outcome = attempt(ctx, track, dry_run, &mut compute, &key, &subject, start).await;
        if let Some(answer) = attempts.settle(fresh, outcome) {
            return answer;
        }
    }
}

/// One attempt at an update, from `start`.
async fn attempt(
    ctx: &Ctx,
    track: bool,
    dry_run: bool,
    compute: &mut impl FnMut(&Value) -> Result<Value, ApiError>,
    key: &str,
    subject: &Subject,
    start: Start,
) -> Result<Outcome<Written>, ApiError> {
    let name = ctx.name.as_deref().expect("updates have a name");
    let Start {
        object: current,
        revision,
        ..
    } = start;
    let wanted = compute(&current)?;
    let mut new = match ctx.subresource {
        Some(Subresource::Scale) => {
            // `ScaleSpec.replicas` is a Go value with `omitempty`, so absent is zero, as kube reads it: a Go
            // client scaling to zero sends `"spec": {}` in JSON, and the protobuf decoder drops the zero alike.
            let replicas = wanted.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            let mut new = current.clone();
            let spec = new
                .as_object_mut()
                .map(|o| o.entry("spec").or_insert_with(|| json!({})));
            match spec {
                Some(Value::Object(spec)) => {
                    spec.insert("replicas".to_owned(), replicas);
                }
                _ => return Err(ApiError::BadRequest("the object has no spec to scale".to_owned())),
            }
            object::prepare_update(&mut new, &current, ctx.behaviour, None);
            new
        }
        subresource => {
            let mut new = wanted;
            check_identity(&new, name)?;
            set_namespace(ctx, &mut new)?;
            let wanted_rv = meta_str(&new, "resourceVersion")
                .filter(|rv| !rv.is_empty())
                .map(str::to_owned);
            if wanted_rv.is_some_and(|rv| rv != revision.get().to_string()) {
                return Err(ApiError::modified(subject));
            }
            if subresource.is_none() {
                // Defaults first, so that a spec they complete does not count as changed.
                object::normalize(&mut new, ctx.resource);
                if is_services(ctx.resource) {
                    services::keep_allocated(&mut new, &current);
                }
            }
            object::prepare_update(&mut new, &current, ctx.behaviour, subresource);
            new
        }
    };
    object::validate_metadata(&new, ctx.resource, ctx.behaviour)?;
    object::normalize(&mut new, ctx.resource);
    check_finalizers(ctx, &current, &new)?;
    object::set_type(&mut new, ctx.resource, ctx.storage_version());
    let unknown = object::check_decodes(&mut new, ctx.resource)?;
    ctx.field_validation(field_problems("unknown", &unknown))?;
    object::validate_type(&new, Some(&current), ctx.resource)?;
    if track && ctx.server.track_managed_fields {
        let facts = write_facts(ctx);
        managed::track_update(&mut new, Some(&current), &writer(ctx, &facts), ctx.resource);
    }
    let mut unchanged = current.clone();
    object::metadata_mut(&mut unchanged).remove("resourceVersion");
    if new == unchanged {
        return Ok(Outcome::Answered(Written::Object(current)));
    }
    let claims = allocate(ctx, &mut new, Some(&current), dry_run).await?;
    if dry_run {
        object::set_resource_version(&mut new, revision.get());
        return Ok(Outcome::Answered(Written::Object(new)));
    }
    // The last finalizer of an object being deleted is gone: the update completes the delete.
    let being_deleted = object::metadata(&new).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if being_deleted && object::finalizers(&new).is_empty() {
        ctx.server.services.release(claims).await;
        return match ctx.server.store.delete(key, Some(revision)).await {
            Ok(deleted) => {
                release_dropped(ctx, &current, None, deleted.revision).await;
                object::set_resource_version(&mut new, deleted.revision.get());
                Ok(Outcome::Written(Written::Object(new)))
            }
            Err(flotilla_storage::Error::Conflict { current, .. }) => Outcome::raced(ctx, &current),
            Err(err) => Err(from_storage(err, subject)),
        };
    }
    let encoded = object::Encoded::new(&new);
    let result = ctx
        .server
        .store
        .update(key, encoded.bytes.clone(), revision)
        .await;
    if let Err(err) = &result
        && not_written(err)
    {
        ctx.server.services.release(claims).await;
    }
    match result {
        Ok(revision) => {
            release_dropped(ctx, &current, Some(&new), revision).await;
            if ctx.subresource == Some(Subresource::Scale) {
                object::set_resource_version(&mut new, revision.get());
                return Ok(Outcome::Written(Written::Object(scale_of(&new))));
            }
            Ok(Outcome::Written(written(ctx, &encoded, new, revision)))
        }
        Err(flotilla_storage::Error::Conflict { current, .. }) => Outcome::raced(ctx, &current),
        Err(err) => Err(from_storage(err, subject)),
    }
}

fn is_services(resource: &Resource) -> bool {
    resource.group.is_empty() && resource.plural == "services"
}

/// After a Service was written (`new`) or deleted (`None`): the cluster IP and node ports `old` held and it no
/// longer does go back to their pools. An update through a subresource changes no addresses.
async fn release_dropped(ctx: &Ctx, old: &Value, new: Option<&Value>, revision: Revision) {
    if is_services(ctx.resource) && (new.is_none() || ctx.subresource.is_none()) {
        ctx.server.services.release_dropped(old, new, revision).await;
    }
}

/// Whether a failed write surely did not happen (its claims can go back): etcd answered, refusing it. A write
/// etcd did not answer may have been applied.
fn not_written(err: &flotilla_storage::Error) -> bool {
    !matches!(
        err,
        flotilla_storage::Error::Unavailable { .. } | flotilla_storage::Error::Internal { .. }
    )
}

/// A Service's cluster IP and node ports (nothing for other resources and for subresources): claimed, unless
/// `dry_run`, until the caller releases them after a failed write.
async fn allocate(
    ctx: &Ctx,
    object: &mut Value,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<services::Claims, ApiError> {
    if !is_services(ctx.resource) || ctx.subresource.is_some() {
        return Ok(services::Claims::default());
    }
    let subject = ctx.subject(meta_str(object, "name").unwrap_or_default());
    ctx.server.services.allocate(object, old, dry_run, &subject).await
}

/// The name in the body must be the URL's.
fn check_identity(object: &Value, name: &str) -> Result<(), ApiError> {
    match meta_str(object, "name") {
        Some(body_name) if body_name != name => Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// While an object is being deleted, finalizers can only be removed.
fn check_finalizers(ctx: &Ctx, current: &Value, new: &Value) -> Result<(), ApiError> {
    let deleting = object::metadata(current).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if !deleting {
        return Ok(());
    }
    let before = object::finalizers(current);
    let added: Vec<String> = object::finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if added.is_empty() {
        return Ok(());
    }
    let name = meta_str(current, "name").unwrap_or_default();
    Err(ApiError::Invalid {
        subject: ctx.subject(name),
        causes: vec![Cause {
            kind: "FieldValueForbidden",
            field: "metadata.finalizers".to_owned(),
            message: format!(
                "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
            ),
        }],
    })
}

pub async fn update(ctx: &Ctx, body: &Bytes) -> Result<Written, ApiError> {
    let wanted = decode_body(ctx, body)?;
    let wanted = match ctx.subresource {
        Some(Subresource::Scale) => wanted,
        _ => ctx.stored(wanted)?,
    };
    update_with(ctx, true, |_| Ok(wanted.clone())).await
}

/// A patch, ready to apply to the current object (again after a lost race).
type PatchFn = Box<dyn Fn(&mut Value) -> Result<(), ApiError> + Send + Sync>;

pub async fn patch(ctx: &Ctx, body: &Bytes) -> Result<Written, ApiError> {
    let kind = content_type(ctx);
    if kind == APPLY_PATCH {
        return apply(ctx, body).await;
    }
    const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, \
         application/strategic-merge-patch+json, application/apply-patch+yaml";
    if !PATCH_TYPES.split(", ").any(|t| t == kind) {
        return Err(ApiError::UnsupportedMediaType {
            accepted: PATCH_TYPES,
        });
    }
    let (patch, duplicates) = object::parse_json(body)
        .map_err(|e| ApiError::BadRequest(format!("the patch is not valid JSON: {e}")))?;
    // As kube decodes merge patches strictly (a JSON patch's operations are not objects of the type).
    if kind != "application/json-patch+json" {
        ctx.patch_field_validation(field_problems("duplicate", &duplicates))?;
    }
    let apply: PatchFn = match kind.as_str() {
        "application/json-patch+json" => {
            let operations: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            let subject = ctx.subject(ctx.name.as_deref().unwrap_or_default());
            Box::new(move |target| {
                json_patch::patch(target, &operations).map_err(|e| ApiError::Invalid {
                    subject: subject.clone(),
                    causes: vec![Cause {
                        kind: "FieldValueInvalid",
                        field: String::new(),
                        message: e.to_string(),
                    }],
                })
            })
        }
        "application/merge-patch+json" => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "a merge patch must be a JSON object".to_owned(),
                ));
            }
            Box::new(move |target| {
                json_patch::merge(target, &patch);
                Ok(())
            })
        }
        "application/strategic-merge-patch+json" => {
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "a strategic merge patch must be a JSON object".to_owned(),
                ));
            }
            let resource = ctx.resource;
            let scale = ctx.subresource == Some(Subresource::Scale);
            Box::new(move |target| {
                crate::patch::strategic_merge(target, &patch, resource, scale).map_err(ApiError::BadRequest)
            })
        }
        _ => unreachable!("patch types are checked above"),
    };
    // The patch applies to the object as the request's version shows it.
    update_with(ctx, true, |current| {
        let mut target = match ctx.subresource {
            Some(Subresource::Scale) => scale_of(current),
            _ => ctx.served(current.clone()),
        };
        apply(&mut target)?;
        if !target.is_object() {
            return Err(ApiError::BadRequest(
                "the patched object is not a JSON object".to_owned(),
            ));
        }
        match ctx.subresource {
            Some(Subresource::Scale) => Ok(target),
            _ => ctx.stored(target),
        }
    })
    .await
}

const APPLY_PATCH: &str = "application/apply-patch+yaml";

/// Who a write is from, for `managedFields`: the `fieldManager` parameter, or the client's user agent up to its
/// first `/` (`kubectl/v1.33.0 …` is `kubectl`), as kube names it.
fn manager(ctx: &Ctx) -> String {
    if let Some(manager) = ctx.param("fieldManager") {
        return manager.to_owned();
    }
    ctx.headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|agent| agent.split('/').next())
        .filter(|name| !name.is_empty())
        .unwrap_or("unknown")
        .to_owned()
}

/// The request's manager, `apiVersion` and time, for [`writer`].
fn write_facts(ctx: &Ctx) -> (String, String, String) {
    (
        manager(ctx),
        ctx.resource.api_version(&ctx.version),
        object::now(),
    )
}

fn writer<'a>(ctx: &Ctx, (manager, api_version, time): &'a (String, String, String)) -> managed::Writer<'a> {
    managed::Writer {
        manager,
        api_version,
        subresource: ctx.subresource.map(Subresource::name),
        time,
    }
}

/// Server-side apply (`application/apply-patch+yaml`): the body is the manager's whole configuration of the
/// object, merged in by [`managed::apply`]; the object is created when it does not exist.
async fn apply(ctx: &Ctx, body: &Bytes) -> Result<Written, ApiError> {
    let manager = ctx
        .param("fieldManager")
        .map(str::to_owned)
        .ok_or_else(|| ApiError::BadRequest("PATCH /apply requires fieldManager to be set".to_owned()))?;
    let force = match ctx.param("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::BadRequest(format!("invalid force {other:?}"))),
    };
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("the apply configuration is not UTF-8: {e}")))?;
    let config: Value = match serde_json::from_str(text) {
        Ok(config) => config,
        Err(_) => serde_saphyr::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?,
    };
    if !config.is_object() || config.get("apiVersion").is_none() || config.get("kind").is_none() {
        return Err(ApiError::BadRequest(
            "the apply configuration must be an object with apiVersion and kind".to_owned(),
        ));
    }
    check_type(ctx, &config)?;
    let name = ctx.name.as_deref().unwrap_or_default();
    check_identity(&config, name)?;
    let facts = (manager, ctx.resource.api_version(&ctx.version), object::now());
    let writer = writer(ctx, &facts);
    let conflict = |conflicts: Vec<managed::Conflict>| ApiError::ApplyConflict {
        subject: ctx.subject(name),
        message: managed::conflict_message(&conflicts),
        conflicts: conflicts
            .iter()
            .map(|c| {
                (
                    c.field.clone(),
                    format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                )
            })
            .collect(),
    };
    // As in kube: a resourceVersion in the configuration is a precondition (409 when the object moved on);
    // without one the apply applies to whatever is there now.
    let precondition = config
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|rv| !rv.is_empty())
        .map(str::to_owned);
    for attempt in 0..2 {
        let updated = update_with(ctx, false, |current| {
            let live = ctx.served(current.clone());
            let mut new =
                managed::apply(Some(&live), &config, &writer, force, ctx.resource).map_err(conflict)?;
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                match &precondition {
                    Some(rv) => meta.insert("resourceVersion".to_owned(), json!(rv)),
                    None => meta.remove("resourceVersion"),
                };
            }
            ctx.stored(new)
        })
        .await;
        match updated {
            // Nothing there yet: the apply creates it.
            Err(ApiError::NotFound(_)) if ctx.subresource.is_none() => {
                let object = managed::apply(None, &config, &writer, force, ctx.resource).map_err(conflict)?;
                match create_object(ctx, ctx.stored(object)?, false).await {
                    // Another writer created it meanwhile: apply over theirs, as kube retries.
                    Err(ApiError::AlreadyExists(_)) if attempt == 0 => continue,
                    created => return created,
                }
            }
            other => return other,
        }
    }
    Err(ApiError::Conflict {
        subject: ctx.subject(name),
        message: "the object is being modified too often; please try again".to_owned(),
    })
}

/// `DeleteOptions` from the body (kubectl always sends one) or from the query.
struct DeleteOptions {
    propagation: Option<String>,
    precondition_uid: Option<String>,
    precondition_rv: Option<String>,
}

fn delete_options(ctx: &Ctx, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let text = |pointer: &str| body.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
    let mut propagation =
        text("/propagationPolicy").or_else(|| ctx.param("propagationPolicy").map(str::to_owned));
    if propagation.is_none()
        && let Some(orphan) = body.get("orphanDependents").and_then(Value::as_bool)
    {
        propagation = Some(if orphan { "Orphan" } else { "Background" }.to_owned());
    }
    if let Some(policy) = &propagation
        && !matches!(policy.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::BadRequest(format!(
            "unknown propagationPolicy {policy:?}"
        )));
    }
    if text("/dryRun/0").is_some_and(|d| d != "All") {
        return Err(ApiError::BadRequest(
            "unsupported dry run value, only \"All\"".to_owned(),
        ));
    }
    Ok(DeleteOptions {
        propagation,
        precondition_uid: text("/preconditions/uid"),
        precondition_rv: text("/preconditions/resourceVersion"),
    })
}

fn dry_run_delete(ctx: &Ctx, body: &Bytes) -> Result<bool, ApiError> {
    let in_body = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|b| b.pointer("/dryRun/0").and_then(Value::as_str).map(str::to_owned));
    Ok(ctx.dry_run()? || in_body.as_deref() == Some("All"))
}

/// The finalizer kube's garbage collector uses for a propagation policy.
fn policy_finalizer(policy: Option<&str>) -> Option<&'static str> {
    match policy {
        Some("Orphan") => Some("orphan"),
        Some("Foreground") => Some("foregroundDeletion"),
        _ => None,
    }
}

pub async fn delete(ctx: &Ctx, body: &Bytes) -> Result<(StatusCode, Value), ApiError> {
    if ctx.subresource.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    let options = delete_options(ctx, body)?;
    let dry_run = dry_run_delete(ctx, body)?;
    let name = ctx.name.as_deref().expect("delete has a name");
    delete_object(ctx, name, &options, dry_run).await
}

/// Deletes `name`: at once, or, while finalizers (or, for a namespace, its contents) remain, by marking it.
async fn delete_object(
    ctx: &Ctx,
    name: &str,
    options: &DeleteOptions,
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let subject = ctx.subject(name);
    let key = ctx.key(name);
    let mut attempts = Attempts::new(ctx, "DELETE", &key, &subject);
    loop {
        let start = attempts.start().await?;
        let fresh = start.fresh;
        let outcome = attempt_delete(ctx, name, options, dry_run, &key, &subject, start).await;
        if let Some(answer) = attempts.settle(fresh, outcome) {
            return answer;
        }
    }
}

/// One attempt at a delete, from `start`.
async fn attempt_delete(
    ctx: &Ctx,
    name: &str,
    options: &DeleteOptions,
    dry_run: bool,
    key: &str,
    subject: &Subject,
    start: Start,
) -> Result<Outcome<(StatusCode, Value)>, ApiError> {
    let Start {
        object: mut current,
        revision,
        ..
    } = start;
    let uid = meta_str(&current, "uid").unwrap_or_default().to_owned();
    if let Some(expected) = &options.precondition_uid
        && *expected != uid
    {
        return Err(ApiError::Conflict {
            subject: subject.clone(),
            message: format!(
                "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
            ),
        });
    }
    if let Some(expected) = &options.precondition_rv {
        let actual = revision.get().to_string();
        if *expected != actual {
            return Err(ApiError::Conflict {
                subject: subject.clone(),
                message: format!(
                    "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {actual}"
                ),
            });
        }
    }
    let mut finalizers = object::finalizers(&current);
    let is_namespace = ctx.resource.group.is_empty() && ctx.resource.plural == "namespaces";
    if let Some(finalizer) = policy_finalizer(options.propagation.as_deref())
        && !finalizers.iter().any(|f| f == finalizer)
    {
        finalizers.push(finalizer.to_owned());
    }
    if finalizers.is_empty() && !is_namespace {
        if dry_run {
            return Ok(Outcome::Answered((
                StatusCode::OK,
                deleted_status(ctx, name, &uid),
            )));
        }
        return match ctx.server.store.delete(key, Some(revision)).await {
            Ok(deleted) => {
                release_dropped(ctx, &current, None, deleted.revision).await;
                Ok(Outcome::Written((
                    StatusCode::OK,
                    deleted_status(ctx, name, &uid),
                )))
            }
            Err(flotilla_storage::Error::Conflict { current, .. }) => Outcome::raced(ctx, &current),
            Err(err) => Err(from_storage(err, subject)),
        };
    }
    // Deletion waits for finalizers (or, for a namespace, for its contents to go): mark it.
    let meta = object::metadata_mut(&mut current);
    let already = meta.contains_key("deletionTimestamp");
    if already && object::finalizers(&current) == finalizers && !is_namespace {
        return Ok(Outcome::Answered((StatusCode::OK, current)));
    }
    let meta = object::metadata_mut(&mut current);
    meta.entry("deletionTimestamp")
        .or_insert_with(|| Value::String(object::now()));
    meta.entry("deletionGracePeriodSeconds").or_insert(json!(0));
    meta.remove("resourceVersion");
    if finalizers.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert("finalizers".to_owned(), json!(finalizers));
    }
    if is_namespace {
        current["status"] = json!({"phase": "Terminating"});
    }
    if dry_run {
        return Ok(Outcome::Answered((StatusCode::OK, current)));
    }
    match ctx.server.store.update(key, encode(&current), revision).await {
        Ok(revision) => {
            object::set_resource_version(&mut current, revision.get());
            ctx.server
                .lifecycle
                .deletion_started(ctx.resource, ctx.namespace.as_deref(), name);
            Ok(Outcome::Written((StatusCode::OK, current)))
        }
        Err(flotilla_storage::Error::Conflict { current, .. }) => Outcome::raced(ctx, &current),
        Err(err) => Err(from_storage(err, subject)),
    }
}

/// kube's answer to a delete that removed the object at once.
fn deleted_status(ctx: &Ctx, name: &str, uid: &str) -> Value {
    let mut details = json!({"name": name, "kind": ctx.resource.plural, "uid": uid});
    if !ctx.resource.group.is_empty() {
        details["group"] = json!(ctx.resource.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

pub async fn delete_collection(ctx: &Ctx, body: &Bytes) -> Result<Value, ApiError> {
    let options = delete_options(ctx, body)?;
    let dry_run = dry_run_delete(ctx, body)?;
    let listed = super::read::list(ctx).await?;
    let listed = axum::body::to_bytes(listed.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("read the list to delete: {e}")))?;
    let listed: Value = serde_json::from_slice(&listed)
        .map_err(|e| ApiError::Internal(format!("parse the list to delete: {e}")))?;
    let mut items = Vec::new();
    for item in listed["items"].as_array().cloned().unwrap_or_default() {
        let name = meta_str(&item, "name").unwrap_or_default().to_owned();
        let namespace = meta_str(&item, "namespace").map(str::to_owned);
        let item_ctx = Ctx {
            server: ctx.server.clone(),
            resource: ctx.resource,
            behaviour: ctx.behaviour,
            version: ctx.version.clone(),
            namespace: namespace.or_else(|| ctx.namespace.clone()),
            name: Some(name.clone()),
            subresource: None,
            query: Default::default(),
            headers: Default::default(),
            warnings: ctx.warnings.clone(),
        };
        match delete_object(&item_ctx, &name, &options, dry_run).await {
            Ok((_, mut object)) if object["kind"] != "Status" => {
                if let Some(map) = object.as_object_mut() {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                items.push(object);
            }
            Ok(_) => items.push(item),
            Err(ApiError::NotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(json!({
        "kind": format!("{}List", ctx.resource.kind),
        "apiVersion": ctx.resource.api_version(&ctx.version),
        "metadata": {"resourceVersion": listed["metadata"]["resourceVersion"]},
        "items": items,
    }))
}
