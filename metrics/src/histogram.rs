//! `Histogram`: a distribution of observed values over fixed buckets,
//! recorded with atomic adds (no lock), read whole at each scrape.

use std::sync::atomic::{AtomicU64, Ordering};

/// Observations counted per bucket. Buckets are fixed when it is made, so
/// recording never allocates and a scrape's size does not grow with traffic.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending; a last bucket (`+Inf`) takes
    /// the rest.
    bounds: &'static [f64],
    /// Observations per bucket, not cumulative: `counts[i]` holds values in
    /// `(bounds[i-1], bounds[i]]`, the last one those above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum of the values observed, as the bits of an `f64`.
    sum_bits: AtomicU64,
}

/// A histogram as read at one moment, in the shape the exposition writes.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Each bound with the observations at or below it (cumulative).
    pub buckets: Vec<(f64, u64)>,
    /// Every observation, the `+Inf` bucket.
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    /// Panics unless `bounds` ascend strictly: they are constants of the program.
    pub fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "histogram bounds must ascend: {bounds:?}");
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        // A compare-and-swap loop: there is no atomic float add. Contention
        // is one retry per concurrent observation of the same series.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + value).to_bits()));
    }

    /// Whether anything was observed yet (an empty series is left out of a scrape).
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|count| count.load(Ordering::Relaxed) == 0)
    }

    /// The counts now. Observations made while it reads may be in the
    /// buckets and not yet in the sum, or the reverse; the count is always
    /// the `+Inf` bucket, as the format requires.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Ordering::Relaxed);
            buckets.push((*bound, cumulative));
        }
        let count = cumulative + self.counts[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot { buckets, count, sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_is_at_or_above_them() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let histogram = Histogram::new(&BOUNDS);
        assert!(histogram.is_empty());
        for value in [0.0005, 0.001, 0.002, 0.05, 0.1, 3.0] {
            histogram.observe(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.001, 2), (0.01, 3), (0.1, 5)]);
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum - 3.1535).abs() < 1e-9, "{}", snapshot.sum);
        assert!(!histogram.is_empty());
    }

    #[test]
    fn concurrent_observations_are_all_counted() {
        static BOUNDS: [f64; 1] = [1.0];
        let histogram = Histogram::new(&BOUNDS);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| (0..10_000).for_each(|_| histogram.observe(0.5)));
            }
        });
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count, 40_000);
        assert_eq!(snapshot.sum, 20_000.0);
    }

    #[test]
    #[should_panic(expected = "must ascend")]
    fn bounds_out_of_order_are_refused() {
        static BOUNDS: [f64; 2] = [0.1, 0.01];
        let _ = Histogram::new(&BOUNDS);
    }
}
