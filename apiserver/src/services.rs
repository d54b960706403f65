//! Cluster IPs and node ports of Services, allocated as kube-apiserver allocates them, so that
//! `kubectl get svc` and `-o yaml` at the endpoint look as they do on a cluster, and so that tools reading
//! `spec.clusterIP` find one. (At the federation they route nowhere: each member allocates its own, and the
//! controller manager does not copy them.)
//!
//! Each allocated value is one storage key, `<prefix>/flotilla/serviceips/<ip>` or
//! `<prefix>/flotilla/servicenodeports/<port>`, created (so claimed atomically, also across apiserver replicas)
//! before the Service is written, and naming its Service. kube 1.33 keeps an IPAddress object per IP and a
//! bitmap of node ports; one key per value needs no read-modify-write of a shared bitmap.
//!
//! Allocation follows kube's: a value the Service asks for is claimed if it is in range and free; otherwise a
//! random one from the upper part of the range (the lower band, `min(max(16, size/16), 256)` addresses, stays
//! for values asked for by name), scanning forward. An update keeps the values already allocated when the
//! client leaves them out (kube's `patchAllocatedValues`) and drops them when the type no longer needs them
//! (`dropTypeDependentFields`).
//!
//! A request that fails for sure gives its claims back at once; one whose outcome is unknown (etcd did not
//! answer) keeps them. A write that drops values (a delete, a type change) releases them right after, and
//! [`run_releaser`] does the same from the watch cache's events, for the deletions no request makes (a
//! namespace's contents, garbage collection) and other apiserver replicas' writes: a claim is released only if
//! it was made before the write that dropped it. A repair pass every minute, as kube's repair controllers, frees
//! keys no Service holds on two passes in a row (a create that crashed between its claims and its write, a
//! release missed while the cache relisted) and claims again values a Service holds without a key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_api::keys::StoragePrefix;
use flotilla_storage::{Error as StoreError, Revision, Store};
use serde_json::{Value, json};

use crate::cache::{CacheEvent, ResourceCache};
use crate::status::{ApiError, Cause, Subject};

/// kube-apiserver's `--service-cluster-ip-range` as kubeadm and kind set it (kube's own default, `10.0.0.0/24`,
/// is deprecated and holds only 254 Services).
pub const DEFAULT_CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
/// kube-apiserver's `--service-node-port-range` default.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

/// An IPv4 range such as `10.96.0.0/12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: u32,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("{0:?} is not an IPv4 CIDR such as 10.96.0.0/12 (IPv6 service ranges are not supported)")]
    NotCidr(String),
    #[error("{0:?} holds fewer than 8 addresses")]
    TooSmall(String),
    #[error("{0:?} is not a port range such as 30000-32767")]
    NotPortRange(String),
}

impl FromStr for IpRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        let not = || RangeError::NotCidr(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(not)?;
        let address: Ipv4Addr = address.parse().map_err(|_| not())?;
        let prefix: u8 = prefix.parse().map_err(|_| not())?;
        if prefix > 32 {
            return Err(not());
        }
        if prefix > 29 {
            return Err(RangeError::TooSmall(text.to_owned()));
        }
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(IpRange {
            network: u32::from(address) & mask,
            prefix,
        })
    }
}

impl IpRange {
    fn size(&self) -> u64 {
        1 << (32 - u32::from(self.prefix))
    }

    /// The index of `ip` in the range when it is a usable address (not the network or broadcast address).
    fn index_of(&self, ip: Ipv4Addr) -> Option<u64> {
        let index = u64::from(u32::from(ip).wrapping_sub(self.network));
        (index >= 1 && index < self.size() - 1).then_some(index)
    }

