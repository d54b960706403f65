//! The shape of the message table that drives the decoder: for each protobuf message Flotilla can receive, its
//! fields by tag, each with its JSON name, its kind and how a zero value is treated.
//!
//! The data lives in the generated `messages.rs`; `generate.rs` explains where each fact comes from.

/// One protobuf message, named like its OpenAPI definition (`io.k8s.api.apps.v1.DeploymentSpec`).
#[derive(Debug)]
pub struct Message {
    pub name: &'static str,
    /// Sorted by tag.
    pub fields: &'static [Field],
}

/// One field of a message.
#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    /// The JSON property name; empty for an [`Shape::Inline`] field.
    pub json: &'static str,
    pub shape: Shape,
    pub kind: Kind,
    pub presence: Presence,
}

/// How a field's values make up its JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One value; a repeated occurrence replaces a scalar and merges into a message, as in Go.
    One,
    /// A JSON array; scalars may come packed or one per occurrence.
    Repeated,
    /// A JSON object from `map<string, kind>` entries (`{1: key, 2: value}`).
    Map,
    /// A message whose fields are the parent's own JSON properties (Go's `json:",inline"`, such as
    /// `Volume.volumeSource`).
    Inline,
}

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    /// Base64 in JSON.
    Bytes,
    Int32,
    Int64,
    Bool,
    /// Another message of the table, by name.
    Message(&'static str),
    /// `metav1.Time` `{1: seconds, 2: nanos}`: RFC 3339 to the second; an empty message is the zero time.
    Time,
    /// `metav1.MicroTime`: RFC 3339 with six fractional digits.
    MicroTime,
    /// `resource.Quantity` `{1: string}`: the string.
    Quantity,
    /// `intstr.IntOrString` `{1: type, 2: intVal, 3: strVal}`: a number or a string.
    IntOrString,
    /// `runtime.RawExtension` and `metav1.FieldsV1` `{1: raw}`: the raw bytes are JSON.
    RawJson,
}

impl Kind {
    /// Scalars can be packed in a repeated field and have a zero value.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Kind::String | Kind::Bytes | Kind::Int32 | Kind::Int64 | Kind::Bool
        )
    }
}

/// Whether an explicit zero in a singular scalar field is part of the object, by how Go declares the field.
///
/// Go's protobuf marshalling writes every non-pointer scalar, zero or not, while its JSON marshalling leaves out
/// the zero ones marked `omitempty`; the decoder gives what the JSON would have been.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// A Go pointer (`*int32`): written only when set, so a zero is a value the client chose (`replicas: 0`).
    Pointer,
    /// A Go value without `omitempty`: Go's JSON writes it even when zero, and so does the decoder.
    Always,
    /// A Go value with `omitempty` (and every field that is not a singular scalar): a zero is absent.
    OmitEmpty,
}

/// A kind the envelope may name, and its message.
#[derive(Debug)]
pub struct Root {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub message: &'static str,
}

impl Message {
    pub fn field(&self, tag: u32) -> Option<&'static Field> {
        let fields = self.fields;
        fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .map(|i| &fields[i])
    }
}

/// The message named `name`.
pub fn message(name: &str) -> Option<&'static Message> {
    let messages = super::messages::MESSAGES;
    messages
        .binary_search_by_key(&name, |m| m.name)
        .ok()
        .map(|i| &messages[i])
}

/// The message of the object the envelope names.
pub fn root(api_version: &str, kind: &str) -> Option<&'static Message> {
    super::messages::ROOTS
        .iter()
        .find(|r| r.api_version == api_version && r.kind == kind)
        .and_then(|r| message(r.message))
}
