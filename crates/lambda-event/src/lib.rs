//! What the data plane needs to serve LAMBDA target groups, and nothing that does I/O or reaches
//! the store: the Lattice event and response mappings ([`lattice`]) and the invocation call
//! ([`FunctionInvoker`], its outcome and errors). The proxy depends on this crate instead of on
//! `trellis-functions` (the host, with its Lambda API, deployment packages and store); the
//! crate-graph test in `crates/dataplane/tests/crate_graph.rs` keeps it that way.

mod invoke;
pub mod lattice;

pub use invoke::{FunctionInvoker, InvokeError, InvokeFuture, InvokeOutcome, MAX_SYNC_PAYLOAD};
