//! Attribution and admission tables.

use std::net::IpAddr;

use serde_json::json;
use trellis_model::Context;

use super::*;

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
    }
}

fn vpc(id: &str, cidrs: &[&str]) -> VpcDoc {
    VpcDoc {
        vpc_id: id.into(),
        owner_id: "111122223333".into(),
        ipv4: cidrs
            .iter()
            .map(|c| CidrDoc { cidr: (*c).into() })
            .collect(),
        ipv6: Vec::new(),
    }
}

fn network(id: &str) -> ServiceNetwork {
    serde_json::from_value(json!({
        "id": id, "arn": format!("arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/{id}"),
        "name": id, "authType": "NONE", "sharingEnabled": false, "createdAt": "2026-01-01T00:00:00Z",
        "lastUpdatedAt": "2026-01-01T00:00:00Z"
    }))
    .expect("a service network document")
}

fn association(
    vpc: &str,
    sn: &str,
    groups: &[&str],
    ingress: Option<&str>,
) -> ServiceNetworkVpcAssociation {
    let tags: serde_json::Map<String, serde_json::Value> = ingress
        .map(|a| (INGRESS_ADDRESS_TAG.to_string(), json!(a)))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "id": format!("snva-{vpc}"), "arn": "arn", "status": "ACTIVE", "createdBy": "111122223333",
        "createdAt": "2026-01-01T00:00:00Z", "lastUpdatedAt": "2026-01-01T00:00:00Z",
        "serviceNetworkId": sn, "serviceNetworkName": sn, "serviceNetworkArn": "arn",
        "vpcId": vpc, "securityGroupIds": groups, "privateDnsEnabled": true, "tags": tags
    }))
    .expect("an association document")
}

