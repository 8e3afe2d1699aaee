//! The Lambda-compatible function host: deploy functions with the Lambda API, run them in local
//! runtime processes that speak the Lambda Runtime API, or send them to a remote Lambda endpoint.
//!
//! # Pieces
//!
//! * [`api`] — the Lambda API subset (`lambda/2015-03-31`): functions, versions, aliases and
//!   `Invoke`, in Lambda's wire shapes and errors. Served by the API crate behind SigV4.
//! * [`host`] — [`FunctionHost`], the one entry point for invocations (the `Invoke` API and the
//!   data plane's LAMBDA target groups): resolves name and qualifier through the store, admits
//!   the invocation against the function's concurrency, runs it locally or remotely.
//! * [`catalog`] and [`config`] — functions, versions and aliases as store records; code lives in
//!   the store's content-addressed blob table.
//! * [`pool`], [`sandbox`], [`runtime_api`] — runtime processes: one Runtime API server per
//!   process, warm reuse, concurrency, timeouts, crash and init-error reporting.
//! * [`code`] — deployment packages: checks, and unpacking into `CODE_DIR/<sha256>/`.
//! * [`isolation`] — the sandbox every runtime process runs in: its own uid, namespaces and
//!   cgroup (memory and process limits).
//! * [`logs`] — `DATA_DIR/logs/functions/<name>.log` and the per-invocation `Tail`.
//! * [`remote`] — SigV4-signed invocations at `--lambda-endpoint`.
//! * [`lattice`] — LAMBDA target groups: the HTTP request → Lattice event (`V1`/`V2`) and the
//!   function's result → HTTP response mappings, pure.
//!
//! # Runtimes
//!
//! `nodejs18.x`–`nodejs24.x` run the machine's `node` with Trellis's bootstrap
//! (`src/bootstrap/trellis_bootstrap.mjs`), `python3.x` the machine's `python3` with
//! `src/bootstrap/trellis_bootstrap.py`; both are embedded in the binary and written to
//! `CODE_DIR/_runtime/`. `provided`, `provided.al2` and `provided.al2023` run the
//! package's own `bootstrap`, which may be any Runtime API client (a shell loop with curl,
//! `python3 -m awslambdaric`, a Rust or Go binary).
//!
//! # Invariants
//!
//! * Everything durable is in the store (records and code blobs); the code dir (outside the data
//!   dir) holds only unpacked code, the data dir logs, so a node can be replaced and PostgreSQL-backed nodes share
//!   their functions.
//! * No lock is held across an `.await` on the invocation path; a runtime process runs one
//!   invocation at a time and is killed, never reused, after a timeout or a crash.
//! * The server's own environment (its credentials included) never reaches a runtime process:
//!   processes get an allowlist of host variables plus Lambda's and the function's own.
//! * With isolation (the default) no runtime process shares a uid, a PID namespace or a cgroup
//!   with the server or another runtime process, and its Runtime API serves only its uid.

pub mod api;
pub mod catalog;
pub mod code;
pub mod config;
pub mod host;
pub mod isolation;
pub mod logs;
pub mod names;
pub mod pool;
pub mod remote;
pub mod runtime_api;
pub mod sandbox;

pub use api::{Api, LAMBDA, operations, public_routes};
pub use host::{
    CodeLinkKey, FunctionHost, HostConfig, InvocationType, InvokeError, InvokeOptions,
    InvokeOutcome,
};
pub use isolation::{IsolationConfig, IsolationMode};
pub use logs::{log_path, log_path_in};
pub use remote::RemoteConfig;
