//! `trellis_dataplane::load` against a real SQLite store, populated through the store API with documents
//! built from the model types (laid out as the API lays them out: parents, names, refs).

use trellis_dataplane::{LoadError, load};
use trellis_model::Timestamp;
use trellis_model::dns::service_dns_entry;
use trellis_model::resources::association::{AssociationStatus, ServiceNetworkServiceAssociation};
use trellis_model::resources::listener::{Listener, ListenerProtocol};
use trellis_model::resources::rule::{Rule, RuleAction, WeightedTargetGroup};
use trellis_model::resources::service::{Service, ServiceStatus};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::target_group::{
    Target, TargetGroup, TargetGroupConfig, TargetGroupProtocol, TargetGroupStatus,
    TargetGroupType, target_key,
};
use trellis_model::resources::{AuthType, Tags};
use trellis_model::{Context, ResourceKind};
use trellis_snapshot::{CompileError, PortProtocols};
use trellis_store::{Record, Store, Tx};

const REGION: &str = "us-west-2";
const ACCOUNT: &str = "111122223333";
const SN: &str = "sn-0000000000000000a";
const SVC: &str = "svc-0000000000000000b";
const SNSA: &str = "snsa-0000000000000000c";
const LISTENER: &str = "listener-0000000000000000d";
const DEFAULT_RULE: &str = "rule-0000000000000000e";
const TG: &str = "tg-0000000000000000f";

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: REGION.into(),
        account_id: ACCOUNT.into(),
    }
}

fn record(
    kind: &str,
    id: &str,
    parent: Option<&str>,
    name: Option<&str>,
    refs: &[&str],
    body: &impl serde::Serialize,
) -> Record {
    Record {
        kind: kind.into(),
        id: id.into(),
        parent: parent.map(str::to_string),
        name: name.map(str::to_string),
        arn: None,
        refs: refs.iter().map(|r| r.to_string()).collect(),
        body: serde_json::to_value(body).unwrap(),
        seq: 0,
    }
}