fn group(id: &str, vpc: &str, rules: serde_json::Value) -> SecurityGroupDoc {
    SecurityGroupDoc {
        group_id: id.into(),
        vpc_id: vpc.into(),
        ingress: serde_json::from_value(rules).expect("rules"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn networks() -> ClientNetworks {
    let vpcs = [
        vpc("vpc-a", &["127.0.1.0/24"]),
        vpc("vpc-wide", &["127.0.0.0/16"]),
        vpc("vpc-lonely", &["127.0.9.0/24"]),
        vpc("vpc-sg", &["127.0.2.0/24"]),
        // Two VPCs with one CIDR, told apart by their own ingress addresses.
        vpc("vpc-o1", &["127.0.0.0/16"]),
        vpc("vpc-o2", &["127.0.0.0/16"]),
        // Two VPCs with one CIDR on the shared address: ambiguous.
        vpc("vpc-d1", &["127.0.7.0/24"]),
        vpc("vpc-d2", &["127.0.7.0/24"]),
    ];
    let groups = [
        group(
            "sg-web",
            "vpc-sg",
            json!([
                {"protocol": "tcp", "from_port": 8000, "to_port": 8099, "source": {"Cidr": "127.0.2.0/25"}},
                {"protocol": "udp", "from_port": 0, "to_port": 65535, "source": {"Cidr": "0.0.0.0/0"}},
                {"protocol": "-1", "from_port": null, "to_port": null, "source": {"Group": "sg-peers"}}
            ]),
        ),
        group("sg-empty", "vpc-sg", json!([])),
    ];
    let associations = [
        association("vpc-a", "sn-1", &[], None),
        association("vpc-wide", "sn-2", &[], None),
        association("vpc-sg", "sn-1", &["sg-web", "sg-empty"], None),
        association("vpc-o1", "sn-1", &[], Some("127.0.0.11")),
        association("vpc-o2", "sn-2", &[], Some("127.0.0.12")),
        association("vpc-d1", "sn-1", &[], None),
        association("vpc-d2", "sn-2", &[], None),
    ];
    let members = [GroupMember {
        addresses: vec![ip("127.0.2.200")],
        groups: vec!["sg-peers".into()],
    }];
    ClientNetworks::build(
        &ctx(),
        &vpcs,
        &groups,
        &associations,
        &[network("sn-1"), network("sn-2")],
        &members,
    )
}

#[test]
fn admission_table() {
    let n = networks();
    let shared = ip("127.0.0.1");
    type Want = Result<&'static str, Refusal>;
    type Case = (
        &'static str,
        IpAddr,
        u16,
        &'static str,
        Option<&'static str>,
        Want,
    );
    let cases: [Case; 16] = [
        ("inside one VPC", shared, 80, "127.0.1.5", None, Ok("vpc-a")),
        (
            "the longest prefix wins",
            shared,
            80,
            "127.0.1.5",
            None,
            Ok("vpc-a"),
        ),
        (
            "a wider VPC takes the rest",
            shared,
            80,
            "127.0.3.5",
            None,
            Ok("vpc-wide"),
        ),
        (
            "outside every VPC",
            shared,
            80,
            "10.0.0.1",
            None,
            Err(Refusal::NoVpc),
        ),
        (
            "a VPC without association takes no part",
            shared,
            80,
            "127.0.9.9",
            None,
            Ok("vpc-wide"),
        ),
        (
            "a trusted sender names a VPC without association",
            shared,
            80,
            "127.0.9.9",
            Some("vpc-lonely"),
            Err(Refusal::NotAssociated("vpc-lonely".into())),
        ),
        (
            "security groups: CIDR and port",
            shared,
            8080,
            "127.0.2.5",
            None,
            Ok("vpc-sg"),
        ),
        (
            "security groups: port outside the range",
            shared,
            9000,
            "127.0.2.5",
            None,
            Err(Refusal::SecurityGroups("vpc-sg".into())),
        ),
        (
            "security groups: address outside the CIDR (udp rules do not count)",
            shared,
            8080,
            "127.0.2.150",
            None,
            Err(Refusal::SecurityGroups("vpc-sg".into())),
        ),
        (
            "security groups: a member of a referenced group",
            shared,
            9000,
            "127.0.2.200",
            None,
            Ok("vpc-sg"),
        ),
        (
            "an own ingress address",
            ip("127.0.0.11"),
            80,
            "127.0.0.1",
            None,
            Ok("vpc-o1"),
        ),
        (
            "the other own ingress address",
            ip("127.0.0.12"),
            80,
            "127.0.0.1",
            None,
            Ok("vpc-o2"),
        ),
        (
            "an own ingress address only takes its VPC's clients",
            ip("127.0.0.11"),
            80,
            "10.1.1.1",
            None,
            Err(Refusal::NoVpc),
        ),
        (
            "overlapping VPCs on the shared address",
            shared,
            80,
            "127.0.7.7",
            None,
            Err(Refusal::Ambiguous),
        ),
        (
            "a trusted sender names the VPC",
            shared,
            80,
            "10.0.0.1",
            Some("vpc-a"),
            Ok("vpc-a"),
        ),
        (
            "a trusted sender names an unknown VPC",
            shared,
            80,
            "10.0.0.1",
            Some("vpc-nope"),
            Err(Refusal::UnknownVpc("vpc-nope".into())),
        ),
    ];
    for (name, local, port, peer, claimed, want) in cases {
        let got = n
            .admit(local, port, ip(peer), claimed)
            .map(|v| v.id.as_str());
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn own_ingress_addresses_and_arns() {
    let n = networks();
    assert_eq!(
        n.ingress_addresses().into_iter().collect::<Vec<_>>(),
        vec![ip("127.0.0.11"), ip("127.0.0.12")]
    );
    let a = &n.vpcs["vpc-a"];
    assert_eq!(a.arn, "arn:aws:ec2:us-west-2:111122223333:vpc/vpc-a");
    let assoc = a.association.as_ref().unwrap();
    assert_eq!(assoc.network_id, "sn-1");
    assert_eq!(
        assoc.network_arn,
        "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-1"
    );
    // IPv4-mapped IPv6 peers are compared as IPv4.
    assert_eq!(
        n.admit(ip("::ffff:127.0.0.1"), 80, ip("::ffff:127.0.1.9"), None)
            .map(|v| v.id.as_str()),
        Ok("vpc-a")
    );
}

#[test]
fn custom_names_a_vpc_resolves() {
    let mk = |enabled: bool, domains: Option<Vec<&str>>| ClientAssociation {
        id: "a".into(),
        network_id: "sn".into(),
        network_arn: "arn".into(),
        ingress: None,
        advertised: Vec::new(),
        rules: Vec::new(),
        has_security_groups: false,
        private_dns_enabled: enabled,
        private_dns_domains: domains.map(|d| d.into_iter().map(String::from).collect()),
    };
    for (assoc, name, want) in [
        (mk(true, None), "api.example.com", true),
        (mk(false, None), "api.example.com", false),
        (
            mk(true, Some(vec!["*.example.com"])),
            "api.example.com",
            true,
        ),
        (mk(true, Some(vec!["*.example.com"])), "example.com", false),
        (
            mk(true, Some(vec!["*.example.com"])),
            "api.example.org",
            false,
        ),
        (mk(true, Some(vec!["api.corp"])), "api.corp", true),
        (mk(true, Some(vec!["api.corp"])), "web.api.corp", false),
        (mk(true, Some(vec![])), "api.corp", false),
    ] {
        assert_eq!(assoc.resolves_custom_name(name), want, "{name} {assoc:?}");
    }
}