    fn at(&self, index: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.network + index as u32)
    }

    /// The usable indices, the upper (dynamic) band first: kube's `calculateRangeOffset`.
    fn bands(&self) -> (std::ops::RangeInclusive<u64>, std::ops::RangeInclusive<u64>) {
        let usable = self.size() - 2;
        let offset = (usable / 16).clamp(16, 256).min(usable);
        (offset + 1..=usable, 1..=offset)
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// A node port range such as `30000-32767`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl FromStr for PortRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        let not = || RangeError::NotPortRange(text.to_owned());
        let (first, last) = text.split_once('-').ok_or_else(not)?;
        let first: u16 = first.trim().parse().map_err(|_| not())?;
        let last: u16 = last.trim().parse().map_err(|_| not())?;
        if first == 0 || last < first {
            return Err(not());
        }
        Ok(PortRange { first, last })
    }
}

impl PortRange {
    fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// The ports, upper (dynamic) band first: kube's node port offset, `min(max(16, size/32), 128)`.
    fn bands(&self) -> (std::ops::RangeInclusive<u64>, std::ops::RangeInclusive<u64>) {
        let (first, last) = (u64::from(self.first), u64::from(self.last));
        let size = last - first + 1;
        let offset = (size / 32).clamp(16, 128).min(size);
        (first + offset..=last, first..=first + offset - 1)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Where Services get their cluster IPs and node ports from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ips: IpRange,
    pub node_ports: PortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: DEFAULT_CLUSTER_IP_RANGE.parse().expect("a valid range"),
            node_ports: DEFAULT_NODE_PORT_RANGE.parse().expect("a valid range"),
        }
    }
}

/// One allocated value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    ClusterIp(Ipv4Addr),
    NodePort(u16),
}

/// The Service a claim belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Owner {
    namespace: String,
    name: String,
}

impl Owner {
    fn of(service: &Value) -> Self {
        let meta = |field: &str| {
            service
                .pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Owner {
            namespace: meta("namespace"),
            name: meta("name"),
        }
    }
}

fn service_type(spec: &Value) -> &str {
    spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP")
}

fn cluster_ip(spec: &Value) -> Option<&str> {
    spec.get("clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
}

/// kube's `needsClusterIP`: every type but ExternalName (a headless Service's `None` is kept like an address).
fn has_cluster_ip(spec: &Value) -> bool {
    service_type(spec) != "ExternalName"
}

/// Whether an address is to be allocated: not for ExternalName, not for a headless Service.
fn needs_cluster_ip(spec: &Value) -> bool {
    has_cluster_ip(spec) && cluster_ip(spec) != Some("None")
}

/// kube's `needsNodePort`: NodePort, and LoadBalancer unless `allocateLoadBalancerNodePorts` is false.
fn needs_node_ports(spec: &Value) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.get("allocateLoadBalancerNodePorts") != Some(&Value::Bool(false)),
        _ => false,
    }
}

/// kube's `NeedsHealthCheck`: a LoadBalancer that keeps traffic on the node it arrives at.
fn needs_health_check(spec: &Value) -> bool {
    service_type(spec) == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
}

fn port_number(value: Option<&Value>) -> Option<u16> {
    value
        .and_then(Value::as_u64)
        .filter(|p| *p != 0)
        .and_then(|p| u16::try_from(p).ok())
}

/// What a stored Service holds.
fn claims_of(service: &Value) -> BTreeSet<Claim> {
    let Some(spec) = service.get("spec") else {
        return BTreeSet::new();
    };
    let mut claims = BTreeSet::new();
    for ip in spec
        .get("clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(ip) = ip.as_str().and_then(|ip| ip.parse().ok()) {
            claims.insert(Claim::ClusterIp(ip));
        }
    }
    if let Some(ip) = cluster_ip(spec).and_then(|ip| ip.parse().ok()) {
        claims.insert(Claim::ClusterIp(ip));
    }
    for port in spec.get("ports").and_then(Value::as_array).into_iter().flatten() {
        if let Some(node_port) = port_number(port.get("nodePort")) {
            claims.insert(Claim::NodePort(node_port));
        }
    }
    if let Some(port) = port_number(spec.get("healthCheckNodePort")) {
        claims.insert(Claim::NodePort(port));
    }
    claims
}

