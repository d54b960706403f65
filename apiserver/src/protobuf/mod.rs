//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the JSON objects the
//! rest of the apiserver works on. kubectl 1.32 and later send them for `create <generator>`, `autoscale` and
//! typed-client writes; responses stay JSON, which every such client also accepts.
//!
//! A body is the magic `k8s\0`, then a `runtime.Unknown` message: `{1: TypeMeta {1: apiVersion, 2: kind}, 2: raw,
//! 3: contentEncoding, 4: contentType}`, where `raw` is the object's own message. The envelope's apiVersion and
//! kind become the object's, so the usual type checks apply after decoding.
//!
//! The decoder is written here because no crate turns Kubernetes protobuf into Kubernetes JSON: `k8s-pb` has the
//! prost structs but no serde and no descriptors, and `k8s-openapi` has serde but no protobuf, so the crate route
//! is one hand-written conversion per type, hundreds of them. Instead one generic wire-format walker ([`decode`])
//! follows a table of messages ([`table`], data in `messages.rs`), generated from k8s-pb's field tags and kinds and
//! the OpenAPI definitions' JSON names; `generate.rs` regenerates it and its test proves it current.
//!
//! Kubernetes' special messages become what their JSON is: `Time` and `MicroTime` RFC 3339 strings, `Quantity`
//! its string, `IntOrString` a number or a string, `RawExtension` and `FieldsV1` their raw JSON; `bytes` (Secret
//! `data`) become base64 strings. (`metav1.Duration` and `double` fields occur in no served type; the generator
//! refuses them should they appear.) Go writes every non-pointer scalar even when zero (`generateName: ""`,
//! `paused: false`) and a zero `Time` as an empty message; those are decoded as absent, as the JSON path would
//! have them, while a zero in a Go pointer field (`replicas: 0`) is kept (see [`table::Presence`]). Fields the
//! table does not know are skipped, as a Kubernetes 1.33 apiserver skips fields added after it.

#[rustfmt::skip]
mod messages;
mod table;
mod wire;

#[cfg(test)]
mod generate;
#[cfg(test)]
mod tests;

use base64::Engine;
use serde_json::{Map, Value};

use table::{Field, Kind, Message, Presence, Shape};
use wire::{Reader, WireType};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// How deep messages may nest, as protobuf implementations limit recursion (the served types nest far less).
const MAX_DEPTH: usize = 100;

/// Why a body could not be decoded; the apiserver answers 400 Bad Request.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body lacks the `k8s\0` magic.
    #[error("the body does not start with the Kubernetes protobuf magic \"k8s\\x00\"")]
    NotEnvelope,
    /// The bytes are not valid protobuf, or a field's value does not fit its type.
    #[error("malformed protobuf{}: {message}", if path.is_empty() { String::new() } else { format!(" at {path}") })]
    Malformed { path: String, message: String },
    /// The envelope declares an encoding or content type other than plain protobuf.
    #[error("unsupported protobuf envelope: {0}")]
    UnsupportedEnvelope(String),
    /// The envelope names a kind the apiserver has no message for.
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
}

impl DecodeError {
    pub(super) fn malformed(message: impl Into<String>) -> Self {
        DecodeError::Malformed {
            path: String::new(),
            message: message.into(),
        }
    }

    /// Prefixes the path of a malformed value with the field it was found in.
    fn at(self, json: &str) -> Self {
        match self {
            DecodeError::Malformed { path, message } if !json.is_empty() => DecodeError::Malformed {
                path: if path.is_empty() {
                    json.to_owned()
                } else {
                    format!("{json}.{path}")
                },
                message,
            },
            other => other,
        }
    }
}

/// Decodes a whole request body (envelope included) into the object's JSON.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(DecodeError::NotEnvelope)?;
    let unknown = Unknown::decode(envelope)?;
    if !unknown.content_encoding.is_empty() {
        return Err(DecodeError::UnsupportedEnvelope(format!(
            "content encoding {:?}",
            unknown.content_encoding
        )));
    }
    if !unknown.content_type.is_empty() && unknown.content_type != MEDIA_TYPE {
        return Err(DecodeError::UnsupportedEnvelope(format!(
            "content type {:?}",
            unknown.content_type
        )));
    }
    let message =
        table::root(&unknown.api_version, &unknown.kind).ok_or_else(|| DecodeError::UnknownKind {
            api_version: unknown.api_version.clone(),
            kind: unknown.kind.clone(),
        })?;
    let mut object = Map::new();
    object.insert("apiVersion".to_owned(), Value::String(unknown.api_version));
    object.insert("kind".to_owned(), Value::String(unknown.kind));
    decode_into(message, unknown.raw, &mut object, 0)?;
    Ok(Value::Object(object))
}

