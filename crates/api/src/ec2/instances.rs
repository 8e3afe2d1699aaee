//! Instances: Trellis's inventory of hosts as EC2 instances, so INSTANCE target groups can name
//! them. `RunInstances` launches nothing — it **registers an existing host**: its
//! `PrivateIpAddress` (required) in a subnet (required) whose block holds it, with security
//! groups of the subnet's VPC and tags — one instance per call (`MinCount`/`MaxCount` 1).
//! `StopInstances`/`StartInstances` mark it `stopped`/`running` (an operator taking a host out of
//! rotation), `TerminateInstances` marks it `terminated` for good. Only a `running` instance's
//! address receives traffic; INSTANCE targets of other instances are `UNAVAILABLE`
//! (`InstanceNotRunning`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use trellis_model::{Context, Timestamp};
use trellis_wire::Call;
use trellis_wire::codec::Timestamp as WireTimestamp;

use super::{
    Ec2Error, Ec2Result, Filter, Filterable, Query, SECURITY_GROUP_KIND, SUBNET_KIND, StoredGroup,
    StoredSubnet, Tag, TagOut, TagSpecification, all, decode, describe, encode, invalid, missing,
    new_id, record, tag_set, tags_for,
};
use crate::AppState;

/// The record kind of an instance (id `i-…`). Its body is [`StoredInstance`]; the data plane
/// reads `instance_id`, `private_ip`, `ipv6` and `state` (`trellis_snapshot::InstanceDoc`).
pub const INSTANCE_KIND: &str = "ec2-instance";

/// How many instances (terminated ones included) an account may have.
const INSTANCES_PER_ACCOUNT: u64 = 10_000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    pub instance_id: String,
    pub owner_id: String,
    pub reservation_id: String,
    pub image_id: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub vpc_id: String,
    pub private_ip: String,
    #[serde(default)]
    pub ipv6: Option<String>,
    pub security_groups: Vec<(String, String)>,
    /// `running`, `stopped` or `terminated`.
    pub state: String,
    pub launch_ms: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

fn state_code(state: &str) -> i64 {
    match state {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    }
}

