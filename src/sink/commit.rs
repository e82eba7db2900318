//! The commit protocol: a slice's files appear together, replace the slice's earlier files,
//! and survive a crash at any point. Every step runs under the owner's lock (`lock`), so no
//! two runs commit one account's hour at once.
//!
//! 1. Files are written to the run's staging folder `_voxlake/staging/{job}/{run}/…`
//!    (invisible to readers of the tables).
//! 2. A journal (`_voxlake/journal/{owner}/…`) records the intent: which staged files become
//!    which data files, which earlier files go, and the slice records to write. Writing it is
//!    the commit point.
//! 3. The journal is applied: renames into place (each file appears whole: a rename, or an
//!    S3 copy), deletes of the earlier files, the slice records; then the journal is removed.
//!
//! Whoever next holds the owner's lock applies a journal a crash left (every step is
//! idempotent) before reading that owner's slices; a job's next run discards the staging of
//! its earlier runs that no journal names. So a crash before step 2 leaves the tables as they
//! were, and a crash after it is finished: never half a slice, never twice.

use serde::{Deserialize, Serialize};

use super::layout::{
    JOURNAL_DIR, journal_dir, journal_file, journal_run, slice_record, slice_records_root,
    staging_dir,
};
use super::store::Lake;
use crate::error::Result;
use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::schema::Table;

/// What is committed for one table and one slice (`_voxlake/slices/{owner}/{table}/{slice}.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SliceRecord {
    /// Format version.
    pub version: u32,
    /// Table name.
    pub table: String,
    /// Slice id (`2024-05-01T13`).
    pub slice: String,
    /// Data files, relative to the output.
    pub files: Vec<String>,
    /// Rows in them.
    pub rows: u64,
    /// Calls (or legs) whose rows they hold.
    pub calls: u64,
    /// Every call of the slice's window landed: a backfill may skip this slice.
    pub complete: bool,
    /// The run that committed it.
    pub run_id: String,
    /// When (RFC 3339).
    pub committed_at: String,
}

/// One table's part of a slice commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TableCommit {
    /// Table name.
    pub table: String,
    /// (staged, final) pairs to publish.
    pub publish: Vec<(String, String)>,
    /// Earlier files of the slice that the new ones do not replace by name.
    pub delete: Vec<String>,
    /// The slice record written once the files are in place.
    pub record: SliceRecord,
}

/// A journal: everything one slice commit does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SliceCommit {
    /// Format version.
    pub version: u32,
    /// The committing run.
    pub run_id: String,
    /// The account the slice belongs to.
    pub owner: String,
    /// Slice id.
    pub slice: String,
    /// The tables' group (`twilio`, `telnyx`).
    pub group: String,
    /// Per table.
    pub tables: Vec<TableCommit>,
}

fn bad(what: &str) -> crate::error::Error {
    crate::error::Error::Lake(format!("journal: bad {what}"))
}

/// Writes the journal, then applies it. The caller holds the owner's lock.
pub async fn commit(lake: &Lake, commit: &SliceCommit) -> Result<()> {
    let slice = HourSlice::parse(&commit.slice).ok_or_else(|| bad("slice id"))?;
    let owner = Owner::parse(&commit.owner).ok_or_else(|| bad("owner"))?;
    let journal = journal_file(&owner, &commit.run_id, slice, &commit.group);
    lake.put_json(&journal, commit).await?;
    apply(lake, commit).await?;
    lake.delete(&journal).await
}

/// Applies a journal; safe to repeat.
async fn apply(lake: &Lake, commit: &SliceCommit) -> Result<()> {
    let slice = HourSlice::parse(&commit.slice).ok_or_else(|| bad("slice id"))?;
    let owner = Owner::parse(&commit.owner).ok_or_else(|| bad("owner"))?;
    for table in &commit.tables {
        for (staged, final_path) in &table.publish {
            // Missing: an earlier attempt already moved it.
            lake.rename(staged, final_path).await?;
        }
        for old in &table.delete {
            lake.delete(old).await?;
        }
    }
    for table in &commit.tables {
        let Ok(parsed) = table.table.parse::<Table>() else {
            continue;
        };
        lake.put_json(&slice_record(&owner, parsed, slice), &table.record)
            .await?;
    }
    Ok(())
}

/// Finishes the commits of `owner` that a crash interrupted. The caller holds the owner's
/// lock, so every journal found is abandoned (a live commit holds the lock while its journal
/// exists). Returns how many were applied.
pub async fn recover_owner(lake: &Lake, owner: &Owner) -> Result<usize> {
    let folder = journal_dir(owner);
    lake.remove_local_temp_files(&folder, "");
    lake.remove_local_temp_files(&slice_records_root(owner), "");
    let mut applied = 0;
    for journal in lake.list(&folder).await? {
        let Some(commit) = lake.get_json::<SliceCommit>(&journal).await? else {
            continue;
        };
        tracing::info!(journal = %journal, "finishing a commit an earlier run left half done");
        apply(lake, &commit).await?;
        lake.delete(&journal).await?;
        applied += 1;
    }
    Ok(applied)
}

