//! AWS Organizations (`organizations/2016-11-28`, awsJson1_1, signing name `organizations`,
//! global): the subset that gives `aws:PrincipalOrgID` and `aws:PrincipalOrgPaths` a real
//! source. The account of `--account-id` creates its organization (`CreateOrganization`), of
//! which it is the management account and — until Trellis hosts several accounts — the only
//! member, directly under the root; `DescribeOrganization`, `ListRoots`, `ListAccounts`,
//! `DescribeAccount` and `DeleteOrganization` read and remove it.
//!
//! The organization is one store record ([`ORGANIZATION_KIND`]) loaded into the identity index,
//! so that the gate's authorizer and the data plane's auth stage see every principal of the
//! account as a member of it (`o-…`, path `o-…/r-…/`) from the index's revision on. Member
//! accounts (`CreateAccount`), organizational units and policies are not served.

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
    ]
}

/// Organizations' errors, classified once.
#[derive(Debug)]
pub enum OrgError {
    InvalidInput(String),
    NotInUse,
    AlreadyInOrganization,
    AccountNotFound(String),
    Internal(String),
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
            OrgError::Internal(detail) => AwsError::internal("ServiceException", detail),
        }
    }
}

impl From<StoreError> for OrgError {
    fn from(e: StoreError) -> OrgError {
        OrgError::Internal(e.to_string())
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

fn account_arn(ctx: &Context, org: &StoredOrganization) -> String {
    format!(
        "arn:{}:organizations::{}:account/{}/{}",
        ctx.partition, ctx.account_id, org.id, ctx.account_id
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

async fn find(tx: &mut Tx) -> Result<Option<StoredOrganization>, OrgError> {
    let records = tx.list(ORGANIZATION_KIND, None).await?;
    records
        .into_iter()
        .next()
        .map(|r| {
            serde_json::from_value(r.body).map_err(|e| {
                OrgError::Internal(format!("a stored organization does not decode: {e}"))
            })
        })
        .transpose()
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
    fn of(ctx: &Context, org: &StoredOrganization) -> Organization {
        Organization {
            id: org.id.clone(),
            arn: organization_arn(ctx, org),
            feature_set: org.feature_set.clone(),
            master_account_arn: account_arn(ctx, org),
            master_account_id: ctx.account_id.clone(),
            master_account_email: account_email(&ctx.account_id),
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
    let mut tx = s.store.write().await?;
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
        arn: Some(organization_arn(&s.ctx, &org)),
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
        organization: Organization::of(&s.ctx, &org),
    })
}

#[derive(Debug, Deserialize)]
pub struct NoInput {}

async fn current(s: &AppState) -> Result<StoredOrganization, OrgError> {
    let mut tx = s.store.read().await?;
    find(&mut tx).await?.ok_or(OrgError::NotInUse)
}

async fn describe_organization(
    s: AppState,
    _: NoInput,
    _: Call,
) -> Result<OrganizationOutput, OrgError> {
    let org = current(&s).await?;
    Ok(OrganizationOutput {
        organization: Organization::of(&s.ctx, &org),
    })
}

#[derive(Debug, Serialize)]
pub struct Empty {}

async fn delete_organization(s: AppState, _: NoInput, _: Call) -> Result<Empty, OrgError> {
    let mut tx = s.store.write().await?;
    let org = find(&mut tx).await?.ok_or(OrgError::NotInUse)?;
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
    /// The model's bounds (1–20); every list here has one item, so a token is never issued and
    /// none is accepted.
    fn validate(&self) -> Result<(), OrgError> {
        if let Some(n) = self.max_results
            && !(1..=20).contains(&n)
        {
            return Err(OrgError::InvalidInput(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy \
                 constraint: Member must have value between 1 and 20"
            )));
        }
        if self.next_token.is_some() {
            return Err(OrgError::InvalidInput(
                "The NextToken is not valid: no list of this organization has a next page.".into(),
            ));
        }
        Ok(())
    }
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
    let org = current(&s).await?;
    Ok(ListRootsOutput {
        roots: vec![Root {
            arn: format!(
                "arn:{}:organizations::{}:root/{}/{}",
                s.ctx.partition, s.ctx.account_id, org.id, org.root_id
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
    name: &'static str,
    status: &'static str,
    state: &'static str,
    joined_method: &'static str,
    joined_timestamp: WireTimestamp,
}

impl Account {
    fn management(ctx: &Context, org: &StoredOrganization) -> Account {
        Account {
            id: ctx.account_id.clone(),
            arn: account_arn(ctx, org),
            email: account_email(&ctx.account_id),
            name: "management",
            status: "ACTIVE",
            state: "ACTIVE",
            joined_method: "CREATED",
            joined_timestamp: WireTimestamp::from_unix_millis(org.create_date_ms),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAccountsOutput {
    accounts: Vec<Account>,
}

async fn list_accounts(
    s: AppState,
    input: PageInput,
    _: Call,
) -> Result<ListAccountsOutput, OrgError> {
    input.validate()?;
    let org = current(&s).await?;
    Ok(ListAccountsOutput {
        accounts: vec![Account::management(&s.ctx, &org)],
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
    let org = current(&s).await?;
    if id != s.ctx.account_id {
        return Err(OrgError::AccountNotFound(id));
    }
    Ok(DescribeAccountOutput {
        account: Account::management(&s.ctx, &org),
    })
}
