//! Per-request metrics under Lattice's names: the [`Recorder`] turns each request's
//! [`AccessRecord`] into counts on its service's and target group's series.
//!
//! The series handles are cached by resource ID in a copy-on-write map read through an
//! `ArcSwap`: the request path does one lock-free load and one hash lookup per resource, and
//! builds label sets (allocating their strings) only the first time a service or target group
//! serves a request. Entries are never evicted: a deleted resource keeps its (no longer
//! growing) series until the process restarts, as Prometheus counters expect, and the map is
//! bounded by the resources ever configured.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use trellis_telemetry::lattice::{LatticeMetrics, ServiceSeries, TargetGroupSeries};

use crate::pipeline::AccessRecord;

/// The proxy's handle on the data-plane metrics.
pub(crate) struct Recorder {
    metrics: Arc<LatticeMetrics>,
    services: ArcSwap<HashMap<String, Arc<ServiceSeries>>>,
    groups: ArcSwap<HashMap<String, Arc<TargetGroupSeries>>>,
}

impl Recorder {
    pub(crate) fn new(metrics: Arc<LatticeMetrics>) -> Recorder {
        Recorder {
            metrics,
            services: ArcSwap::default(),
            groups: ArcSwap::default(),
        }
    }

    pub(crate) fn metrics(&self) -> &LatticeMetrics {
        &self.metrics
    }

    /// A target group's series, created on its first request.
    pub(crate) fn target_group(&self, id: &str) -> Arc<TargetGroupSeries> {
        cached(&self.groups, id, || self.metrics.target_group(id))
    }

    fn service(&self, id: &str) -> Arc<ServiceSeries> {
        cached(&self.services, id, || self.metrics.service(id))
    }

    /// Counts a finished request (its response head is on its way) on its service and target
    /// group. A request that matched no service counts nowhere: Lattice has no dimension for it.
    pub(crate) fn request(&self, record: &AccessRecord) {
        let time_ms = record.duration.as_secs_f64() * 1000.0;
        if let Some(service) = &record.service {
            let timed_out = record.failure == Some("TargetDataTimeout");
            self.service(&service.id)
                .request(record.status, time_ms, timed_out);
        }
        if let Some(group) = &record.group_series {
            group.request(record.status, time_ms);
        }
    }
}

fn cached<T>(map: &ArcSwap<HashMap<String, Arc<T>>>, id: &str, make: impl FnOnce() -> T) -> Arc<T> {
    if let Some(series) = map.load().get(id) {
        return Arc::clone(series);
    }
    // The label sets are built outside the update; `get_or_create` makes two racing first
    // requests share one series anyway.
    let series = Arc::new(make());
    let mut out = Arc::clone(&series);
    map.rcu(|current| {
        let mut next = HashMap::clone(current);
        out = Arc::clone(
            next.entry(id.to_owned())
                .or_insert_with(|| Arc::clone(&series)),
        );
        next
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_hands_out_one_series_per_id() {
        let map: ArcSwap<HashMap<String, Arc<u32>>> = ArcSwap::default();
        let a = cached(&map, "tg-1", || 1);
        let b = cached(&map, "tg-1", || 2);
        let c = cached(&map, "tg-2", || 3);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!((*a, *c), (1, 3));
        assert_eq!(map.load().len(), 2);
    }
}
