//! Domain types for Trellis: typed resource IDs, ARNs, names, timestamps and the validation
//! vocabulary shared by every resource. No I/O and no async runtime: everything here is pure.
//!
//! Resource documents (what the store holds for a service, a listener, …) live in the modules
//! under [`resources`]; their wire shapes are the API crate's business, not this crate's.

pub mod arn;
pub mod dns;
pub mod ids;
pub mod resources;
pub mod timestamp;
pub mod validate;

pub use arn::{Arn, Context};
pub use ids::ResourceKind;
pub use timestamp::Timestamp;
pub use validate::{Checks, FieldError, ValidationError};