/// `runtime.Unknown`, the envelope.
#[derive(Debug, Default)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Unknown<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut unknown = Unknown::default();
        let mut reader = Reader::new(bytes);
        while !reader.is_empty() {
            match reader.key()? {
                (1, WireType::LengthDelimited) => {
                    let mut type_meta = Reader::new(reader.length_delimited()?);
                    while !type_meta.is_empty() {
                        match type_meta.key()? {
                            (1, WireType::LengthDelimited) => unknown.api_version = string(&mut type_meta)?,
                            (2, WireType::LengthDelimited) => unknown.kind = string(&mut type_meta)?,
                            (_, wire_type) => type_meta.skip(wire_type)?,
                        }
                    }
                }
                (2, WireType::LengthDelimited) => unknown.raw = reader.length_delimited()?,
                (3, WireType::LengthDelimited) => unknown.content_encoding = string(&mut reader)?,
                (4, WireType::LengthDelimited) => unknown.content_type = string(&mut reader)?,
                (tag @ 1..=4, wire_type) => {
                    return Err(DecodeError::malformed(format!(
                        "envelope field {tag} has wire type {}",
                        wire_type.name()
                    )));
                }
                (_, wire_type) => reader.skip(wire_type)?,
            }
        }
        Ok(unknown)
    }
}

fn string(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    let bytes = reader.length_delimited()?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::malformed("a string is not valid UTF-8"))
}

fn message(name: &str) -> &'static Message {
    table::message(name).expect("the generated table names only its own messages")
}

/// Decodes `bytes`, a `message`, into `object`, which may already hold fields: a singular message field that
/// occurs twice merges, as in Go, and an inline message adds to its parent.
fn decode_into(
    message: &Message,
    bytes: &[u8],
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::malformed(format!(
            "messages nest deeper than {MAX_DEPTH}"
        )));
    }
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        match message.field(tag) {
            Some(field) => {
                decode_field(field, wire_type, &mut reader, object, depth).map_err(|e| e.at(field.json))?
            }
            None => reader.skip(wire_type)?,
        }
    }
    Ok(())
}

fn decode_field(
    field: &Field,
    wire_type: WireType,
    reader: &mut Reader<'_>,
    object: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), DecodeError> {
    match (field.shape, field.kind) {
        (Shape::One, Kind::Message(name)) => {
            let bytes = length_delimited(wire_type, reader)?;
            let slot = object
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(inner) = slot else {
                unreachable!("just made an object")
            };
            decode_into(message(name), bytes, inner, depth + 1)
        }
        (Shape::One, kind) if kind.is_scalar() => {
            let value = scalar(kind, wire_type, reader)?;
            if is_zero(&value) && field.presence == Presence::OmitEmpty {
                object.remove(field.json);
            } else {
                object.insert(field.json.to_owned(), value);
            }
            Ok(())
        }
        (Shape::One, kind) => {
            match special(kind, length_delimited(wire_type, reader)?)? {
                Some(value) => object.insert(field.json.to_owned(), value),
                None => object.remove(field.json),
            };
            Ok(())
        }
        (Shape::Repeated, kind) => {
            let slot = object
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            let Value::Array(items) = slot else {
                unreachable!("just made an array")
            };
            match kind {
                Kind::String | Kind::Bytes => items.push(scalar(kind, wire_type, reader)?),
                // Numbers and booleans may come packed: one length-delimited run of varints.
                kind if kind.is_scalar() && wire_type == WireType::LengthDelimited => {
                    let mut packed = Reader::new(reader.length_delimited()?);
                    while !packed.is_empty() {
                        items.push(scalar(kind, WireType::Varint, &mut packed)?);
                    }
                }
                kind if kind.is_scalar() => items.push(scalar(kind, wire_type, reader)?),
                Kind::Message(name) => {
                    let mut inner = Map::new();
                    decode_into(
                        message(name),
                        length_delimited(wire_type, reader)?,
                        &mut inner,
                        depth + 1,
                    )?;
                    items.push(Value::Object(inner));
                }
                kind => {
                    items.push(special(kind, length_delimited(wire_type, reader)?)?.unwrap_or(Value::Null))
                }
            }
            Ok(())
        }
        (Shape::Map, kind) => {
            let (key, value) = map_entry(kind, length_delimited(wire_type, reader)?, depth)?;
            let slot = object
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(entries) = slot {
                entries.insert(key, value);
            }
            Ok(())
        }
        (Shape::Inline, Kind::Message(name)) => decode_into(
            message(name),
            length_delimited(wire_type, reader)?,
            object,
            depth + 1,
        ),
        (Shape::Inline, kind) => unreachable!("the generator inlines only messages, not {kind:?}"),
    }
}

