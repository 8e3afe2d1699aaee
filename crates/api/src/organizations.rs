//! AWS Organizations (`organizations/2016-11-28`, awsJson1_1, signing name `organizations`,
//! global): the accounts Trellis hosts, and the source of `aws:PrincipalOrgID` and
//! `aws:PrincipalOrgPaths`. The account of `--account-id` creates its organization
//! (`CreateOrganization`), of which it is the management account, directly under the root.
//! Its principals create member accounts (`CreateAccount`, which succeeds at once:
//! `DescribeCreateAccountStatus` reports `SUCCEEDED`), list and describe them (`ListAccounts`,
//! `DescribeAccount`); every member's principals can `DescribeOrganization`.
//!
//! A member account gets, as in AWS, the role `OrganizationAccountAccessRole` (trusting the
//! management account, with `AdministratorAccess`), and — Trellis's own — root credentials,
//! which the operator reads once with `trellis accounts credentials ID`
//! ([`take_root_credentials`]).
//!
//! The organization ([`ORGANIZATION_KIND`]), its accounts ([`ACCOUNT_KIND`]) and the
//! CreateAccount requests ([`CREATE_STATUS_KIND`]) are records of no account ([`GLOBAL_KINDS`]),
//! loaded into the identity index so that the gate and the data plane see every principal of
//! every account as a member (`o-…`, path `o-…/r-…/`) and know member roots' keys.
//! Organizational units and policies are not served.

use axum::http::StatusCode;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use trellis_model::{Context, Timestamp};
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::codec::Timestamp as WireTimestamp;
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;

/// The record kind of the organization (one record, id: the organization ID).
pub const ORGANIZATION_KIND: &str = "organization";
/// The record kind of a member account (id: the account ID, name: the lower-cased e-mail).
pub const ACCOUNT_KIND: &str = "org-account";
/// The record kind of a CreateAccount request (id: `car-…`).
pub const CREATE_STATUS_KIND: &str = "org-create-account-status";
/// The record kind of the secrets every node of one store shares (the cluster CA, the code-link
/// key; `trellis serve` owns its format).
pub const CLUSTER_SECRETS_KIND: &str = "cluster-secrets";
/// The record kinds that belong to no account: every account's transactions see them, and the
/// management account does not adopt them when the server starts.
pub const GLOBAL_KINDS: &[&str] = &[
    ORGANIZATION_KIND,
    ACCOUNT_KIND,
    CREATE_STATUS_KIND,
    crate::identity::TOKEN_KEY_KIND,
    CLUSTER_SECRETS_KIND,
];
/// The role CreateAccount creates in a member account unless asked for another name.
pub const ACCESS_ROLE: &str = "OrganizationAccountAccessRole";
/// How many accounts an organization may have (AWS's default quota is 10; Trellis hosts them
/// all on one store, so it allows more).
pub const MAX_ACCOUNTS: usize = 100;

/// Organizations as the front door knows it.
pub static ORGANIZATIONS: Service = Service {
    id: "Organizations",
    signing_name: "organizations",
    endpoint_prefix: "organizations",
    api_version: "2016-11-28",
    protocol: Protocol::AwsJson1_1,
    target_prefix: Some("AWSOrganizationsV20161128"),
    xml_namespace: None,
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            OrgError::InvalidInput(format!(
                "Trellis does not implement the Organizations operation {what}: it serves {}",
                SERVED.join(", ")
            ))
            .into()
        },
        bad_input: |m| OrgError::InvalidInput(m).into(),
        internal_code: "ServiceException",
        throttling_code: "TooManyRequestsException",
        too_large: |cap| OrgError::InvalidInput(format!("Request body exceeds {cap} bytes")).into(),
        common: &["AccessDeniedException"],
    },
};

const SERVED: &[&str] = &[
    "CreateOrganization",
    "DescribeOrganization",
    "DeleteOrganization",
    "ListRoots",
    "ListAccounts",
    "DescribeAccount",
    "CreateAccount",
    "DescribeCreateAccountStatus",
];

