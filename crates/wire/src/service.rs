//! An AWS service as the front door knows it: how clients sign for it, which wire protocol it
//! speaks, and the few errors the front door itself raises in its vocabulary.

use crate::error::AwsError;

/// The wire protocols of the botocore models (`metadata.protocol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// REST bindings (method + URI template, labels, query), JSON bodies (`vpc-lattice`, `lambda`).
    RestJson1,
    /// `POST /`, operation in `X-Amz-Target`, JSON body (`application/x-amz-json-1.0`).
    AwsJson1_0,
    /// As [`Protocol::AwsJson1_0`] with `application/x-amz-json-1.1` (`tagging`, `logs`).
    AwsJson1_1,
    /// `POST /` with a form body (`Action`, `Version`, flattened members), XML responses
    /// (`iam`, `sts`).
    AwsQuery,
    /// EC2's variant of the query protocol (`<item>` lists, `Response/Errors/Error` errors).
    Ec2Query,
}

impl Protocol {
    /// The protocol's name in the botocore models.
    pub fn model_name(self) -> &'static str {
        match self {
            Protocol::RestJson1 => "rest-json",
            Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => "json",
            Protocol::AwsQuery => "query",
            Protocol::Ec2Query => "ec2",
        }
    }

    /// Whether operations are told apart by their HTTP binding (method + URI).
    pub fn is_rest(self) -> bool {
        self == Protocol::RestJson1
    }

    /// Whether the operation is named in the form body (`Action=…`).
    pub fn is_query(self) -> bool {
        matches!(self, Protocol::AwsQuery | Protocol::Ec2Query)
    }
}

/// One AWS service served on the API address.
#[derive(Debug)]
pub struct Service {
    /// `metadata.serviceId`: "VPC Lattice", "Lambda", "Resource Groups Tagging API".
    pub id: &'static str,
    /// `metadata.signingName`: the SigV4 credential scope's service.
    pub signing_name: &'static str,
    /// `metadata.endpointPrefix`.
    pub endpoint_prefix: &'static str,
    /// `metadata.apiVersion`, also the `Version` of query-protocol requests.
    pub api_version: &'static str,
    pub protocol: Protocol,
    /// `metadata.targetPrefix` (JSON protocols): `X-Amz-Target` is `{prefix}.{Operation}`.
    pub target_prefix: Option<&'static str>,
    /// `metadata.xmlNamespace` (query protocols), the `xmlns` of every response.
    pub xml_namespace: Option<&'static str>,
    /// The first path segments that belong to this REST service even for operations Trellis
    /// does not serve, so that an unknown operation is answered in this service's vocabulary and
    /// checked against its signing name (Lambda's date-versioned URIs). Empty for the default.
    pub path_prefixes: &'static [&'static str],
    /// The front door's own errors, in this service's vocabulary.
    pub errors: ServiceErrors,
}

/// How a service words the errors the front door raises before a handler runs.
#[derive(Debug)]
pub struct ServiceErrors {
    /// The request names an operation Trellis does not serve (`method path` or the target/action).
    pub unknown_operation: fn(&str) -> AwsError,
    /// The input cannot be decoded (malformed JSON, a member of the wrong type).
    pub bad_input: fn(String) -> AwsError,
    /// The code of the service's internal error (`InternalServerException`, `ServiceException`,
    /// `InternalFailure`, …), answered with a generic message and the request ID.
    pub internal_code: &'static str,
    /// The code of its throttling error (`ThrottlingException`, `TooManyRequestsException`).
    pub throttling_code: &'static str,
    /// A request body over the operation's cap (`ValidationException`, `RequestEntityTooLargeException`).
    pub too_large: fn(usize) -> AwsError,
    /// Codes the service answers for any operation although its model lists them for none or
    /// only some (Lambda's `ValidationException` for a member outside its modelled constraints).
    pub common: &'static [&'static str],
}

impl Service {
    /// `{target_prefix}.{operation}` for JSON protocols.
    pub fn target(&self, operation: &str) -> Option<String> {
        self.target_prefix.map(|p| format!("{p}.{operation}"))
    }
}
