//! A sharded backfill's worker: `--shard I/N` takes the owner-hours whose stable hash falls in
//! share I of N, so that N workers started with the same window split it with no coordinator,
//! each hour taken by exactly one of them.

use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::ids::Owner;

/// Most workers one backfill may be split into.
pub const MAX_SHARDS: u32 = 1024;

/// Worker `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This worker, from 0.
    pub index: u32,
    /// All workers.
    pub count: u32,
}

impl Shard {
    /// Parses `I/N` (0 ≤ I < N ≤ 1024), as Kubernetes' `JOB_COMPLETION_INDEX` counts.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = |why: &str| Error::Input(format!("--shard {text:?}: {why}"));
        let (index, count) = text
            .split_once('/')
            .ok_or_else(|| bad("give I/N, e.g. 0/4 for the first of four workers"))?;
        let index: u32 = index.trim().parse().map_err(|_| bad("I is not a number"))?;
        let count: u32 = count.trim().parse().map_err(|_| bad("N is not a number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(&format!("N must be from 1 to {MAX_SHARDS}")));
        }
        if index >= count {
            return Err(bad("I counts from 0 and must be less than N"));
        }
        Ok(Shard { index, count })
    }

    /// Whether this worker takes the owner's hour: SHA-256 of `{owner}/{hour}`, so that the
    /// split is the same on every machine and version.
    pub fn takes(&self, owner: &Owner, hour: HourSlice) -> bool {
        bucket(&format!("{owner}/{hour}"), self.count) == self.index
    }

    /// The name of this worker's state (watermark, coverage, lock): `{job}.shard-{I}-of-{N}`.
    pub fn state_name(&self, job: &str) -> String {
        format!("{job}.shard-{}-of-{}", self.index, self.count)
    }

    /// Whether `name` is the state name of some shard of `job`.
    pub fn is_state_of(name: &str, job: &str) -> bool {
        name.strip_prefix(job)
            .and_then(|rest| rest.strip_prefix(".shard-"))
            .and_then(|rest| rest.split_once("-of-"))
            .is_some_and(|(i, n)| i.parse::<u32>().is_ok() && n.parse::<u32>().is_ok())
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The bucket (0..count) of a key.
fn bucket(key: &str, count: u32) -> u32 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_be_bytes(first) % u64::from(count)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_every_hour_exactly_once() {
        let owner = Owner::parse("AC00000000000000000000000000000000").expect("owner");
        let shards: Vec<Shard> = (0..4)
            .map(|i| Shard::parse(&format!("{i}/4")).expect("shard"))
            .collect();
        let mut taken = [0usize; 4];
        for index in 474_000..474_000 + 24 * 30 {
            let hour = HourSlice::from_index(index);
            let takers: Vec<usize> = (0..4).filter(|i| shards[*i].takes(&owner, hour)).collect();
            assert_eq!(takers.len(), 1, "{hour}");
            taken[takers[0]] += 1;
        }
        assert!(taken.iter().all(|n| *n > 120), "{taken:?}");
        assert!(Shard::parse("4/4").is_err());
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("x").is_err());
        assert_eq!(shards[1].state_name("nightly"), "nightly.shard-1-of-4");
        assert!(Shard::is_state_of("nightly.shard-1-of-4", "nightly"));
        assert!(!Shard::is_state_of("nightly2", "nightly"));
    }
}