/// Every Organizations operation Trellis serves, with the errors its model lists (some can
/// never be raised here: ConcurrentModification, ConstraintViolation, OrganizationNotEmpty).
pub fn operations() -> Vec<Operation<AppState>> {
    const LIST: &[&str] = &[
        "AccessDeniedException",
        "AWSOrganizationsNotInUseException",
        "InvalidInputException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    vec![
        Operation::rpc(&ORGANIZATIONS, "CreateOrganization", create_organization).errors(&[
            "AccessDeniedException",
            "AlreadyInOrganizationException",
            "ConcurrentModificationException",
            "ConstraintViolationException",
            "InvalidInputException",
            "ServiceException",
            "TooManyRequestsException",
            "AccessDeniedForDependencyException",
        ]),
        Operation::rpc(
            &ORGANIZATIONS,
            "DescribeOrganization",
            describe_organization,
        )
        .errors(&[
            "AccessDeniedException",
            "AWSOrganizationsNotInUseException",
            "ConcurrentModificationException",
            "ServiceException",
            "TooManyRequestsException",
        ]),
        Operation::rpc(&ORGANIZATIONS, "DeleteOrganization", delete_organization).errors(&[
            "AccessDeniedException",
            "AWSOrganizationsNotInUseException",
            "ConcurrentModificationException",
            "ConstraintViolationException",
            "InvalidInputException",
            "OrganizationNotEmptyException",
            "ServiceException",
            "TooManyRequestsException",
        ]),
        Operation::rpc(&ORGANIZATIONS, "ListRoots", list_roots).errors(LIST),
        Operation::rpc(&ORGANIZATIONS, "ListAccounts", list_accounts).errors(LIST),
        Operation::rpc(&ORGANIZATIONS, "DescribeAccount", describe_account).errors(&[
            "AccessDeniedException",
            "AccountNotFoundException",
            "AWSOrganizationsNotInUseException",
            "InvalidInputException",
            "ServiceException",
            "TooManyRequestsException",
        ]),
        Operation::rpc(&ORGANIZATIONS, "CreateAccount", create_account).errors(&[
            "AccessDeniedException",
            "AWSOrganizationsNotInUseException",
            "ConcurrentModificationException",
            "ConstraintViolationException",
            "InvalidInputException",
            "FinalizingOrganizationException",
            "ServiceException",
            "TooManyRequestsException",
            "UnsupportedAPIEndpointException",
        ]),
        Operation::rpc(
            &ORGANIZATIONS,
            "DescribeCreateAccountStatus",
            describe_create_account_status,
        )
        .errors(&[
            "AccessDeniedException",
            "AWSOrganizationsNotInUseException",
            "CreateAccountStatusNotFoundException",
            "InvalidInputException",
            "ServiceException",
            "TooManyRequestsException",
            "UnsupportedAPIEndpointException",
        ]),
    ]
}

/// Organizations' errors, classified once.
#[derive(Debug)]
pub enum OrgError {
    InvalidInput(String),
    NotInUse,
    AlreadyInOrganization,
    AccountNotFound(String),
    /// A call only the management account may make, by another account.
    AccessDenied,
    /// DeleteOrganization while member accounts remain.
    NotEmpty,
    CreateStatusNotFound(String),
    ConstraintViolation(String),
    Internal(String),
    /// The store is unavailable (HTTP 503, [`AwsError::unavailable`]).
    Unavailable(Box<AwsError>),
}

