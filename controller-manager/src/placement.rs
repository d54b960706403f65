//! Which clusters a federated object goes to: every Ready cluster, narrowed by federation v1's
//! `federation.alpha.kubernetes.io/cluster-selector` annotation — a JSON list of `{key, operator, values}`
//! requirements over the Cluster's labels, all of which must hold.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One requirement of a cluster selector.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// A parsed cluster selector; the default selects every cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterSelector(Vec<(Requirement, Op)>);

impl ClusterSelector {
    /// Parses the annotation's value, with v1's operator spellings (`in`/`In`, `=`, `==`, `!=`, `notin`/`NotIn`,
    /// `exists`/`Exists`, `!`/`DoesNotExist`, `gt`/`Gt`/`>`, `lt`/`Lt`/`<`) and kube's requirement rules.
    pub fn parse(text: &str) -> Result<Self, String> {
        let requirements: Vec<Requirement> =
            serde_json::from_str(text).map_err(|e| format!("invalid cluster selector {text:?}: {e}"))?;
        let mut parsed = Vec::new();
        for requirement in requirements {
            let op = match requirement.operator.as_str() {
                "in" | "In" | "=" | "==" => Op::In,
                "notin" | "NotIn" | "!=" => Op::NotIn,
                "exists" | "Exists" => Op::Exists,
                "!" | "DoesNotExist" => Op::DoesNotExist,
                "gt" | "Gt" | ">" => Op::Gt,
                "lt" | "Lt" | "<" => Op::Lt,
                other => return Err(format!("unknown cluster selector operator {other:?}")),
            };
            let count = requirement.values.len();
            let exact_one = matches!(requirement.operator.as_str(), "=" | "==" | "!=");
            let valid = match op {
                Op::In | Op::NotIn if exact_one => count == 1,
                Op::In | Op::NotIn => count >= 1,
                Op::Exists | Op::DoesNotExist => count == 0,
                Op::Gt | Op::Lt => count == 1 && requirement.values[0].parse::<i64>().is_ok(),
            };
            if !valid || requirement.key.is_empty() {
                return Err(format!(
                    "invalid cluster selector requirement {:?} {} {:?}",
                    requirement.key, requirement.operator, requirement.values
                ));
            }
            parsed.push((requirement, op));
        }
        Ok(ClusterSelector(parsed))
    }

    /// Whether a cluster with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(requirement, op)| {
            let value = labels.get(&requirement.key);
            match op {
                Op::In => value.is_some_and(|v| requirement.values.contains(v)),
                Op::NotIn => value.is_none_or(|v| !requirement.values.contains(v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::Gt | Op::Lt => {
                    let bound: i64 = requirement.values[0].parse().unwrap_or_default();
                    value
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| if *op == Op::Gt { v > bound } else { v < bound })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn v1_operators_select_as_they_did() {
        let cluster = labels(&[("region", "eu"), ("size", "15")]);
        let yes = |s: &str| assert!(ClusterSelector::parse(s).unwrap().matches(&cluster), "{s}");
        let no = |s: &str| assert!(!ClusterSelector::parse(s).unwrap().matches(&cluster), "{s}");
        yes("[]");
        yes(r#"[{"key":"region","operator":"in","values":["eu","us"]}]"#);
        yes(r#"[{"key":"region","operator":"=","values":["eu"]}]"#);
        no(r#"[{"key":"region","operator":"!=","values":["eu"]}]"#);
        yes(r#"[{"key":"tier","operator":"NotIn","values":["gold"]}]"#);
        yes(r#"[{"key":"region","operator":"Exists"}]"#);
        yes(r#"[{"key":"tier","operator":"!"}]"#);
        yes(r#"[{"key":"size","operator":">","values":["14"]}]"#);
        no(r#"[{"key":"size","operator":"gt","values":["15"]}]"#);
        no(
            r#"[{"key":"region","operator":"In","values":["eu"]},{"key":"size","operator":"Lt","values":["10"]}]"#,
        );
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "federation.kubernetes.io/federation-control-plane=true",
            r#"[{"key":"a","operator":"like","values":["x"]}]"#,
            r#"[{"key":"a","operator":"In","values":[]}]"#,
            r#"[{"key":"a","operator":"=","values":["x","y"]}]"#,
            r#"[{"key":"a","operator":"Exists","values":["x"]}]"#,
            r#"[{"key":"a","operator":"Gt","values":["x"]}]"#,
        ] {
            assert!(ClusterSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
