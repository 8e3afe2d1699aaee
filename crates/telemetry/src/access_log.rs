//! Access-log delivery as the data plane sees it: the [`AccessLogSink`] the proxy hands each
//! finished request's record to, and the delivery metrics (`trellis_access_log_*`).
//!
//! The proxy formats a record only when some destination wants it and offers it without
//! waiting: an implementation keeps a bounded queue per destination and drops (and counts) a
//! record its queue has no room for, so a slow destination never delays a request. The
//! implementation is `trellis-logs`' `Dispatcher`; this crate only holds the seam, so that the
//! proxy does not depend on how or where records are written.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One subscription's destination, as the snapshot compiled it.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    /// The access-log subscription's ID: its queue's key.
    pub subscription: &'a str,
    /// The subscription's `destinationArn`.
    pub destination_arn: &'a str,
    /// The ID of the subscribed resource (`svc-…` or `sn-…`); a log group's stream is named
    /// after it.
    pub resource: &'a str,
}

/// Where the proxy sends access-log records.
pub trait AccessLogSink: Send + Sync {
    /// Whether every request's record is wanted (a file or stdout sink), subscribed or not.
    fn wants_all(&self) -> bool;
    /// Queues `record` (one JSON object, no newline) for `delivery`, or for the every-request
    /// sink when `None`. Never blocks: a full queue drops the record and counts it.
    fn offer(&self, delivery: Option<Delivery<'_>>, record: Arc<str>);
}

/// The label of every delivery series: the kind of destination, never its name (bounded).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    /// `log-group` or `file`.
    pub destination: &'static str,
}

/// `trellis_access_log_*`.
#[derive(Debug, Default)]
pub struct AccessLogMetrics {
    /// Records waiting in queues.
    pub queued: Family<DestinationLabels, Gauge>,
    /// Records accepted into a queue.
    pub accepted: Family<DestinationLabels, Counter>,
    /// Records written to their destination.
    pub delivered: Family<DestinationLabels, Counter>,
    /// Records dropped because their queue was full.
    pub dropped: Family<DestinationLabels, Counter>,
    /// Records a destination failed to take (after retries), or whose destination is gone.
    pub failed: Family<DestinationLabels, Counter>,
}

impl AccessLogMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Arc<AccessLogMetrics> {
        let m = Arc::new(AccessLogMetrics::default());
        registry.register(
            "access_log_queued",
            "Access-log records waiting in delivery queues, by destination kind",
            m.queued.clone(),
        );
        registry.register(
            "access_log_accepted",
            "Access-log records accepted into a delivery queue, by destination kind",
            m.accepted.clone(),
        );
        registry.register(
            "access_log_delivered",
            "Access-log records written to their destination, by destination kind",
            m.delivered.clone(),
        );
        registry.register(
            "access_log_dropped",
            "Access-log records dropped because their delivery queue was full, by destination kind",
            m.dropped.clone(),
        );
        registry.register(
            "access_log_failed",
            "Access-log records their destination did not take after retries, by destination kind",
            m.failed.clone(),
        );
        m
    }

    /// The labels of one destination kind.
    pub fn labels(destination: &'static str) -> DestinationLabels {
        DestinationLabels { destination }
    }
}
