//! Federation v1's replica planner, exactly: how many replicas (or Job pods, or HPA bounds) each cluster
//! gets, from the `*-preferences` annotation (`rebalance`, and per cluster `weight`, `minReplicas`,
//! `maxReplicas`, with `"*"` as the default), what each cluster already runs, and estimated capacity.
//!
//! A pure function. The order is v1's: clusters sorted by weight (descending) then by the FNV-1 hash of
//! cluster name + object key, so the rounding surplus lands on the same clusters every time; minimums first,
//! then (without rebalance) replicas already running are kept, then the rest is dealt by weight in rounds
//! until nothing remains or every cluster is full.

use std::collections::BTreeMap;

/// One cluster's preferences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterPreferences {
    pub min_replicas: i64,
    pub max_replicas: Option<i64>,
    pub weight: i64,
}

/// The `federation.kubernetes.io/{deployment,replica-set,job}-preferences` annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preferences {
    pub rebalance: bool,
    pub clusters: BTreeMap<String, ClusterPreferences>,
}

impl Default for Preferences {
    /// Equal weights everywhere, keeping running replicas: v1's default.
    fn default() -> Self {
        Preferences {
            rebalance: false,
            clusters: BTreeMap::from([(
                "*".to_owned(),
                ClusterPreferences {
                    weight: 1,
                    ..ClusterPreferences::default()
                },
            )]),
        }
    }
}

impl Preferences {
    /// Parses the annotation. Keys are matched case-insensitively, as Go's JSON decoder does: v1's tests wrote
    /// `{"Rebalance":…,"Clusters":{"c":{"MinReplicas":…,"MaxReplicas":…,"Weight":…}}}` and its docs the
    /// lower-camel form.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let top = value.as_object().ok_or("preferences must be a JSON object")?;
        let mut preferences = Preferences {
            rebalance: false,
            clusters: BTreeMap::new(),
        };
        for (key, value) in top {
            match key.to_ascii_lowercase().as_str() {
                "rebalance" => {
                    preferences.rebalance = value.as_bool().ok_or("rebalance must be a boolean")?;
                }
                "clusters" => {
                    let clusters = value.as_object().ok_or("clusters must be an object")?;
                    for (name, cluster) in clusters {
                        preferences
                            .clusters
                            .insert(name.clone(), parse_cluster(name, cluster)?);
                    }
                }
                _ => {}
            }
        }
        Ok(preferences)
    }

    fn of(&self, cluster: &str) -> Option<&ClusterPreferences> {
        self.clusters.get(cluster).or_else(|| self.clusters.get("*"))
    }
}

fn parse_cluster(name: &str, value: &serde_json::Value) -> Result<ClusterPreferences, String> {
    let fields = value
        .as_object()
        .ok_or_else(|| format!("preferences of {name} must be an object"))?;
    let mut preferences = ClusterPreferences::default();
    for (key, value) in fields {
        let number = || {
            value
                .as_i64()
                .ok_or_else(|| format!("{key} of {name} must be an integer"))
        };
        match key.to_ascii_lowercase().as_str() {
            "minreplicas" => preferences.min_replicas = number()?,
            "maxreplicas" if value.is_null() => preferences.max_replicas = None,
            "maxreplicas" => preferences.max_replicas = Some(number()?),
            "weight" => preferences.weight = number()?,
            _ => {}
        }
    }
    Ok(preferences)
}

/// FNV-1 (not FNV-1a), 32 bits, as Go's `hash/fnv.New32`.
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 2_166_136_261;
    for byte in bytes {
        hash = hash.wrapping_mul(16_777_619);
        hash ^= u32::from(*byte);
    }
    hash
}

/// What the planner decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replicas per cluster; every available cluster has an entry (possibly 0).
    pub replicas: BTreeMap<String, i64>,
    /// Replicas a capacity-limited cluster should have had but cannot run (v1's overflow).
    pub overflow: BTreeMap<String, i64>,
}

