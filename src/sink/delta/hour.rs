//! An hour of one owner committed to Delta tables: per table ONE transaction that removes
//! every file holding rows of the owner's hour and adds the hour's new files, the earlier rows
//! the commit keeps, and the other hours' rows of the files it removes (files compaction
//! merged). Readers see the whole hour or none of it; a re-run replaces; time travel shows
//! each commit. When another writer commits first, the attempt is made again on the new
//! version (what it keeps is prepared again only if the hour's own files changed).

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::protocol::{DeltaOperation, SaveMode};

use super::files::{FileRows, MixedFile, discard, from_staged};
use super::{Attempt, DATE_COLUMN, DataFile, DeltaTables, MAX_ATTEMPTS, TableLog};
use crate::error::{Error, Result};
use crate::hours::HourSlice;
use crate::ids::Owner;
use crate::sink::hour::{Committed, HourBuild, Replace, SinkContext, keep_rows};
use crate::sink::lock::Lock;

/// The size compaction and rewritten files aim at.
pub(crate) const TARGET_FILE_BYTES: u64 = 128 << 20;

/// Commits an hour's tables, each as one Delta transaction, under the lock of the owner's
/// hour.
pub async fn commit_hour(
    ctx: &SinkContext,
    tables: &DeltaTables,
    mut build: HourBuild,
) -> Result<Committed> {
    let lock = ctx.lock_slice(&build.owner, build.slice).await?;
    let result = commit_locked(ctx, tables, &lock, &mut build).await;
    lock.release().await;
    result
}

async fn commit_locked(
    ctx: &SinkContext,
    tables: &DeltaTables,
    lock: &Lock,
    build: &mut HourBuild,
) -> Result<Committed> {
    let owner = build.owner.clone();
    let mut committed = Committed::default();
    for table in build.tables.clone() {
        let (files, _units) = build.take_table(ctx, table).await?;
        let fetched = match files {
            Some(files) => files
                .finish()
                .await?
                .iter()
                .map(|f| from_staged(table, f, owner.as_str(), build.slice))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let hour = HourCommit {
            ctx,
            log: tables.get(table)?,
            lock,
            owner: &owner,
            slice: build.slice,
            replace: &build.replace,
        };
        if let Some((version, added)) = hour.commit(&fetched).await? {
            committed.versions.push(format!("{table}@{version}"));
            for file in added {
                committed.rows += file.rows;
                committed.files.push(format!("{table}/{}", file.path));
            }
        }
    }
    Ok(committed)
}

/// One table's commit of an hour.
struct HourCommit<'a> {
    ctx: &'a SinkContext,
    log: &'a TableLog,
    lock: &'a Lock,
    owner: &'a Owner,
    slice: HourSlice,
    replace: &'a Replace,
}

/// What a commit adds besides the fetched files: the earlier rows of the hour it keeps, and
/// the other hours' rows of the files it removes.
struct Extra {
    kept: Vec<DataFile>,
    others: Vec<DataFile>,
}

impl HourCommit<'_> {
    /// Commits; returns the version and the hour's files (None: nothing to write or replace).
    async fn commit(&self, fetched: &[DataFile]) -> Result<Option<(u64, Vec<DataFile>)>> {
        let table = self.log.table();
        let mut prepared: Option<(Vec<DataFile>, Extra)> = None;
        for _ in 0..MAX_ATTEMPTS {
            let snapshot = self
                .log
                .snapshot()
                .await?
                .ok_or_else(|| Error::Lake(format!("delta table {table}: its log is gone")))?;
            let mut old: Vec<DataFile> = self
                .log
                .data_files(&snapshot)
                .into_iter()
                .filter(|f| f.holds(self.owner.as_str(), self.slice))
                .collect();
            old.sort_by(|a, b| a.path.cmp(&b.path));
            if fetched.is_empty() && old.is_empty() {
                return Ok(None);
            }
            let extra = match prepared.take() {
                Some((was, extra)) if was == old => extra,
                Some((_, stale)) => {
                    self.discard(&stale).await;
                    self.prepare_extra(&old).await?
                }
                None => self.prepare_extra(&old).await?,
            };
            let mut actions: Vec<_> = old.iter().map(|f| f.remove_action(true)).collect();
            let added = fetched.iter().chain(&extra.kept).chain(&extra.others);
            actions.extend(added.map(|f| f.add_action(true)));
            let operation = DeltaOperation::Write {
                mode: if old.is_empty() {
                    SaveMode::Append
                } else {
                    SaveMode::Overwrite
                },
                partition_by: Some(vec![DATE_COLUMN.to_string()]),
                predicate: None,
            };
            // The commit point: only while both locks are surely still this run's.
            self.lock.check()?;
            self.ctx.job_lock.check()?;
            match self.log.try_commit(&snapshot, actions, operation).await? {
                Attempt::Committed(version) => {
                    let mut files = fetched.to_vec();
                    files.extend(extra.kept);
                    return Ok(Some((version, files)));
                }
                Attempt::Moved => prepared = Some((old, extra)),
            }
        }
        Err(Error::Lake(format!(
            "delta table {table}: {MAX_ATTEMPTS} commits of hour {} lost to other writers",
            self.slice
        )))
    }

    async fn discard(&self, extra: &Extra) {
        let table = self.log.table();
        discard(&self.ctx.lake, table, &extra.kept).await;
        discard(&self.ctx.lake, table, &extra.others).await;
    }

    /// Rewrites what the commit keeps of the files it replaces: the hour's earlier rows that
    /// `replace` keeps, and every row of the other hours a merged file holds.
    async fn prepare_extra(&self, old: &[DataFile]) -> Result<Extra> {
        let ctx = self.ctx;
        let table = self.log.table();
        let schema = ctx.schemas.get(table);
        let keeps_some = !matches!(self.replace, Replace::All);
        let mut kept = keeps_some.then(|| ctx.delta_files(table, self.slice, self.owner));
        let mut others: BTreeMap<i32, MixedFile> = BTreeMap::new();
        let unique = ctx.unique_name();
        for file in old {
            let mut rows =
                FileRows::open(&ctx.lake, table, file, Arc::clone(&schema.arrow)).await?;
            while let Some((slice, batch)) = rows.next().await? {
                if slice != self.slice {
                    let writer = others.entry(file.day).or_insert_with(|| {
                        MixedFile::new(
                            (ctx.lake.clone(), table, Arc::clone(&schema.arrow)),
                            Arc::clone(&ctx.settings),
                            (self.owner.as_str(), file.day),
                            unique.clone(),
                            TARGET_FILE_BYTES,
                        )
                    });
                    writer.write(slice, &batch).await?;
                } else if let Some(files) = kept.as_mut() {
                    let keep = keep_rows(&batch, self.replace, (table, schema.partition_column))
                        .map_err(|e| Error::Lake(format!("{table}/{}: {e}", file.path)))?;
                    if keep.num_rows() > 0 {
                        files.write(file.day, &keep).await?;
                    }
                }
            }
        }
        let kept = match kept {
            Some(files) => files
                .finish()
                .await?
                .iter()
                .map(|f| from_staged(table, f, self.owner.as_str(), self.slice))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let mut rest = Vec::new();
        for (_, writer) in others {
            rest.extend(writer.finish().await?);
        }
        Ok(Extra { kept, others: rest })
    }
}
