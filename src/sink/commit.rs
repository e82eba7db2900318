//! The commit protocol: a slice's files appear together, replace the slice's earlier files,
//! and survive a crash at any point.
//!
//! 1. Files are written to `_voxlake/staging/{run}/…` (invisible to readers of the tables).
//! 2. A journal (`_voxlake/journal/…`) records the intent: which staged files become which data
//!    files, which earlier files go, and the slice records to write. Writing it is the commit
//!    point.
//! 3. The journal is applied: renames into place (each file appears whole: a rename, or an
//!    S3 copy), deletes of the earlier files, the slice records; then the journal is removed.
//!
//! A run that starts first applies any journal left by a crash (every step is idempotent) and
//! discards staging left without a journal. So a crash before step 2 leaves the tables as they
//! were, and a crash after it is finished by the next run: never half a slice, never twice.

use serde::{Deserialize, Serialize};

use super::layout::{HourSlice, JOURNAL_DIR, STAGING_DIR, journal_file, slice_record};
use super::store::Lake;
use crate::error::Result;
use crate::schema::Table;

/// What is committed for one table and one slice (`_voxlake/slices/{table}/{slice}.json`).
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
    /// Slice id.
    pub slice: String,
    /// The tables' group (`twilio`, `telnyx`), so that both can commit the same hour.
    pub group: String,
    /// Per table.
    pub tables: Vec<TableCommit>,
}

/// Writes the journal, then applies it.
pub async fn commit(lake: &Lake, commit: &SliceCommit) -> Result<()> {
    let Some(slice) = HourSlice::parse(&commit.slice) else {
        return Err(crate::error::Error::Run(format!(
            "bad slice id {}",
            commit.slice
        )));
    };
    let journal = journal_file(&commit.run_id, slice, &commit.group);
    lake.put_json(&journal, commit).await?;
    apply(lake, commit).await?;
    lake.delete(&journal).await
}

/// Applies a journal; safe to repeat.
async fn apply(lake: &Lake, commit: &SliceCommit) -> Result<()> {
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
        let Some(slice) = HourSlice::parse(&commit.slice) else {
            continue;
        };
        lake.put_json(&slice_record(parsed, slice), &table.record)
            .await?;
    }
    Ok(())
}

/// Finishes commits a crash interrupted and discards abandoned staging. Returns how many
/// journals were applied.
pub async fn recover(lake: &Lake) -> Result<usize> {
    let journals = lake.list(JOURNAL_DIR).await?;
    let mut applied = 0;
    for journal in &journals {
        let Some(commit) = lake.get_json::<SliceCommit>(journal).await? else {
            continue;
        };
        tracing::info!(journal = %journal, "finishing a commit an earlier run left half done");
        apply(lake, &commit).await?;
        lake.delete(journal).await?;
        applied += 1;
    }
    for leftover in lake.list(STAGING_DIR).await? {
        lake.delete(&leftover).await?;
    }
    lake.remove_local_folder(STAGING_DIR);
    Ok(applied)
}

/// The committed record of a table's slice, if any.
pub async fn read_record(
    lake: &Lake,
    table: Table,
    slice: HourSlice,
) -> Result<Option<SliceRecord>> {
    lake.get_json(&slice_record(table, slice)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::Output;

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
        let old = "call_events/date=2024-05-01/2024-05-01T13-001.parquet";
        let new = "call_events/date=2024-05-01/2024-05-01T13-000.parquet";
        let staged = format!("_voxlake/staging/r2/{new}");
        lake.put_json(old, &"old").await.expect("old file");
        lake.put_json(&staged, &"new").await.expect("staged file");
        lake.put_json("_voxlake/staging/r3/orphan.parquet", &"orphan")
            .await
            .expect("orphan");
        let commit = SliceCommit {
            version: 1,
            run_id: "r2".into(),
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
        lake.put_json(&journal_file("r2", slice, "twilio"), &commit)
            .await
            .expect("journal");

        assert_eq!(recover(&lake).await.expect("recover"), 1);
        let all = lake.list("").await.expect("list");
        assert_eq!(
            all,
            vec![
                "_voxlake/slices/call_events/2024-05-01T13.json".to_string(),
                new.to_string(),
            ]
        );
        let published: String = lake.get_json(new).await.expect("get").expect("present");
        assert_eq!(published, "new");
        let kept = read_record(&lake, Table::CallEvents, slice)
            .await
            .expect("record");
        assert_eq!(kept, Some(record(&[new])));
        // Applying again changes nothing.
        assert_eq!(recover(&lake).await.expect("recover"), 0);
        assert_eq!(lake.list("").await.expect("list"), all);
    }
}
