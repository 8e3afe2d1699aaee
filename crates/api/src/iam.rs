//! IAM (`iam/2010-05-08`, awsQuery, global): users, their access keys, tags and inline policies
//! — the subset that gives a Trellis account principals other than root; roles
//! ([`roles`]), groups ([`groups`]) and managed policies ([`managed`], [`aws_managed`]) are in
//! the submodules.
//!
//! Each write is one store transaction on the records [`crate::identity`] defines, and rebuilds
//! the identity index before it answers ([`crate::identity::Identities::reload`]), so that the
//! gate knows a new key, and has forgotten a deactivated one, by the time the caller reads the
//! answer. Shapes and error codes are the botocore model's; IAM's own conventions are kept:
//! user names are unique regardless of case, GetUser without a name is the caller, GetUserPolicy
//! answers the document URL-encoded, DeleteUser refuses a user that still has keys, policies or
//! group memberships.
//!
//! Secrets: a secret access key leaves the server once, in CreateAccessKey's answer. No other
//! output carries it, and no log line does.

use axum::http::StatusCode;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use trellis_model::Timestamp;
use trellis_policy::{IDENTITY_POLICY_MAX_CHARS, PolicyKind};
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::codec::Timestamp as WireTimestamp;
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;
pub mod aws_managed;
pub mod groups;
pub mod managed;
pub mod roles;

use crate::identity::{
    ACCESS_KEY_KIND, ATTACHMENT_KIND, Caller, GROUP_MEMBER_KIND, LastUsed, StoredAccessKey,
    StoredUser, StoredUserPolicy, Tag, USER_KIND, USER_POLICY_KIND, root_arn, user_arn,
};

/// IAM as the front door knows it.
pub static IAM: Service = Service {
    id: "IAM",
    signing_name: "iam",
    endpoint_prefix: "iam",
    api_version: "2010-05-08",
    protocol: Protocol::AwsQuery,
    target_prefix: None,
    xml_namespace: Some("https://iam.amazonaws.com/doc/2010-05-08/"),
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            AwsError::new(
                "InvalidAction",
                StatusCode::BAD_REQUEST,
                format!(
                    "Trellis does not implement the IAM operation {what}: it serves {}",
                    SERVED.join(", ")
                ),
            )
        },
        bad_input: |m| IamError::Validation(m).into(),
        internal_code: "ServiceFailure",
        throttling_code: "Throttling",
        too_large: |cap| IamError::Validation(format!("Request body exceeds {cap} bytes")).into(),
        // Authorization refuses any operation with it; the model lists it for none.
        common: &["AccessDenied"],
    },
};

const SERVED: &[&str] = &[
    "CreateUser",
    "GetUser",
    "ListUsers",
    "DeleteUser",
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "GetAccessKeyLastUsed",
    "PutUserPolicy",
    "GetUserPolicy",
    "ListUserPolicies",
    "DeleteUserPolicy",
    "CreateRole",
    "GetRole",
    "ListRoles",
    "DeleteRole",
    "UpdateAssumeRolePolicy",
    "PutRolePolicy",
    "GetRolePolicy",
    "ListRolePolicies",
    "DeleteRolePolicy",
    "TagRole",
    "UntagRole",
    "ListRoleTags",
    "ListAttachedRolePolicies",
    "ListInstanceProfilesForRole",
    "TagUser",
    "UntagUser",
    "ListUserTags",
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "UpdateGroup",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    "PutGroupPolicy",
    "GetGroupPolicy",
    "ListGroupPolicies",
    "DeleteGroupPolicy",
    "CreatePolicy",
    "GetPolicy",
    "ListPolicies",
    "DeletePolicy",
    "CreatePolicyVersion",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "DeletePolicyVersion",
    "SetDefaultPolicyVersion",
    "AttachUserPolicy",
    "DetachUserPolicy",
    "ListAttachedUserPolicies",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
    "ListAttachedGroupPolicies",
    "AttachRolePolicy",
    "DetachRolePolicy",
    "ListEntitiesForPolicy",
    "TagPolicy",
    "UntagPolicy",
    "ListPolicyTags",
];

/// Access keys a user may have at once (IAM's quota).
pub const ACCESS_KEYS_PER_USER: usize = 2;

