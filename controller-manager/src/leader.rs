//! Leader election on a `coordination.k8s.io/v1` Lease in the federation apiserver, as kube's controller
//! managers do it: the leader renews the lease every retry period; the others take it over once it has not
//! been renewed for the lease duration. Losing the lease ends the process's leadership (the caller exits),
//! so that two controller managers never write at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Leader election settings (kube's `--leader-elect-*` flags).
#[derive(Clone, Debug)]
pub struct LeaderOptions {
    pub namespace: String,
    pub name: String,
    /// Who this process is, in the lease's `holderIdentity`.
    pub identity: String,
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderOptions {
    pub fn new(identity: &str) -> Self {
        LeaderOptions {
            namespace: "kube-system".to_owned(),
            name: "flotilla-controller-manager".to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(7),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

fn micro_time(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// Whether `lease` may be taken by `identity` at `at`: free, ours, or not renewed within its duration.
pub fn can_take(lease: &Lease, identity: &str, at: jiff::Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() || holder == identity {
        return true;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    match &spec.renew_time {
        Some(renewed) => at.as_second() > renewed.0.as_second() + duration,
        None => true,
    }
}

/// One attempt to take or renew the lease; `Ok(true)` while this process holds it.
async fn try_acquire_or_renew(api: &Api<Lease>, options: &LeaderOptions) -> Result<bool, kube::Error> {
    let at = now();
    let duration = i32::try_from(options.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&options.name).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": options.name, "namespace": options.namespace},
                "spec": {
                    "holderIdentity": options.identity,
                    "leaseDurationSeconds": duration,
                    "acquireTime": micro_time(at),
                    "renewTime": micro_time(at),
                    "leaseTransitions": 0,
                },
            }))
            .expect("a valid Lease");
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            }
        }
        Some(mut lease) => {
            if !can_take(&lease, &options.identity, at) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            let ours = spec.holder_identity.as_deref() == Some(options.identity.as_str());
            if !ours {
                spec.holder_identity = Some(options.identity.clone());
                spec.acquire_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at));
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(duration);
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at));
            // The resourceVersion read above makes this a compare-and-swap: two candidates cannot both win.
            match api.replace(&options.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(err) => Err(err),
            }
        }
    }
}

/// Waits until this process leads.
pub async fn acquire(client: &Client, options: &LeaderOptions) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &options.namespace);
    loop {
        match try_acquire_or_renew(&api, options).await {
            Ok(true) => {
                tracing::info!(identity = %options.identity, lease = %options.name, "became the leader");
                return;
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "cannot reach the lease"),
        }
        tokio::time::sleep(options.retry_period).await;
    }
}

/// Renews the lease every retry period; returns when it could not be renewed within the renew deadline.
pub async fn keep(client: &Client, options: &LeaderOptions) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &options.namespace);
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(options.retry_period).await;
        // A renewal must not outlast the renew deadline: a leader cut off from the apiserver stops leading
        // before anyone else may take the lease.
        let left = options.renew_deadline.saturating_sub(last_renewed.elapsed());
        let attempt = match tokio::time::timeout(left, try_acquire_or_renew(&api, options)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(identity = %options.identity, "could not renew the lease in time; no longer leading");
                return;
            }
        };
        match attempt {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(identity = %options.identity, "the lease was taken over; no longer leading");
                return;
            }
            Err(err) => tracing::warn!(error = %err, "cannot renew the lease"),
        }
        if last_renewed.elapsed() > options.renew_deadline {
            tracing::error!(identity = %options.identity, "could not renew the lease in time; no longer leading");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed: i64, duration: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                renew_time: Some(MicroTime(jiff::Timestamp::from_second(renewed).unwrap())),
                lease_duration_seconds: Some(duration),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_lease_is_taken_only_when_free_ours_or_expired() {
        let at = jiff::Timestamp::from_second(1_000).unwrap();
        assert!(can_take(&Lease::default(), "me", at));
        assert!(can_take(&lease("me", 995, 10), "me", at));
        assert!(!can_take(&lease("other", 995, 10), "me", at));
        assert!(can_take(&lease("other", 989, 10), "me", at));
        assert!(can_take(&lease("", 999, 10), "me", at));
    }
}
