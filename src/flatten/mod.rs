//! Pages → Arrow rows, by schema, in one pass.
//!
//! A page's JSON is walked once, guided by a trie built from the table's schema: a key
//! the schema names goes straight into its column builder (typed, coerced where the API's text
//! form differs: numeric strings, RFC 2822 times), a known object is descended into, and
//! anything else (an unknown key, a value of the wrong type) is kept in the row's `_extra` JSON
//! text. Nothing is dropped, and each unknown path is reported once so the run can say so.
//!
//! Why not arrow-json's `Decoder` + `RecordBatch::normalize`: it silently ignores keys the schema
//! does not name (so `_extra` would need a second walk of every record), has no "object as JSON
//! text" column, and needs a rename pass for the `{value}` collapse. This walk does all of it at
//! the same speed class (see `benches/`).
//!
//! Two readers do the walk: the direct reader (`direct`) reads the common page straight from
//! its bytes, and the serde walk (`walk`) reads whatever the direct reader leaves to it
//! (escapes, values of unexpected shapes, malformed JSON), so both give the same rows.
//!
//! Rows of a page that fails to parse are rolled back: a half-read page never reaches a batch.

mod direct;
mod row;
mod trie;
mod walk;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray, StringBuilder, TimestampMicrosecondArray};
use arrow::compute::concat;
use arrow::record_batch::RecordBatch;
use serde::de::{self, DeserializeSeed};
use serde_json::{Map, Value};

use crate::schema::{Column, ColumnType, Source, TableSchema};
use row::{ColumnBuilder, ColumnMeta, INITIAL_ROWS, RowState};
use trie::Trie;
use walk::{PageSeed, RecordSeed};

/// A page or record that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FlattenError {
    /// The body is not the JSON the API documents (truncated, not JSON, wrong shape).
    #[error("malformed JSON body: {0}")]
    Malformed(String),
    /// The page has no records array under the expected key.
    #[error("the page has no `{0}` array")]
    MissingRecords(String),
    /// Arrow refused the columns (a bug, not bad input).
    #[error("building the Arrow batch failed: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Values known from the request rather than the records (`@call_sid`, `@account_sid`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordContext<'a> {
    /// The call SID in the request path, if any.
    pub call_sid: Option<&'a str>,
    /// The account SID in the request path, if any.
    pub account_sid: Option<&'a str>,
}

/// Lineage stamped on every row of a batch.
#[derive(Clone, Debug)]
pub struct Lineage {
    /// When the run started, microseconds since the epoch.
    pub ingested_at_micros: i64,
    /// The run id.
    pub run_id: Arc<str>,
}

/// What one page gave: rows, and the page's other top-level keys (`meta`, `next_page_uri`,
/// ...), which the caller pages by.
#[derive(Debug)]
pub struct PageRead {
    /// The page's keys other than its records.
    pub other_keys: Map<String, Value>,
    /// Rows added.
    pub rows: usize,
    /// The partition time (µs) of the last row added that had one.
    pub last_partition_micros: Option<i64>,
}

/// What a table's schema compiles to for flattening: the trie of its JSON paths and its
/// columns' types. Built once per table and shared by every flattener of a run.
pub struct FlattenPlan {
    schema: Arc<TableSchema>,
    trie: Trie,
    columns: Arc<[ColumnMeta]>,
    /// Slots of key-order memory the trie's nodes use.
    order_slots: usize,
    /// Pages may be read by the direct reader (no key needs escaping).
    direct: bool,
}

impl FlattenPlan {
    /// Compiles a table's schema.
    pub fn new(schema: Arc<TableSchema>) -> Arc<FlattenPlan> {
        let mut trie = Trie {
            path: String::new(),
            children: Vec::new(),
            order_base: 0,
        };
        let mut columns = Vec::with_capacity(schema.columns.len());
        for (index, column) in schema.columns.iter().enumerate() {
            columns.push(column_meta(column));
            if let Source::Record(segments) = &column.source {
                trie.insert(segments, index);
            }
        }
        let order_slots = trie.number(0);
        // The direct reader matches keys by their bytes: a key JSON would escape is left to
        // the serde walk.
        let direct = schema.columns.iter().all(|column| match &column.source {
            Source::Record(segments) => segments
                .iter()
                .all(|s| !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)),
            _ => true,
        });
        Arc::new(FlattenPlan {
            schema,
            trie,
            columns: columns.into(),
            order_slots,
            direct,
        })
    }
}