/// On update, before validation: the values already allocated stay when the client left them out (a
/// re-applied manifest has no `clusterIP`), and go when the new type does not need them and the client did not
/// change them (kube's `patchAllocatedValues` and `dropTypeDependentFields`).
pub fn keep_allocated(new: &mut Value, old: &Value) {
    let (Some(old_spec), Some(spec)) = (
        old.get("spec"),
        new.get_mut("spec").and_then(Value::as_object_mut),
    ) else {
        return;
    };
    let new_spec = Value::Object(spec.clone());
    if has_cluster_ip(old_spec) && has_cluster_ip(&new_spec) {
        if cluster_ip(&new_spec).is_none()
            && let Some(ip) = old_spec.get("clusterIP")
        {
            spec.insert("clusterIP".to_owned(), ip.clone());
        }
        let no_ips = spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(|ips| ips.is_empty());
        if no_ips && let Some(ips) = old_spec.get("clusterIPs") {
            spec.insert("clusterIPs".to_owned(), ips.clone());
        }
    } else if !has_cluster_ip(&new_spec) {
        for field in ["clusterIP", "clusterIPs"] {
            if spec.get(field) == old_spec.get(field) {
                spec.remove(field);
            }
        }
        if spec.get("clusterIP").is_none() {
            spec.remove("ipFamilies");
            spec.remove("ipFamilyPolicy");
        }
    }
    let old_ports: Vec<&Value> = old_spec
        .get("ports")
        .and_then(Value::as_array)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    let keep_ports = needs_node_ports(old_spec) && needs_node_ports(&new_spec);
    let drop_ports = !needs_node_ports(&new_spec);
    let node_ports_of = |spec: &Value| -> BTreeSet<u16> {
        let ports = spec.get("ports").and_then(Value::as_array).into_iter().flatten();
        ports.filter_map(|p| port_number(p.get("nodePort"))).collect()
    };
    // Node ports the new spec keeps by number cannot go to another port.
    let used: BTreeSet<u16> = node_ports_of(old_spec)
        .intersection(&node_ports_of(&new_spec))
        .copied()
        .collect();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            // The old port this one continues: the one of the same name.
            let before = old_ports
                .iter()
                .find(|old| old.get("name") == port.get("name"))
                .and_then(|old| old.get("nodePort"))
                .filter(|p| port_number(Some(p)).is_some());
            let asked = port_number(port.get("nodePort"));
            if keep_ports && asked.is_none() {
                if let Some(before) =
                    before.filter(|p| port_number(Some(p)).is_some_and(|p| !used.contains(&p)))
                {
                    port.insert("nodePort".to_owned(), before.clone());
                }
            } else if drop_ports && asked.is_some() && port.get("nodePort") == before {
                port.remove("nodePort");
            }
        }
    }
    let health = old_spec.get("healthCheckNodePort");
    if needs_health_check(old_spec) && needs_health_check(&new_spec) {
        if port_number(spec.get("healthCheckNodePort")).is_none()
            && let Some(port) = health
        {
            spec.insert("healthCheckNodePort".to_owned(), port.clone());
        }
    } else if !needs_health_check(&new_spec) && spec.get("healthCheckNodePort") == health {
        spec.remove("healthCheckNodePort");
    }
}

/// Allocates Services' cluster IPs and node ports.
#[derive(Debug)]
pub struct Allocator {
    store: Arc<dyn Store>,
    prefix: StoragePrefix,
    ranges: ServiceRanges,
    services: Arc<ResourceCache>,
}

/// Values claimed by one request, to release if the request fails.
#[derive(Debug, Default)]
#[must_use = "claims are released when the write fails"]
pub struct Claims(Vec<Claim>);

impl Allocator {
    pub fn new(
        store: Arc<dyn Store>,
        prefix: StoragePrefix,
        ranges: ServiceRanges,
        services: Arc<ResourceCache>,
    ) -> Self {
        Allocator {
            store,
            prefix,
            ranges,
            services,
        }
    }

    fn key(&self, claim: Claim) -> String {
        match claim {
            Claim::ClusterIp(ip) => format!("{}/flotilla/serviceips/{ip}", self.prefix),
            Claim::NodePort(port) => format!("{}/flotilla/servicenodeports/{port}", self.prefix),
        }
    }