/// Discards the staging of `job`'s earlier runs (the caller holds the job's lock, so none is
/// running), except runs a journal still names: their files are published from there.
pub async fn discard_staging(lake: &Lake, job: &str) -> Result<usize> {
    let folder = staging_dir(job);
    let named: Vec<String> = lake
        .list(JOURNAL_DIR)
        .await?
        .iter()
        .filter_map(|j| journal_run(j).map(str::to_string))
        .collect();
    let mut discarded = 0;
    for staged in lake.list(&folder).await? {
        let run = staged
            .strip_prefix(&folder)
            .and_then(|rest| rest.trim_start_matches('/').split('/').next())
            .unwrap_or("");
        if !named.iter().any(|n| n == run) {
            lake.delete(&staged).await?;
            discarded += 1;
        }
    }
    for run in lake.local_subfolders(&folder) {
        if !named.contains(&run) {
            lake.remove_local_folder(&format!("{folder}/{run}"));
        }
    }
    Ok(discarded)
}

/// The committed record of an owner's table slice, if any.
pub async fn read_record(
    lake: &Lake,
    owner: &Owner,
    table: Table,
    slice: HourSlice,
) -> Result<Option<SliceRecord>> {
    lake.get_json(&slice_record(owner, table, slice)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Output;

    fn record(files: &[&str]) -> SliceRecord {
        SliceRecord {
            version: 1,
            table: "call_events".into(),
            slice: "2024-05-01T13".into(),
            files: files.iter().map(|f| f.to_string()).collect(),
            rows: 1,
            calls: 1,
            complete: true,
            run_id: "r2".into(),
            committed_at: "2024-05-02T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn a_journal_left_by_a_crash_is_finished_and_stray_staging_dropped() {
        let dir = tempfile::tempdir().expect("dir");
        let lake = Lake::open(
            &Output::Local(dir.path().to_path_buf()),
            &Default::default(),
        )
        .await
        .expect("lake");
        let owner = Owner::parse("AC00000000000000000000000000000000").expect("owner");
        let old = "call_events/date=2024-05-01/2024-05-01T13-AC00000000000000000000000000000000-001.parquet";
        let new = "call_events/date=2024-05-01/2024-05-01T13-AC00000000000000000000000000000000-000.parquet";
        let staged = format!("_voxlake/staging/job/r2/0/{new}");
        lake.put_json(old, &"old").await.expect("old file");
        lake.put_json(&staged, &"new").await.expect("staged file");
        lake.put_json("_voxlake/staging/job/r3/0/orphan.parquet", &"orphan")
            .await
            .expect("orphan");
        let commit = SliceCommit {
            version: 1,
            run_id: "r2".into(),
            owner: owner.to_string(),
            slice: "2024-05-01T13".into(),
            group: "twilio".into(),
            tables: vec![TableCommit {
                table: "call_events".into(),
                publish: vec![(staged.clone(), new.into())],
                delete: vec![old.into()],
                record: record(&[new]),
            }],
        };
        let slice = HourSlice::parse("2024-05-01T13").expect("slice");
        lake.put_json(&journal_file(&owner, "r2", slice, "twilio"), &commit)
            .await
            .expect("journal");

        // The journal names r2: its staging stays until the journal is applied.
        assert_eq!(discard_staging(&lake, "job").await.expect("discard"), 1);
        assert!(lake.get_bytes_opt(&staged).await.expect("get").is_some());
        assert_eq!(recover_owner(&lake, &owner).await.expect("recover"), 1);
        assert_eq!(discard_staging(&lake, "job").await.expect("discard"), 0);
        let all = lake.list("").await.expect("list");
        assert_eq!(
            all,
            vec![
                "_voxlake/slices/AC00000000000000000000000000000000/call_events/2024-05-01T13.json"
                    .to_string(),
                new.to_string(),
            ]
        );
        let published: String = lake.get_json(new).await.expect("get").expect("present");
        assert_eq!(published, "new");
        let kept = read_record(&lake, &owner, Table::CallEvents, slice)
            .await
            .expect("record");
        assert_eq!(kept, Some(record(&[new])));
        // Applying again changes nothing.
        assert_eq!(recover_owner(&lake, &owner).await.expect("recover"), 0);
        assert_eq!(lake.list("").await.expect("list"), all);
    }
}
