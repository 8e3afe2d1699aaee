//! The VPC Lattice operations Trellis serves (`vpc-lattice/2022-11-30`, restJson1), each
//! declared once with its binding from the model; the router, the SigV4 gate, the metrics and
//! the docs read them from the table ([`trellis_wire::Table`]).

use axum::http::Method;
use trellis_model::ValidationError;
use trellis_wire::{AwsError, Operation, Protocol, Service, ServiceErrors};

use crate::error::ApiError;
use crate::{
    AppState, access_logs, associations, listeners, policies, rules, service_networks, services,
    tags, target_groups,
};

/// VPC Lattice as the front door knows it.
pub static LATTICE: Service = Service {
    id: "VPC Lattice",
    signing_name: "vpc-lattice",
    endpoint_prefix: "vpc-lattice",
    api_version: "2022-11-30",
    protocol: Protocol::RestJson1,
    target_prefix: None,
    xml_namespace: None,
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation,
        bad_input,
        internal_code: "InternalServerException",
        throttling_code: "ThrottlingException",
        too_large,
    },
};

/// The Lattice operations of the model that Trellis does not serve, named in the answer to them.
pub const NOT_SERVED: &[&str] = &[
    "CreateResourceConfiguration",
    "CreateResourceGateway",
    "CreateServiceNetworkResourceAssociation",
    "DeleteDomainVerification",
    "DeleteResourceConfiguration",
    "DeleteResourceEndpointAssociation",
    "DeleteResourceGateway",
    "DeleteServiceNetworkResourceAssociation",
    "GetDomainVerification",
    "GetResourceConfiguration",
    "GetResourceGateway",
    "GetServiceNetworkResourceAssociation",
    "ListDomainVerifications",
    "ListResourceConfigurations",
    "ListResourceEndpointAssociations",
    "ListResourceGateways",
    "ListServiceNetworkResourceAssociations",
    "ListServiceNetworkVpcEndpointAssociations",
    "StartDomainVerification",
    "UpdateResourceConfiguration",
    "UpdateResourceGateway",
];

fn unknown_operation(what: &str) -> AwsError {
    ApiError::Validation(ValidationError {
        message: format!(
            "Trellis does not implement the operation {what}: resource gateways, resource configurations, domain verifications and VPC endpoint associations are not supported"
        ),
        reason: "unknownOperation",
        fields: Vec::new(),
    })
    .into()
}

fn bad_input(message: String) -> AwsError {
    ApiError::Validation(ValidationError::cannot_parse(message)).into()
}

fn too_large(cap: usize) -> AwsError {
    ApiError::validation_other(format!("Request body exceeds {cap} bytes")).into()
}

/// `op!(Name, METHOD "uri" status, handler)`: one Lattice operation with a typed handler
/// (`async fn(AppState, *Input, Call) -> ApiResult<*Output>`).
macro_rules! op {
    ($name:ident, $method:ident $uri:literal $status:literal, $handler:path) => {
        Operation::rest(
            &LATTICE,
            stringify!($name),
            (Method::$method, $uri, $status),
            $handler,
        )
    };
}

