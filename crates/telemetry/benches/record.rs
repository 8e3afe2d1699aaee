//! What the data-plane metrics add to one forwarded request, as the proxy does it: find the
//! service's and the target group's handles in an `ArcSwap`'d map by ID, count the group's
//! active request until the response head, then count the request (status class and request
//! time) on both. The proxy's whole request costs ~18 µs of CPU (docs/benchmarks.md).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{Criterion, criterion_group, criterion_main};
use trellis_telemetry::Metrics;
use trellis_telemetry::lattice::{ServiceSeries, TargetGroupSeries};

fn record(c: &mut Criterion) {
    let metrics = Metrics::new();
    let mut services = HashMap::new();
    let mut groups = HashMap::new();
    // A configuration of some size: the map lookups hash an ID among 100.
    for i in 0..100 {
        let svc = format!("svc-{i:017x}");
        let tg = format!("tg-{i:017x}");
        services.insert(svc.clone(), Arc::new(metrics.lattice.service(&svc)));
        groups.insert(tg.clone(), Arc::new(metrics.lattice.target_group(&tg)));
    }
    let services: ArcSwap<HashMap<String, Arc<ServiceSeries>>> = ArcSwap::from_pointee(services);
    let groups: ArcSwap<HashMap<String, Arc<TargetGroupSeries>>> = ArcSwap::from_pointee(groups);
    let (svc, tg) = (format!("svc-{:017x}", 42), format!("tg-{:017x}", 42));
    c.bench_function("metrics per forwarded request", |b| {
        b.iter(|| {
            let group = Arc::clone(groups.load().get(black_box(tg.as_str())).unwrap());
            let active = group.enter();
            drop(black_box(active));
            let service = Arc::clone(services.load().get(black_box(svc.as_str())).unwrap());
            service.request(black_box(200), black_box(1.7), false);
            group.request(black_box(200), black_box(1.7));
        })
    });
    c.bench_function("encode /metrics (100 services, 100 groups)", |b| {
        b.iter(|| black_box(metrics.encode()))
    });
}

criterion_group!(benches, record);
criterion_main!(benches);
