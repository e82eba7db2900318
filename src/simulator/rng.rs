//! Deterministic randomness: a hash of (seed, stream tag, indices) seeds a tiny splitmix64
//! generator per record, so any record can be rebuilt alone, in any order, byte for byte.
//!
//! Used by every generator module and by the fault decisions; owns no state of its own.

/// Stream tags: each kind of value draws from its own stream.
pub(crate) mod tag {
    pub const CALL: u64 = 1;
    pub const SID: u64 = 2;
    pub const EVENT: u64 = 3;
    pub const METRIC: u64 = 4;
    pub const REST: u64 = 5;
    pub const LEG: u64 = 7;
    pub const LEG_EVENT: u64 = 8;
    pub const FAULT: u64 = 9;
    pub const EDGE: u64 = 10;
    pub const QUALITY: u64 = 11;
    pub const ACCOUNT: u64 = 12;
    pub const CONFERENCE: u64 = 13;
    pub const CONFERENCE_SID: u64 = 14;
    pub const PARTICIPANT_SID: u64 = 15;
    pub const PARTICIPANT_CALL: u64 = 16;
    pub const CONFERENCE_BODY: u64 = 17;
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a list of integers into one well-mixed value.
pub(crate) fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243F_6A88_85A3_08D3, |acc, &p| {
        mix(acc.wrapping_add(GOLDEN) ^ p)
    })
}

/// A small generator seeded from [`hash`]; cheap to create per record.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for the record identified by `parts`.
    pub(crate) fn new(parts: &[u64]) -> Self {
        Rng(hash(parts))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A value in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// A float in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One item of a non-empty constant table.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = self.below(items.len() as u64) as usize;
        items[i.min(items.len().saturating_sub(1))]
    }
}

/// Rounds to `places` decimals (for values shown like `4.39`).
pub(crate) fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_parts_same_values() {
        let mut a = Rng::new(&[1, 2, 3]);
        let mut b = Rng::new(&[1, 2, 3]);
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(hash(&[1, 2, 3]), hash(&[1, 2, 4]));
        assert_ne!(hash(&[1, 2]), hash(&[2, 1]));
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rng::new(&[7]);
        for _ in 0..1000 {
            let v = r.range(30, 1500);
            assert!((30..=1500).contains(&v));
            assert!((0.0..1.0).contains(&r.unit()));
        }
        assert_eq!(round(4.386, 2), 4.39);
    }
}
