//! `flotilla join`, `unjoin` and `status`: the cluster registry seen from the command line, kubefed style.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use flotilla_api::federation::{
    self, Cluster, ClusterSpec, FEDERATED_TYPES, KUBECONFIG_KEY, MANAGED_LABEL, SYSTEM_NAMESPACE,
    ServerAddressByClientCIDR,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{LocalObjectReference, Namespace, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use serde_json::json;

/// How long a member may take to answer `/version` when it joins.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// What joining a member needs.
#[derive(Debug)]
pub struct JoinRequest {
    pub name: String,
    /// The member's API URL.
    pub server: String,
    /// A self-contained kubeconfig for the member (stored in its credential Secret).
    pub kubeconfig: String,
    pub labels: BTreeMap<String, String>,
    /// Rejoining a cluster of this name at another address updates it (for `flotilla up`'s own members)
    /// instead of refusing the name.
    pub replace: bool,
}

/// Joins a member: checks it answers, stores its credentials, registers the Cluster; prints each step.
/// Nothing is written unless the member answers and the name is free (or already this member's).
pub async fn join(
    federation: &kube::Client,
    member: &kube::Client,
    request: &JoinRequest,
    out: &mut dyn Write,
) -> Result<()> {
    let name = &request.name;
    write!(out, "Checking member cluster {name:?} at {} … ", request.server)?;
    let version = match tokio::time::timeout(MEMBER_TIMEOUT, member.apiserver_version()).await {
        Ok(Ok(version)) => version,
        Ok(Err(err)) => {
            writeln!(out, "unreachable")?;
            return Err(err).context(format!(
                "member cluster {name:?} at {} does not answer",
                request.server
            ));
        }
        Err(_) => {
            writeln!(out, "unreachable")?;
            bail!(
                "member cluster {name:?} at {} did not answer within {MEMBER_TIMEOUT:?}",
                request.server
            );
        }
    };
    writeln!(out, "Kubernetes {}", version.git_version)?;

    let clusters: Api<Cluster> = Api::all(federation.clone());
    let existing = clusters
        .get_opt(name)
        .await
        .context("read the federation's clusters")?;
    if let Some(existing) = &existing {
        let same_secret = existing.spec.secret_ref.as_ref().map(|r| r.name.as_str()) == Some(name.as_str());
        let same_server = existing.server_address() == Some(request.server.as_str());
        if !(same_secret && (same_server || request.replace)) {
            bail!(
                "a cluster named {name:?} is already joined (server {}); unjoin it first or choose another name",
                existing.server_address().unwrap_or("unknown")
            );
        }
    }

    write!(
        out,
        "Storing its credentials in secret {SYSTEM_NAMESPACE}/{name} … "
    )?;
    ensure_system_namespace(federation).await?;
    let secrets: Api<Secret> = Api::namespaced(federation.clone(), SYSTEM_NAMESPACE);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(SYSTEM_NAMESPACE.to_owned()),
            labels: Some(BTreeMap::from([(
                "federation.flotilla.io/cluster".to_owned(),
                name.clone(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            KUBECONFIG_KEY.to_owned(),
            ByteString(request.kubeconfig.clone().into_bytes()),
        )])),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    };
    let mut created_secret = false;
    match secrets.get_opt(name).await? {
        // A Secret of this name that join did not write for this cluster is someone else's: refuse.
        Some(current)
            if current
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("federation.flotilla.io/cluster"))
                != Some(name) =>
        {
            writeln!(out, "taken")?;
            bail!(
                "secret {SYSTEM_NAMESPACE}/{name} exists and does not hold this cluster's credentials; \
                 remove it or choose another name"
            );
        }
        Some(current) if current.data == secret.data => writeln!(out, "unchanged")?,
        Some(_) => {
            secrets
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": secret.data})),
                )
                .await
                .context("update the credential secret")?;
            writeln!(out, "updated")?;
        }
        None => {
            created_secret = true;
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .context("create the credential secret")?;
            writeln!(out, "created")?;
        }
    }

    write!(out, "Registering cluster {name:?} … ")?;
    let spec = ClusterSpec {
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".to_owned(),
            server_address: request.server.clone(),
        }],
        secret_ref: Some(LocalObjectReference { name: name.clone() }),
    };
    match existing {
        Some(existing) => {
            let mut patch = json!({"metadata": {"labels": request.labels}});
            if existing.spec != spec {
                patch["spec"] = serde_json::to_value(&spec)?;
            }
            clusters
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .context("update the cluster")?;
            writeln!(out, "already joined; updated")?;
        }
        None => {
            let cluster = Cluster {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: (!request.labels.is_empty()).then(|| request.labels.clone()),
                    ..ObjectMeta::default()
                },
                spec,
                ..Cluster::default()
            };
            if let Err(err) = clusters.create(&PostParams::default(), &cluster).await {
                // Leave nothing behind (but only what this run wrote).
                if created_secret {
                    let _ = secrets.delete(name, &DeleteParams::default()).await;
                }
                return Err(err).context("create the cluster");
            }
            writeln!(out, "created")?;
        }
    }
    writeln!(out, "Cluster {name:?} joined the federation.")?;
    Ok(())
}

