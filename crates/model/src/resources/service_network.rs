//! The service network document: a logical boundary that groups services and client networks.

use serde::{Deserialize, Serialize};

use super::{AuthType, Tags};
use crate::Timestamp;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetwork {
    pub id: String,
    pub name: String,
    pub arn: String,
    pub auth_type: AuthType,
    /// `sharingConfig.enabled`, immutable after creation.
    pub sharing_enabled: bool,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}
