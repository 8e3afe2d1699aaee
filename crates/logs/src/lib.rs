//! `trellis-logs`: CloudWatch Logs hosted by Trellis, and where access-log records go.
//!
//! * [`api`]: the CloudWatch Logs API subset (`logs`, awsJson1_1) the AWS CLI's `aws logs`
//!   commands use, added to the front door's table by `trellis serve`;
//! * [`events`]: the node-local event store (a SQLite file in the data dir, outside the config
//!   store and its revision);
//! * [`pattern`]: filter patterns (terms and JSON `{ $.field = value }` expressions);
//! * [`delivery`]: the proxy's access-log sink — bounded queues per destination, batching
//!   workers, the log-group and file sinks.

pub mod api;
pub mod delivery;
pub mod events;
pub mod pattern;

pub use api::{LOGS, LogsState, operations};
pub use delivery::{Dispatcher, FileSink};
pub use events::EventStore;