    fn claim_of_key(&self, key: &str) -> Option<Claim> {
        let rest = key
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix("/flotilla/")?;
        if let Some(ip) = rest.strip_prefix("serviceips/") {
            return ip.parse().ok().map(Claim::ClusterIp);
        }
        rest.strip_prefix("servicenodeports/")?
            .parse()
            .ok()
            .map(Claim::NodePort)
    }

    /// The values every cached Service holds, and by whom (for the repair pass: it parses every Service).
    fn held(&self) -> HashMap<Claim, Vec<Owner>> {
        let (services, _) = self.services.list("");
        let mut held: HashMap<Claim, Vec<Owner>> = HashMap::new();
        for cached in services {
            let Ok(service) = serde_json::from_slice::<Value>(&cached.item_json) else {
                continue;
            };
            let owner = Owner::of(&service);
            for claim in claims_of(&service) {
                held.entry(claim).or_default().push(owner.clone());
            }
        }
        held
    }

    /// Fills in and claims the cluster IP and node ports `service` needs beyond what `old` (its stored
    /// version, on update) holds. With `dry_run`, fills in free values without claiming them.
    pub async fn allocate(
        &self,
        service: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
        subject: &Subject,
    ) -> Result<Claims, ApiError> {
        let owner = Owner::of(service);
        let mut claims = Claims::default();
        let result = self
            .allocate_into(service, old, dry_run, subject, &owner, &mut claims)
            .await;
        match result {
            Ok(()) => Ok(claims),
            Err(err) => {
                self.release(claims).await;
                Err(err)
            }
        }
    }

    async fn allocate_into(
        &self,
        service: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
        subject: &Subject,
        owner: &Owner,
        claims: &mut Claims,
    ) -> Result<(), ApiError> {
        let held_before = old.map(claims_of).unwrap_or_default();
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let snapshot = Value::Object(spec.clone());
        // `value` as kube's messages print it (a Go value).
        let invalid = |field: String, value: String, message: String| ApiError::Invalid {
            subject: subject.clone(),
            causes: vec![Cause {
                kind: "FieldValueInvalid",
                field,
                message: format!("Invalid value: {value}: {message}"),
            }],
        };
        let ip_range = self.ranges.cluster_ips;
        let port_range = self.ranges.node_ports;
        let port_candidates = || {
            let (upper, lower) = port_range.bands();
            scan(upper, random())
                .chain(scan(lower, random()))
                .map(|p| Claim::NodePort(p as u16))
        };

        if needs_cluster_ip(&snapshot) {
            let ip = match cluster_ip(&snapshot) {
                Some(ip)
                    if ip
                        .parse()
                        .is_ok_and(|ip| held_before.contains(&Claim::ClusterIp(ip))) =>
                {
                    None
                }
                Some(text) => {
                    let refuse = |reason: &str| {
                        invalid(
                            "spec.clusterIPs".to_owned(),
                            format!("[]string{{{}}}", json!(text)),
                            format!("failed to allocate IP {text}: {reason}"),
                        )
                    };
                    let ip: Ipv4Addr = text
                        .parse()
                        .map_err(|_| refuse("IPv6 service addresses are not supported"))?;
                    if ip_range.index_of(ip).is_none() {
                        return Err(refuse("the provided network does not match the current range"));
                    }
                    let taken = || refuse("provided IP is already allocated");
                    self.claim_asked(Claim::ClusterIp(ip), taken, dry_run, owner, claims)
                        .await?;
                    Some(ip)
                }
                None => {
                    let (upper, lower) = ip_range.bands();
                    let candidates = scan(upper, random())
                        .chain(scan(lower, random()))
                        .map(|i| Claim::ClusterIp(ip_range.at(i)));
                    match self.pick(candidates, dry_run, owner, claims).await? {
                        Some(Claim::ClusterIp(ip)) => Some(ip),
                        _ => return Err(range_full("a serviceIP")),
                    }
                }
            };
            if let Some(ip) = ip {
                spec.insert("clusterIP".to_owned(), json!(ip.to_string()));
                spec.insert("clusterIPs".to_owned(), json!([ip.to_string()]));
            }
        }

        let mut node_ports: Vec<(usize, u16)> = Vec::new();
        if needs_node_ports(&snapshot) {
            let ports = snapshot
                .get("ports")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut assigned: BTreeMap<u64, u16> = BTreeMap::new();
            // Ports asked for by number first, so that a port sharing its number can reuse them (53/TCP and
            // 53/UDP get one node port, as in kube).
            for (i, port) in ports.iter().enumerate() {
                let Some(asked) = port_number(port.get("nodePort")) else {
                    continue;
                };
                let number = port.get("port").and_then(Value::as_u64).unwrap_or_default();
                let fresh =
                    !held_before.contains(&Claim::NodePort(asked)) && assigned.get(&number) != Some(&asked);
                if fresh {
                    let field = format!("spec.ports[{i}].nodePort");
                    let refuse = |reason: &str| invalid(field.clone(), asked.to_string(), reason.to_owned());
                    if !port_range.contains(asked) {
                        return Err(refuse(&format!(
                            "provided port is not in the valid range. The range of valid ports is {port_range}"
                        )));
                    }
                    let taken = || refuse("provided port is already allocated");
                    self.claim_asked(Claim::NodePort(asked), taken, dry_run, owner, claims)
                        .await?;
                }
                assigned.insert(number, asked);
            }
            for (i, port) in ports.iter().enumerate() {
                if port_number(port.get("nodePort")).is_some() {
                    continue;
                }
                let number = port.get("port").and_then(Value::as_u64).unwrap_or_default();
                let node_port = match assigned.get(&number) {
                    Some(shared) => *shared,
                    None => match self.pick(port_candidates(), dry_run, owner, claims).await? {
                        Some(Claim::NodePort(port)) => port,
                        _ => return Err(range_full("a nodePort")),
                    },
                };
                assigned.insert(number, node_port);
                node_ports.push((i, node_port));
            }
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, node_port) in node_ports {
                if let Some(port) = ports.get_mut(i).and_then(Value::as_object_mut) {
                    port.insert("nodePort".to_owned(), json!(node_port));
                }
            }
        }