/// One `{1: key, 2: value}` entry of a map field; a missing key or value is the zero value, as in Go.
fn map_entry(kind: Kind, bytes: &[u8], depth: usize) -> Result<(String, Value), DecodeError> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.key()? {
            (1, WireType::LengthDelimited) => key = string(&mut reader)?,
            (1, wire_type) => {
                return Err(DecodeError::malformed(format!(
                    "map key has wire type {}",
                    wire_type.name()
                )));
            }
            (2, wire_type) => {
                value = Some(match kind {
                    kind if kind.is_scalar() => scalar(kind, wire_type, &mut reader)?,
                    Kind::Message(name) => {
                        let mut inner = Map::new();
                        decode_into(
                            message(name),
                            length_delimited(wire_type, &mut reader)?,
                            &mut inner,
                            depth + 1,
                        )?;
                        Value::Object(inner)
                    }
                    kind => special(kind, length_delimited(wire_type, &mut reader)?)?.unwrap_or(Value::Null),
                })
            }
            (_, wire_type) => reader.skip(wire_type)?,
        }
    }
    let value = match (value, kind) {
        (Some(value), _) => value,
        (None, Kind::String | Kind::Bytes) => Value::String(String::new()),
        (None, Kind::Int32 | Kind::Int64) => Value::from(0),
        (None, Kind::Bool) => Value::Bool(false),
        (None, Kind::Message(_)) => Value::Object(Map::new()),
        (None, kind) => special(kind, &[])?.unwrap_or(Value::Null),
    };
    Ok((key, value))
}

fn length_delimited<'a>(wire_type: WireType, reader: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    if wire_type != WireType::LengthDelimited {
        return Err(DecodeError::malformed(format!(
            "expected a length-delimited value, found wire type {}",
            wire_type.name()
        )));
    }
    reader.length_delimited()
}

/// A scalar value; its wire type must be the kind's.
fn scalar(kind: Kind, wire_type: WireType, reader: &mut Reader<'_>) -> Result<Value, DecodeError> {
    let value = match (kind, wire_type) {
        (Kind::String, WireType::LengthDelimited) => Value::String(string(reader)?),
        (Kind::Bytes, WireType::LengthDelimited) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(reader.length_delimited()?))
        }
        // Protobuf sign-extends int32 to 64 bits and truncates on decoding.
        (Kind::Int32, WireType::Varint) => Value::from(reader.varint()? as i32),
        (Kind::Int64, WireType::Varint) => Value::from(reader.varint()? as i64),
        (Kind::Bool, WireType::Varint) => Value::Bool(reader.varint()? != 0),
        (kind, wire_type) => {
            return Err(DecodeError::malformed(format!(
                "{} field with wire type {}",
                format!("{kind:?}").to_lowercase(),
                wire_type.name()
            )));
        }
    };
    Ok(value)
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// The JSON of one of Kubernetes' special messages; `None` where the JSON has no value (the zero `Time`).
fn special(kind: Kind, bytes: &[u8]) -> Result<Option<Value>, DecodeError> {
    // Each special message has at most three fields, each a varint or length-delimited: index them by tag.
    let mut varints = [0u64; 4];
    let mut blobs: [&[u8]; 4] = [&[]; 4];
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (tag, wire_type) = reader.key()?;
        match special_layout(kind, tag) {
            Some(expected) if expected != wire_type => {
                return Err(DecodeError::malformed(format!(
                    "field {tag} of a {kind:?} has wire type {}",
                    wire_type.name()
                )));
            }
            Some(WireType::Varint) => varints[tag as usize] = reader.varint()?,
            Some(_) => blobs[tag as usize] = reader.length_delimited()?,
            None => reader.skip(wire_type)?,
        }
    }
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::malformed("a string is not valid UTF-8"))
    };
    // Protobuf sign-extends int32 and int64 into the varint; `as` undoes it.
    let value = match kind {
        Kind::Time | Kind::MicroTime if bytes.is_empty() => return Ok(None),
        Kind::Time | Kind::MicroTime => Value::String(format_time(
            varints[1] as i64,
            varints[2] as i32,
            kind == Kind::MicroTime,
        )?),
        // Go's zero Quantity prints as "0".
        Kind::Quantity if blobs[1].is_empty() => Value::String("0".to_owned()),
        Kind::Quantity => Value::String(text(blobs[1])?),
        Kind::IntOrString if varints[1] as i64 == 1 => Value::String(text(blobs[3])?),
        Kind::IntOrString => Value::from(varints[2] as i32),
        Kind::RawJson if blobs[1].is_empty() => return Ok(None),
        Kind::RawJson => serde_json::from_slice(blobs[1])
            .map_err(|e| DecodeError::malformed(format!("raw bytes are not JSON: {e}")))?,
        scalar_or_message => unreachable!("{scalar_or_message:?} is not a special message"),
    };
    Ok(Some(value))
}

/// The wire type of field `tag` of a special message, `None` for a field it does not have.
fn special_layout(kind: Kind, tag: u32) -> Option<WireType> {
    match (kind, tag) {
        (Kind::Time | Kind::MicroTime, 1 | 2) | (Kind::IntOrString, 1 | 2) => Some(WireType::Varint),
        (Kind::Quantity, 1) | (Kind::IntOrString, 3) | (Kind::RawJson, 1) => Some(WireType::LengthDelimited),
        _ => None,
    }
}

/// A `metav1.Time` (seconds) or `metav1.MicroTime` (microseconds) as kube writes it, always in UTC.
fn format_time(seconds: i64, nanos: i32, micro: bool) -> Result<String, DecodeError> {
    let timestamp = jiff::Timestamp::new(seconds, nanos)
        .map_err(|e| DecodeError::malformed(format!("time out of range: {e}")))?;
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(timestamp.strftime(format).to_string())
}