async fn ensure_system_namespace(federation: &kube::Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(federation.clone());
    if namespaces.get_opt(SYSTEM_NAMESPACE).await?.is_none() {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(SYSTEM_NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match namespaces.create(&PostParams::default(), &namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => return Err(err).context("create the federation-system namespace"),
        }
    }
    Ok(())
}

/// The API resource of a federated type.
fn api_resource(group: &str, version: &str, plural: &str) -> ApiResource {
    let kind =
        flotilla_api::resources::lookup(flotilla_api::resources::Profile::Member, group, version, plural)
            .map(|r| r.kind)
            .unwrap_or_default();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// A client for a joined member, from its credential Secret.
async fn member_client(federation: &kube::Client, cluster: &Cluster) -> Result<kube::Client> {
    let secret_name = cluster
        .spec
        .secret_ref
        .as_ref()
        .map(|r| r.name.clone())
        .context("the cluster has no secretRef")?;
    let secrets: Api<Secret> = Api::namespaced(federation.clone(), SYSTEM_NAMESPACE);
    let secret = secrets
        .get(&secret_name)
        .await
        .context("read the cluster's credential secret")?;
    let kubeconfig = secret
        .data
        .and_then(|d| d.get(KUBECONFIG_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .context("the credential secret has no kubeconfig")?;
    Ok(flotilla_controller_manager::members::client_for(&kubeconfig, cluster.server_address()).await?)
}

/// Removes a member: optionally the objects Flotilla propagated to it, then its Cluster and credentials.
pub async fn unjoin(
    federation: &kube::Client,
    name: &str,
    delete_propagated: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(federation.clone());
    let Some(cluster) = clusters
        .get_opt(name)
        .await
        .context("read the federation's clusters")?
    else {
        writeln!(out, "Cluster {name:?} is not joined; nothing to do.")?;
        return Ok(());
    };
    // The member's client is built before its Cluster goes (it needs the credentials); the copies are
    // deleted after, so that the controller manager, which no longer sees the member, does not put them back.
    let member = if delete_propagated {
        Some(member_client(federation, &cluster).await?)
    } else {
        None
    };
    write!(out, "Removing cluster {name:?} … ")?;
    clusters
        .delete(name, &DeleteParams::default())
        .await
        .context("delete the cluster")?;
    writeln!(out, "removed")?;
    if delete_propagated {
        write!(out, "Deleting the objects Flotilla propagated to {name:?} … ")?;
        let member = member.as_ref().expect("built before the cluster went");
        let mut deleted = 0;
        let selector = ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
        for (group, version, plural) in FEDERATED_TYPES.iter().rev() {
            let api: Api<DynamicObject> =
                Api::all_with(member.clone(), &api_resource(group, version, plural));
            let list = api
                .list_metadata(&selector)
                .await
                .with_context(|| format!("list {plural} in {name}"))?;
            for object in list.items {
                let namespace = object.metadata.namespace.clone();
                let object_name = object.metadata.name.clone().unwrap_or_default();
                let api: Api<DynamicObject> = match &namespace {
                    Some(ns) => {
                        Api::namespaced_with(member.clone(), ns, &api_resource(group, version, plural))
                    }
                    None => Api::all_with(member.clone(), &api_resource(group, version, plural)),
                };
                match api.delete(&object_name, &DeleteParams::background()).await {
                    Ok(_) => deleted += 1,
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(err) => {
                        return Err(err).with_context(|| format!("delete {plural} {object_name} in {name}"));
                    }
                }
            }
        }
        writeln!(out, "{deleted} deleted")?;
    }
    if let Some(secret) = cluster.spec.secret_ref.as_ref().map(|r| r.name.clone()) {
        write!(out, "Removing its credentials {SYSTEM_NAMESPACE}/{secret} … ")?;
        let secrets: Api<Secret> = Api::namespaced(federation.clone(), SYSTEM_NAMESPACE);
        match secrets.delete(&secret, &DeleteParams::default()).await {
            Ok(_) => writeln!(out, "removed")?,
            Err(kube::Error::Api(status)) if status.code == 404 => writeln!(out, "already gone")?,
            Err(err) => return Err(err).context("delete the credential secret"),
        }
    }
    if !delete_propagated {
        writeln!(
            out,
            "Objects already propagated to {name:?} stay there (--delete-propagated removes them)."
        )?;
    }
    writeln!(out, "Successfully removed cluster {name:?} from the federation.")?;
    Ok(())
}

/// How many objects Flotilla propagated to a member (`None`: the member could not be asked).
async fn propagated_objects(federation: &kube::Client, cluster: &Cluster) -> Option<usize> {
    let member = member_client(federation, cluster).await.ok()?;
    let count = async {
        let mut total = 0;
        let selector = ListParams::default().labels(&format!("{MANAGED_LABEL}=true"));
        for (group, version, plural) in FEDERATED_TYPES {
            let api: Api<DynamicObject> =
                Api::all_with(member.clone(), &api_resource(group, version, plural));
            total += api.list_metadata(&selector).await.ok()?.items.len();
        }
        Some(total)
    };
    tokio::time::timeout(Duration::from_secs(5), count)
        .await
        .ok()
        .flatten()
}

/// `flotilla status`: each cluster with its health and how many federated objects it holds.
pub async fn status(federation: &kube::Client, out: &mut dyn Write) -> Result<()> {
    let clusters: Api<Cluster> = Api::all(federation.clone());
    let list = clusters
        .list(&ListParams::default())
        .await
        .context("list the federation's clusters")?;
    if list.items.is_empty() {
        writeln!(
            out,
            "No member clusters. Join one with: flotilla join NAME --cluster-context CONTEXT"
        )?;
        return Ok(());
    }
    let counts =
        futures::future::join_all(list.items.iter().map(|c| propagated_objects(federation, c))).await;
    let mut rows = vec![
        ["NAME", "READY", "REASON", "REGION", "ZONES", "OBJECTS", "SERVER"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for (cluster, count) in list.items.iter().zip(counts) {
        let ready = cluster.condition(federation::CONDITION_READY);
        let status = cluster.status.as_ref();
        rows.push(vec![
            cluster.metadata.name.clone().unwrap_or_default(),
            ready
                .map(|c| c.status.clone())
                .unwrap_or_else(|| "Unknown".to_owned()),
            ready
                .and_then(|c| c.reason.clone())
                .unwrap_or_else(|| "NotProbedYet".to_owned()),
            status
                .and_then(|s| s.region.clone())
                .unwrap_or_else(|| "-".to_owned()),
            status
                .map(|s| s.zones.join(","))
                .filter(|z| !z.is_empty())
                .unwrap_or_else(|| "-".to_owned()),
            count.map(|n| n.to_string()).unwrap_or_else(|| "-".to_owned()),
            cluster.server_address().unwrap_or("-").to_owned(),
        ]);
    }
    print_table(&rows, out)
}

/// Columns padded as kubectl prints them: three spaces between columns.
pub fn print_table(rows: &[Vec<String>], out: &mut dyn Write) -> Result<()> {
    let columns = rows.first().map(Vec::len).unwrap_or_default();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or_default()
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