/// Every Lattice operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    vec![
        // service_networks
        op!(CreateServiceNetwork, POST "/servicenetworks" 201, service_networks::create),
        op!(DeleteServiceNetwork, DELETE "/servicenetworks/{serviceNetworkIdentifier}" 204, service_networks::delete),
        op!(GetServiceNetwork, GET "/servicenetworks/{serviceNetworkIdentifier}" 200, service_networks::read),
        op!(ListServiceNetworks, GET "/servicenetworks" 200, service_networks::list),
        op!(UpdateServiceNetwork, PATCH "/servicenetworks/{serviceNetworkIdentifier}" 200, service_networks::update),
        // services
        op!(CreateService, POST "/services" 201, services::create),
        op!(DeleteService, DELETE "/services/{serviceIdentifier}" 200, services::delete),
        op!(GetService, GET "/services/{serviceIdentifier}" 200, services::read),
        op!(ListServices, GET "/services" 200, services::list),
        op!(UpdateService, PATCH "/services/{serviceIdentifier}" 200, services::update),
        // associations
        op!(CreateServiceNetworkServiceAssociation, POST "/servicenetworkserviceassociations" 200, associations::create_service),
        op!(CreateServiceNetworkVpcAssociation, POST "/servicenetworkvpcassociations" 200, associations::create_vpc),
        op!(DeleteServiceNetworkServiceAssociation, DELETE "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}" 200, associations::delete_service),
        op!(DeleteServiceNetworkVpcAssociation, DELETE "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::delete_vpc),
        op!(GetServiceNetworkServiceAssociation, GET "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}" 200, associations::read_service),
        op!(GetServiceNetworkVpcAssociation, GET "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::read_vpc),
        op!(ListServiceNetworkServiceAssociations, GET "/servicenetworkserviceassociations" 200, associations::list_service),
        op!(ListServiceNetworkVpcAssociations, GET "/servicenetworkvpcassociations" 200, associations::list_vpc),
        op!(UpdateServiceNetworkVpcAssociation, PATCH "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::update_vpc),
        // listeners
        op!(CreateListener, POST "/services/{serviceIdentifier}/listeners" 201, listeners::create),
        op!(DeleteListener, DELETE "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 204, listeners::delete),
        op!(GetListener, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 200, listeners::read),
        op!(ListListeners, GET "/services/{serviceIdentifier}/listeners" 200, listeners::list),
        op!(UpdateListener, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 200, listeners::update),
        // rules
        op!(BatchUpdateRule, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 200, rules::batch_update),
        op!(CreateRule, POST "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 201, rules::create),
        op!(DeleteRule, DELETE "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 204, rules::delete),
        op!(GetRule, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 200, rules::read),
        op!(ListRules, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 200, rules::list),
        op!(UpdateRule, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 200, rules::update),
        // target_groups
        op!(CreateTargetGroup, POST "/targetgroups" 201, target_groups::create),
        op!(DeleteTargetGroup, DELETE "/targetgroups/{targetGroupIdentifier}" 200, target_groups::delete),
        op!(DeregisterTargets, POST "/targetgroups/{targetGroupIdentifier}/deregistertargets" 200, target_groups::deregister_targets),
        op!(GetTargetGroup, GET "/targetgroups/{targetGroupIdentifier}" 200, target_groups::read),
        op!(ListTargetGroups, GET "/targetgroups" 200, target_groups::list),
        op!(ListTargets, POST "/targetgroups/{targetGroupIdentifier}/listtargets" 200, target_groups::list_targets),
        op!(RegisterTargets, POST "/targetgroups/{targetGroupIdentifier}/registertargets" 200, target_groups::register_targets),
        op!(UpdateTargetGroup, PATCH "/targetgroups/{targetGroupIdentifier}" 200, target_groups::update),
        // access_logs
        op!(CreateAccessLogSubscription, POST "/accesslogsubscriptions" 201, access_logs::create),
        op!(DeleteAccessLogSubscription, DELETE "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 204, access_logs::delete),
        op!(GetAccessLogSubscription, GET "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 200, access_logs::read),
        op!(ListAccessLogSubscriptions, GET "/accesslogsubscriptions" 200, access_logs::list),
        op!(UpdateAccessLogSubscription, PATCH "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 200, access_logs::update),
        // policies
        op!(DeleteAuthPolicy, DELETE "/authpolicy/{resourceIdentifier+}" 204, policies::delete_auth),
        op!(DeleteResourcePolicy, DELETE "/resourcepolicy/{resourceArn+}" 204, policies::delete_resource),
        op!(GetAuthPolicy, GET "/authpolicy/{resourceIdentifier+}" 200, policies::get_auth),
        op!(GetResourcePolicy, GET "/resourcepolicy/{resourceArn+}" 200, policies::get_resource),
        op!(PutAuthPolicy, PUT "/authpolicy/{resourceIdentifier+}" 200, policies::put_auth),
        op!(PutResourcePolicy, PUT "/resourcepolicy/{resourceArn+}" 200, policies::put_resource),
        // tags
        op!(ListTagsForResource, GET "/tags/{resourceArn+}" 200, tags::list),
        op!(TagResource, POST "/tags/{resourceArn+}" 200, tags::tag),
        op!(UntagResource, DELETE "/tags/{resourceArn+}" 200, tags::untag),
    ]
}