/// Flatteners of one table kept for the next unit to use.
///
/// A call's page is small (~80 rows) and the schema wide (~100 columns): making a flattener's
/// builders and dropping them again cost a call about half as much as reading its rows. A
/// flattener given back holds no rows, and its key-order memory fits the next call's page too.
pub struct FlattenerPool {
    plan: Arc<FlattenPlan>,
    idle: std::sync::Mutex<Vec<Flattener>>,
}

/// Idle flatteners a pool keeps at most (about the units a run has in flight).
const POOL_IDLE: usize = 64;

impl FlattenerPool {
    /// An empty pool of flatteners of `plan`.
    pub fn new(plan: Arc<FlattenPlan>) -> FlattenerPool {
        FlattenerPool {
            plan,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// An idle flattener, or a new one.
    pub fn take(&self) -> Flattener {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        idle.unwrap_or_else(|| Flattener::from_plan(Arc::clone(&self.plan)))
    }

    /// Keeps `flattener` for the next `take`, if it holds no rows (else drops it).
    pub fn give(&self, mut flattener: Flattener) {
        if flattener.rows() > 0 || !Arc::ptr_eq(&flattener.plan, &self.plan) {
            return;
        }
        flattener.try_direct = self.plan.direct;
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < POOL_IDLE
        {
            idle.push(flattener);
        }
    }
}

/// Turns pages of one table into rows of its schema.
pub struct Flattener {
    plan: Arc<FlattenPlan>,
    schema: Arc<TableSchema>,
    state: RowState,
    committed_rows: usize,
    /// Columns of rows kept across a rollback (a failed page after good ones).
    kept: Vec<Vec<ArrayRef>>,
    /// Pages go to the direct reader first; after it has left one to the serde walk, the
    /// rest (of the same call and shape) go to the serde walk straight away.
    try_direct: bool,
}

impl Flattener {
    /// A flattener for one table (compiles the schema; see `from_plan` to share that work).
    pub fn new(schema: Arc<TableSchema>) -> Self {
        Flattener::from_plan(FlattenPlan::new(schema))
    }

    /// A flattener from a compiled plan.
    pub fn from_plan(plan: Arc<FlattenPlan>) -> Self {
        let schema = Arc::clone(&plan.schema);
        let columns = Arc::clone(&plan.columns);
        let builders = schema
            .columns
            .iter()
            .map(|c| ColumnBuilder::new(c.ty))
            .collect();
        let context_columns = columns
            .iter()
            .enumerate()
            .filter_map(|(c, meta)| meta.context.map(|field| (c, field)))
            .collect();
        let state = RowState {
            columns,
            builders,
            extra: StringBuilder::with_capacity(INITIAL_ROWS, 256),
            context_columns,
            rows: 0,
            row_extras: Vec::new(),
            exact: false,
            needs_exact: false,
            next_key: vec![0; plan.order_slots],
            unknown_seen: HashSet::new(),
            unknown_new: Vec::new(),
            partition_column: schema.partition_column,
            last_partition_micros: None,
        };
        Flattener {
            schema,
            state,
            committed_rows: 0,
            kept: Vec::new(),
            try_direct: plan.direct,
            plan,
        }
    }

    /// Reads one page: its records become rows, its other keys are returned for paging.
    /// On error the page's rows are dropped and earlier pages' rows are kept.
    ///
    /// A page is read by the direct reader, else by the serde walk's fast path; a value
    /// neither can keep exactly (a number beyond 64 bits or out of a float's range, a float
    /// where text or an integer goes) makes it read the page again from the numbers' raw
    /// text, so such a value lands in `_extra` as the API wrote it and the row still lands.
    pub fn push_page(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<PageRead, FlattenError> {
        let mut before = self.state.rows;
        let mut parsed = match self.try_direct.then(|| self.read_page_direct(body, ctx)) {
            Some(Ok(meta)) => Ok(meta),
            Some(Err(direct::Bail)) => {
                self.try_direct = false;
                self.rollback();
                before = self.state.rows;
                self.parse_page(body, ctx, false)
            }
            None => self.parse_page(body, ctx, false),
        };
        if parsed.is_err() || self.state.needs_exact {
            self.rollback();
            before = self.state.rows;
            parsed = self.parse_page(body, ctx, true);
        }
        match parsed {
            Ok(Some(meta)) => {
                self.committed_rows = self.state.rows;
                Ok(PageRead {
                    other_keys: meta,
                    rows: self.state.rows - before,
                    last_partition_micros: self.state.last_partition_micros,
                })
            }
            Ok(None) => {
                self.rollback();
                Err(FlattenError::MissingRecords(
                    self.schema.records_key.clone(),
                ))
            }
            Err(e) => {
                self.rollback();
                Err(FlattenError::Malformed(e.to_string()))
            }
        }
    }

    /// The direct reader's pass over a page (see `direct`); `Bail` when it leaves the page
    /// to the serde walk.
    fn read_page_direct(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<Option<Map<String, Value>>, direct::Bail> {
        self.state.begin_page(false);
        let text = std::str::from_utf8(body).map_err(|_| direct::Bail)?;
        direct::Reader::new(text).page(
            &self.plan.trie,
            &mut self.state,
            ctx,
            &self.schema.records_key,
        )
    }

    fn parse_page(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
        exact: bool,
    ) -> Result<Option<Map<String, Value>>, serde_json::Error> {
        self.state.begin_page(exact);
        let seed = PageSeed {
            trie: &self.plan.trie,
            state: &mut self.state,
            ctx,
            records_key: &self.schema.records_key,
        };
        let text = body_text(body)?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut deserializer)
            .and_then(|meta| deserializer.end().map(|()| meta))
    }

    fn parse_record(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
        exact: bool,
    ) -> Result<(), serde_json::Error> {
        self.state.exact = exact;
        self.state.needs_exact = false;
        let seed = RecordSeed {
            node: &self.plan.trie,
            state: &mut self.state,
            ctx,
        };
        let text = body_text(body)?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        seed.deserialize(&mut deserializer)
            .and_then(|()| deserializer.end())
    }

    /// Reads a body that is one record (a single-resource endpoint), like a page's records.
    pub fn push_record(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<(), FlattenError> {
        let mut parsed = self.parse_record(body, ctx, false);
        if parsed.is_err() || self.state.needs_exact {
            self.rollback();
            parsed = self.parse_record(body, ctx, true);
        }
        match parsed {
            Ok(()) => {
                self.committed_rows = self.state.rows;
                Ok(())
            }
            Err(e) => {
                self.rollback();
                Err(FlattenError::Malformed(e.to_string()))
            }
        }
    }

    fn rollback(&mut self) {
        let keep = self.committed_rows;
        let arrays = self.state.finish_columns(keep);
        if keep > 0 {
            self.kept.push(arrays);
        }
        self.committed_rows = 0;
    }

    /// Rows read so far and not yet taken by `finish`.
    pub fn rows(&self) -> usize {
        self.committed_rows + self.kept.iter().map(|k| k[0].len()).sum::<usize>()
    }

    /// Paths seen for the first time since the last call: unknown keys and values of the wrong
    /// type, each kept in `_extra`.
    pub fn take_new_unknown_paths(&mut self) -> Vec<String> {
        std::mem::take(&mut self.state.unknown_new)
    }

    /// All rows read so far as one batch of the table's schema (None when there are none).
    pub fn finish(&mut self, lineage: &Lineage) -> Result<Option<RecordBatch>, FlattenError> {
        let current = self.state.finish_columns(self.committed_rows);
        self.committed_rows = 0;
        let mut parts = std::mem::take(&mut self.kept);
        parts.push(current);
        let rows: usize = parts.iter().map(|p| p[0].len()).sum();
        if rows == 0 {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(parts[0].len() + 2);
        for c in 0..parts[0].len() {
            let pieces: Vec<&dyn arrow::array::Array> =
                parts.iter().map(|p| p[c].as_ref()).collect();
            columns.push(if pieces.len() == 1 {
                Arc::clone(&parts[0][c])
            } else {
                concat(&pieces)?
            });
        }
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![lineage.ingested_at_micros; rows])
                .with_timezone("UTC"),
        ));
        columns.push(Arc::new(StringArray::from_iter_values(
            std::iter::repeat_n(lineage.run_id.as_ref(), rows),
        )));
        Ok(Some(RecordBatch::try_new(
            Arc::clone(&self.schema.arrow),
            columns,
        )?))
    }
}

/// The body as text, checked as UTF-8 once (faster than serde_json checking every string
/// of a page it reads from bytes).
fn body_text(body: &[u8]) -> Result<&str, serde_json::Error> {
    std::str::from_utf8(body).map_err(|e| de::Error::custom(format!("the body is not UTF-8: {e}")))
}

fn column_meta(column: &Column) -> ColumnMeta {
    let context = match column.source {
        Source::Context(field) => Some(field),
        Source::Record(_) => None,
    };
    ColumnMeta {
        ty: if column.json {
            ColumnType::Utf8
        } else {
            column.ty
        },
        json: column.json,
        path: column.path_text.clone(),
        context,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Schemas, Table};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};

    fn lineage() -> Lineage {
        Lineage {
            ingested_at_micros: 7,
            run_id: "run-1".into(),
        }
    }

    fn flattener(table: Table) -> Flattener {
        let schemas = Schemas::builtin().expect("schemas");
        Flattener::new(schemas.get(table))
    }

    const METRICS_PAGE: &str = r#"{"meta": {"key": "metrics", "next_page_url": "http://x/next", "page": 0},
      "metrics": [{"edge": "sdk_edge", "call_sid": "CA7569efe0253644fa4a88aa97beca3310",
        "sdk_edge": {"interval": {"mos": {"value": 4.39}, "rtt": {"value": 81}, "jitter": {"value": 9},
          "audio_in": {"value": 81}, "audio_out": {"value": 5237}, "packets_lost": 0, "packets_received": 50},
          "cumulative": {"bytes_sent": 329425, "packets_lost": 0, "packets_sent": 3934,
          "bytes_received": 547788, "packets_received": 3900}},
        "sip_edge": null, "direction": "both", "timestamp": "2019-10-07T22:32:06Z",
        "account_sid": "AC998c10b68cbfda9f67277f7d8f4439c9", "client_edge": null, "carrier_edge": null}]}"#;