/// Every IAM operation Trellis serves, with the errors the model lists for it.
pub fn operations() -> Vec<Operation<AppState>> {
    let mut ops = vec![
        Operation::rpc(&IAM, "CreateUser", create_user).errors(&[
            "LimitExceededException",
            "EntityAlreadyExistsException",
            "NoSuchEntityException",
            "InvalidInputException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetUser", get_user)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListUsers", list_users).errors(&["ServiceFailureException"]),
        Operation::rpc(&IAM, "DeleteUser", delete_user).errors(&[
            "LimitExceededException",
            "NoSuchEntityException",
            "DeleteConflictException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "CreateAccessKey", create_access_key).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListAccessKeys", list_access_keys)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "UpdateAccessKey", update_access_key).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
            "InvalidInputException",
        ]),
        Operation::rpc(&IAM, "DeleteAccessKey", delete_access_key).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        // The model lists no errors: an unknown key is answered as AWS does, with no
        // `AccessKeyLastUsed` details beyond `N/A` (docs/decisions.md).
        Operation::rpc(&IAM, "GetAccessKeyLastUsed", get_access_key_last_used).errors(&[]),
        Operation::rpc(&IAM, "PutUserPolicy", put_user_policy).errors(&[
            "LimitExceededException",
            "MalformedPolicyDocumentException",
            "NoSuchEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetUserPolicy", get_user_policy)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListUserPolicies", list_user_policies)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "DeleteUserPolicy", delete_user_policy).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "CreateRole", roles::create_role).errors(&[
            "LimitExceededException",
            "InvalidInputException",
            "EntityAlreadyExistsException",
            "MalformedPolicyDocumentException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetRole", roles::get_role)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListRoles", roles::list_roles).errors(&["ServiceFailureException"]),
        Operation::rpc(&IAM, "DeleteRole", roles::delete_role).errors(&[
            "NoSuchEntityException",
            "DeleteConflictException",
            "LimitExceededException",
            "UnmodifiableEntityException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(
            &IAM,
            "UpdateAssumeRolePolicy",
            roles::update_assume_role_policy,
        )
        .errors(&[
            "NoSuchEntityException",
            "MalformedPolicyDocumentException",
            "LimitExceededException",
            "UnmodifiableEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "PutRolePolicy", roles::put_role_policy).errors(&[
            "LimitExceededException",
            "MalformedPolicyDocumentException",
            "NoSuchEntityException",
            "UnmodifiableEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetRolePolicy", roles::get_role_policy)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListRolePolicies", roles::list_role_policies)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(
            &IAM,
            "ListAttachedRolePolicies",
            managed::list_attached_role_policies,
        )
        .errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ServiceFailureException",
        ]),
        Operation::rpc(
            &IAM,
            "ListInstanceProfilesForRole",
            roles::list_instance_profiles_for_role,
        )
        .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "DeleteRolePolicy", roles::delete_role_policy).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "UnmodifiableEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "TagRole", roles::tag_role).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "InvalidInputException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "UntagRole", roles::untag_role).errors(&[
            "NoSuchEntityException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListRoleTags", roles::list_role_tags)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "TagUser", tag_user).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "InvalidInputException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "UntagUser", untag_user).errors(&[
            "NoSuchEntityException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListUserTags", list_user_tags)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
    ];
    ops.extend(group_operations());
    ops.extend(managed_operations());
    ops
}

