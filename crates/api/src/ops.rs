//! Operation names for metrics and logs: the VPC Lattice operation a method and path stand for,
//! from the REST bindings of the `vpc-lattice/2022-11-30` model (`*` is one path segment).

use axum::http::Method;

const OPERATIONS: &[(&str, &str, &str)] = &[
    ("PATCH", "/services/*/listeners/*/rules", "BatchUpdateRule"),
    (
        "POST",
        "/accesslogsubscriptions",
        "CreateAccessLogSubscription",
    ),
    ("POST", "/services/*/listeners", "CreateListener"),
    (
        "POST",
        "/resourceconfigurations",
        "CreateResourceConfiguration",
    ),
    ("POST", "/resourcegateways", "CreateResourceGateway"),
    ("POST", "/services/*/listeners/*/rules", "CreateRule"),
    ("POST", "/services", "CreateService"),
    ("POST", "/servicenetworks", "CreateServiceNetwork"),
    (
        "POST",
        "/servicenetworkresourceassociations",
        "CreateServiceNetworkResourceAssociation",
    ),
    (
        "POST",
        "/servicenetworkserviceassociations",
        "CreateServiceNetworkServiceAssociation",
    ),
    (
        "POST",
        "/servicenetworkvpcassociations",
        "CreateServiceNetworkVpcAssociation",
    ),
    ("POST", "/targetgroups", "CreateTargetGroup"),
    (
        "DELETE",
        "/accesslogsubscriptions/*",
        "DeleteAccessLogSubscription",
    ),
    ("DELETE", "/authpolicy/*", "DeleteAuthPolicy"),
    (
        "DELETE",
        "/domainverifications/*",
        "DeleteDomainVerification",
    ),
    ("DELETE", "/services/*/listeners/*", "DeleteListener"),
    (
        "DELETE",
        "/resourceconfigurations/*",
        "DeleteResourceConfiguration",
    ),
    (
        "DELETE",
        "/resourceendpointassociations/*",
        "DeleteResourceEndpointAssociation",
    ),
    ("DELETE", "/resourcegateways/*", "DeleteResourceGateway"),
    ("DELETE", "/resourcepolicy/*", "DeleteResourcePolicy"),
    ("DELETE", "/services/*/listeners/*/rules/*", "DeleteRule"),
    ("DELETE", "/services/*", "DeleteService"),
    ("DELETE", "/servicenetworks/*", "DeleteServiceNetwork"),
    (
        "DELETE",
        "/servicenetworkresourceassociations/*",
        "DeleteServiceNetworkResourceAssociation",
    ),
    (
        "DELETE",
        "/servicenetworkserviceassociations/*",
        "DeleteServiceNetworkServiceAssociation",
    ),
    (
        "DELETE",
        "/servicenetworkvpcassociations/*",
        "DeleteServiceNetworkVpcAssociation",
    ),
    ("DELETE", "/targetgroups/*", "DeleteTargetGroup"),
    (
        "POST",
        "/targetgroups/*/deregistertargets",
        "DeregisterTargets",
    ),
    (
        "GET",
        "/accesslogsubscriptions/*",
        "GetAccessLogSubscription",
    ),
    ("GET", "/authpolicy/*", "GetAuthPolicy"),
    ("GET", "/domainverifications/*", "GetDomainVerification"),
    ("GET", "/services/*/listeners/*", "GetListener"),
    (
        "GET",
        "/resourceconfigurations/*",
        "GetResourceConfiguration",
    ),
    ("GET", "/resourcegateways/*", "GetResourceGateway"),
    ("GET", "/resourcepolicy/*", "GetResourcePolicy"),
    ("GET", "/services/*/listeners/*/rules/*", "GetRule"),
    ("GET", "/services/*", "GetService"),
    ("GET", "/servicenetworks/*", "GetServiceNetwork"),
    (
        "GET",
        "/servicenetworkresourceassociations/*",
        "GetServiceNetworkResourceAssociation",
    ),
    (
        "GET",
        "/servicenetworkserviceassociations/*",
        "GetServiceNetworkServiceAssociation",
    ),
    (
        "GET",
        "/servicenetworkvpcassociations/*",
        "GetServiceNetworkVpcAssociation",
    ),
    ("GET", "/targetgroups/*", "GetTargetGroup"),
    (
        "GET",
        "/accesslogsubscriptions",
        "ListAccessLogSubscriptions",
    ),
    ("GET", "/domainverifications", "ListDomainVerifications"),
    ("GET", "/services/*/listeners", "ListListeners"),
    (
        "GET",
        "/resourceconfigurations",
        "ListResourceConfigurations",
    ),
    (
        "GET",
        "/resourceendpointassociations",
        "ListResourceEndpointAssociations",
    ),
    ("GET", "/resourcegateways", "ListResourceGateways"),
    ("GET", "/services/*/listeners/*/rules", "ListRules"),
    (
        "GET",
        "/servicenetworkresourceassociations",
        "ListServiceNetworkResourceAssociations",
    ),
    (
        "GET",
        "/servicenetworkserviceassociations",
        "ListServiceNetworkServiceAssociations",
    ),
    (
        "GET",
        "/servicenetworkvpcassociations",
        "ListServiceNetworkVpcAssociations",
    ),
    (
        "GET",
        "/servicenetworkvpcendpointassociations",
        "ListServiceNetworkVpcEndpointAssociations",
    ),
    ("GET", "/servicenetworks", "ListServiceNetworks"),
    ("GET", "/services", "ListServices"),
    ("GET", "/tags/*", "ListTagsForResource"),
    ("GET", "/targetgroups", "ListTargetGroups"),
    ("POST", "/targetgroups/*/listtargets", "ListTargets"),
    ("PUT", "/authpolicy/*", "PutAuthPolicy"),
    ("PUT", "/resourcepolicy/*", "PutResourcePolicy"),
    ("POST", "/targetgroups/*/registertargets", "RegisterTargets"),
    ("POST", "/domainverifications", "StartDomainVerification"),
    ("POST", "/tags/*", "TagResource"),
    ("DELETE", "/tags/*", "UntagResource"),
    (
        "PATCH",
        "/accesslogsubscriptions/*",
        "UpdateAccessLogSubscription",
    ),
    ("PATCH", "/services/*/listeners/*", "UpdateListener"),
    (
        "PATCH",
        "/resourceconfigurations/*",
        "UpdateResourceConfiguration",
    ),
    ("PATCH", "/resourcegateways/*", "UpdateResourceGateway"),
    ("PATCH", "/services/*/listeners/*/rules/*", "UpdateRule"),
    ("PATCH", "/services/*", "UpdateService"),
    ("PATCH", "/servicenetworks/*", "UpdateServiceNetwork"),
    (
        "PATCH",
        "/servicenetworkvpcassociations/*",
        "UpdateServiceNetworkVpcAssociation",
    ),
    ("PATCH", "/targetgroups/*", "UpdateTargetGroup"),
    // The Lambda API subset (`lambda/2015-03-31`) served by trellis-functions.
    ("POST", "/2015-03-31/functions", "CreateFunction"),
    ("GET", "/2015-03-31/functions", "ListFunctions"),
    ("GET", "/2015-03-31/functions/*", "GetFunction"),
    ("DELETE", "/2015-03-31/functions/*", "DeleteFunction"),
    (
        "GET",
        "/2015-03-31/functions/*/configuration",
        "GetFunctionConfiguration",
    ),
    (
        "PUT",
        "/2015-03-31/functions/*/configuration",
        "UpdateFunctionConfiguration",
    ),
    ("PUT", "/2015-03-31/functions/*/code", "UpdateFunctionCode"),
    ("POST", "/2015-03-31/functions/*/versions", "PublishVersion"),
    (
        "GET",
        "/2015-03-31/functions/*/versions",
        "ListVersionsByFunction",
    ),
    ("POST", "/2015-03-31/functions/*/aliases", "CreateAlias"),
    ("GET", "/2015-03-31/functions/*/aliases", "ListAliases"),
    ("GET", "/2015-03-31/functions/*/aliases/*", "GetAlias"),
    ("PUT", "/2015-03-31/functions/*/aliases/*", "UpdateAlias"),
    ("DELETE", "/2015-03-31/functions/*/aliases/*", "DeleteAlias"),
    ("POST", "/2015-03-31/functions/*/invocations", "Invoke"),
    ("GET", "/2017-03-31/tags/*", "ListTags"),
    ("POST", "/2017-03-31/tags/*", "TagResource"),
    ("DELETE", "/2017-03-31/tags/*", "UntagResource"),
    (
        "GET",
        "/2020-06-30/functions/*/code-signing-config",
        "GetFunctionCodeSigningConfig",
    ),
];

