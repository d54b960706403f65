//! Label and field selectors: kube's string syntax parsed into requirements, and matching.
//!
//! Label selectors: `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! `key>n`, `key<n`, comma-separated (all must hold). Field selectors: `field=value`, `field==value`,
//! `field!=value`, comma-separated, with `\,` `\=` `\\` escapes.

use std::collections::BTreeMap;

/// Why a selector string was refused (HTTP 400).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0}")]
pub struct InvalidSelector(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelRequirement {
    Exists(String),
    DoesNotExist(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelRequirement>);

impl LabelSelector {
    pub fn parse(text: &str) -> Result<Self, InvalidSelector> {
        let mut requirements = Vec::new();
        for clause in split_top_level(text)? {
            let clause = clause.trim();
            if clause.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(clause)?);
        }
        Ok(LabelSelector(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            LabelRequirement::Exists(key) => labels.contains_key(key),
            LabelRequirement::DoesNotExist(key) => !labels.contains_key(key),
            LabelRequirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            LabelRequirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            LabelRequirement::GreaterThan(key, n) => labels
                .get(key)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelRequirement::LessThan(key, n) => labels
                .get(key)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, InvalidSelector> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(InvalidSelector(format!("unbalanced parentheses in {text:?}")));
        }
    }
    if depth != 0 {
        return Err(InvalidSelector(format!("unbalanced parentheses in {text:?}")));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn parse_requirement(clause: &str) -> Result<LabelRequirement, InvalidSelector> {
    let invalid = |why: &str| InvalidSelector(format!("{clause:?}: {why}"));
    if let Some(key) = clause.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(label_key(key.trim())?));
    }
    for (operator, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((key, values)) = clause.split_once(operator) {
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| invalid("values must be in parentheses"))?;
            let values = inner
                .split(',')
                .map(|v| label_value(v.trim()))
                .collect::<Result<Vec<_>, _>>()?;
            let key = label_key(key.trim())?;
            return Ok(if is_in {
                LabelRequirement::In(key, values)
            } else {
                LabelRequirement::NotIn(key, values)
            });
        }
    }
    for operator in ["!=", "==", "=", ">", "<"] {
        if let Some((key, value)) = clause.split_once(operator) {
            let key = label_key(key.trim())?;
            let value = value.trim();
            return Ok(match operator {
                "!=" => LabelRequirement::NotIn(key, vec![label_value(value)?]),
                ">" | "<" => {
                    let n = value.parse().map_err(|_| invalid("needs an integer"))?;
                    if operator == ">" {
                        LabelRequirement::GreaterThan(key, n)
                    } else {
                        LabelRequirement::LessThan(key, n)
                    }
                }
                _ => LabelRequirement::In(key, vec![label_value(value)?]),
            });
        }
    }
    Ok(LabelRequirement::Exists(label_key(clause)?))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// A qualified name: optional DNS-subdomain prefix and `/`, then up to 63 name characters, alphanumeric at both
/// ends.
fn label_key(key: &str) -> Result<String, InvalidSelector> {
    let invalid = || InvalidSelector(format!("invalid label key {key:?}"));
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                });
            if !prefix_ok {
                return Err(invalid());
            }
            name
        }
        None => key,
    };
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 63 || !name.chars().all(is_name_char) {
        return Err(invalid());
    }
    if !ends_ok(name.chars().next()) || !ends_ok(name.chars().last()) {
        return Err(invalid());
    }
    Ok(key.to_owned())
}

fn label_value(value: &str) -> Result<String, InvalidSelector> {
    let ends_ok = |c: Option<char>| c.is_none_or(|c| c.is_ascii_alphanumeric());
    if value.len() > 63
        || !value.chars().all(is_name_char)
        || !ends_ok(value.chars().next())
        || !ends_ok(value.chars().last())
    {
        return Err(InvalidSelector(format!("invalid label value {value:?}")));
    }
    Ok(value.to_owned())
}