/// Federation v1's `Planner.Plan`: distributes `total` over `clusters` (in the given order, before sorting),
/// `current` being the replicas each cluster runs now and `capacity` the estimated most it can run; `key`
/// (`namespace/name`) seeds the tie-breaking hash.
pub fn plan(
    preferences: &Preferences,
    total: i64,
    clusters: &[String],
    current: &BTreeMap<String, i64>,
    capacity: &BTreeMap<String, i64>,
    key: &str,
) -> Plan {
    struct Named<'a> {
        name: &'a str,
        hash: u32,
        preferences: &'a ClusterPreferences,
    }
    let mut plan: BTreeMap<String, i64> = BTreeMap::new();
    let mut overflow: BTreeMap<String, i64> = BTreeMap::new();
    let mut named: Vec<Named<'_>> = Vec::new();
    for cluster in clusters {
        match preferences.of(cluster) {
            Some(p) => named.push(Named {
                name: cluster,
                hash: fnv1_32(format!("{cluster}{key}").as_bytes()),
                preferences: p,
            }),
            None => {
                plan.insert(cluster.clone(), 0);
            }
        }
    }
    named.sort_by(|a, b| {
        b.preferences
            .weight
            .cmp(&a.preferences.weight)
            .then(a.hash.cmp(&b.hash))
    });

    let mut remaining = total.max(0);
    // Minimums first.
    for p in &named {
        let mut min = p.preferences.min_replicas.min(remaining);
        if let Some(cap) = capacity.get(p.name) {
            min = min.min(*cap);
        }
        min = min.max(0);
        remaining -= min;
        plan.insert(p.name.to_owned(), min);
    }
    // Without rebalance, keep what already runs.
    let mut preallocated: BTreeMap<&str, i64> = BTreeMap::new();
    if !preferences.rebalance {
        for p in &named {
            let planned = plan[p.name];
            if let Some(&running) = current.get(p.name)
                && running > planned
            {
                let mut target = running;
                if let Some(max) = p.preferences.max_replicas {
                    target = target.min(max);
                }
                if let Some(cap) = capacity.get(p.name) {
                    target = target.min(*cap);
                }
                let extra = (target - planned).min(remaining).max(0);
                remaining -= extra;
                preallocated.insert(p.name, extra);
                plan.insert(p.name.to_owned(), planned + extra);
            }
        }
    }
    // The rest by weight, in rounds, dropping clusters that are full.
    let mut candidates: Vec<&Named<'_>> = named.iter().collect();
    let mut modified = true;
    while modified && remaining > 0 {
        modified = false;
        let weight_sum: i64 = candidates.iter().map(|p| p.preferences.weight).sum();
        let mut next = Vec::new();
        let distribute = remaining;
        for p in &candidates {
            if weight_sum <= 0 {
                break;
            }
            let start = plan[p.name];
            let weight = p.preferences.weight;
            let mut extra = (distribute * weight + weight_sum - 1) / weight_sum;
            extra = extra.min(remaining);
            let pre = preallocated.entry(p.name).or_insert(0);
            let used = extra.min(*pre);
            *pre -= used;
            extra -= used;
            if used > 0 {
                modified = true;
            }
            let mut total = start + extra;
            let mut full = false;
            if let Some(max) = p.preferences.max_replicas
                && total > max
            {
                total = max;
                full = true;
            }
            if let Some(&cap) = capacity.get(p.name)
                && total > cap
            {
                overflow.insert(p.name.to_owned(), total - cap);
                total = cap;
                full = true;
            }
            if !full {
                next.push(*p);
            }
            remaining -= total - start;
            plan.insert(p.name.to_owned(), total);
            if total > start {
                modified = true;
            }
        }
        candidates = next;
    }
    if !preferences.rebalance {
        overflow = overflow
            .into_iter()
            .map(|(cluster, extra)| (cluster, extra.min(remaining)))
            .filter(|(_, extra)| *extra > 0)
            .collect();
    }
    Plan {
        replicas: plan,
        overflow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn prefs(rebalance: bool, clusters: &[(&str, i64, Option<i64>, i64)]) -> Preferences {
        Preferences {
            rebalance,
            clusters: clusters
                .iter()
                .map(|(name, min, max, weight)| {
                    (
                        (*name).to_owned(),
                        ClusterPreferences {
                            min_replicas: *min,
                            max_replicas: *max,
                            weight: *weight,
                        },
                    )
                })
                .collect(),
        }
    }

    fn run(p: &Preferences, total: i64, clusters: &[&str]) -> Vec<(String, i64)> {
        plan(p, total, &names(clusters), &BTreeMap::new(), &BTreeMap::new(), "")
            .replicas
            .into_iter()
            .collect()
    }

    fn expect(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
    }

    #[test]
    fn fnv1_matches_go() {
        assert_eq!(fnv1_32(b"A"), 0x050c_5d5e);
        assert_eq!(fnv1_32(b"B"), 0x050c_5d5d);
        assert_eq!(fnv1_32(b"D"), 0x050c_5d5b);
        assert_eq!(fnv1_32(b"k8s-1default/job1"), 0x097f_0a79);
        assert_eq!(fnv1_32(b"k8s-2default/job1"), 0x24b5_8d9e);
    }

    #[test]
    fn equal_weights_as_v1_planned_them() {
        let p = prefs(false, &[("*", 0, None, 1)]);
        assert_eq!(
            run(&p, 50, &["A", "B", "C"]),
            expect(&[("A", 16), ("B", 17), ("C", 17)])
        );
        assert_eq!(run(&p, 50, &["A", "B"]), expect(&[("A", 25), ("B", 25)]));
        assert_eq!(run(&p, 1, &["A", "B"]), expect(&[("A", 0), ("B", 1)]));
        assert_eq!(
            run(&p, 1, &["A", "B", "C", "D"]),
            expect(&[("A", 0), ("B", 0), ("C", 0), ("D", 1)])
        );
        assert_eq!(run(&p, 1, &["A"]), expect(&[("A", 1)]));
        assert_eq!(run(&p, 1, &[]), expect(&[]));
    }

    #[test]
    fn minimums_and_maximums_as_v1_planned_them() {
        assert_eq!(
            run(&prefs(false, &[("*", 2, None, 0)]), 50, &["A", "B", "C"]),
            expect(&[("A", 2), ("B", 2), ("C", 2)])
        );
        assert_eq!(
            run(&prefs(false, &[("*", 20, None, 0)]), 50, &["A", "B", "C"]),
            expect(&[("A", 10), ("B", 20), ("C", 20)])
        );
        assert_eq!(
            run(
                &prefs(false, &[("*", 20, None, 0), ("A", 100, None, 1)]),
                50,
                &["A", "B", "C"]
            ),
            expect(&[("A", 50), ("B", 0), ("C", 0)])
        );
        assert_eq!(
            run(&prefs(false, &[("*", 10, Some(12), 1)]), 50, &["A", "B", "C"]),
            expect(&[("A", 12), ("B", 12), ("C", 12)])
        );
        assert_eq!(
            run(&prefs(false, &[("*", 0, Some(2), 1)]), 50, &["A", "B", "C"]),
            expect(&[("A", 2), ("B", 2), ("C", 2)])
        );
        assert_eq!(
            run(&prefs(false, &[("*", 0, Some(2), 0)]), 50, &["A", "B", "C"]),
            expect(&[("A", 0), ("B", 0), ("C", 0)])
        );
    }

    #[test]
    fn weights_split_in_proportion() {
        let p = prefs(false, &[("A", 0, None, 2), ("B", 0, None, 1), ("C", 0, None, 1)]);
        // The rounding surplus goes to the lower hash: FNV-1("C") < FNV-1("B").
        assert_eq!(
            run(&p, 10, &["A", "B", "C"]),
            expect(&[("A", 5), ("B", 2), ("C", 3)])
        );
    }

    #[test]
    fn running_replicas_are_kept_without_rebalance() {
        let p = prefs(false, &[("*", 0, None, 1)]);
        let current = BTreeMap::from([("A".to_owned(), 10), ("B".to_owned(), 70)]);
        let kept = plan(&p, 50, &names(&["A", "B"]), &current, &BTreeMap::new(), "");
        // v1's known anomaly (kubernetes#31816): not 10:40.
        assert_eq!(
            kept.replicas,
            BTreeMap::from([("A".to_owned(), 0), ("B".to_owned(), 50)])
        );
        let current = BTreeMap::from([("A".to_owned(), 20)]);
        let kept = plan(&p, 30, &names(&["A", "B"]), &current, &BTreeMap::new(), "");
        assert_eq!(kept.replicas["A"], 20);
        let rebalanced = plan(
            &prefs(true, &[("*", 0, None, 1)]),
            30,
            &names(&["A", "B"]),
            &current,
            &BTreeMap::new(),
            "",
        );
        assert_eq!(rebalanced.replicas["A"], 15);
    }

    #[test]
    fn capacity_caps_and_overflows() {
        let p = prefs(true, &[("*", 0, None, 1)]);
        let capacity = BTreeMap::from([("A".to_owned(), 2)]);
        let capped = plan(&p, 10, &names(&["A", "B"]), &BTreeMap::new(), &capacity, "");
        assert_eq!(capped.replicas["A"], 2);
        assert_eq!(capped.replicas["B"], 8);
        assert_eq!(capped.overflow["A"], 3);
    }

    #[test]
    fn preferences_parse_in_both_spellings() {
        let lower = Preferences::parse(
            r#"{"rebalance":true,"clusters":{"k8s-1":{"minReplicas":10,"maxReplicas":20,"weight":2},"*":{"weight":1}}}"#,
        )
        .unwrap();
        assert!(lower.rebalance);
        assert_eq!(lower.clusters["k8s-1"].max_replicas, Some(20));
        let go = Preferences::parse(
            r#"{"Rebalance":false,"Clusters":{"c1":{"MinReplicas":0,"MaxReplicas":null,"Weight":1}}}"#,
        )
        .unwrap();
        assert_eq!(go.clusters["c1"].weight, 1);
        assert_eq!(go.clusters["c1"].max_replicas, None);
        assert!(Preferences::parse("federation.kubernetes.io/x=y").is_err());
        assert!(Preferences::parse(r#"{"clusters":{"a":{"weight":"two"}}}"#).is_err());
    }

    fn arbitrary_preferences() -> impl Strategy<Value = (Preferences, Vec<String>)> {
        (
            any::<bool>(),
            prop::collection::vec((0i64..5, prop::option::of(0i64..30), 0i64..5), 1..6),
        )
            .prop_map(|(rebalance, clusters)| {
                let names: Vec<String> = (0..clusters.len()).map(|i| format!("c{i}")).collect();
                let preferences = Preferences {
                    rebalance,
                    clusters: names
                        .iter()
                        .zip(clusters)
                        .map(|(name, (min, max, weight))| {
                            (
                                name.clone(),
                                ClusterPreferences {
                                    min_replicas: min,
                                    max_replicas: max,
                                    weight,
                                },
                            )
                        })
                        .collect(),
                };
                (preferences, names)
            })
    }

    proptest! {
        #[test]
        fn plans_respect_bounds_preserve_sums_and_are_deterministic(
            (preferences, clusters) in arbitrary_preferences(),
            total in 0i64..200,
            running in prop::collection::vec(0i64..50, 6),
        ) {
            let current: BTreeMap<String, i64> =
                clusters.iter().zip(&running).map(|(c, r)| (c.clone(), *r)).collect();
            let first = plan(&preferences, total, &clusters, &current, &BTreeMap::new(), "ns/web");
            let again = plan(&preferences, total, &clusters, &current, &BTreeMap::new(), "ns/web");
            prop_assert_eq!(&first, &again);
            let sum: i64 = first.replicas.values().sum();
            prop_assert!(sum <= total);
            // Everything is placed unless every cluster that can take replicas is at its maximum.
            let unbounded = preferences.clusters.values().any(|p| p.weight > 0 && p.max_replicas.is_none());
            if unbounded {
                prop_assert_eq!(sum, total);
            }
            for cluster in &clusters {
                let p = &preferences.clusters[cluster];
                let got = first.replicas[cluster];
                prop_assert!(got >= 0);
                if let Some(max) = p.max_replicas {
                    prop_assert!(got <= max.max(p.min_replicas.min(total)), "{} > max {}", got, max);
                }
            }
        }

        #[test]
        fn weights_are_respected_within_rounding(
            weights in prop::collection::vec(1i64..6, 2..5),
            total in 0i64..500,
        ) {
            let clusters: Vec<String> = (0..weights.len()).map(|i| format!("c{i}")).collect();
            let preferences = Preferences {
                rebalance: true,
                clusters: clusters.iter().zip(&weights).map(|(c, w)| (c.clone(), ClusterPreferences { weight: *w, ..Default::default() })).collect(),
            };
            let result = plan(&preferences, total, &clusters, &BTreeMap::new(), &BTreeMap::new(), "ns/x");
            let weight_sum: i64 = weights.iter().sum();
            for (cluster, weight) in clusters.iter().zip(&weights) {
                let exact = total as f64 * *weight as f64 / weight_sum as f64;
                let got = result.replicas[cluster] as f64;
                prop_assert!((got - exact).abs() <= clusters.len() as f64, "{} got {} for {}", cluster, got, exact);
            }
        }
    }
}
