//! What a resource takes with it when it is deleted (reference §2.5): its auth policy, resource
//! policy and access-log subscriptions. Kept in one place so every Delete* cascades alike.

use trellis_model::ResourceKind;
use trellis_store::Tx;

use crate::error::ApiResult;

/// Store kind of auth policies; record id and parent = the service or service network id.
pub const AUTH_POLICY: &str = "auth-policy";
/// Store kind of resource (RAM) policies; record id and parent = the resource id.
pub const RESOURCE_POLICY: &str = "resource-policy";

/// Deletes the policies and access-log subscriptions attached to `resource_id`.
pub async fn delete_attached(tx: &mut Tx, resource_id: &str) -> ApiResult<()> {
    tx.delete(AUTH_POLICY, resource_id).await?;
    tx.delete(RESOURCE_POLICY, resource_id).await?;
    let als = ResourceKind::AccessLogSubscription.store_kind();
    for sub in tx.list(als, Some(resource_id)).await? {
        tx.delete(als, &sub.id).await?;
    }
    Ok(())
}
