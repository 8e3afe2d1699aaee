//! The AWS front door: every operation Trellis serves is declared once in a [`Table`] — its
//! service (signing name, protocol, target prefix), its binding (method + URI template for REST,
//! `X-Amz-Target` for the JSON protocols, `Action` for the query protocols), its typed input and
//! output, its errors and its handler. The router, the SigV4 gate's service-name check and body
//! caps, the metric operation names, the "unknown operation" answer and the docs' list of
//! operations all come from the table.
//!
//! The [`codec`]s read a request's input members for each protocol and write outputs and errors
//! exactly as botocore parses them. Services keep their own error enums and convert them into
//! [`AwsError`]; internal errors are logged with the [`RequestId`] and answered generically.
//!
//! This crate knows AWS's wire protocols and nothing about Lattice, Lambda or the store.

pub mod codec;
pub mod de;
pub mod error;
pub mod operation;
pub mod request_id;
pub mod service;
pub mod table;

pub use error::{AwsError, Fault, SERVICE_UNAVAILABLE};
pub use operation::{Authorize, AuthorizeFuture, Authorizer, Call, Http, Operation, OperationMeta};
pub use request_id::{RequestId, deferred};
pub use service::{Protocol, Service, ServiceErrors};
pub use table::{Head, OperationName, SignedService, Table, TableBuilder};

/// The request body cap of every operation that does not declare its own (the largest modelled
/// Lattice member, an auth policy, is 36,864 characters; 1 MiB leaves room for any of them).
pub const DEFAULT_BODY_CAP: usize = 1 << 20;
