//! Observability as types: run counters (read by progress bars, the summary and the manifest)
//! and the drift log that reports each unknown field once per run.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::schema::Table;

/// Rows, pages and calls of one table in one run.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct TableCounts {
    /// Rows fetched and written.
    pub rows: u64,
    /// Pages fetched (records known from a listing count as pages, not as requests).
    pub pages: u64,
    /// Units (calls, conferences, Telnyx listings) fetched for the table.
    pub units: u64,
    /// HTTP requests that brought the table's pages (retries not counted; a record a listing
    /// already gave costs none).
    pub requests: u64,
    /// `requests / units`: what one call costs this table.
    pub requests_per_unit: f64,
}

/// Counters of a run.
#[derive(Debug, Default)]
pub struct RunStats {
    tables: Mutex<BTreeMap<Table, TableCounts>>,
    /// Calls (or units) to fetch.
    pub calls_total: AtomicU64,
    /// Calls fetched whole.
    pub calls_done: AtomicU64,
    /// Calls that failed.
    pub calls_failed: AtomicU64,
    /// Rows fetched, all tables.
    pub rows: AtomicU64,
    /// Pages fetched, all tables.
    pub pages: AtomicU64,
}

impl RunStats {
    /// Adds what one call gave for a table.
    pub fn add(&self, table: Table, rows: u64, pages: u64) {
        if let Ok(mut tables) = self.tables.lock() {
            let counts = tables.entry(table).or_default();
            counts.rows += rows;
            counts.pages += pages;
        }
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.pages.fetch_add(pages, Ordering::Relaxed);
    }

    /// Adds the requests one unit made for a table.
    pub fn add_requests(&self, table: Table, requests: u64) {
        if let Ok(mut tables) = self.tables.lock() {
            let counts = tables.entry(table).or_default();
            counts.units += 1;
            counts.requests += requests;
        }
    }

    /// Per-table counts so far.
    pub fn tables(&self) -> BTreeMap<Table, TableCounts> {
        let mut tables = self.tables.lock().map(|t| t.clone()).unwrap_or_default();
        for counts in tables.values_mut() {
            if counts.units > 0 {
                counts.requests_per_unit = counts.requests as f64 / counts.units as f64;
            }
        }
        tables
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Bumps a counter.
    pub fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// Fields an API sent that the schema does not name; each is logged once per run.
#[derive(Debug, Default)]
pub struct DriftLog {
    seen: Mutex<HashSet<(Table, String)>>,
}

impl DriftLog {
    /// Reports paths; logs the ones not reported before.
    pub fn report(&self, table: Table, paths: Vec<String>) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        for path in paths {
            if seen.insert((table, path.clone())) {
                tracing::warn!(table = %table, field = %path,
                    "the API sent a field the schema does not name, or a value its column cannot hold; kept in _extra as sent");
            }
        }
    }

    /// Every path reported, as `table: path`.
    pub fn all(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .seen
            .lock()
            .map(|s| s.iter().map(|(t, p)| format!("{t}: {p}")).collect())
            .unwrap_or_default();
        all.sort();
        all
    }
}
