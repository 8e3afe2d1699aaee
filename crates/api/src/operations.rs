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
        // Identity-based authorization refuses any operation with it; the model lists it for
        // most, not all (DeleteTargetGroup).
        common: &["AccessDeniedException"],
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

/// The errors each Lattice operation can raise, as the model lists them (a test checks each
/// operation's list against botocore's).
mod errors {
    /// Creates, and the updates that can reach a quota.
    pub const CREATE: &[&str] = &[
        "AccessDeniedException",
        "ConflictException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ServiceQuotaExceededException",
        "ThrottlingException",
        "ValidationException",
    ];
    /// Updates and deletes.
    pub const CHANGE: &[&str] = &[
        "AccessDeniedException",
        "ConflictException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "ValidationException",
    ];
    /// Reads of one resource (and the writes the model lists with them).
    pub const READ: &[&str] = &[
        "AccessDeniedException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "ValidationException",
    ];
    /// Lists of top-level resources.
    pub const LIST: &[&str] = &[
        "AccessDeniedException",
        "InternalServerException",
        "ThrottlingException",
        "ValidationException",
    ];
    /// DeleteTargetGroup.
    pub const DELETE_TARGET_GROUP: &[&str] = &[
        "ConflictException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ThrottlingException",
        "ValidationException",
    ];
    /// ListTagsForResource and UntagResource.
    pub const TAGS: &[&str] = &[
        "AccessDeniedException",
        "InternalServerException",
        "ResourceNotFoundException",
        "ValidationException",
    ];
}

/// `op!(Name, METHOD "uri" status, handler, ERRORS)`: one Lattice operation with a typed handler
/// (`async fn(AppState, *Input, Call) -> ApiResult<*Output>`) and the errors it can raise.
macro_rules! op {
    ($name:ident, $method:ident $uri:literal $status:literal, $handler:path, $errors:ident) => {
        Operation::rest(
            &LATTICE,
            stringify!($name),
            (Method::$method, $uri, $status),
            $handler,
        )
        .errors(errors::$errors)
    };
}

