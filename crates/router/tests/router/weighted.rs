//! Weighted target-group choice: exact boundaries, exhaustive proportionality over scaled grids
//! of `r`, and a fixed-seed statistical check.

use trellis_router::WeightedGroups;

use crate::support::XorShift;

fn groups(weights: &[u32]) -> WeightedGroups {
    WeightedGroups::new(
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("tg-{i}"), *w)),
    )
}

fn index(picked: Option<&str>) -> Option<usize> {
    picked.map(|id| id.strip_prefix("tg-").unwrap().parse().unwrap())
}

#[test]
fn pick_table() {
    const HALF: u32 = 1 << 31;
    // (weights, r, expected group index)
    let cases: &[(&[u32], u32, Option<usize>)] = &[
        (&[], 0, None),
        (&[], u32::MAX, None),
        (&[0], 0, None),
        (&[0, 0, 0], 12345, None),
        (&[1], 0, Some(0)),
        (&[1], u32::MAX, Some(0)),
        (&[100], HALF, Some(0)),
        (&[1, 1], 0, Some(0)),
        (&[1, 1], HALF - 1, Some(0)),
        (&[1, 1], HALF, Some(1)),
        (&[1, 1], u32::MAX, Some(1)),
        (&[0, 5], 0, Some(1)),
        (&[5, 0], u32::MAX, Some(0)),
        (&[0, 1, 0], 0, Some(1)),
        (&[0, 1, 0], u32::MAX, Some(1)),
        // 1:2 split: the first third of the range goes to group 0.
        (&[10, 20], 0x5555_5555, Some(0)),
        (&[10, 20], 0x5555_5556, Some(1)),
        // Weights whose sum exceeds u32 stay exact.
        (&[u32::MAX, u32::MAX], HALF - 1, Some(0)),
        (&[u32::MAX, u32::MAX], HALF, Some(1)),
        (&[u32::MAX, 0, u32::MAX], u32::MAX, Some(2)),
    ];
    for (weights, r, expected) in cases {
        let g = groups(weights);
        assert_eq!(index(g.pick(*r)), *expected, "weights {weights:?} r {r:#x}");
        assert_eq!(
            g.total_weight(),
            weights.iter().map(|w| u64::from(*w)).sum::<u64>()
        );
    }
}

const WEIGHT_SETS: &[&[u32]] = &[
    &[1],
    &[1, 1],
    &[10, 20],
    &[1, 0, 3],
    &[0, 999, 1],
    &[7, 11, 13],
    &[999, 999, 999, 999, 999, 999, 999, 999, 999, 999],
    &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    &[0, 0, 1],
    &[500, 0, 0, 499],
];

/// Over a grid of `n` evenly spaced values of `r`, each group is picked `n * w / total` times
/// within ±1, and a weight-0 group never.
#[test]
fn pick_is_proportional_over_scaled_grids() {
    for weights in WEIGHT_SETS {
        let g = groups(weights);
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        for n in [total, 7 * total, 1000, 4096, 65_536, 100_003] {
            let mut counts = vec![0u64; weights.len()];
            for k in 0..n {
                // r_k = floor(k * 2^32 / n): the k-th of n evenly spaced points in u32.
                let r = ((k << 32) / n) as u32;
                counts[index(g.pick(r)).unwrap()] += 1;
            }
            for (i, (w, count)) in weights.iter().zip(&counts).enumerate() {
                // |count - n*w/total| <= 1, in integers.
                let exact = n * u64::from(*w);
                assert!(
                    (count * total).abs_diff(exact) <= total,
                    "weights {weights:?} n {n}: group {i} got {count}, want {}",
                    exact as f64 / total as f64
                );
                if *w == 0 {
                    assert_eq!(*count, 0, "weights {weights:?} n {n}: group {i}");
                }
            }
            assert_eq!(counts.iter().sum::<u64>(), n);
        }
    }
}

/// With uniformly random `r`, each group's share stays within 5 binomial standard deviations of
/// its weight's share (deterministic: fixed seed).
#[test]
fn pick_shares_follow_weights_statistically() {
    const SAMPLES: u64 = 200_000;
    let mut rng = XorShift::new(0x5eed_1234_abcd_0001);
    for weights in WEIGHT_SETS {
        let g = groups(weights);
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut counts = vec![0u64; weights.len()];
        for _ in 0..SAMPLES {
            counts[index(g.pick(rng.next_u32())).unwrap()] += 1;
        }
        for (i, (w, count)) in weights.iter().zip(&counts).enumerate() {
            let p = f64::from(*w) / total as f64;
            let mean = SAMPLES as f64 * p;
            let sigma = (SAMPLES as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (*count as f64 - mean).abs() <= 5.0 * sigma,
                "weights {weights:?}: group {i} got {count}, want {mean:.0} ± {:.0}",
                5.0 * sigma
            );
        }
    }
}

#[test]
fn pick_is_deterministic_and_keeps_action_order() {
    let g = WeightedGroups::new([
        ("tg-z".to_string(), 3),
        ("tg-a".to_string(), 0),
        ("tg-m".to_string(), 1),
    ]);
    assert_eq!(
        g.groups(),
        [
            ("tg-z".to_string(), 3),
            ("tg-a".to_string(), 0),
            ("tg-m".to_string(), 1)
        ]
    );
    let mut rng = XorShift::new(42);
    for _ in 0..1000 {
        let r = rng.next_u32();
        assert_eq!(g.pick(r), g.pick(r));
        // The first three quarters of the range go to the first group.
        let want = if u64::from(r) * 4 < 3 << 32 {
            "tg-z"
        } else {
            "tg-m"
        };
        assert_eq!(g.pick(r), Some(want), "r {r:#x}");
    }
}
