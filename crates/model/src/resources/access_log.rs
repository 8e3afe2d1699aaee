//! The access-log subscription document: where a service network's or service's access logs go
//! (a CloudWatch Logs log group, an S3 bucket or a Firehose delivery stream). The data plane
//! delivers records to the subscriptions whose destination is a log group Trellis hosts
//! (`trellis-logs`); the others are stored only.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::Tags;
use crate::Timestamp;

/// `serviceNetworkLogType`: which logs of a service network the subscription receives.
pub const SERVICE_NETWORK_LOG_TYPES: [&str; 2] = ["SERVICE", "RESOURCE"];

/// Store record: kind `access-log-subscription`, parent = the resource (SN or service) id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogSubscription {
    pub id: String,
    pub arn: String,
    /// `sn-…` or `svc-…`.
    pub resource_id: String,
    pub resource_arn: String,
    pub destination_arn: String,
    /// Only for service-network subscriptions (`SERVICE` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_network_log_type: Option<String>,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}

/// The kinds of destination Lattice delivers access logs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationType {
    /// `arn:<p>:logs:<region>:<account>:log-group:<name>[:*]`
    CloudWatchLogs,
    /// `arn:<p>:s3:::<bucket>[/<prefix>]`
    S3,
    /// `arn:<p>:firehose:<region>:<account>:deliverystream/<name>`
    Firehose,
}

impl DestinationType {
    pub fn as_str(self) -> &'static str {
        match self {
            DestinationType::CloudWatchLogs => "CloudWatch Logs log group",
            DestinationType::S3 => "S3 bucket",
            DestinationType::Firehose => "Firehose delivery stream",
        }
    }
}

/// The model's `AccessLogDestinationArn` pattern (whole value).
pub const DESTINATION_ARN_PATTERN: &str =
    "arn(:[a-z0-9]+([.-][a-z0-9]+)*){2}(:([a-z0-9]+([.-][a-z0-9]+)*)?){2}:([^/].*)?";

static DESTINATION_ARN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{DESTINATION_ARN_PATTERN}$")).unwrap());
static LOG_GROUP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^arn:[a-z0-9-]+:logs:[a-z0-9-]+:[0-9]{12}:log-group:[A-Za-z0-9_./#-]{1,512}(:\*)?$",
    )
    .unwrap()
});
static BUCKET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:[a-z0-9-]+:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$").unwrap()
});
static DELIVERY_STREAM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^arn:[a-z0-9-]+:firehose:[a-z0-9-]+:[0-9]{12}:deliverystream/[A-Za-z0-9_.-]{1,64}$",
    )
    .unwrap()
});

/// Whether `s` satisfies the model's destination ARN pattern.
pub fn is_destination_arn(s: &str) -> bool {
    DESTINATION_ARN.is_match(s)
}

/// The destination type an ARN names, or `None` when it is none of the three supported ones.
pub fn destination_type(arn: &str) -> Option<DestinationType> {
    if LOG_GROUP.is_match(arn) {
        Some(DestinationType::CloudWatchLogs)
    } else if BUCKET.is_match(arn) {
        Some(DestinationType::S3)
    } else if DELIVERY_STREAM.is_match(arn) {
        Some(DestinationType::Firehose)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destination_table() {
        use DestinationType::*;
        let cases = [
            (
                "arn:aws:logs:us-west-2:111122223333:log-group:/aws/vpclattice/x",
                Some(CloudWatchLogs),
            ),
            (
                "arn:aws:logs:us-west-2:111122223333:log-group:my-group:*",
                Some(CloudWatchLogs),
            ),
            ("arn:aws:logs:us-west-2:111122223333:log-stream:x", None),
            ("arn:aws:logs:us-west-2:1111:log-group:x", None),
            ("arn:aws:s3:::my-log-bucket", Some(S3)),
            ("arn:aws:s3:::my-log-bucket/prefix/a", Some(S3)),
            ("arn:aws:s3:::UPPER", None),
            ("arn:aws:s3:::ab", None),
            (
                "arn:aws:firehose:us-west-2:111122223333:deliverystream/my-stream",
                Some(Firehose),
            ),
            (
                "arn:aws:firehose:us-west-2:111122223333:stream/my-stream",
                None,
            ),
            ("arn:aws:sqs:us-west-2:111122223333:queue", None),
            ("arn:aws-cn:s3:::bucket-in-china", Some(S3)),
        ];
        for (arn, want) in cases {
            assert_eq!(destination_type(arn), want, "{arn}");
            if want.is_some() {
                assert!(is_destination_arn(arn), "{arn}");
            }
        }
    }

    #[test]
    fn model_pattern_table() {
        let cases = [
            ("arn:aws:s3:::bucket", true),
            ("arn:aws:logs:us-west-2:111122223333:log-group:x", true),
            ("arn:aws:s3:::/leading-slash", false),
            ("arn:AWS:s3:::bucket", false),
            ("arn:aws", false),
            ("s3://bucket", false),
        ];
        for (arn, want) in cases {
            assert_eq!(is_destination_arn(arn), want, "{arn}");
        }
    }
}