/// Every Lattice operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    vec![
        // service_networks
        op!(CreateServiceNetwork, POST "/servicenetworks" 201, service_networks::create, CREATE),
        op!(DeleteServiceNetwork, DELETE "/servicenetworks/{serviceNetworkIdentifier}" 204, service_networks::delete, CHANGE),
        op!(GetServiceNetwork, GET "/servicenetworks/{serviceNetworkIdentifier}" 200, service_networks::read, READ),
        op!(ListServiceNetworks, GET "/servicenetworks" 200, service_networks::list, LIST),
        op!(UpdateServiceNetwork, PATCH "/servicenetworks/{serviceNetworkIdentifier}" 200, service_networks::update, CHANGE),
        // services
        op!(CreateService, POST "/services" 201, services::create, CREATE),
        op!(DeleteService, DELETE "/services/{serviceIdentifier}" 200, services::delete, CHANGE),
        op!(GetService, GET "/services/{serviceIdentifier}" 200, services::read, READ),
        op!(ListServices, GET "/services" 200, services::list, LIST),
        op!(UpdateService, PATCH "/services/{serviceIdentifier}" 200, services::update, CREATE),
        // associations
        op!(CreateServiceNetworkServiceAssociation, POST "/servicenetworkserviceassociations" 200, associations::create_service, CREATE),
        op!(CreateServiceNetworkVpcAssociation, POST "/servicenetworkvpcassociations" 200, associations::create_vpc, CREATE),
        op!(DeleteServiceNetworkServiceAssociation, DELETE "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}" 200, associations::delete_service, CHANGE),
        op!(DeleteServiceNetworkVpcAssociation, DELETE "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::delete_vpc, CHANGE),
        op!(GetServiceNetworkServiceAssociation, GET "/servicenetworkserviceassociations/{serviceNetworkServiceAssociationIdentifier}" 200, associations::read_service, READ),
        op!(GetServiceNetworkVpcAssociation, GET "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::read_vpc, READ),
        op!(ListServiceNetworkServiceAssociations, GET "/servicenetworkserviceassociations" 200, associations::list_service, LIST),
        op!(ListServiceNetworkVpcAssociations, GET "/servicenetworkvpcassociations" 200, associations::list_vpc, LIST),
        op!(UpdateServiceNetworkVpcAssociation, PATCH "/servicenetworkvpcassociations/{serviceNetworkVpcAssociationIdentifier}" 200, associations::update_vpc, CHANGE),
        // listeners
        op!(CreateListener, POST "/services/{serviceIdentifier}/listeners" 201, listeners::create, CREATE),
        op!(DeleteListener, DELETE "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 204, listeners::delete, CHANGE),
        op!(GetListener, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 200, listeners::read, READ),
        op!(ListListeners, GET "/services/{serviceIdentifier}/listeners" 200, listeners::list, READ),
        op!(UpdateListener, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}" 200, listeners::update, CREATE),
        // rules
        op!(BatchUpdateRule, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 200, rules::batch_update, CHANGE),
        op!(CreateRule, POST "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 201, rules::create, CREATE),
        op!(DeleteRule, DELETE "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 204, rules::delete, CHANGE),
        op!(GetRule, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 200, rules::read, READ),
        op!(ListRules, GET "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules" 200, rules::list, READ),
        op!(UpdateRule, PATCH "/services/{serviceIdentifier}/listeners/{listenerIdentifier}/rules/{ruleIdentifier}" 200, rules::update, CREATE),
        // target_groups
        op!(CreateTargetGroup, POST "/targetgroups" 201, target_groups::create, CREATE),
        op!(DeleteTargetGroup, DELETE "/targetgroups/{targetGroupIdentifier}" 200, target_groups::delete, DELETE_TARGET_GROUP),
        op!(DeregisterTargets, POST "/targetgroups/{targetGroupIdentifier}/deregistertargets" 200, target_groups::deregister_targets, CHANGE),
        op!(GetTargetGroup, GET "/targetgroups/{targetGroupIdentifier}" 200, target_groups::read, READ),
        op!(ListTargetGroups, GET "/targetgroups" 200, target_groups::list, LIST),
        op!(ListTargets, POST "/targetgroups/{targetGroupIdentifier}/listtargets" 200, target_groups::list_targets, READ),
        op!(RegisterTargets, POST "/targetgroups/{targetGroupIdentifier}/registertargets" 200, target_groups::register_targets, CREATE),
        op!(UpdateTargetGroup, PATCH "/targetgroups/{targetGroupIdentifier}" 200, target_groups::update, CREATE),
        // access_logs
        op!(CreateAccessLogSubscription, POST "/accesslogsubscriptions" 201, access_logs::create, CHANGE),
        op!(DeleteAccessLogSubscription, DELETE "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 204, access_logs::delete, READ),
        op!(GetAccessLogSubscription, GET "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 200, access_logs::read, READ),
        op!(ListAccessLogSubscriptions, GET "/accesslogsubscriptions" 200, access_logs::list, LIST),
        op!(UpdateAccessLogSubscription, PATCH "/accesslogsubscriptions/{accessLogSubscriptionIdentifier}" 200, access_logs::update, CHANGE),
        // policies
        op!(DeleteAuthPolicy, DELETE "/authpolicy/{resourceIdentifier+}" 204, policies::delete_auth, READ),
        op!(DeleteResourcePolicy, DELETE "/resourcepolicy/{resourceArn+}" 204, policies::delete_resource, READ),
        op!(GetAuthPolicy, GET "/authpolicy/{resourceIdentifier+}" 200, policies::get_auth, READ),
        op!(GetResourcePolicy, GET "/resourcepolicy/{resourceArn+}" 200, policies::get_resource, READ),
        op!(PutAuthPolicy, PUT "/authpolicy/{resourceIdentifier+}" 200, policies::put_auth, READ),
        op!(PutResourcePolicy, PUT "/resourcepolicy/{resourceArn+}" 200, policies::put_resource, READ),
        // tags
        op!(ListTagsForResource, GET "/tags/{resourceArn+}" 200, tags::list, TAGS),
        op!(TagResource, POST "/tags/{resourceArn+}" 200, tags::tag, READ),
        op!(UntagResource, DELETE "/tags/{resourceArn+}" 200, tags::untag, TAGS),
    ]
}
