//! kube's syntax rules (`k8s.io/apimachinery/pkg/util/validation`, `metav1validation`) for the names, keys and
//! values inside objects: qualified names (label keys, topology keys), label values, config keys, and the label
//! and node selectors of pod templates.

use serde_json::Value;

use super::{Problems, field_or_empty, items, text};
use crate::object::name_problems;

pub(super) fn is_qualified_name_part(name: &str) -> bool {
    let ends = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    ends(name.chars().next())
        && ends(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) const QUALIFIED_NAME: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with \
    an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
    '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// kube's `IsQualifiedName` (label keys, topology keys): a name part of at most 63 characters, after an optional
/// DNS-subdomain prefix and `/`.
pub(super) fn qualified_name_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".to_owned());
            } else {
                let prefix_problems = name_problems(prefix, false).into_iter();
                problems.extend(prefix_problems.map(|problem| format!("prefix part {problem}")));
            }
            name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        problems.push("name part must be no more than 63 characters".to_owned());
    }
    if !is_qualified_name_part(name) {
        problems.push(format!("name part {QUALIFIED_NAME}"));
    }
    problems
}

/// kube's `IsValidLabelValue`: empty, or a qualified name's name part.
pub(super) fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        problems.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and \
             must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', \
             regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        );
    }
    problems
}

/// kube's `IsConfigMapKey` (ConfigMap and Secret keys, and the keys an environment variable names):
/// `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` and not starting with `..`.
pub(super) fn config_key_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if key.len() > 253 {
        problems.push("must be no more than 253 characters".to_owned());
    }
    let valid = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        problems.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  \
             or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
                .to_owned(),
        );
    }
    if key == "." {
        problems.push("must not be '.'".to_owned());
    } else if key == ".." {
        problems.push("must not be '..'".to_owned());
    } else if key.starts_with("..") {
        problems.push("must not start with '..'".to_owned());
    }
    problems
}

/// kube's `ValidateLabelSelector`, for the selectors inside a pod template (affinity terms, topology spread
/// constraints): keys qualified names, values label values, operators with the values they need.
pub(super) fn label_selector(problems: &mut Problems, path: &str, selector: &Value) {
    let labels_path = format!("{path}.matchLabels");
    let labels = selector.get("matchLabels").and_then(Value::as_object);
    for (key, value) in labels.into_iter().flatten() {
        problems.qualified_name(&labels_path, key);
        for problem in label_value_problems(value.as_str().unwrap_or_default()) {
            problems.invalid(&labels_path, value, &problem);
        }
    }
    for (i, requirement) in items(selector, "matchExpressions").enumerate() {
        selector_requirement(
            problems,
            &format!("{path}.matchExpressions[{i}]"),
            requirement,
            Requirement::Label,
        );
    }
}

/// Which selector a requirement belongs to: node selectors also know `Gt` and `Lt`, and their preferred terms
/// keep values that are no label values (they may still match on a single node).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Requirement {
    Label,
    Node,
    PreferredNode,
}

/// A `LabelSelectorRequirement` or `NodeSelectorRequirement`: an operator with the values it needs, a qualified
/// key, label values.
pub(super) fn selector_requirement(
    problems: &mut Problems,
    path: &str,
    requirement: &Value,
    kind: Requirement,
) {
    let values: Vec<&Value> = items(requirement, "values").collect();
    let values_path = format!("{path}.values");
    let operator = field_or_empty(requirement, "operator");
    match operator.as_str().unwrap_or_default() {
        "In" | "NotIn" => {
            if values.is_empty() {
                problems.required(
                    &values_path,
                    "must be specified when `operator` is 'In' or 'NotIn'",
                );
            }
        }
        "Exists" | "DoesNotExist" => {
            if !values.is_empty() {
                problems.forbidden(
                    &values_path,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                );
            }
        }
        "Gt" | "Lt" if kind != Requirement::Label => {
            if values.len() != 1 {
                problems.required(
                    &values_path,
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                );
            }
        }
        _ => problems.invalid(
            &format!("{path}.operator"),
            operator,
            "not a valid selector operator",
        ),
    }
    let key = text(requirement, "key").unwrap_or_default();
    problems.qualified_name(&format!("{path}.key"), key);
    if kind != Requirement::PreferredNode {
        for (j, value) in values.iter().enumerate() {
            for problem in label_value_problems(value.as_str().unwrap_or_default()) {
                problems.invalid(&format!("{values_path}[{j}]"), value, &problem);
            }
        }
    }
}