impl From<OrgError> for AwsError {
    fn from(e: OrgError) -> AwsError {
        match e {
            OrgError::InvalidInput(m) => {
                AwsError::new("InvalidInputException", StatusCode::BAD_REQUEST, m)
            }
            OrgError::NotInUse => AwsError::new(
                "AWSOrganizationsNotInUseException",
                StatusCode::BAD_REQUEST,
                "Your account is not a member of an organization.",
            ),
            OrgError::AlreadyInOrganization => AwsError::new(
                "AlreadyInOrganizationException",
                StatusCode::CONFLICT,
                "The provided account is already a member of an organization.",
            ),
            OrgError::AccountNotFound(id) => AwsError::new(
                "AccountNotFoundException",
                StatusCode::BAD_REQUEST,
                format!("You specified an account that doesn't exist: {id}"),
            ),
            OrgError::AccessDenied => AwsError::new(
                "AccessDeniedException",
                StatusCode::BAD_REQUEST,
                "You don't have permissions to access this resource.",
            ),
            OrgError::NotEmpty => AwsError::new(
                "OrganizationNotEmptyException",
                StatusCode::BAD_REQUEST,
                "To delete an organization you must first remove all member accounts (except the \
                 master).",
            ),
            OrgError::CreateStatusNotFound(id) => AwsError::new(
                "CreateAccountStatusNotFoundException",
                StatusCode::BAD_REQUEST,
                format!(
                    "We can't find a create account request with the ID that you specified: {id}"
                ),
            ),
            OrgError::ConstraintViolation(m) => {
                AwsError::new("ConstraintViolationException", StatusCode::CONFLICT, m)
                    .with_member("Reason", "ACCOUNT_NUMBER_LIMIT_EXCEEDED")
            }
            OrgError::Internal(detail) => AwsError::internal("ServiceException", detail),
            OrgError::Unavailable(err) => *err,
        }
    }
}

impl From<StoreError> for OrgError {
    fn from(e: StoreError) -> OrgError {
        match e {
            StoreError::Unavailable(m) => OrgError::Unavailable(Box::new(AwsError::unavailable(m))),
            StoreError::CommitUnknown(m) => {
                OrgError::Unavailable(Box::new(AwsError::outcome_unknown(m)))
            }
            e => OrgError::Internal(e.to_string()),
        }
    }
}

/// The stored organization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredOrganization {
    /// `o-` + 10 lower-case letters and digits.
    pub id: String,
    /// `r-` + 4 lower-case letters and digits.
    pub root_id: String,
    /// `ALL` or `CONSOLIDATED_BILLING`.
    pub feature_set: String,
    pub create_date_ms: i64,
}

impl StoredOrganization {
    /// `o-…/r-…/`: the `aws:PrincipalOrgPaths` value of an account directly under the root.
    pub fn account_path(&self) -> String {
        format!("{}/{}/", self.id, self.root_id)
    }
}

/// The management account's e-mail address, which Organizations reports and Trellis has no
/// other source for (docs/decisions.md).
pub fn account_email(account_id: &str) -> String {
    format!("account-{account_id}@trellis.invalid")
}

fn organization_arn(ctx: &Context, org: &StoredOrganization) -> String {
    format!(
        "arn:{}:organizations::{}:organization/{}",
        ctx.partition, ctx.account_id, org.id
    )
}

/// The ARN of `account` in the organization (`management` is the management account).
fn account_arn(management: &Context, org: &StoredOrganization, account: &str) -> String {
    format!(
        "arn:{}:organizations::{}:account/{}/{account}",
        management.partition, management.account_id, org.id
    )
}

fn random_lower(prefix: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let mut out = String::from(prefix);
    for _ in 0..n {
        out.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    out
}

fn decode_all<T: serde::de::DeserializeOwned>(records: Vec<Record>) -> Result<Vec<T>, OrgError> {
    records
        .into_iter()
        .map(|r| {
            serde_json::from_value(r.body).map_err(|e| {
                OrgError::Internal(format!("a stored {} record does not decode: {e}", r.kind))
            })
        })
        .collect()
}

async fn find(tx: &mut Tx) -> Result<Option<StoredOrganization>, OrgError> {
    Ok(decode_all(tx.list(ORGANIZATION_KIND, None).await?)?
        .into_iter()
        .next())
}

/// A member account: who it is and its root credentials. Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAccount {
    pub id: String,
    pub name: String,
    pub email: String,
    pub create_date_ms: i64,
    pub root_access_key_id: String,
    pub root_secret_access_key: String,
    /// Whether `trellis accounts credentials` has handed the root credentials out (it does so
    /// once).
    #[serde(default)]
    pub credentials_taken: bool,
}

impl std::fmt::Debug for StoredAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccount")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("root_access_key_id", &self.root_access_key_id)
            .finish_non_exhaustive()
    }
}

