//! Stored resource documents, one module per resource family. Each type is what the store keeps
//! in a record's body (serde JSON); the API maps them to and from the wire.
//!
//! Every document carries its own `tags` map at the top level so that the tagging operations can
//! treat all taggable resources alike.

pub mod access_log;
pub mod association;
pub mod listener;
pub mod rule;
pub mod service;
pub mod service_network;
pub mod target_group;

use serde::{Deserialize, Serialize};

/// `authType` of services and service networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum AuthType {
    #[default]
    #[serde(rename = "NONE")]
    None,
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

impl AuthType {
    pub const VALUES: [&'static str; 2] = ["NONE", "AWS_IAM"];

    pub fn parse(s: &str) -> Option<AuthType> {
        match s {
            "NONE" => Some(AuthType::None),
            "AWS_IAM" => Some(AuthType::AwsIam),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "NONE",
            AuthType::AwsIam => "AWS_IAM",
        }
    }
}

/// Tags as stored: sorted by key so documents compare and serialize stably.
pub type Tags = std::collections::BTreeMap<String, String>;
