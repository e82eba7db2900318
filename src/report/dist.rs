//! Exact quantiles in memory that grows with the distinct values, not the rows: each value is
//! counted once however often it occurs (a day of MOS samples holds a few hundred distinct
//! values), and partial counts from files read in parallel add up.

use std::collections::BTreeMap;

/// Counts of the values seen, in value order.
#[derive(Clone, Debug, Default)]
pub struct Distribution {
    counts: BTreeMap<OrderedBits, u64>,
    len: u64,
}

/// An f64 as bits that sort the way the numbers do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrderedBits(u64);

impl OrderedBits {
    fn of(value: f64) -> OrderedBits {
        let bits = value.to_bits();
        OrderedBits(if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        })
    }

    fn value(self) -> f64 {
        let bits = self.0;
        f64::from_bits(if bits >> 63 == 1 {
            bits & !(1 << 63)
        } else {
            !bits
        })
    }
}

impl Distribution {
    /// Counts a value (NaN is not a measurement and is skipped; -0 counts as 0).
    pub fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        let value = if value == 0.0 { 0.0 } else { value };
        *self.counts.entry(OrderedBits::of(value)).or_default() += 1;
        self.len += 1;
    }

    /// Adds another distribution's counts.
    pub fn merge(&mut self, other: Distribution) {
        for (value, count) in other.counts {
            *self.counts.entry(value).or_default() += count;
        }
        self.len += other.len;
    }

    /// Values counted.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `q` quantile, interpolated between the two nearest values (the definition of
    /// DuckDB's `quantile_cont` and of numpy's default: position `q·(n−1)` in sorted order).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let position = q.clamp(0.0, 1.0) * (self.len - 1) as f64;
        let below = position.floor() as u64;
        let low = self.nth(below)?;
        let high = self.nth(position.ceil() as u64)?;
        Some(low + (high - low) * (position - below as f64))
    }

    /// The value at rank `rank` (0-based) in sorted order.
    fn nth(&self, rank: u64) -> Option<f64> {
        let mut seen = 0u64;
        for (value, count) in &self.counts {
            seen += count;
            if rank < seen {
                return Some(value.value());
            }
        }
        None
    }

    /// Counts per bin of `width` from `first` (values below go to the first bin, values at
    /// or above `first + bins·width` to the last).
    pub fn histogram(&self, first: f64, width: f64, bins: usize) -> Vec<u64> {
        let mut counts = vec![0u64; bins];
        let last = bins.saturating_sub(1);
        for (value, count) in &self.counts {
            let bin = ((value.value() - first) / width).floor();
            let bin = if bin < 0.0 {
                0
            } else {
                (bin as usize).min(last)
            };
            if let Some(slot) = counts.get_mut(bin) {
                *slot += count;
            }
        }
        counts
    }
}

/// Count, sum, minimum and maximum of a call's samples of one metric.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stat {
    /// Samples.
    pub n: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: Option<f64>,
    /// The largest.
    pub max: Option<f64>,
}

impl Stat {
    /// Counts a sample (NaN skipped).
    pub fn add(&mut self, value: f64) {
        if value.is_nan() {
            return;
        }
        self.n += 1;
        self.sum += value;
        self.min = Some(self.min.map_or(value, |m| m.min(value)));
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
    }

    /// Adds another's samples.
    pub fn merge(&mut self, other: Stat) {
        self.n += other.n;
        self.sum += other.sum;
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The mean; None without samples.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Distribution {
        let mut d = Distribution::default();
        values.iter().for_each(|v| d.add(*v));
        d
    }

    #[test]
    fn quantiles_interpolate_like_quantile_cont() {
        let d = of(&[4.0, 1.0, 3.0, 2.0, 2.0]);
        assert_eq!(d.quantile(0.5), Some(2.0));
        assert_eq!(d.quantile(0.0), Some(1.0));
        assert_eq!(d.quantile(1.0), Some(4.0));
        // sorted 1 2 2 3 4: position 0.95·4 = 3.8 → 3 + 0.8·(4 − 3)
        assert!((d.quantile(0.95).unwrap_or_default() - 3.8).abs() < 1e-12);
        assert_eq!(of(&[]).quantile(0.5), None);
        assert_eq!(of(&[-1.5, f64::NAN, -3.0]).quantile(0.5), Some(-2.25));
    }

    #[test]
    fn merged_parts_equal_the_whole() {
        let mut a = of(&[1.0, 5.0, 5.0]);
        a.merge(of(&[3.0, 5.0]));
        let whole = of(&[1.0, 5.0, 5.0, 3.0, 5.0]);
        assert_eq!(a.len(), 5);
        assert_eq!(a.quantile(0.25), whole.quantile(0.25));
        assert_eq!(a.histogram(1.0, 2.0, 2), vec![1, 4]);
    }
}