/// A CreateAccount request and how it ended (it never stays `IN_PROGRESS` here).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredCreateStatus {
    pub id: String,
    pub account_name: String,
    /// `SUCCEEDED` or `FAILED`.
    pub state: String,
    pub requested_ms: i64,
    pub completed_ms: i64,
    pub account_id: Option<String>,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyTypeSummary {
    r#type: &'static str,
    status: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Organization {
    id: String,
    arn: String,
    feature_set: String,
    master_account_arn: String,
    master_account_id: String,
    master_account_email: String,
    available_policy_types: Vec<PolicyTypeSummary>,
}

impl Organization {
    fn of(management: &Context, org: &StoredOrganization) -> Organization {
        Organization {
            id: org.id.clone(),
            arn: organization_arn(management, org),
            feature_set: org.feature_set.clone(),
            master_account_arn: account_arn(management, org, &management.account_id),
            master_account_id: management.account_id.clone(),
            master_account_email: account_email(&management.account_id),
            available_policy_types: Vec::new(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OrganizationOutput {
    organization: Organization,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateOrganizationInput {
    feature_set: Option<String>,
}

/// Refuses a call only the management account may make.
fn management_only(s: &AppState) -> Result<(), OrgError> {
    if s.ctx.account_id == s.management.account_id {
        Ok(())
    } else {
        Err(OrgError::AccessDenied)
    }
}

async fn create_organization(
    s: AppState,
    input: CreateOrganizationInput,
    _: Call,
) -> Result<OrganizationOutput, OrgError> {
    let feature_set = input.feature_set.unwrap_or_else(|| "ALL".to_string());
    if !matches!(feature_set.as_str(), "ALL" | "CONSOLIDATED_BILLING") {
        return Err(OrgError::InvalidInput(format!(
            "1 validation error detected: Value '{feature_set}' at 'featureSet' failed to satisfy \
             constraint: Member must satisfy enum value set: [ALL, CONSOLIDATED_BILLING]"
        )));
    }
    let mut tx = s.global_store.write().await?;
    if find(&mut tx).await?.is_some() {
        return Err(OrgError::AlreadyInOrganization);
    }
    let org = StoredOrganization {
        id: random_lower("o-", 10),
        root_id: random_lower("r-", 4),
        feature_set,
        create_date_ms: Timestamp::now().unix_millis(),
    };
    let rec = Record {
        kind: ORGANIZATION_KIND.into(),
        id: org.id.clone(),
        parent: None,
        name: Some(ORGANIZATION_KIND.into()),
        arn: Some(organization_arn(&s.management, &org)),
        refs: Vec::new(),
        body: serde_json::to_value(&org).map_err(|e| OrgError::Internal(e.to_string()))?,
        seq: 0,
    };
    match tx.insert(&rec).await {
        Ok(_) => {}
        // A concurrent CreateOrganization won.
        Err(StoreError::Conflict(_)) => return Err(OrgError::AlreadyInOrganization),
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    s.identities.reload(&s.store).await?;
    Ok(OrganizationOutput {
        organization: Organization::of(&s.management, &org),
    })
}

#[derive(Debug, Deserialize)]
pub struct NoInput {}

async fn current(s: &AppState) -> Result<StoredOrganization, OrgError> {
    let mut tx = s.global_store.read().await?;
    find(&mut tx).await?.ok_or(OrgError::NotInUse)
}

async fn describe_organization(
    s: AppState,
    _: NoInput,
    _: Call,
) -> Result<OrganizationOutput, OrgError> {
    let org = current(&s).await?;
    Ok(OrganizationOutput {
        organization: Organization::of(&s.management, &org),
    })
}

#[derive(Debug, Serialize)]
pub struct Empty {}

async fn delete_organization(s: AppState, _: NoInput, _: Call) -> Result<Empty, OrgError> {
    management_only(&s)?;
    let mut tx = s.global_store.write().await?;
    let org = find(&mut tx).await?.ok_or(OrgError::NotInUse)?;
    if tx.count(ACCOUNT_KIND, None).await? > 0 {
        return Err(OrgError::NotEmpty);
    }
    tx.delete(ORGANIZATION_KIND, &org.id).await?;
    tx.commit().await?;
    s.identities.reload(&s.store).await?;
    Ok(Empty {})
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PageInput {
    next_token: Option<String>,
    max_results: Option<i64>,
}

impl PageInput {
    /// The model's bounds (1–20) and where the page starts: `NextToken` is the offset of the
    /// next item, as this server issued it.
    fn validate(&self) -> Result<(usize, usize), OrgError> {
        let size = match self.max_results {
            None => 20,
            Some(n) if (1..=20).contains(&n) => n as usize,
            Some(n) => {
                return Err(OrgError::InvalidInput(format!(
                    "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                     constraint: Member must have value between 1 and 20"
                )));
            }
        };
        let start = match &self.next_token {
            None => 0,
            Some(t) => t
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| {
                    OrgError::InvalidInput(
                        "The NextToken is not valid: this server did not issue it.".into(),
                    )
                })?,
        };
        Ok((start, size))
    }
}

/// One page of `items` from `start`, with the token of the next page.
fn page<T>(items: Vec<T>, (start, size): (usize, usize)) -> (Vec<T>, Option<String>) {
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let next = (start + size < total).then(|| format!("page-{}", start + size));
    (page, next)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Root {
    id: String,
    arn: String,
    name: &'static str,
    policy_types: Vec<PolicyTypeSummary>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRootsOutput {
    roots: Vec<Root>,
}

async fn list_roots(s: AppState, input: PageInput, _: Call) -> Result<ListRootsOutput, OrgError> {
    input.validate()?;
    management_only(&s)?;
    let org = current(&s).await?;
    Ok(ListRootsOutput {
        roots: vec![Root {
            arn: format!(
                "arn:{}:organizations::{}:root/{}/{}",
                s.management.partition, s.management.account_id, org.id, org.root_id
            ),
            id: org.root_id,
            name: "Root",
            policy_types: Vec::new(),
        }],
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Account {
    id: String,
    arn: String,
    email: String,
    name: String,
    status: &'static str,
    state: &'static str,
    joined_method: &'static str,
    joined_timestamp: WireTimestamp,
}

impl Account {
    fn management(ctx: &Context, org: &StoredOrganization) -> Account {
        Account {
            id: ctx.account_id.clone(),
            arn: account_arn(ctx, org, &ctx.account_id),
            email: account_email(&ctx.account_id),
            name: "management".into(),
            status: "ACTIVE",
            state: "ACTIVE",
            joined_method: "CREATED",
            joined_timestamp: WireTimestamp::from_unix_millis(org.create_date_ms),
        }
    }

    fn member(management: &Context, org: &StoredOrganization, a: &StoredAccount) -> Account {
        Account {
            id: a.id.clone(),
            arn: account_arn(management, org, &a.id),
            email: a.email.clone(),
            name: a.name.clone(),
            status: "ACTIVE",
            state: "ACTIVE",
            joined_method: "CREATED",
            joined_timestamp: WireTimestamp::from_unix_millis(a.create_date_ms),
        }
    }
}

/// Every account of the organization: the management account, then the members in creation
/// order.
async fn accounts(s: &AppState) -> Result<(StoredOrganization, Vec<Account>), OrgError> {
    let mut tx = s.global_store.read().await?;
    let org = find(&mut tx).await?.ok_or(OrgError::NotInUse)?;
    let members: Vec<StoredAccount> = decode_all(tx.list(ACCOUNT_KIND, None).await?)?;
    let mut all = vec![Account::management(&s.management, &org)];
    all.extend(
        members
            .iter()
            .map(|a| Account::member(&s.management, &org, a)),
    );
    Ok((org, all))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccountsOutput {
    accounts: Vec<Account>,
    next_token: Option<String>,
}

async fn list_accounts(
    s: AppState,
    input: PageInput,
    _: Call,
) -> Result<ListAccountsOutput, OrgError> {
    let window = input.validate()?;
    management_only(&s)?;
    let (_, all) = accounts(&s).await?;
    let (accounts, next_token) = page(all, window);
    Ok(ListAccountsOutput {
        accounts,
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountInput {
    account_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeAccountOutput {
    account: Account,
}

async fn describe_account(
    s: AppState,
    input: DescribeAccountInput,
    _: Call,
) -> Result<DescribeAccountOutput, OrgError> {
    let id = input.account_id.ok_or_else(|| {
        OrgError::InvalidInput(
            "1 validation error detected: Value null at 'accountId' failed to satisfy \
             constraint: Member must not be null"
                .into(),
        )
    })?;
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OrgError::InvalidInput(format!(
            "1 validation error detected: Value '{id}' at 'accountId' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: ^\\d{{12}}$"
        )));
    }
    management_only(&s)?;
    let (_, all) = accounts(&s).await?;
    let account = all
        .into_iter()
        .find(|a| a.id == id)
        .ok_or(OrgError::AccountNotFound(id))?;
    Ok(DescribeAccountOutput { account })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccountInput {
    email: Option<String>,
    account_name: Option<String>,
    role_name: Option<String>,
    iam_user_access_to_billing: Option<String>,
    #[serde(default)]
    tags: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccountStatus {
    id: String,
    account_name: String,
    state: String,
    requested_timestamp: WireTimestamp,
    completed_timestamp: WireTimestamp,
    account_id: Option<String>,
    failure_reason: Option<String>,
}

impl From<StoredCreateStatus> for CreateAccountStatus {
    fn from(c: StoredCreateStatus) -> CreateAccountStatus {
        CreateAccountStatus {
            id: c.id,
            account_name: c.account_name,
            state: c.state,
            requested_timestamp: WireTimestamp::from_unix_millis(c.requested_ms),
            completed_timestamp: WireTimestamp::from_unix_millis(c.completed_ms),
            account_id: c.account_id,
            failure_reason: c.failure_reason,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAccountOutput {
    create_account_status: CreateAccountStatus,
}

/// The model's constraints on CreateAccount's members, each as Organizations words it.
fn validate_create_account(
    input: &CreateAccountInput,
) -> Result<(String, String, String), OrgError> {
    let invalid = |member: &str, value: &str, constraint: &str| {
        OrgError::InvalidInput(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: {constraint}"
        ))
    };
    let required = |member: &str, v: &Option<String>| {
        v.clone().ok_or_else(|| {
            OrgError::InvalidInput(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy \
                 constraint: Member must not be null"
            ))
        })
    };
    let email = required("email", &input.email)?;
    let name = required("accountName", &input.account_name)?;
    let email_ok = (6..=64).contains(&email.len())
        && email.is_ascii()
        && email.split('@').count() == 2
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if !email_ok {
        return Err(invalid(
            "email",
            &email,
            "Member must satisfy regular expression pattern: [^\\s@]+@[^\\s@]+\\.[^\\s@]+ and \
             have length between 6 and 64",
        ));
    }
    if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
        return Err(invalid(
            "accountName",
            &name,
            "Member must have length between 1 and 50 and contain no control characters",
        ));
    }
    let role = input
        .role_name
        .clone()
        .unwrap_or_else(|| ACCESS_ROLE.to_string());
    let role_ok = (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
    if !role_ok {
        return Err(invalid(
            "roleName",
            &role,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]{1,64}",
        ));
    }
    if let Some(v) = &input.iam_user_access_to_billing
        && !matches!(v.as_str(), "ALLOW" | "DENY")
    {
        return Err(invalid(
            "iamUserAccessToBilling",
            v,
            "Member must satisfy enum value set: [ALLOW, DENY]",
        ));
    }
    if !input.tags.is_empty() {
        return Err(OrgError::InvalidInput(
            "Trellis does not support tags on accounts: create the account without Tags".into(),
        ));
    }
    Ok((email, name, role))
}

/// A 12-digit account ID not yet in use (nor the management account's).
fn new_account_id(taken: &[String], management: &str) -> String {
    let mut rng = rand::rng();
    loop {
        let id: String = (0..12)
            .map(|i| {
                // No leading zero, so the ID never looks shorter than it is.
                let low = u8::from(i == 0);
                char::from(b'0' + rng.random_range(low..10))
            })
            .collect();
        if id != management && !taken.contains(&id) {
            return id;
        }
    }
}

async fn create_account(
    s: AppState,
    input: CreateAccountInput,
    _: Call,
) -> Result<CreateAccountOutput, OrgError> {
    let (email, name, role_name) = validate_create_account(&input)?;
    management_only(&s)?;
    let mut tx = s.global_store.write().await?;
    find(&mut tx).await?.ok_or(OrgError::NotInUse)?;
    let members: Vec<StoredAccount> = decode_all(tx.list(ACCOUNT_KIND, None).await?)?;
    if members.len() + 1 >= MAX_ACCOUNTS {
        return Err(OrgError::ConstraintViolation(format!(
            "You have reached the limit on the number of accounts in your organization \
             ({MAX_ACCOUNTS})."
        )));
    }
    let now = Timestamp::now().unix_millis();
    let mut status = StoredCreateStatus {
        id: random_lower("car-", 32),
        account_name: name.clone(),
        state: "SUCCEEDED".into(),
        requested_ms: now,
        completed_ms: now,
        account_id: None,
        failure_reason: None,
    };
    let email_taken = email.eq_ignore_ascii_case(&account_email(&s.management.account_id))
        || members.iter().any(|m| m.email.eq_ignore_ascii_case(&email));
    if email_taken {
        // As in AWS the request itself succeeds; its status says why no account came of it.
        status.state = "FAILED".into();
        status.failure_reason = Some("EMAIL_ALREADY_EXISTS".into());
    } else {
        let taken: Vec<String> = members.into_iter().map(|m| m.id).collect();
        let account = StoredAccount {
            id: new_account_id(&taken, &s.management.account_id),
            name,
            email: email.clone(),
            create_date_ms: now,
            root_access_key_id: crate::iam::new_id("AKIA", 16),
            root_secret_access_key: crate::iam::new_secret(),
            credentials_taken: false,
        };
        tx.insert(&Record {
            kind: ACCOUNT_KIND.into(),
            id: account.id.clone(),
            parent: None,
            name: Some(email.to_ascii_lowercase()),
            arn: None,
            refs: Vec::new(),
            body: serde_json::to_value(&account).map_err(|e| OrgError::Internal(e.to_string()))?,
            seq: 0,
        })
        .await?;
        // The new account's first role, in the new account, in the same commit.
        tx.set_account(Some(&account.id));
        insert_access_role(&mut tx, &s, &account.id, &role_name, now).await?;
        tx.set_account(None);
        status.account_id = Some(account.id);
    }
    tx.insert(&Record {
        kind: CREATE_STATUS_KIND.into(),
        id: status.id.clone(),
        parent: None,
        name: None,
        arn: None,
        refs: Vec::new(),
        body: serde_json::to_value(&status).map_err(|e| OrgError::Internal(e.to_string()))?,
        seq: 0,
    })
    .await?;
    tx.commit().await?;
    s.identities.reload(&s.store).await?;
    Ok(CreateAccountOutput {
        create_account_status: status.into(),
    })
}

/// The role AWS creates in a new member account: the management account may assume it, and it
/// may do anything in the member account (`AdministratorAccess`).
async fn insert_access_role(
    tx: &mut Tx,
    s: &AppState,
    account: &str,
    role_name: &str,
    now: i64,
) -> Result<(), OrgError> {
    use crate::identity::{ATTACHMENT_KIND, EntityType, ROLE_KIND, StoredAttachment, StoredRole};
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:{}:iam::{}:root", s.management.partition, s.management.account_id) },
            "Action": "sts:AssumeRole"
        }]
    });
    let ctx = Context {
        account_id: account.to_string(),
        ..s.management.clone()
    };
    let role = StoredRole {
        arn: crate::identity::role_arn(&ctx, "/", role_name),
        role_id: crate::iam::new_id("AROA", 17),
        role_name: role_name.to_string(),
        path: "/".into(),
        create_date_ms: now,
        assume_role_policy_document: trust.to_string(),
        description: Some(
            "Created by CreateAccount for the organization's management account".into(),
        ),
        max_session_duration: 3600,
        tags: Vec::new(),
    };
    tx.insert(&Record {
        kind: ROLE_KIND.into(),
        id: role.role_id.clone(),
        parent: None,
        name: Some(role_name.to_lowercase()),
        arn: Some(role.arn.clone()),
        refs: Vec::new(),
        body: serde_json::to_value(&role).map_err(|e| OrgError::Internal(e.to_string()))?,
        seq: 0,
    })
    .await?;
    let policy = "arn:aws:iam::aws:policy/AdministratorAccess";
    let attachment = StoredAttachment {
        entity_type: EntityType::Role,
        entity_id: role.role_id.clone(),
        policy_arn: policy.to_string(),
    };
    tx.insert(&Record {
        kind: ATTACHMENT_KIND.into(),
        id: crate::iam::managed::attachment_id(&role.role_id, policy),
        parent: Some(role.role_id.clone()),
        name: None,
        arn: None,
        refs: vec![policy.to_string()],
        body: serde_json::to_value(&attachment).map_err(|e| OrgError::Internal(e.to_string()))?,
        seq: 0,
    })
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCreateAccountStatusInput {
    create_account_request_id: Option<String>,
}

async fn describe_create_account_status(
    s: AppState,
    input: DescribeCreateAccountStatusInput,
    _: Call,
) -> Result<CreateAccountOutput, OrgError> {
    let id = input.create_account_request_id.ok_or_else(|| {
        OrgError::InvalidInput(
            "1 validation error detected: Value null at 'createAccountRequestId' failed to \
             satisfy constraint: Member must not be null"
                .into(),
        )
    })?;
    let well_formed = id.strip_prefix("car-").is_some_and(|rest| {
        (8..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    if !well_formed {
        return Err(OrgError::InvalidInput(format!(
            "1 validation error detected: Value '{id}' at 'createAccountRequestId' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: \
             ^car-[a-z0-9]{{8,32}}$"
        )));
    }
    management_only(&s)?;
    let mut tx = s.global_store.read().await?;
    find(&mut tx).await?.ok_or(OrgError::NotInUse)?;
    let rec = tx
        .get(CREATE_STATUS_KIND, &id)
        .await?
        .ok_or(OrgError::CreateStatusNotFound(id))?;
    let status: StoredCreateStatus = serde_json::from_value(rec.body)
        .map_err(|e| OrgError::Internal(format!("a stored create-account status: {e}")))?;
    Ok(CreateAccountOutput {
        create_account_status: status.into(),
    })
}

/// Why [`take_root_credentials`] hands nothing out.
#[derive(Debug, thiserror::Error)]
pub enum TakeCredentialsError {
    #[error(
        "no member account {0} exists (the management account's root credentials are in DATA_DIR/credentials)"
    )]
    NoSuchAccount(String),
    #[error(
        "the root credentials of account {0} were already handed out once; they are not shown again"
    )]
    AlreadyTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored account does not decode: {0}")]
    Corrupt(String),
}

/// A member account's root credentials, handed out once: the operator's way into a new account
/// (`trellis accounts credentials ID`). Marks them taken in the same transaction.
pub async fn take_root_credentials(
    store: &trellis_store::Store,
    account: &str,
) -> Result<(String, String), TakeCredentialsError> {
    let mut tx = store.unscoped().write().await?;
    let rec = tx
        .get(ACCOUNT_KIND, account)
        .await?
        .ok_or_else(|| TakeCredentialsError::NoSuchAccount(account.to_string()))?;
    let mut stored: StoredAccount = serde_json::from_value(rec.body.clone())
        .map_err(|e| TakeCredentialsError::Corrupt(e.to_string()))?;
    if stored.credentials_taken {
        return Err(TakeCredentialsError::AlreadyTaken(account.to_string()));
    }
    stored.credentials_taken = true;
    let credentials = (
        stored.root_access_key_id.clone(),
        stored.root_secret_access_key.clone(),
    );
    tx.update(&Record {
        body: serde_json::to_value(&stored)
            .map_err(|e| TakeCredentialsError::Corrupt(e.to_string()))?,
        ..rec
    })
    .await?;
    tx.commit().await?;
    Ok(credentials)
}