/// The operation name, `Admin` for Trellis's own endpoints, or `Unknown`.
pub fn operation_name(method: &Method, path: &str) -> &'static str {
    if path.starts_with("/_trellis/") || path == "/metrics" {
        return "Admin";
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    OPERATIONS
        .iter()
        .find(|(m, pattern, _)| {
            *m == method.as_str() && {
                let p: Vec<&str> = pattern.split('/').collect();
                p.len() == segments.len()
                    && p.iter().zip(&segments).all(|(a, b)| *a == "*" || a == b)
            }
        })
        .map(|(_, _, name)| *name)
        .unwrap_or("Unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_operations() {
        let cases = [
            (Method::POST, "/services", "CreateService"),
            (Method::GET, "/services/svc-0123456789abcdef0", "GetService"),
            (
                Method::PATCH,
                "/services/s/listeners/l/rules",
                "BatchUpdateRule",
            ),
            (
                Method::POST,
                "/targetgroups/tg-1/listtargets",
                "ListTargets",
            ),
            (Method::DELETE, "/tags/arn%3Aaws", "UntagResource"),
            (Method::GET, "/nope", "Unknown"),
            (Method::GET, "/_trellis/health", "Admin"),
            (Method::GET, "/2015-03-31/functions/", "ListFunctions"),
            (Method::GET, "/2015-03-31/functions/f", "GetFunction"),
            (
                Method::POST,
                "/2015-03-31/functions/arn%3Aaws%3Alambda/invocations",
                "Invoke",
            ),
            (
                Method::DELETE,
                "/2015-03-31/functions/f/aliases/a",
                "DeleteAlias",
            ),
            (
                Method::DELETE,
                "/2017-03-31/tags/arn%3Aaws%3Alambda",
                "UntagResource",
            ),
            (
                Method::GET,
                "/2020-06-30/functions/f/code-signing-config",
                "GetFunctionCodeSigningConfig",
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(operation_name(&m, p), want, "{m} {p}");
        }
    }
}