    #[test]
    fn a_flattener_given_back_reads_the_next_page_as_a_new_one_does() {
        let schemas = Schemas::builtin().expect("schemas");
        let plan = FlattenPlan::new(schemas.get(Table::InsightsMetrics));
        let pool = FlattenerPool::new(Arc::clone(&plan));
        let ctx = RecordContext {
            call_sid: Some("CA7569efe0253644fa4a88aa97beca3310"),
            account_sid: None,
        };
        let fresh = {
            let mut f = Flattener::from_plan(Arc::clone(&plan));
            f.push_page(METRICS_PAGE.as_bytes(), &ctx).expect("page");
            f.finish(&lineage()).expect("batch").expect("rows")
        };
        // Three rounds: each flattener is given back with its rows taken and its builders
        // made ready for a batch of the last one's size.
        for round in 0..3 {
            let mut f = pool.take();
            f.push_page(METRICS_PAGE.as_bytes(), &ctx).expect("page");
            f.push_page(METRICS_PAGE.as_bytes(), &ctx).expect("page");
            let twice = f.finish(&lineage()).expect("batch").expect("rows");
            assert_eq!(twice.num_rows(), 2, "round {round}");
            assert_eq!(twice.slice(0, 1), fresh, "round {round}");
            assert_eq!(twice.slice(1, 1), fresh, "round {round}");
            pool.give(f);
            assert_eq!(pool.idle.lock().expect("pool").len(), 1);
        }
        // One still holding rows is not kept: the next unit would get them.
        let mut holding = pool.take();
        holding
            .push_page(METRICS_PAGE.as_bytes(), &ctx)
            .expect("page");
        pool.give(holding);
        assert_eq!(pool.idle.lock().expect("pool").len(), 0);
    }

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
        batch.column_by_name(name).expect(name).as_ref()
    }

    /// What a flattener made of a page: the outcome (rows and paging keys, or the error),
    /// the batch, and the unknown paths it reported.
    type Made = (
        Result<(usize, Map<String, Value>), String>,
        Option<RecordBatch>,
        Vec<String>,
    );

    fn flatten_with(table: Table, page: &str, direct: bool) -> (Made, bool) {
        let mut f = flattener(table);
        f.try_direct = direct;
        let ctx = RecordContext {
            call_sid: Some("CA00000000000000000000000000000001"),
            account_sid: None,
        };
        let outcome = f
            .push_page(page.as_bytes(), &ctx)
            .map(|read| (read.rows, read.other_keys))
            .map_err(|e| e.to_string());
        let mut unknown = f.take_new_unknown_paths();
        unknown.sort();
        let batch = f.finish(&lineage()).expect("finish");
        ((outcome, batch, unknown), f.try_direct)
    }

    #[test]
    fn the_direct_reader_gives_what_the_serde_walk_gives() {
        let record =
            &METRICS_PAGE[METRICS_PAGE.find("{\"edge\"").expect("record")..METRICS_PAGE.len() - 2];
        let compact =
            serde_json::to_string(&serde_json::from_str::<Value>(METRICS_PAGE).expect("json"))
                .expect("json");
        let with = |from: &str, to: &str| METRICS_PAGE.replacen(from, to, 1);
        // (page, whether the direct reader reads it itself)
        let metrics: Vec<(String, bool)> = vec![
            (METRICS_PAGE.to_string(), true),
            (compact.clone(), true),
            (
                compact
                    .replace(",\"", " ,\n\t\"")
                    .replace("\":", "\" \r:\t"),
                true,
            ),
            (
                format!("{{\"metrics\": [{record}, {record}, {record}]}}"),
                true,
            ),
            (format!("{{\"metrics\": [{record}], \"metrics\": 5}}"), true),
            ("{\"metrics\": []}".into(), true),
            ("{\"metrics\": null, \"next_page_url\": null}".into(), true),
            ("{}".into(), true),
            ("{\"meta\": {\"page\": 1}}".into(), true),
            (
                with("\"direction\": \"both\"", "\"direction\": \"bo\\u0074h\""),
                false,
            ),
            (
                with(
                    "\"next_page_url\": \"http://x/next\"",
                    "\"next_page_url\": \"http:\\/\\/x\"",
                ),
                false,
            ),
            (with("\"sip_edge\": null", "\"sip_edge\": 5"), false),
            (with("\"sip_edge\": null", "\"sip_edge\": [1]"), false),
            (
                with("\"direction\": \"both\"", "\"direction\": {\"a\": 1}"),
                false,
            ),
            (
                with(
                    "\"direction\": \"both\"",
                    "\"brand_new\": {\"a\": [1, {\"b\": \"c\"}]}",
                ),
                true,
            ),
            (with("\"packets_lost\": 0", "\"packets_lost\": 3.0"), true),
            (with("\"packets_lost\": 0", "\"packets_lost\": 3.5"), true),
            (
                with("\"packets_lost\": 0", "\"packets_lost\": \"12\""),
                true,
            ),
            (
                with(
                    "\"packets_lost\": 0",
                    "\"packets_lost\": 9223372036854775808",
                ),
                true,
            ),
            (
                with(
                    "\"packets_lost\": 0",
                    "\"packets_lost\": -9223372036854775809",
                ),
                false,
            ),
            (
                with("\"packets_lost\": 0", "\"packets_lost\": 1e400"),
                false,
            ),
            (with("\"packets_lost\": 0", "\"packets_lost\": -0"), true),
            (with("{\"value\": 4.39}", "{\"value\": -0}"), true),
            (with("\"direction\": \"both\"", "\"direction\": -0"), true),
            (
                with(
                    "\"timestamp\": \"2019-10-07T22:32:06Z\"",
                    "\"timestamp\": -0",
                ),
                true,
            ),
            (with("\"packets_lost\": 0", "\"packets_lost\": true"), true),
            (
                with("{\"value\": 4.39}", "{\"value\": 4.390000000000000000001}"),
                true,
            ),
            (with("{\"value\": 4.39}", "{\"value\": -1.5E-3}"), true),
            (with("{\"value\": 5237}", "{\"value\": 5e37}"), true),
            (with("{\"value\": 5237}", "{\"value\": 5e237}"), true),
            (with("{\"value\": 5237}", "{\"value\": 52.37e237}"), true),
            (
                with("{\"value\": 5237}", "{\"value\": 0.1234567890123456789}"),
                true,
            ),
            (
                with(
                    "\"timestamp\": \"2019-10-07T22:32:06Z\"",
                    "\"timestamp\": 1.5",
                ),
                true,
            ),
            (
                with(
                    "\"edge\": \"sdk_edge\"",
                    "\"edge\": \"sdk_edge\", \"edge\": \"x\"",
                ),
                true,
            ),
            (with("\"edge\": \"sdk_edge\",", ""), true),
            (with("\"packets_lost\": 0", "\"packets_lost\": 01"), false),
            (with("\"timestamp\": \"", "\"timestamp\": 0"), false),
            (with("\"packets_lost\": 0", "\"packets_lost\": 1."), false),
            (with("\"packets_lost\": 0", "\"packets_lost\": -"), false),
            (with("\"packets_lost\": 0,", "\"packets_lost\": 0,,"), false),
            (
                with("\"direction\": \"both\"", "\"direction\": \"tab\there\""),
                false,
            ),
            (format!("{METRICS_PAGE} x"), false),
            (METRICS_PAGE[..METRICS_PAGE.len() - 5].to_string(), false),
            ("[1, 2]".into(), false),
        ];
        let call_events = r#"{"events": [{"response": {"date_created": "Tue, 11 Aug 2020 17:44:08 +0000",
            "response_code": "201", "request_duration": {"ms": 50}, "api_version": "2010-04-01"},
            "request": {"parameters": {"to": "+1", "n": [1, 2]}, "method": "POST"}, "brand_new": null}],
            "next_page_uri": null}"#;
        let cases = metrics
            .into_iter()
            .map(|(page, direct)| (Table::InsightsMetrics, page, direct))
            .chain([
                (Table::CallEvents, call_events.to_string(), false),
                (
                    Table::CallEvents,
                    call_events.replace("{\"ms\": 50}", "50"),
                    true,
                ),
            ]);
        for (table, page, reads_itself) in cases {
            let (by_serde, _) = flatten_with(table, &page, false);
            let (by_direct, still_direct) = flatten_with(table, &page, true);
            assert_eq!(by_direct.0, by_serde.0, "outcome of {page}");
            assert_eq!(by_direct.1, by_serde.1, "batch of {page}");
            assert_eq!(by_direct.2, by_serde.2, "unknown paths of {page}");
            assert_eq!(
                still_direct, reads_itself,
                "whether the direct reader read {page}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Pages a few bytes away from a good one (a byte replaced, inserted or removed, with
        /// the bytes JSON's grammar turns on): both readers give the same outcome and rows.
        #[test]
        fn edited_pages_read_the_same_both_ways(
            edits in proptest::collection::vec((0usize..METRICS_PAGE.len(), 0usize..EDIT_BYTES.len(), 0u8..3), 1..4)
        ) {
            let mut page = METRICS_PAGE.as_bytes().to_vec();
            for (at, byte, how) in edits {
                let at = at.min(page.len().saturating_sub(1));
                match how {
                    0 => page[at] = EDIT_BYTES[byte],
                    1 => page.insert(at, EDIT_BYTES[byte]),
                    _ => {
                        page.remove(at);
                    }
                }
            }
            let page = String::from_utf8(page).expect("ASCII edits of an ASCII page");
            let (by_serde, _) = flatten_with(Table::InsightsMetrics, &page, false);
            let (by_direct, _) = flatten_with(Table::InsightsMetrics, &page, true);
            proptest::prop_assert_eq!(&by_direct.0, &by_serde.0, "outcome of {}", page);
            proptest::prop_assert_eq!(&by_direct.2, &by_serde.2, "unknown paths of {}", page);
            proptest::prop_assert!(by_direct.1 == by_serde.1, "batch of {}", page);
        }
    }

    /// The bytes the edited pages are made with.
    const EDIT_BYTES: &[u8] = b"\"\\,:{}[]0123456789-+.eEnulltrfs \n\tx";

    #[test]
    fn seed_metrics_page_flattens() {
        let mut f = flattener(Table::InsightsMetrics);
        let outcome = f
            .push_page(METRICS_PAGE.as_bytes(), &RecordContext::default())
            .expect("page");
        assert_eq!(outcome.rows, 1);
        assert_eq!(
            outcome.other_keys["meta"]["next_page_url"].as_str(),
            Some("http://x/next")
        );
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        let mos = column(&batch, "sdk_edge__interval__mos").as_primitive::<Float64Type>();
        assert_eq!(mos.value(0), 4.39);
        let sent = column(&batch, "sdk_edge__cumulative__bytes_sent").as_primitive::<Int64Type>();
        assert_eq!(sent.value(0), 329425);
        let ts = column(&batch, "timestamp").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_570_487_526_000_000);
        assert!(column(&batch, "_extra").is_null(0));
        assert_eq!(
            column(&batch, "_run_id").as_string::<i32>().value(0),
            "run-1"
        );
        assert!(take_nothing(&mut f));
    }

    #[test]
    fn columns_no_row_touched_are_null_and_fill_in_a_later_batch() {
        let mut f = flattener(Table::InsightsMetrics);
        let both = format!(
            "{{\"metrics\": [{0}, {0}]}}",
            &METRICS_PAGE[METRICS_PAGE.find("{\"edge\"").expect("record")..METRICS_PAGE.len() - 2]
        );
        f.push_page(both.as_bytes(), &RecordContext::default())
            .expect("page");
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        assert_eq!(batch.num_rows(), 2);
        for name in [
            "carrier_edge__interval__packets_received",
            "carrier_edge__codec_name",
        ] {
            let array = column(&batch, name);
            assert_eq!((array.len(), array.null_count()), (2, 2), "{name}");
        }
        // The same flattener, the first record now a carrier one: its columns fill.
        let carrier = both
            .replacen("\"sdk_edge\": {", "\"carrier_edge\": {", 1)
            .replacen("\"carrier_edge\": null", "\"sdk_edge\": null", 1);
        f.push_page(carrier.as_bytes(), &RecordContext::default())
            .expect("page");
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        let received =
            column(&batch, "carrier_edge__interval__packets_received").as_primitive::<Int64Type>();
        assert_eq!(
            (received.len(), received.value(0), received.null_count()),
            (2, 50, 1)
        );
        let sdk = column(&batch, "sdk_edge__interval__mos");
        assert_eq!((sdk.len(), sdk.null_count()), (2, 1));
    }

    fn take_nothing(f: &mut Flattener) -> bool {
        f.take_new_unknown_paths().is_empty()
    }

    #[test]
    fn unknown_fields_and_wrong_types_land_in_extra() {
        let page = r#"{"events": [{"response": {"date_created": "Tue, 11 Aug 2020 17:44:08 +0000",
            "response_code": "201", "request_duration": {"ms": 50}, "api_version": "2010-04-01"},
            "request": {"parameters": {"to": "+1", "n": [1, 2]}, "method": "POST"}, "brand_new": null}],
            "next_page_uri": null}"#;
        let mut f = flattener(Table::CallEvents);
        let ctx = RecordContext {
            call_sid: Some("CA00000000000000000000000000000001"),
            account_sid: None,
        };
        f.push_page(page.as_bytes(), &ctx).expect("page");
        let mut unknown = f.take_new_unknown_paths();
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "brand_new (not in the schema)",
                "response.api_version (not in the schema)",
                "response.request_duration (not a Int64)",
            ]
        );
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        let extra = column(&batch, "_extra").as_string::<i32>().value(0);
        assert_eq!(
            extra,
            r#"{"brand_new":null,"response":{"api_version":"2010-04-01","request_duration":{"ms":50}}}"#
        );
        let code = column(&batch, "response__response_code").as_primitive::<Int64Type>();
        assert_eq!(code.value(0), 201);
        let created =
            column(&batch, "response__date_created").as_primitive::<TimestampMicrosecondType>();
        assert_eq!(created.value(0), 1_597_167_848_000_000);
        let params = column(&batch, "request__parameters")
            .as_string::<i32>()
            .value(0);
        assert_eq!(params, r#"{"to": "+1", "n": [1, 2]}"#);
        assert_eq!(
            column(&batch, "call_sid").as_string::<i32>().value(0),
            "CA00000000000000000000000000000001"
        );
        assert!(column(&batch, "account_sid").is_null(0));
    }

    #[test]
    fn a_bad_page_is_rolled_back_and_earlier_pages_kept() {
        let mut f = flattener(Table::InsightsMetrics);
        let ctx = RecordContext::default();
        f.push_page(METRICS_PAGE.as_bytes(), &ctx).expect("page 1");
        let truncated = &METRICS_PAGE[..METRICS_PAGE.len() - 40];
        assert!(matches!(
            f.push_page(truncated.as_bytes(), &ctx),
            Err(FlattenError::Malformed(_))
        ));
        assert!(matches!(
            f.push_page(br#"{"code": 20429, "message": "Too Many Requests"}"#, &ctx),
            Err(FlattenError::MissingRecords(_))
        ));
        f.push_page(METRICS_PAGE.as_bytes(), &ctx).expect("page 2");
        assert_eq!(f.rows(), 2);
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        assert_eq!(batch.num_rows(), 2);
        let mos = column(&batch, "sdk_edge__interval__mos").as_primitive::<Float64Type>();
        assert_eq!((mos.value(0), mos.value(1)), (4.39, 4.39));
        assert!(f.finish(&lineage()).expect("finish").is_none());
    }

    /// Issue 9.8: numbers a float or 64 bits cannot hold keep their text in `_extra`; the row
    /// lands and the field is reported.
    #[test]
    fn out_of_range_numbers_land_in_extra_as_the_api_wrote_them() {
        let page = r#"{"meta": {}, "metrics": [
            {"timestamp": "2019-10-07T22:32:06Z", "sdk_edge": {"interval": {"mos": {"value": 1e400}},
              "cumulative": {"bytes_sent": 99999999999999999999999, "packets_sent": 12}},
             "odd": {"big": 99999999999999999999999, "tiny": -1e-400, "list": [1.50, 2e999]},
             "call_sid": 1.50},
            {"timestamp": "2019-10-07T22:32:16Z", "sdk_edge": {"interval": {"mos": {"value": 4.2}}}}]}"#;
        let mut f = flattener(Table::InsightsMetrics);
        let outcome = f
            .push_page(page.as_bytes(), &RecordContext::default())
            .expect("the page lands");
        assert_eq!(outcome.rows, 2);
        let mut unknown = f.take_new_unknown_paths();
        unknown.sort();
        assert_eq!(
            unknown,
            [
                "odd (not in the schema)",
                "sdk_edge.cumulative.bytes_sent (out of range for Int64)",
                "sdk_edge.interval.mos.value (out of range for Float64)",
            ]
        );
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        let extra = column(&batch, "_extra").as_string::<i32>();
        assert_eq!(
            extra.value(0),
            r#"{"odd":{"big":99999999999999999999999,"tiny":-1e-400,"list":[1.50,2e999]},"sdk_edge":{"cumulative":{"bytes_sent":99999999999999999999999},"interval":{"mos":{"value":1e400}}}}"#
        );
        assert!(extra.is_null(1));
        let mos = column(&batch, "sdk_edge__interval__mos").as_primitive::<Float64Type>();
        assert!(mos.is_null(0));
        assert_eq!(mos.value(1), 4.2);
        let sent = column(&batch, "sdk_edge__cumulative__packets_sent").as_primitive::<Int64Type>();
        assert_eq!(sent.value(0), 12);
        // A float where text goes keeps its text.
        assert_eq!(
            column(&batch, "call_sid").as_string::<i32>().value(0),
            "1.50"
        );
    }

    #[test]
    fn duplicate_keys_do_not_shift_columns() {
        let page = r#"{"data": [{"name": "a", "name": "b", "event_timestamp": "2019-03-29T11:10:19.127783Z"}]}"#;
        let mut f = flattener(Table::TelnyxCallEvents);
        f.push_page(page.as_bytes(), &RecordContext::default())
            .expect("page");
        let batch = f.finish(&lineage()).expect("finish").expect("rows");
        assert_eq!(column(&batch, "name").as_string::<i32>().value(0), "a");
        assert_eq!(
            column(&batch, "_extra").as_string::<i32>().value(0),
            r#"{"name":"b"}"#
        );
    }
}