impl Filterable for StoredInstance {
    const FILTERS: &'static [&'static str] = &[
        "instance-id",
        "instance-state-name",
        "private-ip-address",
        "subnet-id",
        "vpc-id",
        "owner-id",
        "reservation-id",
        "instance.group-id",
        "instance.group-name",
        "image-id",
        "instance-type",
    ];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "instance-id" => vec![self.instance_id.clone()],
            "instance-state-name" => vec![self.state.clone()],
            "private-ip-address" => vec![self.private_ip.clone()],
            "subnet-id" => vec![self.subnet_id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![self.owner_id.clone()],
            "reservation-id" => vec![self.reservation_id.clone()],
            "instance.group-id" => self.security_groups.iter().map(|g| g.0.clone()).collect(),
            "instance.group-name" => self.security_groups.iter().map(|g| g.1.clone()).collect(),
            "image-id" => vec![self.image_id.clone()],
            "instance-type" => vec![self.instance_type.clone()],
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupIdentifierOut {
    group_id: String,
    group_name: String,
}

#[derive(Debug, Serialize)]
pub struct StateOut {
    code: i64,
    name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlacementOut {
    availability_zone: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceOut {
    instance_id: String,
    image_id: String,
    instance_type: String,
    instance_state: StateOut,
    private_ip_address: String,
    ipv6_address: Option<String>,
    private_dns_name: String,
    subnet_id: String,
    vpc_id: String,
    launch_time: WireTimestamp,
    placement: PlacementOut,
    group_set: Vec<GroupIdentifierOut>,
    tag_set: Vec<TagOut>,
}

fn instance_out(ctx: &Context, i: &StoredInstance, zone: &str) -> InstanceOut {
    InstanceOut {
        instance_id: i.instance_id.clone(),
        image_id: i.image_id.clone(),
        instance_type: i.instance_type.clone(),
        instance_state: StateOut {
            code: state_code(&i.state),
            name: i.state.clone(),
        },
        private_dns_name: format!(
            "ip-{}.{}.compute.internal",
            i.private_ip.replace(['.', ':'], "-"),
            ctx.region
        ),
        private_ip_address: i.private_ip.clone(),
        ipv6_address: i.ipv6.clone(),
        subnet_id: i.subnet_id.clone(),
        vpc_id: i.vpc_id.clone(),
        launch_time: WireTimestamp::from_unix_millis(i.launch_ms),
        placement: PlacementOut {
            availability_zone: zone.to_string(),
        },
        group_set: i
            .security_groups
            .iter()
            .map(|(id, name)| GroupIdentifierOut {
                group_id: id.clone(),
                group_name: name.clone(),
            })
            .collect(),
        tag_set: tag_set(&i.tags),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReservationOut {
    reservation_id: String,
    owner_id: String,
    group_set: Vec<GroupIdentifierOut>,
    instances_set: Vec<InstanceOut>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipv6AddressIn {
    ipv6_address: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunInstancesInput {
    image_id: Option<String>,
    instance_type: Option<String>,
    min_count: Option<i64>,
    max_count: Option<i64>,
    subnet_id: Option<String>,
    private_ip_address: Option<String>,
    #[serde(default)]
    ipv6_address: Vec<Ipv6AddressIn>,
    #[serde(default)]
    security_group_id: Vec<String>,
    #[serde(default)]
    tag_specification: Vec<TagSpecification>,
}

pub(super) async fn run_instances(
    s: AppState,
    input: RunInstancesInput,
    _: Call,
) -> Ec2Result<ReservationOut> {
    if input.min_count.unwrap_or(1) != 1 || input.max_count.unwrap_or(1) != 1 {
        return Err(invalid(
            "Trellis registers one existing host per RunInstances: MinCount and MaxCount must be 1",
        ));
    }
    let subnet_id = input.subnet_id.as_deref().ok_or_else(|| {
        missing("SubnetId (RunInstances registers an existing host: name its subnet)")
    })?;
    let ip_text = input.private_ip_address.as_deref().ok_or_else(|| {
        missing("PrivateIpAddress (RunInstances registers an existing host: give its address)")
    })?;
    let ip: IpAddr = ip_text
        .parse()
        .ok()
        .filter(IpAddr::is_ipv4)
        .ok_or_else(|| invalid(format!("Invalid IPv4 address {ip_text}")))?;
    let ipv6 = match input.ipv6_address.as_slice() {
        [] => None,
        [one] => {
            let text = one
                .ipv6_address
                .as_deref()
                .ok_or_else(|| missing("Ipv6Address"))?;
            Some(
                text.parse::<IpAddr>()
                    .ok()
                    .filter(IpAddr::is_ipv6)
                    .ok_or_else(|| invalid(format!("Invalid IPv6 address {text}")))?,
            )
        }
        _ => return Err(invalid("At most one IPv6 address per instance")),
    };
    let tags = tags_for(&input.tag_specification, "instance")?;
    let mut tx = s.store.write().await?;
    if tx.count(INSTANCE_KIND, None).await? >= INSTANCES_PER_ACCOUNT {
        return Err(Ec2Error::new(
            "InstanceLimitExceeded",
            format!("You have requested more instances than your limit of {INSTANCES_PER_ACCOUNT}"),
        ));
    }
    let subnet: StoredSubnet = match tx.get(SUBNET_KIND, subnet_id).await? {
        Some(rec) => decode(rec)?,
        None => return Err(super::subnet_not_found(subnet_id)),
    };
    let inside = subnet
        .cidr
        .parse::<IpNet>()
        .is_ok_and(|net| net.contains(&ip));
    if !inside {
        return Err(Ec2Error::new(
            "InvalidParameterValue",
            format!(
                "Address {ip} does not fall within the subnet's address range ({})",
                subnet.cidr
            ),
        ));
    }
    let running: Vec<StoredInstance> = all(&mut tx, INSTANCE_KIND).await?;
    if running.iter().any(|i| {
        i.vpc_id == subnet.vpc_id && i.private_ip == ip.to_string() && i.state != "terminated"
    }) {
        return Err(Ec2Error::new(
            "InvalidIPAddress.InUse",
            format!("Address {ip} is in use."),
        ));
    }
    let mut groups = Vec::new();
    let wanted = if input.security_group_id.is_empty() {
        None
    } else {
        Some(&input.security_group_id)
    };
    let vpc_groups: Vec<StoredGroup> = tx
        .list(SECURITY_GROUP_KIND, Some(&subnet.vpc_id))
        .await?
        .into_iter()
        .map(decode)
        .collect::<Ec2Result<_>>()?;
    match wanted {
        None => groups.extend(
            vpc_groups
                .iter()
                .filter(|g| g.group_name == "default")
                .map(|g| (g.group_id.clone(), g.group_name.clone())),
        ),
        Some(ids) => {
            for id in ids {
                let g = vpc_groups
                    .iter()
                    .find(|g| &g.group_id == id)
                    .ok_or_else(|| super::group_not_found(id))?;
                groups.push((g.group_id.clone(), g.group_name.clone()));
            }
        }
    }
    let instance = StoredInstance {
        instance_id: new_id("i-"),
        owner_id: s.ctx.account_id.clone(),
        reservation_id: new_id("r-"),
        image_id: input
            .image_id
            .clone()
            .unwrap_or_else(|| "ami-trellishost".into()),
        instance_type: input.instance_type.clone().unwrap_or_else(|| "host".into()),
        subnet_id: subnet.subnet_id.clone(),
        vpc_id: subnet.vpc_id.clone(),
        private_ip: ip.to_string(),
        ipv6: ipv6.map(|a| a.to_string()),
        security_groups: groups,
        state: "running".into(),
        launch_ms: Timestamp::now().unix_millis(),
        tags,
    };
    tx.insert(&record(
        INSTANCE_KIND,
        &instance.instance_id,
        Some(&subnet.vpc_id),
        None,
        encode(&instance)?,
    ))
    .await?;
    tx.commit().await?;
    Ok(ReservationOut {
        reservation_id: instance.reservation_id.clone(),
        owner_id: instance.owner_id.clone(),
        group_set: Vec::new(),
        instances_set: vec![instance_out(&s.ctx, &instance, &subnet.availability_zone)],
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstancesInput {
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    instance_id: Vec<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeInstancesOutput {
    reservation_set: Vec<ReservationOut>,
    next_token: Option<String>,
}

pub(super) fn instance_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

pub(super) async fn describe_instances(
    s: AppState,
    input: DescribeInstancesInput,
    _: Call,
) -> Ec2Result<DescribeInstancesOutput> {
    let mut tx = s.store.read().await?;
    let instances: Vec<StoredInstance> = all(&mut tx, INSTANCE_KIND).await?;
    let (items, next_token) = describe(
        instances,
        |i| &i.instance_id,
        instance_not_found,
        Query {
            ids: &input.instance_id,
            filters: &input.filter,
            max_results: input.max_results,
            next_token: input.next_token.as_deref(),
            named: false,
        },
    )?;
    // Each instance's zone is its subnet's: the account's subnets, read once.
    let zones: std::collections::HashMap<String, String> =
        all::<StoredSubnet>(&mut tx, SUBNET_KIND)
            .await?
            .into_iter()
            .map(|x| (x.subnet_id, x.availability_zone))
            .collect();
    let reservation_set = items
        .iter()
        .map(|i| ReservationOut {
            reservation_id: i.reservation_id.clone(),
            owner_id: i.owner_id.clone(),
            group_set: Vec::new(),
            instances_set: vec![instance_out(
                &s.ctx,
                i,
                zones.get(&i.subnet_id).map_or("", String::as_str),
            )],
        })
        .collect();
    Ok(DescribeInstancesOutput {
        reservation_set,
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InstanceIdsInput {
    #[serde(default)]
    instance_id: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChangeOut {
    instance_id: String,
    current_state: StateOut,
    previous_state: StateOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChangesOutput {
    instances_set: Vec<StateChangeOut>,
}

/// Moves each named instance to `to`; `allowed` says from which states (others are
/// `IncorrectInstanceState`, except that a change to the state it is in is a no-op).
async fn change_state(
    s: AppState,
    input: InstanceIdsInput,
    to: &str,
    allowed: &[&str],
) -> Ec2Result<StateChangesOutput> {
    if input.instance_id.is_empty() {
        return Err(missing("InstanceId.N"));
    }
    let mut tx = s.store.write().await?;
    let mut changes = Vec::new();
    for id in &input.instance_id {
        let rec = tx
            .get(INSTANCE_KIND, id)
            .await?
            .ok_or_else(|| instance_not_found(id))?;
        let mut instance: StoredInstance = decode(rec.clone())?;
        let previous = instance.state.clone();
        if previous != to && !allowed.contains(&previous.as_str()) {
            return Err(Ec2Error::new(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in a state from which it can be {to}."),
            ));
        }
        instance.state = to.to_string();
        tx.update(&trellis_store::Record {
            body: encode(&instance)?,
            ..rec
        })
        .await?;
        changes.push(StateChangeOut {
            instance_id: id.clone(),
            current_state: StateOut {
                code: state_code(to),
                name: to.to_string(),
            },
            previous_state: StateOut {
                code: state_code(&previous),
                name: previous,
            },
        });
    }
    tx.commit().await?;
    Ok(StateChangesOutput {
        instances_set: changes,
    })
}

pub(super) async fn terminate_instances(
    s: AppState,
    input: InstanceIdsInput,
    _: Call,
) -> Ec2Result<StateChangesOutput> {
    change_state(s, input, "terminated", &["running", "stopped"]).await
}

pub(super) async fn stop_instances(
    s: AppState,
    input: InstanceIdsInput,
    _: Call,
) -> Ec2Result<StateChangesOutput> {
    change_state(s, input, "stopped", &["running"]).await
}

pub(super) async fn start_instances(
    s: AppState,
    input: InstanceIdsInput,
    _: Call,
) -> Ec2Result<StateChangesOutput> {
    change_state(s, input, "running", &["stopped"]).await
}