        if needs_health_check(&snapshot) {
            match port_number(snapshot.get("healthCheckNodePort")) {
                Some(port) if held_before.contains(&Claim::NodePort(port)) => {}
                Some(port) => {
                    let refuse = |reason: &str| {
                        ApiError::Internal(format!(
                            "Internal error occurred: failed to allocate requested HealthCheck NodePort {port}: {reason}"
                        ))
                    };
                    if !port_range.contains(port) {
                        return Err(refuse("provided port is not in the valid range"));
                    }
                    let taken = || refuse("provided port is already allocated");
                    self.claim_asked(Claim::NodePort(port), taken, dry_run, owner, claims)
                        .await?;
                }
                None => match self.pick(port_candidates(), dry_run, owner, claims).await? {
                    Some(Claim::NodePort(port)) => {
                        spec.insert("healthCheckNodePort".to_owned(), json!(port));
                    }
                    _ => return Err(range_full("a HealthCheck NodePort")),
                },
            }
        }
        Ok(())
    }

    /// Claims a value the request asked for by name (with `dry_run`, only checks that it is free); `taken` is
    /// the refusal when it is not.
    async fn claim_asked(
        &self,
        claim: Claim,
        taken: impl FnOnce() -> ApiError,
        dry_run: bool,
        owner: &Owner,
        claims: &mut Claims,
    ) -> Result<(), ApiError> {
        let free = if dry_run {
            self.is_free(claim).await?
        } else {
            self.claim(claim, owner, claims).await?
        };
        if free { Ok(()) } else { Err(taken()) }
    }

    /// The first candidate free in storage, claimed for `owner` (with `dry_run`, only found). The claim keys
    /// decide: a create of the key either wins the value or finds it taken.
    async fn pick(
        &self,
        candidates: impl Iterator<Item = Claim>,
        dry_run: bool,
        owner: &Owner,
        claims: &mut Claims,
    ) -> Result<Option<Claim>, ApiError> {
        for candidate in candidates {
            if claims.0.contains(&candidate) {
                continue;
            }
            let won = if dry_run {
                self.is_free(candidate).await?
            } else {
                self.claim(candidate, owner, claims).await?
            };
            if won {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }

    async fn is_free(&self, claim: Claim) -> Result<bool, ApiError> {
        match self.store.get(&self.key(claim)).await {
            Ok(_) => Ok(false),
            Err(StoreError::NotFound { .. }) => Ok(true),
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// Claims one value for `owner`; false when it is taken.
    async fn claim(&self, claim: Claim, owner: &Owner, claims: &mut Claims) -> Result<bool, ApiError> {
        let value = Bytes::from(serde_json::to_vec(owner).expect("owners serialise"));
        match self.store.create(&self.key(claim), value).await {
            Ok(_) => {
                claims.0.push(claim);
                Ok(true)
            }
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(err) => Err(unavailable(&err)),
        }
    }

    /// Gives back what a request claimed, after its write failed for sure (a write whose outcome is unknown
    /// keeps its claims: the repair pass frees them if the Service was not written after all).
    pub async fn release(&self, claims: Claims) {
        for claim in claims.0 {
            if let Err(err) = self.store.delete(&self.key(claim), None).await
                && !matches!(err, StoreError::NotFound { .. })
            {
                tracing::warn!(?claim, error = %err, "cannot release a service allocation; the repair pass will");
            }
        }
    }

    /// After a write of a Service at `revision` (an update, or its deletion with `new` `None`): gives back what
    /// `old` held and `new` does not.
    pub async fn release_dropped(&self, old: &Value, new: Option<&Value>, revision: Revision) {
        let kept = new.map(claims_of).unwrap_or_default();
        let owner = Owner::of(old);
        for claim in claims_of(old).difference(&kept) {
            self.release_before(*claim, &owner, revision).await;
        }
    }

    /// Releases `claim` if `owner` claimed it before `revision`, when a write of that Service dropped it: a claim
    /// made since (by a Service of the same name, or by it again) stays.
    async fn release_before(&self, claim: Claim, owner: &Owner, revision: Revision) {
        let key = self.key(claim);
        let Ok(kv) = self.store.get(&key).await else {
            return;
        };
        if kv.create_revision >= revision
            || serde_json::from_slice::<Owner>(&kv.value).ok().as_ref() != Some(owner)
        {
            return;
        }
        let _ = self.store.delete(&key, Some(kv.mod_revision)).await;
    }

    /// One repair pass, as kube's repair controllers: keys no Service holds are released when the next pass
    /// finds them unchanged (`suspects`: a create may be between its claim and its write), and values a Service
    /// holds without a key (a write whose answer was lost after its claims were given back) are claimed again.
    async fn repair(&self, suspects: &mut HashMap<String, Revision>) {
        let mut keys = Vec::new();
        let mut listed_at = Revision::ZERO;
        for family in ["serviceips", "servicenodeports"] {
            let prefix = format!("{}/flotilla/{family}/", self.prefix);
            match flotilla_storage::list_all(self.store.as_ref(), &prefix, None).await {
                Ok((items, revision)) => {
                    keys.extend(items);
                    listed_at = listed_at.max(revision);
                }
                Err(err) => {
                    tracing::debug!(error = %err, "cannot list service allocations; repair later");
                    return;
                }
            }
        }
        // The Services as of the keys' listing, or newer.
        if self.services.wait_for(listed_at.get()).await.is_err() {
            return;
        }
        let held = self.held();
        let mut next = HashMap::new();
        let mut keyed = std::collections::HashSet::new();
        for kv in keys {
            let owner = serde_json::from_slice::<Owner>(&kv.value).ok();
            let claim = self.claim_of_key(&kv.key);
            if let Some(claim) = claim {
                keyed.insert(claim);
            }
            let holders = claim.and_then(|c| held.get(&c));
            if holders.is_some_and(|h| owner.as_ref().is_some_and(|o| h.contains(o))) {
                continue;
            }
            if suspects.get(&kv.key) == Some(&kv.mod_revision) {
                tracing::info!(key = %kv.key, "releasing a service allocation no Service holds");
                let _ = self.store.delete(&kv.key, Some(kv.mod_revision)).await;
            } else {
                next.insert(kv.key, kv.mod_revision);
            }
        }
        *suspects = next;
        for (claim, holders) in held {
            if holders.len() > 1 {
                tracing::warn!(?claim, services = ?holders, "several Services hold one value");
            }
            if !keyed.contains(&claim) && self.in_range(claim) {
                let mut claims = Claims::default();
                if let Ok(true) = self.claim(claim, &holders[0], &mut claims).await {
                    tracing::info!(?claim, service = ?holders[0], "claimed a value a Service held without a claim");
                }
            }
        }
    }

    fn in_range(&self, claim: Claim) -> bool {
        match claim {
            Claim::ClusterIp(ip) => self.ranges.cluster_ips.index_of(ip).is_some(),
            Claim::NodePort(port) => self.ranges.node_ports.contains(port),
        }
    }
}

fn unavailable(err: &StoreError) -> ApiError {
    ApiError::Unavailable(format!("cannot allocate for the service: {err}"))
}

fn range_full(what: &str) -> ApiError {
    ApiError::Internal(format!(
        "Internal error occurred: failed to allocate {what}: range is full"
    ))
}

/// How often the repair pass runs; a leaked value is released on the second pass that finds it.
const REPAIR_PERIOD: Duration = Duration::from_secs(60);

/// Releases what deleted and changed Services no longer hold (also after writes by other apiserver replicas, and
/// deletions by the namespace and garbage collection), and repairs leaks; runs until dropped.
pub async fn run_releaser(allocator: Arc<Allocator>) {
    let mut suspects = HashMap::new();
    let mut repair = tokio::time::interval(REPAIR_PERIOD);
    repair.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut live = match allocator.services.subscribe("", None) {
            Ok(subscription) => subscription.live,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                _ = repair.tick() => allocator.repair(&mut suspects).await,
                event = live.recv() => match event {
                    Ok(event) => release_after(&allocator, &event).await,
                    // Events were missed: the repair pass looks at everything.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        allocator.repair(&mut suspects).await;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }
}

async fn release_after(allocator: &Allocator, event: &CacheEvent) {
    let parse = |bytes: &Bytes| serde_json::from_slice::<Value>(bytes).unwrap_or(Value::Null);
    let (before, after) = match event {
        CacheEvent::Put {
            prev: Some(prev),
            new,
            ..
        } => (parse(&prev.item_json), Some(parse(&new.item_json))),
        CacheEvent::Delete { prev, .. } => (parse(&prev.item_json), None),
        _ => return,
    };
    let revision = Revision(event.revision());
    allocator.release_dropped(&before, after.as_ref(), revision).await;
}

/// The indices of `range` from `start` (taken modulo its length) on, wrapping around.
fn scan(range: std::ops::RangeInclusive<u64>, start: u64) -> impl Iterator<Item = u64> {
    let (first, last) = (*range.start(), *range.end());
    let length = (last + 1).saturating_sub(first);
    let offset = if length == 0 { 0 } else { start % length };
    (0..length).map(move |i| first + (offset + i) % length)
}

/// A random number: the process's UUID generator is its random source.
fn random() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_have_kubes_bands() {
        let range: IpRange = "10.96.0.0/12".parse().unwrap();
        assert_eq!(range.to_string(), "10.96.0.0/12");
        let (upper, lower) = range.bands();
        assert_eq!(lower, 1..=256);
        assert_eq!(range.at(*upper.start()), Ipv4Addr::new(10, 96, 1, 1));
        assert_eq!(range.at(*upper.end()), Ipv4Addr::new(10, 111, 255, 254));
        let small: IpRange = "10.0.0.0/24".parse().unwrap();
        assert_eq!(small.bands(), (17..=254, 1..=16));
        assert_eq!(small.index_of(Ipv4Addr::new(10, 0, 0, 0)), None);
        assert_eq!(small.index_of(Ipv4Addr::new(10, 0, 0, 255)), None);
        assert_eq!(small.index_of(Ipv4Addr::new(10, 0, 1, 1)), None);
        assert_eq!(small.index_of(Ipv4Addr::new(10, 0, 0, 10)), Some(10));
        // The host bits of the address are ignored, as a CIDR's.
        assert_eq!("10.0.0.7/24".parse::<IpRange>().unwrap(), small);
        assert!(matches!(
            "10.0.0.0/30".parse::<IpRange>(),
            Err(RangeError::TooSmall(_))
        ));
        assert!(matches!(
            "fd00::/108".parse::<IpRange>(),
            Err(RangeError::NotCidr(_))
        ));
        let ports: PortRange = "30000-32767".parse().unwrap();
        assert_eq!(ports.bands(), (30086..=32767, 30000..=30085));
        assert!("32767-30000".parse::<PortRange>().is_err());
    }

    #[test]
    fn a_scan_visits_each_index_once_from_its_start() {
        let visited: Vec<u64> = scan(10..=14, 7).collect();
        assert_eq!(visited, [12, 13, 14, 10, 11]);
    }

    #[test]
    fn claims_are_what_a_service_holds() {
        let service = json!({"spec": {"clusterIP": "10.96.1.5", "clusterIPs": ["10.96.1.5"],
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}], "healthCheckNodePort": 31000}});
        assert_eq!(
            claims_of(&service),
            BTreeSet::from([
                Claim::ClusterIp(Ipv4Addr::new(10, 96, 1, 5)),
                Claim::NodePort(30080),
                Claim::NodePort(31000),
            ])
        );
        assert!(claims_of(&json!({"spec": {"clusterIP": "None"}})).is_empty());
    }

    #[test]
    fn updates_keep_allocated_values_and_drop_what_the_type_no_longer_needs() {
        let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.1.5", "clusterIPs": ["10.96.1.5"],
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "https", "port": 443, "nodePort": 30443}]}});
        // A re-applied manifest without them keeps them, port by name.
        let mut new = json!({"spec": {"type": "NodePort",
            "ports": [{"name": "https", "port": 443}, {"name": "http", "port": 80}]}});
        keep_allocated(&mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.96.1.5");
        assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.1.5"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30443);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30080);
        // To ClusterIP: the node ports go, the IP stays.
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        keep_allocated(&mut to_cluster_ip, &old);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.1.5");
        // To ExternalName: the IP goes with its families.
        let mut external = old.clone();
        external["spec"]["type"] = json!("ExternalName");
        external["spec"]["ipFamilies"] = json!(["IPv4"]);
        keep_allocated(&mut external, &old);
        assert!(external["spec"].get("clusterIP").is_none());
        assert!(external["spec"].get("ipFamilies").is_none());
        // A headless Service stays headless when the client leaves `clusterIP` out.
        let headless =
            json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 5432}]}});
        let mut again = json!({"spec": {"ports": [{"port": 5432}]}});
        keep_allocated(&mut again, &headless);
        assert_eq!(again["spec"]["clusterIP"], "None");
        assert_eq!(again["spec"]["clusterIPs"], json!(["None"]));
        // Ports are matched by name only, and a node port another port now asks for by number is not copied.
        let mut renamed = json!({"spec": {"type": "NodePort",
            "ports": [{"name": "web", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080}]}});
        keep_allocated(&mut renamed, &old);
        assert!(renamed["spec"]["ports"][0].get("nodePort").is_none(), "{renamed}");
        let mut taken = json!({"spec": {"type": "NodePort",
            "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443, "nodePort": 30080}]}});
        keep_allocated(&mut taken, &old);
        assert!(taken["spec"]["ports"][0].get("nodePort").is_none(), "{taken}");
        // A node port the client changed on purpose stays for validation to judge.
        let mut changed = old.clone();
        changed["spec"]["type"] = json!("ClusterIP");
        changed["spec"]["ports"][0]["nodePort"] = json!(30099);
        keep_allocated(&mut changed, &old);
        assert_eq!(changed["spec"]["ports"][0]["nodePort"], 30099);
    }
}