/// The group operations, with the errors the model lists for each.
fn group_operations() -> Vec<Operation<AppState>> {
    vec![
        Operation::rpc(&IAM, "CreateGroup", groups::create_group).errors(&[
            "LimitExceededException",
            "EntityAlreadyExistsException",
            "NoSuchEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetGroup", groups::get_group)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListGroups", groups::list_groups)
            .errors(&["ServiceFailureException"]),
        Operation::rpc(&IAM, "UpdateGroup", groups::update_group).errors(&[
            "NoSuchEntityException",
            "EntityAlreadyExistsException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "DeleteGroup", groups::delete_group).errors(&[
            "NoSuchEntityException",
            "DeleteConflictException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "AddUserToGroup", groups::add_user_to_group).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "RemoveUserFromGroup", groups::remove_user_from_group).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListGroupsForUser", groups::list_groups_for_user)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "PutGroupPolicy", groups::put_group_policy).errors(&[
            "LimitExceededException",
            "MalformedPolicyDocumentException",
            "NoSuchEntityException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetGroupPolicy", groups::get_group_policy)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "ListGroupPolicies", groups::list_group_policies)
            .errors(&["NoSuchEntityException", "ServiceFailureException"]),
        Operation::rpc(&IAM, "DeleteGroupPolicy", groups::delete_group_policy).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
    ]
}

/// The managed-policy operations, with the errors the model lists for each.
fn managed_operations() -> Vec<Operation<AppState>> {
    const ATTACH: &[&str] = &[
        "NoSuchEntityException",
        "LimitExceededException",
        "InvalidInputException",
        "PolicyNotAttachableException",
        "ServiceFailureException",
    ];
    const DETACH: &[&str] = &[
        "NoSuchEntityException",
        "LimitExceededException",
        "InvalidInputException",
        "ServiceFailureException",
    ];
    const ROLE_ATTACH: &[&str] = &[
        "NoSuchEntityException",
        "LimitExceededException",
        "InvalidInputException",
        "UnmodifiableEntityException",
        "PolicyNotAttachableException",
        "ServiceFailureException",
    ];
    const ROLE_DETACH: &[&str] = &[
        "NoSuchEntityException",
        "LimitExceededException",
        "InvalidInputException",
        "UnmodifiableEntityException",
        "ServiceFailureException",
    ];
    const LIST_ATTACHED: &[&str] = &[
        "NoSuchEntityException",
        "InvalidInputException",
        "ServiceFailureException",
    ];
    vec![
        Operation::rpc(&IAM, "CreatePolicy", managed::create_policy).errors(&[
            "InvalidInputException",
            "LimitExceededException",
            "EntityAlreadyExistsException",
            "MalformedPolicyDocumentException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetPolicy", managed::get_policy).errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListPolicies", managed::list_policies)
            .errors(&["ServiceFailureException"]),
        Operation::rpc(&IAM, "DeletePolicy", managed::delete_policy).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "InvalidInputException",
            "DeleteConflictException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "CreatePolicyVersion", managed::create_policy_version).errors(&[
            "NoSuchEntityException",
            "MalformedPolicyDocumentException",
            "InvalidInputException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "GetPolicyVersion", managed::get_policy_version).errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListPolicyVersions", managed::list_policy_versions).errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "DeletePolicyVersion", managed::delete_policy_version).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "InvalidInputException",
            "DeleteConflictException",
            "ServiceFailureException",
        ]),
        Operation::rpc(
            &IAM,
            "SetDefaultPolicyVersion",
            managed::set_default_policy_version,
        )
        .errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "LimitExceededException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "AttachUserPolicy", managed::attach_user_policy).errors(ATTACH),
        Operation::rpc(&IAM, "DetachUserPolicy", managed::detach_user_policy).errors(DETACH),
        Operation::rpc(
            &IAM,
            "ListAttachedUserPolicies",
            managed::list_attached_user_policies,
        )
        .errors(LIST_ATTACHED),
        Operation::rpc(&IAM, "AttachGroupPolicy", managed::attach_group_policy).errors(ATTACH),
        Operation::rpc(&IAM, "DetachGroupPolicy", managed::detach_group_policy).errors(DETACH),
        Operation::rpc(
            &IAM,
            "ListAttachedGroupPolicies",
            managed::list_attached_group_policies,
        )
        .errors(LIST_ATTACHED),
        Operation::rpc(&IAM, "AttachRolePolicy", managed::attach_role_policy).errors(ROLE_ATTACH),
        Operation::rpc(&IAM, "DetachRolePolicy", managed::detach_role_policy).errors(ROLE_DETACH),
        Operation::rpc(
            &IAM,
            "ListEntitiesForPolicy",
            managed::list_entities_for_policy,
        )
        .errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "TagPolicy", managed::tag_policy).errors(&[
            "NoSuchEntityException",
            "LimitExceededException",
            "InvalidInputException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "UntagPolicy", managed::untag_policy).errors(&[
            "NoSuchEntityException",
            "InvalidInputException",
            "ConcurrentModificationException",
            "ServiceFailureException",
        ]),
        Operation::rpc(&IAM, "ListPolicyTags", managed::list_policy_tags).errors(&[
            "NoSuchEntityException",
            "ServiceFailureException",
            "InvalidInputException",
        ]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Errors

/// IAM's errors, classified once. The codes are the model's (`NoSuchEntity`, not the shape
/// name), which is what the query protocol writes and botocore maps back to the shape.
#[derive(Debug)]
pub enum IamError {
    /// A member outside its constraints (IAM's `ValidationError`, 400).
    Validation(String),
    NoSuchEntity(String),
    EntityAlreadyExists(String),
    DeleteConflict(String),
    LimitExceeded(String),
    MalformedPolicyDocument(String),
    InvalidInput(String),
    /// A refusal the handler itself decides (changing an AWS-managed policy), worded as IAM's
    /// authorization refusal.
    AccessDenied(String),
    Internal(String),
    /// The store is unavailable (HTTP 503, [`AwsError::unavailable`]).
    Unavailable(Box<AwsError>),
}

impl From<IamError> for AwsError {
    fn from(e: IamError) -> AwsError {
        let (code, status, message) = match e {
            IamError::Validation(m) => ("ValidationError", StatusCode::BAD_REQUEST, m),
            IamError::NoSuchEntity(m) => ("NoSuchEntity", StatusCode::NOT_FOUND, m),
            IamError::EntityAlreadyExists(m) => ("EntityAlreadyExists", StatusCode::CONFLICT, m),
            IamError::DeleteConflict(m) => ("DeleteConflict", StatusCode::CONFLICT, m),
            IamError::LimitExceeded(m) => ("LimitExceeded", StatusCode::CONFLICT, m),
            IamError::MalformedPolicyDocument(m) => {
                ("MalformedPolicyDocument", StatusCode::BAD_REQUEST, m)
            }
            IamError::InvalidInput(m) => ("InvalidInput", StatusCode::BAD_REQUEST, m),
            IamError::AccessDenied(m) => ("AccessDenied", StatusCode::FORBIDDEN, m),
            IamError::Internal(detail) => return AwsError::internal("ServiceFailure", detail),
            IamError::Unavailable(err) => return *err,
        };
        AwsError::new(code, status, message)
    }
}

impl From<StoreError> for IamError {
    fn from(e: StoreError) -> IamError {
        match e {
            StoreError::Unavailable(m) => IamError::Unavailable(Box::new(AwsError::unavailable(m))),
            StoreError::CommitUnknown(m) => {
                IamError::Unavailable(Box::new(AwsError::outcome_unknown(m)))
            }
            e => IamError::Internal(e.to_string()),
        }
    }
}

type IamResult<T> = Result<T, IamError>;

// ---------------------------------------------------------------------------------------------
// Validation: the model's constraints, worded as IAM words them.

/// Collects constraint failures as IAM reports them: `N validation error(s) detected: …`.
#[derive(Default)]
struct Constraints(Vec<String>);

impl Constraints {
    fn fail(&mut self, value: &str, member: &str, constraint: &str) {
        self.0.push(format!(
            "Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
        ));
    }

    fn length(&mut self, value: &str, member: &str, min: usize, max: usize) {
        let n = value.chars().count();
        if n < min {
            self.fail(
                value,
                member,
                &format!("Member must have length greater than or equal to {min}"),
            );
        } else if n > max {
            self.fail(
                value,
                member,
                &format!("Member must have length less than or equal to {max}"),
            );
        }
    }

    /// `[\w+=,.@-]+`, IAM's name pattern, within `max` characters.
    fn name(&mut self, value: &str, member: &str, max: usize) {
        self.length(value, member, 1, max);
        if !value.is_empty()
            && !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
        {
            self.fail(
                value,
                member,
                r"Member must satisfy regular expression pattern: [\w+=,.@-]+",
            );
        }
    }

    fn access_key_id(&mut self, value: &str, member: &str) {
        self.length(value, member, 16, 128);
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.fail(
                value,
                member,
                r"Member must satisfy regular expression pattern: [\w]+",
            );
        }
    }

    fn max_items(&mut self, value: Option<i64>) {
        if let Some(n) = value
            && !(1..=1000).contains(&n)
        {
            self.fail(
                &n.to_string(),
                "maxItems",
                "Member must have value between 1 and 1000",
            );
        }
    }

    fn finish(self) -> IamResult<()> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(IamError::Validation(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            n => Err(IamError::Validation(format!(
                "{n} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

/// A `PathPrefix` (`/` followed by printable characters).
fn path_prefix_constraints(c: &mut Constraints, prefix: &str) {
    c.length(prefix, "pathPrefix", 1, 512);
    if !prefix.starts_with('/') {
        c.fail(
            prefix,
            "pathPrefix",
            r"Member must satisfy regular expression pattern: \u002F[\u0021-\u007F]*",
        );
    }
}

/// A required member: missing is IAM's validation error naming it.
fn required<'a>(value: &'a Option<String>, member: &str) -> IamResult<&'a str> {
    value.as_deref().ok_or_else(|| {
        IamError::Validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: \
             Member must not be null"
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// The model's `User` (ListUsers' members, GetUser's and CreateUser's `User`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub user_id: String,
    pub arn: String,
    pub create_date: WireTimestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<Tag>>,
}

impl UserOutput {
    /// `with_tags`: GetUser and CreateUser answer the user's tags, lists do not (as IAM).
    pub fn new(u: &StoredUser, with_tags: bool) -> UserOutput {
        UserOutput {
            path: Some(u.path.clone()),
            user_name: Some(u.user_name.clone()),
            user_id: u.user_id.clone(),
            arn: u.arn.clone(),
            create_date: WireTimestamp::from_unix_millis(u.create_date_ms),
            tags: (with_tags && !u.tags.is_empty()).then(|| u.tags.clone()),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserResult {
    pub user: UserOutput,
}

#[derive(Debug, Serialize)]
pub struct Empty {}

/// A list page's `Marker`/`MaxItems`, resolved.
struct Paging {
    after: Option<String>,
    max: usize,
}

impl Paging {
    /// Items after the marker, at most `max`, sorted by `key`; with the next marker if truncated.
    fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
        items.sort_by_key(&key);
        let mut out: Vec<T> = items
            .into_iter()
            .filter(|i| self.after.as_ref().is_none_or(|m| key(i) > *m))
            .collect();
        if out.len() > self.max {
            out.truncate(self.max);
            let marker = out.last().map(&key);
            return (out, marker);
        }
        (out, None)
    }
}

fn paging(c: &mut Constraints, marker: Option<String>, max_items: Option<i64>) -> Paging {
    c.max_items(max_items);
    if let Some(m) = &marker {
        c.length(m, "marker", 1, 320);
    }
    Paging {
        after: marker,
        max: max_items
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(100),
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups

fn caller(call: &Call) -> Caller {
    // The gate puts the caller in every request it lets through; without the gate (tests that
    // drive handlers directly) the caller is root.
    call.extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(|| Caller::Root {
            account: String::new(),
        })
}

fn no_such_user(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

async fn find_user(tx: &mut Tx, name: &str) -> IamResult<Option<(Record, StoredUser)>> {
    let Some(rec) = tx
        .get_by_name(USER_KIND, None, &name.to_lowercase())
        .await?
    else {
        return Ok(None);
    };
    let user = decode(&rec)?;
    Ok(Some((rec, user)))
}

async fn user_named(tx: &mut Tx, name: &str) -> IamResult<(Record, StoredUser)> {
    find_user(tx, name).await?.ok_or_else(|| no_such_user(name))
}

/// The user an operation with an optional `UserName` is about: the named one, or the calling
/// user. Root has no user record: its access keys are Trellis's root credentials.
async fn target_user(
    tx: &mut Tx,
    name: Option<&str>,
    caller: &Caller,
) -> IamResult<(Record, StoredUser)> {
    match (name, caller) {
        (Some(name), _) => user_named(tx, name).await,
        (None, Caller::User { user, .. }) => user_named(tx, &user.name).await,
        (None, Caller::Role { .. }) => Err(IamError::Validation(
            "Must specify userName when calling with non-User credentials".into(),
        )),
        (None, Caller::Root { .. }) => Err(IamError::NoSuchEntity(
            "The root user's access keys are Trellis's root credentials (trellis serve's \
             environment or DATA_DIR/credentials) and cannot be managed through IAM; name a UserName"
                .into(),
        )),
    }
}

fn decode<T: serde::de::DeserializeOwned>(rec: &Record) -> IamResult<T> {
    serde_json::from_value(rec.body.clone()).map_err(|e| {
        IamError::Internal(format!(
            "stored {} {} does not decode: {e}",
            rec.kind, rec.id
        ))
    })
}

fn encode<T: Serialize>(doc: &T) -> IamResult<serde_json::Value> {
    serde_json::to_value(doc).map_err(|e| IamError::Internal(e.to_string()))
}

/// Commits and rebuilds the identity index before the answer leaves.
async fn commit(state: &AppState, tx: Tx) -> IamResult<()> {
    tx.commit().await?;
    state.identities.reload(&state.store).await?;
    Ok(())
}

/// `prefix` + `n` characters from IAM's ID alphabet (upper-case letters and digits 2-7), from the
/// thread's CSPRNG.
pub(crate) fn new_id(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let mut out = String::with_capacity(prefix.len() + n);
    out.push_str(prefix);
    for _ in 0..n {
        out.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    out
}

/// A 40-character secret access key from the thread's CSPRNG (AWS's alphabet).
pub(crate) fn new_secret() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..40)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Users

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateUserInput {
    pub user_name: Option<String>,
    pub path: Option<String>,
    pub permissions_boundary: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

impl CreateUserInput {
    /// The user name and path, or every constraint they fail.
    pub fn validate(&self) -> IamResult<(String, String)> {
        let name = required(&self.user_name, "userName")?;
        let path = self.path.as_deref().unwrap_or("/");
        let mut c = Constraints::default();
        c.name(name, "userName", 64);
        c.length(path, "path", 1, 512);
        let path_ok = path == "/"
            || (path.len() >= 3
                && path.starts_with('/')
                && path.ends_with('/')
                && path.chars().all(|ch| ('\u{21}'..='\u{7e}').contains(&ch)));
        if !path_ok {
            c.fail(
                path,
                "path",
                r"Member must satisfy regular expression pattern: (\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
            );
        }
        roles::tag_constraints(&mut c, &self.tags);
        c.finish()?;
        if self.permissions_boundary.is_some() {
            return Err(IamError::InvalidInput(
                "Trellis does not support permissions boundaries on users yet".into(),
            ));
        }
        check_tag_count(self.tags.len())?;
        Ok((name.to_string(), path.to_string()))
    }
}

async fn create_user(state: AppState, input: CreateUserInput, _: Call) -> IamResult<UserResult> {
    let (name, path) = input.validate()?;
    let mut tx = state.store.write().await?;
    if let Some((_, existing)) = find_user(&mut tx, &name).await? {
        return Err(IamError::EntityAlreadyExists(format!(
            "User with name {} already exists.",
            existing.user_name
        )));
    }
    let user = StoredUser {
        arn: user_arn(&state.ctx, &path, &name),
        user_id: new_id("AIDA", 17),
        user_name: name.clone(),
        path,
        create_date_ms: Timestamp::now().unix_millis(),
        tags: dedupe_tags(&input.tags),
    };
    let rec = Record {
        kind: USER_KIND.into(),
        id: user.user_id.clone(),
        parent: None,
        name: Some(name.to_lowercase()),
        arn: Some(user.arn.clone()),
        refs: Vec::new(),
        body: encode(&user)?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(IamError::EntityAlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        Err(e) => return Err(e.into()),
    }
    commit(&state, tx).await?;
    Ok(UserResult {
        user: UserOutput::new(&user, true),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserNameInput {
    pub user_name: Option<String>,
}

impl UserNameInput {
    fn validate(&self) -> IamResult<()> {
        let mut c = Constraints::default();
        if let Some(n) = &self.user_name {
            c.name(n, "userName", 128);
        }
        c.finish()
    }
}

async fn get_user(state: AppState, input: UserNameInput, call: Call) -> IamResult<UserResult> {
    input.validate()?;
    let caller = caller(&call);
    let mut tx = state.store.read().await?;
    match (input.user_name.as_deref(), &caller) {
        (None, Caller::Root { .. }) => Ok(UserResult {
            // Root has no user record: AWS answers its account ID and ARN, no name or path.
            user: UserOutput {
                path: None,
                user_name: None,
                user_id: state.ctx.account_id.clone(),
                arn: root_arn(&state.ctx),
                create_date: WireTimestamp::from_unix_millis(0),
                tags: None,
            },
        }),
        (name, _) => {
            let (_, user) = target_user(&mut tx, name, &caller).await?;
            Ok(UserResult {
                user: UserOutput::new(&user, true),
            })
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUsersInput {
    pub path_prefix: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUsersOutput {
    pub users: Vec<UserOutput>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

async fn list_users(state: AppState, input: ListUsersInput, _: Call) -> IamResult<ListUsersOutput> {
    let mut c = Constraints::default();
    let paging = paging(&mut c, input.marker, input.max_items);
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    c.length(&prefix, "pathPrefix", 1, 512);
    if !prefix.starts_with('/') {
        c.fail(
            &prefix,
            "pathPrefix",
            r"Member must satisfy regular expression pattern: \u002F[\u0021-\u007F]*",
        );
    }
    c.finish()?;
    let mut tx = state.store.read().await?;
    let users: Vec<StoredUser> = tx
        .list(USER_KIND, None)
        .await?
        .iter()
        .map(decode)
        .collect::<IamResult<_>>()?;
    let users: Vec<StoredUser> = users
        .into_iter()
        .filter(|u| u.path.starts_with(&prefix))
        .collect();
    let (page, marker) = paging.page(users, |u| u.user_name.to_lowercase());
    Ok(ListUsersOutput {
        users: page.iter().map(|u| UserOutput::new(u, false)).collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

async fn delete_user(state: AppState, input: UserNameInput, _: Call) -> IamResult<Empty> {
    input.validate()?;
    let name = required(&input.user_name, "userName")?;
    let mut tx = state.store.write().await?;
    let (rec, user) = user_named(&mut tx, name).await?;
    if tx.count(ACCESS_KEY_KIND, Some(&user.user_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must delete access keys first.".into(),
        ));
    }
    if tx.count(USER_POLICY_KIND, Some(&user.user_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must delete policies first.".into(),
        ));
    }
    if tx.count(ATTACHMENT_KIND, Some(&user.user_id)).await? > 0 {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must detach all policies first.".into(),
        ));
    }
    if !tx
        .list_referencing(GROUP_MEMBER_KIND, &user.user_id)
        .await?
        .is_empty()
    {
        return Err(IamError::DeleteConflict(
            "Cannot delete entity, must remove user from all groups first.".into(),
        ));
    }
    tx.delete(USER_KIND, &rec.id).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------------
// User tags

/// Tags a user may carry.
pub const TAGS_PER_USER: usize = 50;

fn check_tag_count(n: usize) -> IamResult<()> {
    if n > TAGS_PER_USER {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for TagsPerUser: {TAGS_PER_USER}"
        )));
    }
    Ok(())
}

/// Tags with keys unique regardless of case: a later tag replaces an earlier one, as TagUser
/// replaces an existing value.
fn dedupe_tags(tags: &[Tag]) -> Vec<Tag> {
    let mut out: Vec<Tag> = Vec::new();
    for t in tags {
        out.retain(|old| !old.key.eq_ignore_ascii_case(&t.key));
        out.push(t.clone());
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagUserInput {
    pub user_name: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

async fn tag_user(state: AppState, input: TagUserInput, _: Call) -> IamResult<Empty> {
    let name = required(&input.user_name, "userName")?;
    let mut c = Constraints::default();
    c.name(name, "userName", 128);
    roles::tag_constraints(&mut c, &input.tags);
    c.finish()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut user) = user_named(&mut tx, name).await?;
    let mut tags = user.tags.clone();
    tags.extend(input.tags.iter().cloned());
    user.tags = dedupe_tags(&tags);
    check_tag_count(user.tags.len())?;
    rec.body = encode(&user)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagUserInput {
    pub user_name: Option<String>,
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

async fn untag_user(state: AppState, input: UntagUserInput, _: Call) -> IamResult<Empty> {
    let name = required(&input.user_name, "userName")?;
    let mut c = Constraints::default();
    c.name(name, "userName", 128);
    c.finish()?;
    let mut tx = state.store.write().await?;
    let (mut rec, mut user) = user_named(&mut tx, name).await?;
    let before = user.tags.len();
    user.tags.retain(|t| {
        !input
            .tag_keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&t.key))
    });
    if user.tags.len() == before {
        return Ok(Empty {});
    }
    rec.body = encode(&user)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUserTagsInput {
    pub user_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUserTagsOutput {
    pub tags: Vec<Tag>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

async fn list_user_tags(
    state: AppState,
    input: ListUserTagsInput,
    _: Call,
) -> IamResult<ListUserTagsOutput> {
    let name = required(&input.user_name, "userName")?;
    let mut c = Constraints::default();
    c.name(name, "userName", 128);
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, user) = user_named(&mut tx, name).await?;
    let (page, marker) = paging.page(user.tags, |t| t.key.clone());
    Ok(ListUserTagsOutput {
        tags: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

// ---------------------------------------------------------------------------------------------
// Access keys

/// CreateAccessKey's `AccessKey`: the only shape that carries a secret.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyOutput {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub secret_access_key: String,
    pub create_date: WireTimestamp,
}

impl std::fmt::Debug for AccessKeyOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyOutput")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccessKeyOutput {
    pub access_key: AccessKeyOutput,
}

async fn create_access_key(
    state: AppState,
    input: UserNameInput,
    call: Call,
) -> IamResult<CreateAccessKeyOutput> {
    input.validate()?;
    let caller = caller(&call);
    let mut tx = state.store.write().await?;
    let (_, user) = target_user(&mut tx, input.user_name.as_deref(), &caller).await?;
    if tx.count(ACCESS_KEY_KIND, Some(&user.user_id)).await? >= ACCESS_KEYS_PER_USER as u64 {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"
        )));
    }
    let key = StoredAccessKey {
        access_key_id: new_id("AKIA", 16),
        secret_access_key: new_secret(),
        status: "Active".into(),
        user_id: user.user_id.clone(),
        user_name: user.user_name.clone(),
        create_date_ms: Timestamp::now().unix_millis(),
        last_used: None,
    };
    let rec = Record {
        kind: ACCESS_KEY_KIND.into(),
        id: key.access_key_id.clone(),
        parent: Some(user.user_id.clone()),
        name: None,
        arn: None,
        refs: vec![user.user_id.clone()],
        body: encode(&key)?,
        seq: 0,
    };
    tx.insert(&rec).await?;
    commit(&state, tx).await?;
    Ok(CreateAccessKeyOutput {
        access_key: AccessKeyOutput {
            user_name: key.user_name,
            access_key_id: key.access_key_id,
            status: key.status,
            secret_access_key: key.secret_access_key,
            create_date: WireTimestamp::from_unix_millis(key.create_date_ms),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysInput {
    pub user_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

/// The model's `AccessKeyMetadata`: no secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    pub user_name: String,
    pub access_key_id: String,
    pub status: String,
    pub create_date: WireTimestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccessKeysOutput {
    pub access_key_metadata: Vec<AccessKeyMetadata>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

async fn list_access_keys(
    state: AppState,
    input: ListAccessKeysInput,
    call: Call,
) -> IamResult<ListAccessKeysOutput> {
    let mut c = Constraints::default();
    if let Some(n) = &input.user_name {
        c.name(n, "userName", 128);
    }
    let paging = paging(&mut c, input.marker, input.max_items);
    c.finish()?;
    let caller = caller(&call);
    let mut tx = state.store.read().await?;
    let (_, user) = target_user(&mut tx, input.user_name.as_deref(), &caller).await?;
    let keys: Vec<StoredAccessKey> = tx
        .list(ACCESS_KEY_KIND, Some(&user.user_id))
        .await?
        .iter()
        .map(decode)
        .collect::<IamResult<_>>()?;
    let (page, marker) = paging.page(keys, |k| k.access_key_id.clone());
    Ok(ListAccessKeysOutput {
        access_key_metadata: page
            .into_iter()
            .map(|k| AccessKeyMetadata {
                user_name: k.user_name,
                access_key_id: k.access_key_id,
                status: k.status,
                create_date: WireTimestamp::from_unix_millis(k.create_date_ms),
            })
            .collect(),
        is_truncated: marker.is_some(),
        marker,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyInput {
    pub user_name: Option<String>,
    pub access_key_id: Option<String>,
    pub status: Option<String>,
}

impl AccessKeyInput {
    fn validate(&self) -> IamResult<&str> {
        let id = required(&self.access_key_id, "accessKeyId")?;
        let mut c = Constraints::default();
        if let Some(n) = &self.user_name {
            c.name(n, "userName", 128);
        }
        c.access_key_id(id, "accessKeyId");
        c.finish()?;
        Ok(id)
    }
}

/// The key `id` of the operation's user, in a write transaction.
async fn key_of(
    tx: &mut Tx,
    input: &AccessKeyInput,
    id: &str,
    caller: &Caller,
) -> IamResult<(Record, StoredAccessKey)> {
    let (_, user) = target_user(tx, input.user_name.as_deref(), caller).await?;
    let not_found =
        || IamError::NoSuchEntity(format!("The Access Key with id {id} cannot be found."));
    let rec = tx.get(ACCESS_KEY_KIND, id).await?.ok_or_else(not_found)?;
    if rec.parent.as_deref() != Some(user.user_id.as_str()) {
        return Err(not_found());
    }
    let key = decode(&rec)?;
    Ok((rec, key))
}

async fn update_access_key(state: AppState, input: AccessKeyInput, call: Call) -> IamResult<Empty> {
    let id = input.validate()?;
    let status = required(&input.status, "status")?;
    if !matches!(status, "Active" | "Inactive") {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value '{status}' at 'status' failed to satisfy \
             constraint: Member must satisfy enum value set: [Active, Inactive]"
        )));
    }
    let caller = caller(&call);
    let mut tx = state.store.write().await?;
    let (mut rec, mut key) = key_of(&mut tx, &input, id, &caller).await?;
    if key.status == status {
        return Ok(Empty {});
    }
    key.status = status.to_string();
    rec.body = encode(&key)?;
    tx.update(&rec).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

async fn delete_access_key(state: AppState, input: AccessKeyInput, call: Call) -> IamResult<Empty> {
    let id = input.validate()?;
    let caller = caller(&call);
    let mut tx = state.store.write().await?;
    let (rec, _) = key_of(&mut tx, &input, id, &caller).await?;
    tx.delete(ACCESS_KEY_KIND, &rec.id).await?;
    commit(&state, tx).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAccessKeyLastUsedInput {
    pub access_key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyLastUsedOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_date: Option<WireTimestamp>,
    pub service_name: String,
    pub region: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetAccessKeyLastUsedOutput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    pub access_key_last_used: AccessKeyLastUsedOutput,
}

async fn get_access_key_last_used(
    state: AppState,
    input: GetAccessKeyLastUsedInput,
    _: Call,
) -> IamResult<GetAccessKeyLastUsedOutput> {
    let id = required(&input.access_key_id, "accessKeyId")?;
    let mut c = Constraints::default();
    c.access_key_id(id, "accessKeyId");
    c.finish()?;
    let mut tx = state.store.read().await?;
    let key: Option<StoredAccessKey> = match tx.get(ACCESS_KEY_KIND, id).await? {
        Some(rec) => Some(decode(&rec)?),
        None => None,
    };
    // A key never used (or unknown: the model has no error for it) reports `N/A`, as IAM does.
    let last = key.as_ref().and_then(|k| k.last_used.clone());
    let last_used = match last {
        Some(LastUsed {
            date_ms,
            service_name,
            region,
        }) => AccessKeyLastUsedOutput {
            last_used_date: Some(WireTimestamp::from_unix_millis(date_ms)),
            service_name,
            region,
        },
        None => AccessKeyLastUsedOutput {
            last_used_date: None,
            service_name: "N/A".into(),
            region: "N/A".into(),
        },
    };
    Ok(GetAccessKeyLastUsedOutput {
        user_name: key.map(|k| k.user_name),
        access_key_last_used: last_used,
    })
}

// ---------------------------------------------------------------------------------------------
// Inline policies

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserPolicyInput {
    pub user_name: Option<String>,
    pub policy_name: Option<String>,
    pub policy_document: Option<String>,
}

impl UserPolicyInput {
    fn names(&self) -> IamResult<(&str, &str)> {
        let user = required(&self.user_name, "userName")?;
        let policy = required(&self.policy_name, "policyName")?;
        let mut c = Constraints::default();
        c.name(user, "userName", 128);
        c.name(policy, "policyName", 128);
        c.finish()?;
        Ok((user, policy))
    }
}

/// The record ID of an inline policy of a user or role.
fn policy_id(owner_id: &str, policy_name: &str) -> String {
    format!("{owner_id}/{policy_name}")
}

/// An inline policy document as IAM checks it for `owner` (`user alice`, `role app`): present,
/// within IAM's size limits, and a valid identity-based policy.
fn check_inline_policy(document: &str, owner: &str) -> IamResult<()> {
    let mut c = Constraints::default();
    c.length(document, "policyDocument", 1, 131_072);
    c.finish()?;
    if document.chars().count() > IDENTITY_POLICY_MAX_CHARS {
        return Err(IamError::LimitExceeded(format!(
            "Maximum policy size of {IDENTITY_POLICY_MAX_CHARS} characters exceeded for {owner}"
        )));
    }
    if let Err(diagnostics) = trellis_policy::parse(document, PolicyKind::Identity) {
        let problems: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        return Err(IamError::MalformedPolicyDocument(format!(
            "Syntax errors in policy: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// Stores inline policy `policy_name` of the user or role `owner_id` (record kind `kind`),
/// replacing the one of that name. Returns whether anything changed (putting the same document
/// again is not a write).
async fn put_inline_policy<T>(
    tx: &mut Tx,
    kind: &str,
    owner_id: &str,
    policy_name: &str,
    stored: &T,
) -> IamResult<bool>
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq,
{
    let id = policy_id(owner_id, policy_name);
    match tx.get(kind, &id).await? {
        Some(mut rec) => {
            if decode::<T>(&rec)? == *stored {
                return Ok(false);
            }
            rec.body = encode(stored)?;
            tx.update(&rec).await?;
        }
        None => {
            tx.insert(&Record {
                kind: kind.into(),
                id,
                parent: Some(owner_id.to_string()),
                name: Some(policy_name.to_string()),
                arn: None,
                refs: vec![owner_id.to_string()],
                body: encode(stored)?,
                seq: 0,
            })
            .await?;
        }
    }
    Ok(true)
}

async fn put_user_policy(state: AppState, input: UserPolicyInput, _: Call) -> IamResult<Empty> {
    let (user_name, policy_name) = input.names()?;
    let document = required(&input.policy_document, "policyDocument")?;
    check_inline_policy(document, &format!("user {user_name}"))?;
    let mut tx = state.store.write().await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    let stored = StoredUserPolicy {
        user_id: user.user_id.clone(),
        policy_name: policy_name.to_string(),
        policy_document: document.to_string(),
    };
    if put_inline_policy(
        &mut tx,
        USER_POLICY_KIND,
        &user.user_id,
        policy_name,
        &stored,
    )
    .await?
    {
        commit(&state, tx).await?;
    }
    Ok(Empty {})
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetUserPolicyOutput {
    pub user_name: String,
    pub policy_name: String,
    /// URL-encoded, as IAM returns every policy document (RFC 3986).
    pub policy_document: String,
}

fn no_such_policy(user: &str, policy: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "The user policy with name {policy} cannot be found for user {user}."
    ))
}

async fn get_user_policy(
    state: AppState,
    input: UserPolicyInput,
    _: Call,
) -> IamResult<GetUserPolicyOutput> {
    let (user_name, policy_name) = input.names()?;
    let mut tx = state.store.read().await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    let rec = tx
        .get(USER_POLICY_KIND, &policy_id(&user.user_id, policy_name))
        .await?
        .ok_or_else(|| no_such_policy(&user.user_name, policy_name))?;
    let stored: StoredUserPolicy = decode(&rec)?;
    Ok(GetUserPolicyOutput {
        user_name: user.user_name,
        policy_name: stored.policy_name,
        policy_document: url_encode(&stored.policy_document),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUserPoliciesInput {
    pub user_name: Option<String>,
    pub marker: Option<String>,
    pub max_items: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListUserPoliciesOutput {
    pub policy_names: Vec<String>,
    pub is_truncated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

async fn list_user_policies(
    state: AppState,
    input: ListUserPoliciesInput,
    _: Call,
) -> IamResult<ListUserPoliciesOutput> {
    let user_name = required(&input.user_name, "userName")?;
    let mut c = Constraints::default();
    c.name(user_name, "userName", 128);
    let paging = paging(&mut c, input.marker.clone(), input.max_items);
    c.finish()?;
    let mut tx = state.store.read().await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    let names: Vec<String> = tx
        .list(USER_POLICY_KIND, Some(&user.user_id))
        .await?
        .iter()
        .map(|r| decode::<StoredUserPolicy>(r).map(|p| p.policy_name))
        .collect::<IamResult<_>>()?;
    let (page, marker) = paging.page(names, Clone::clone);
    Ok(ListUserPoliciesOutput {
        policy_names: page,
        is_truncated: marker.is_some(),
        marker,
    })
}

async fn delete_user_policy(state: AppState, input: UserPolicyInput, _: Call) -> IamResult<Empty> {
    let (user_name, policy_name) = input.names()?;
    let mut tx = state.store.write().await?;
    let (_, user) = user_named(&mut tx, user_name).await?;
    if !tx
        .delete(USER_POLICY_KIND, &policy_id(&user.user_id, policy_name))
        .await?
    {
        return Err(no_such_policy(&user.user_name, policy_name));
    }
    commit(&state, tx).await?;
    Ok(Empty {})
}

/// Percent-encodes every byte but RFC 3986's unreserved characters.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_user_input() {
        let input = |name: Option<&str>, path: Option<&str>| CreateUserInput {
            user_name: name.map(str::to_string),
            path: path.map(str::to_string),
            permissions_boundary: None,
            tags: Vec::new(),
        };
        let long = "a".repeat(65);
        #[rustfmt::skip]
        // (user name, path, the validated pair or a fragment of the validation message)
        type Case<'a> = (Option<&'a str>, Option<&'a str>, Result<(&'a str, &'a str), &'a str>);
        let cases: Vec<Case> = vec![
            (Some("alice"), None, Ok(("alice", "/"))),
            (
                Some("a.b+c=d,e@f-g_h"),
                Some("/team/dev/"),
                Ok(("a.b+c=d,e@f-g_h", "/team/dev/")),
            ),
            (
                None,
                None,
                Err(
                    "Value null at 'userName' failed to satisfy constraint: Member must not be null",
                ),
            ),
            (
                Some("a b"),
                None,
                Err(
                    r"1 validation error detected: Value 'a b' at 'userName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]+",
                ),
            ),
            (
                Some(&long),
                None,
                Err("Member must have length less than or equal to 64"),
            ),
            (
                Some("ok"),
                Some("team"),
                Err("at 'path' failed to satisfy constraint"),
            ),
            (Some(""), Some("//"), Err("2 validation errors detected")),
        ];
        for (name, path, want) in cases {
            let got = input(name, path).validate();
            match (got, want) {
                (Ok(got), Ok((n, p))) => assert_eq!(got, (n.to_string(), p.to_string())),
                (Err(IamError::Validation(m)), Err(fragment)) => {
                    assert!(m.contains(fragment), "{name:?} {path:?}: {m}")
                }
                (got, want) => panic!("{name:?} {path:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ids_and_secrets() {
        let id = new_id("AKIA", 16);
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(new_id("AKIA", 16), id);
        let secret = new_secret();
        assert_eq!(secret.len(), 40);
        assert_ne!(new_secret(), secret);
        assert_eq!(new_id("AIDA", 17).len(), 21);
    }

    #[test]
    fn policy_documents_are_url_encoded() {
        assert_eq!(
            url_encode(r#"{"Version": "2012-10-17"}"#),
            "%7B%22Version%22%3A%20%222012-10-17%22%7D"
        );
        assert_eq!(url_encode("a*b/é"), "a%2Ab%2F%C3%A9");
    }

    #[test]
    fn paging_follows_the_marker() {
        let p = Paging {
            after: None,
            max: 2,
        };
        let items = vec!["c", "a", "b"];
        let (page, marker) = p.page(items.clone(), |s| s.to_string());
        assert_eq!((page, marker.as_deref()), (vec!["a", "b"], Some("b")));
        let p = Paging {
            after: Some("b".into()),
            max: 2,
        };
        assert_eq!(p.page(items, |s| s.to_string()), (vec!["c"], None));
    }
}
