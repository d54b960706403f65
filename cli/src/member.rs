//! `flotilla member`: simulated member clusters (see `flotilla_simulator`), one or many in this process.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use flotilla_simulator::{Behaviour, MemberConfig, SimulatedMember};

/// Settings shared by every member `flotilla member` or `flotilla up` starts.
#[derive(Clone, Debug)]
pub struct MemberSettings {
    pub bind_address: IpAddr,
    pub nodes: u32,
    pub ready_delay: Duration,
    pub capacity: Option<u32>,
}

/// The config of the `index`-th member (1-based) of a set: its own directory, a port after `first_port`
/// (or a free one), and a load-balancer range of its own.
pub fn config(
    name: &str,
    index: u32,
    data_dir: &std::path::Path,
    first_port: u16,
    region: &str,
    zones: &[String],
    settings: &MemberSettings,
) -> MemberConfig {
    let mut config = MemberConfig::new(name, data_dir);
    config.bind_address = settings.bind_address;
    config.port = if first_port == 0 {
        0
    } else {
        first_port.saturating_add(u16::try_from(index - 1).unwrap_or(u16::MAX))
    };
    config.nodes = settings.nodes;
    config.region = region.to_owned();
    config.zones = zones.to_vec();
    config.behaviour = Behaviour {
        ready_delay: settings.ready_delay,
        capacity: settings.capacity,
        nodes: settings.nodes,
        load_balancer_prefix: load_balancer_prefix(name),
    };
    config
}

/// A member's load-balancer range, `172.16.0.0/12` split by a hash of its name, so that members started
/// separately still hand out distinct addresses.
fn load_balancer_prefix(name: &str) -> [u8; 3] {
    // FNV-1's last step only changes the low byte: mix before taking the high ones (`member-1`, `member-2`).
    let hash = flotilla_controller_manager::planner::fnv1_32(name.as_bytes()).wrapping_mul(0x9e37_79b1);
    let [a, b, _, _] = hash.to_be_bytes();
    [172, 16 + (a % 16), b]
}

/// Starts `count` members named `name` (one) or `name-1` … `name-N`, all at once.
pub async fn start_many(
    name: &str,
    count: u32,
    data_dir: &std::path::Path,
    first_port: u16,
    region: &str,
    zones: &[String],
    settings: &MemberSettings,
) -> Result<Vec<SimulatedMember>> {
    let configs: Vec<MemberConfig> = (1..=count)
        .map(|i| {
            let member_name = if count == 1 {
                name.to_owned()
            } else {
                format!("{name}-{i}")
            };
            config(&member_name, i, data_dir, first_port, region, zones, settings)
        })
        .collect();
    let started = futures::future::join_all(configs.into_iter().map(SimulatedMember::start)).await;
    started.into_iter().collect()
}

/// `flotilla member`: runs the members until Ctrl-C.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    name: &str,
    count: u32,
    data_dir: PathBuf,
    port: u16,
    region: &str,
    zones: &[String],
    settings: MemberSettings,
) -> Result<()> {
    let members = start_many(name, count, &data_dir, port, region, zones, &settings).await?;
    for member in &members {
        println!(
            "simulated member {:?} serving at https://{} (kubeconfig {}, context {:?})",
            member.name,
            member.address,
            member.kubeconfig_path.display(),
            member.name
        );
    }
    println!(
        "These are simulated clusters: workloads get realistic status, but no container runs. Ctrl-C stops them."
    );
    tokio::signal::ctrl_c().await?;
    for member in members {
        member.stop();
    }
    Ok(())
}