async fn populate(tx: &mut Tx) {
    let c = ctx();
    let now = Timestamp::now();
    let sn = ServiceNetwork {
        id: SN.into(),
        name: "net".into(),
        arn: c.top_level_arn(ResourceKind::ServiceNetwork, SN),
        auth_type: AuthType::None,
        sharing_enabled: false,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let dns_entry = service_dns_entry("billing", SVC, REGION, ACCOUNT);
    let svc = Service {
        id: SVC.into(),
        name: "billing".into(),
        arn: c.top_level_arn(ResourceKind::Service, SVC),
        auth_type: AuthType::None,
        custom_domain_name: Some("Billing.Example.com".into()),
        certificate_arn: None,
        status: ServiceStatus::Active,
        dns_entry: dns_entry.clone(),
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let snsa = ServiceNetworkServiceAssociation {
        id: SNSA.into(),
        arn: c.top_level_arn(ResourceKind::ServiceNetworkServiceAssociation, SNSA),
        status: AssociationStatus::Active,
        created_by: ACCOUNT.into(),
        created_at: now,
        service_id: SVC.into(),
        service_name: "billing".into(),
        service_arn: svc.arn.clone(),
        service_network_id: SN.into(),
        service_network_name: "net".into(),
        service_network_arn: sn.arn.clone(),
        dns_entry,
        custom_domain_name: svc.custom_domain_name.clone(),
        tags: Tags::new(),
    };
    let action = RuleAction::Forward {
        target_groups: vec![WeightedTargetGroup {
            target_group_id: TG.into(),
            weight: 100,
        }],
    };
    let listener = Listener {
        id: LISTENER.into(),
        name: "https-443".into(),
        arn: c.listener_arn(SVC, LISTENER),
        service_id: SVC.into(),
        service_arn: svc.arn.clone(),
        protocol: ListenerProtocol::Https,
        port: 443,
        default_action: action.clone(),
        default_rule_id: DEFAULT_RULE.into(),
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let default_rule = Rule {
        id: DEFAULT_RULE.into(),
        name: "default".into(),
        arn: c.rule_arn(SVC, LISTENER, DEFAULT_RULE),
        service_id: SVC.into(),
        listener_id: LISTENER.into(),
        is_default: true,
        priority: None,
        rule_match: None,
        action,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let tg = TargetGroup {
        id: TG.into(),
        name: "backends".into(),
        arn: c.top_level_arn(ResourceKind::TargetGroup, TG),
        target_type: TargetGroupType::Ip,
        config: TargetGroupConfig {
            port: Some(8080),
            protocol: Some(TargetGroupProtocol::Http),
            ..Default::default()
        },
        status: TargetGroupStatus::Active,
        created_at: now,
        last_updated_at: now,
        tags: Tags::new(),
    };
    let target = Target {
        id: "127.0.0.1".into(),
        port: Some(9001),
        registered_at: now,
    };
    let key = target_key(&target.id, target.port);
    let policy = serde_json::json!({
        "resourceId": SVC,
        "resourceArn": svc.arn,
        "resourceType": "SERVICE",
        "policy": r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#,
        "createdAt": now,
        "lastUpdatedAt": now,
    });
    for rec in [
        record("service-network", SN, None, Some("net"), &[], &sn),
        record("service", SVC, None, Some("billing"), &[], &svc),
        record(
            "service-network-service-association",
            SNSA,
            Some(SN),
            Some(SVC),
            &[SVC],
            &snsa,
        ),
        record(
            "listener",
            LISTENER,
            Some(SVC),
            Some("https-443"),
            &[TG],
            &listener,
        ),
        record(
            "rule",
            DEFAULT_RULE,
            Some(LISTENER),
            Some("default"),
            &[TG],
            &default_rule,
        ),
        record("target-group", TG, None, Some("backends"), &[], &tg),
        record(
            "target",
            &format!("{TG}/{key}"),
            Some(TG),
            Some(&key),
            &[],
            &target,
        ),
        record("auth-policy", SVC, Some(SVC), None, &[], &policy),
    ] {
        tx.insert(&rec).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_a_consistent_snapshot_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("t.db")))
        .await
        .unwrap();

    let empty = load(&store, &ctx()).await.unwrap();
    assert!(empty.hosts.is_empty() && empty.ports.is_empty());

    let mut tx = store.write().await.unwrap();
    populate(&mut tx).await;
    let revision = tx.commit().await.unwrap();

    let snap = load(&store, &ctx()).await.unwrap();
    assert_eq!(snap.revision, revision);
    let generated = service_dns_entry("billing", SVC, REGION, ACCOUNT).domain_name;
    let mut hosts: Vec<&str> = snap.hosts.keys().map(String::as_str).collect();
    hosts.sort();
    let mut want = vec![generated.as_str(), "billing.example.com"];
    want.sort();
    assert_eq!(hosts, want);
    assert_eq!(snap.tls_names, want);
    assert_eq!(snap.dns_names, want);
    assert_eq!(
        snap.ports.get(&443),
        Some(&PortProtocols {
            https: true,
            ..Default::default()
        })
    );
    let svc = &snap.hosts[&generated];
    assert_eq!(svc.networks.len(), 1);
    assert!(svc.auth_policy.is_some());
    assert_eq!(svc.listeners[&443].routes.default_rule_id(), DEFAULT_RULE);
    let tg = &snap.target_groups[TG];
    assert!(tg.in_use);
    assert_eq!(tg.targets.len(), 1);
    assert_eq!(tg.targets[0].addr, Some("127.0.0.1:9001".parse().unwrap()));

    // Removing the association takes the service out of service; its listener still uses the
    // group.
    let mut tx = store.write().await.unwrap();
    assert!(
        tx.delete("service-network-service-association", SNSA)
            .await
            .unwrap()
    );
    let revision = tx.commit().await.unwrap();
    let snap = load(&store, &ctx()).await.unwrap();
    assert_eq!(snap.revision, revision);
    assert!(snap.hosts.is_empty() && snap.ports.is_empty() && snap.dns_names.is_empty());
    assert!(snap.target_groups[TG].in_use);

    // A document that no longer decodes rejects the whole snapshot.
    let mut tx = store.write().await.unwrap();
    let mut rec = tx.get("target-group", TG).await.unwrap().unwrap();
    rec.body = serde_json::json!({"id": TG, "type": "CARRIER_PIGEON"});
    tx.update(&rec).await.unwrap();
    tx.commit().await.unwrap();
    match load(&store, &ctx()).await {
        Err(LoadError::Compile(CompileError::Document { kind, id, .. })) => {
            assert_eq!((kind.as_str(), id.as_str()), ("target-group", TG));
        }
        other => panic!("expected a document error, got {other:?}"),
    }
    store.close().await;
}