/// One `field=value` or `field!=value` term.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed field selector; which fields exist is the resource's business.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldRequirement>);

impl FieldSelector {
    pub fn parse(text: &str) -> Result<Self, InvalidSelector> {
        let mut requirements = Vec::new();
        for term in split_unescaped(text, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((field, value)) = split_operator(&term, "!=") {
                (field, value, false)
            } else if let Some((field, value)) = split_operator(&term, "==") {
                (field, value, true)
            } else if let Some((field, value)) = split_operator(&term, "=") {
                (field, value, true)
            } else {
                return Err(InvalidSelector(format!("invalid field selector term {term:?}")));
            };
            if field.is_empty() {
                return Err(InvalidSelector(format!("invalid field selector term {term:?}")));
            }
            requirements.push(FieldRequirement {
                field,
                value: unescape(&value),
                equal,
            });
        }
        Ok(FieldSelector(requirements))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the object whose field values `value_of` gives matches; `value_of` returns `None` for a field
    /// the resource does not support (callers reject those up front with [`FieldSelector::unsupported`]).
    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.0
            .iter()
            .all(|r| value_of(&r.field).is_some_and(|v| (v == r.value) == r.equal))
    }

    /// The first field not in `supported`, if any.
    pub fn unsupported<'a>(&'a self, supported: &dyn Fn(&str) -> bool) -> Option<&'a str> {
        self.0
            .iter()
            .map(|r| r.field.as_str())
            .find(|field| !supported(field))
    }

    /// The value required by an `=` term on `field`, if the selector has one (used to narrow lists by name).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.equal && r.field == field)
            .map(|r| r.value.as_str())
    }
}

/// Splits on `separator` not preceded by a backslash, keeping escapes for later.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let (mut parts, mut current, mut escaped) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// Splits at the first unescaped occurrence of `operator`.
fn split_operator(term: &str, operator: &str) -> Option<(String, String)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        if term[i..].starts_with(operator) {
            return Some((term[..i].to_owned(), term[i + operator.len()..].to_owned()));
        }
        i += 1;
    }
    None
}

fn unescape(value: &str) -> String {
    let (mut out, mut escaped) = (String::new(), false);
    for c in value.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[track_caller]
    fn check(selector: &str, pairs: &[(&str, &str)], expect: bool) {
        let parsed = LabelSelector::parse(selector).unwrap();
        assert_eq!(parsed.matches(&labels(pairs)), expect, "{selector} on {pairs:?}");
    }

    #[test]
    fn label_selectors_match_like_kube() {
        check("", &[], true);
        check("app=web", &[("app", "web")], true);
        check("app==web", &[("app", "db")], false);
        check("app!=web", &[], true);
        check("app!=web", &[("app", "web")], false);
        check("app", &[("app", "")], true);
        check("!app", &[("app", "x")], false);
        check(
            "env in (prod, staging),tier notin (db)",
            &[("env", "prod"), ("tier", "web")],
            true,
        );
        check("env in (prod,staging)", &[("env", "dev")], false);
        check("tier notin (db)", &[], true);
        check("replicas>2", &[("replicas", "3")], true);
        check("replicas<2", &[("replicas", "3")], false);
        check("example.com/team=a", &[("example.com/team", "a")], true);
    }

    #[test]
    fn bad_label_selectors_are_refused() {
        for bad in [
            "app=(",
            "-app=x",
            "app=x y",
            "env in prod",
            "env in (a,b",
            "a/b/c=x",
            "k>x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors_parse_with_escapes() {
        let selector = FieldSelector::parse(r"metadata.name=a\,b,involvedObject.kind!=Pod").unwrap();
        assert_eq!(selector.required_value("metadata.name"), Some("a,b"));
        let value = |field: &str| match field {
            "metadata.name" => Some("a,b".to_owned()),
            "involvedObject.kind" => Some("Deployment".to_owned()),
            _ => None,
        };
        assert!(selector.matches(value));
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("=x").is_err());
    }
}
