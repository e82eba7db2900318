//! Page → Arrow → Parquet, per table, on the pages the simulator serves.
//!
//! The pages are fetched over loopback from the embedded simulator (`voxlake::simulator`), so
//! their wrappers and records are byte for byte what the API serves; a page of N rows is the
//! first call's page with its records array replaced by the records of as many calls' pages as
//! it takes (raw text, key order and number formatting kept). Sizes follow the brief and the
//! issue: 1 000-row metrics pages (the job's `page_size`), one call's metrics page (~100 rows,
//! what a real run reads), and ~50-row pages of every event-like table.
//!
//! Measured per page (criterion `Throughput::ElementsAndBytes`: rows/s and JSON bytes/s):
//! - `voxlake/…`: `Flattener::from_plan` + `push_page` + `finish`, the run's route (the
//!   table's plan compiled once, as a run does);
//! - `arrow_json/…`: the baseline of issue 6 on the same bytes: arrow-json's `Decoder` with a
//!   nested schema built from our column paths, `flush`, then `RecordBatch::normalize("__")`;
//! - `serde_json_tokens/…`: serde_json's tokenizer alone on the same bytes (`IgnoredAny`: every
//!   token read, nothing kept), the floor under any flattener that reads through serde_json
//!   (voxlake's direct reader reads the common page without it; its serde walk is the fallback);
//! - `parquet/…`: the flattened batch written as one zstd(3) Parquet file in memory, with the
//!   writer properties of `src/sink/parquet.rs`, and `parquet/insights_metrics_x100` for 100 such
//!   batches in one file (a slice file, where the per-file overhead is amortised).
//!
//! The arrow-json baseline does less than voxlake: it drops keys the schema does not name (no
//! `_extra`), leaves out free-form JSON-text columns (arrow-json has no "object as text"), reads
//! RFC 2822 times as text, does not collapse `{value}` wrappers, and adds no lineage. Run with
//! `cargo bench --bench flatten` (see README, "Performance").

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ListArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow_json::ReaderBuilder;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use serde_json::Value;
use serde_json::value::RawValue;
use voxlake::flatten::{FlattenPlan, Flattener, Lineage, RecordContext};
use voxlake::schema::{ColumnType, Schemas, Source, Table, TableSchema};
use voxlake::simulator::{SimConfig, start};

const ACCOUNT: &str = "AC00000000000000000000000000000000";
const TOKEN: &str = "simulator-token";
const TELNYX_KEY: &str = "simulator-key";

/// One benchmark input: a page as served, and what it is.
struct Page {
    /// `insights_metrics/1000_rows`, ...
    label: String,
    table: Table,
    body: Vec<u8>,
    rows: usize,
    call_sid: Option<String>,
}

impl Page {
    fn throughput(&self) -> Throughput {
        Throughput::ElementsAndBytes {
            elements: self.rows as u64,
            bytes: self.body.len() as u64,
        }
    }

    fn ctx(&self) -> RecordContext<'_> {
        RecordContext {
            call_sid: self.call_sid.as_deref(),
            account_sid: Some(ACCOUNT),
        }
    }
}

/// Fetches the pages from a simulator on 127.0.0.1 (200 calls, one day, fixed seed).
fn fetch_pages() -> Vec<Page> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let config = SimConfig {
            calls: 200,
            telnyx_calls: 40,
            ..SimConfig::default()
        };
        let sim = start(config, 0).await.expect("the simulator starts");
        let pages = Fetcher {
            http: reqwest::Client::new(),
            base: sim.base_url(),
            sids: sim.model().calls().iter().map(|c| c.sid.clone()).collect(),
            legs: sim
                .model()
                .telnyx_legs()
                .iter()
                .map(|l| l.call_leg_id.clone())
                .collect(),
        }
        .all()
        .await;
        sim.shutdown().await;
        pages
    })
}

struct Fetcher {
    http: reqwest::Client,
    base: String,
    sids: Vec<String>,
    legs: Vec<String>,
}

impl Fetcher {
    async fn get(&self, path_and_query: &str, telnyx: bool) -> Vec<u8> {
        let request = self.http.get(format!("{}{path_and_query}", self.base));
        let request = if telnyx {
            request.bearer_auth(TELNYX_KEY)
        } else {
            request.basic_auth(ACCOUNT, Some(TOKEN))
        };
        let response = request.send().await.expect("the simulator answers");
        assert!(
            response.status().is_success(),
            "{path_and_query}: {}",
            response.status()
        );
        response.bytes().await.expect("a whole body").to_vec()
    }

    async fn all(&self) -> Vec<Page> {
        let mut pages = Vec::new();
        let metrics = |sid: &str| format!("/v1/Voice/{sid}/Metrics?PageSize=1000");
        pages.push(
            self.merged(Table::InsightsMetrics, "metrics", 1000, metrics)
                .await,
        );
        pages.push(self.one_call_metrics().await);
        let events = |sid: &str| format!("/v1/Voice/{sid}/Events?PageSize=1000");
        pages.push(
            self.merged(Table::InsightsEvents, "events", 50, events)
                .await,
        );
        let call_events = |sid: &str| {
            format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}/Events.json?PageSize=1000")
        };
        pages.push(
            self.merged(Table::CallEvents, "events", 50, call_events)
                .await,
        );
        pages.push(self.telnyx(50).await);
        let body = self
            .get(
                "/v1/Voice/Summaries?StartTime=2024-05-01T00:00:00Z\
                 &EndTime=2024-05-02T00:00:00Z&PageSize=50",
                false,
            )
            .await;
        pages.push(page(
            Table::CallSummaries,
            "50_rows",
            body,
            "call_summaries",
            None,
        ));
        pages
    }

    /// The first call's page, its records replaced by the first `rows` records of the calls'
    /// pages in turn.
    async fn merged(
        &self,
        table: Table,
        key: &str,
        rows: usize,
        url: impl Fn(&str) -> String,
    ) -> Page {
        let mut wrapper = None;
        let mut records: Vec<String> = Vec::new();
        for sid in &self.sids {
            let body = self.get(&url(sid), false).await;
            records.extend(raw_records(&body, key).into_iter().map(str::to_string));
            wrapper.get_or_insert(body);
            if records.len() >= rows {
                break;
            }
        }
        records.truncate(rows);
        let wrapper = wrapper.expect("at least one call");
        let body = splice(&wrapper, key, &records);
        let call_sid = self.sids.first().cloned();
        page(table, &format!("{rows}_rows"), body, key, call_sid)
    }

    /// One call's whole metrics page as served, the call whose page is closest to 100 rows.
    async fn one_call_metrics(&self) -> Page {
        let mut best: Option<(usize, String, Vec<u8>)> = None;
        for sid in self.sids.iter().take(40) {
            let body = self
                .get(&format!("/v1/Voice/{sid}/Metrics?PageSize=1000"), false)
                .await;
            let n = raw_records(&body, "metrics").len();
            if best
                .as_ref()
                .is_none_or(|(b, _, _)| n.abs_diff(100) < b.abs_diff(100))
            {
                best = Some((n, sid.clone(), body));
            }
        }
        let (_, sid, body) = best.expect("calls");
        page(
            Table::InsightsMetrics,
            "call_page",
            body,
            "metrics",
            Some(sid),
        )
    }

    /// Telnyx events of several legs, in one page of `rows`.
    async fn telnyx(&self, rows: usize) -> Page {
        let mut wrapper = None;
        let mut records: Vec<String> = Vec::new();
        for leg in &self.legs {
            let body = self
                .get(
                    &format!("/v2/call_events?filter[leg_id]={leg}&page[size]=250"),
                    true,
                )
                .await;
            records.extend(raw_records(&body, "data").into_iter().map(str::to_string));
            wrapper.get_or_insert(body);
            if records.len() >= rows {
                break;
            }
        }
        records.truncate(rows);
        let body = splice(&wrapper.expect("legs"), "data", &records);
        page(
            Table::TelnyxCallEvents,
            &format!("{rows}_rows"),
            body,
            "data",
            None,
        )
    }
}

fn page(table: Table, size: &str, body: Vec<u8>, key: &str, call_sid: Option<String>) -> Page {
    let rows = raw_records(&body, key).len();
    Page {
        label: format!("{}/{size}", table.name()),
        table,
        body,
        rows,
        call_sid,
    }
}

/// The raw text of each record of the page's `key` array.
fn raw_records<'a>(body: &'a [u8], key: &str) -> Vec<&'a str> {
    let top: BTreeMap<&str, &RawValue> = serde_json::from_slice(body).expect("a JSON object");
    let array = top.get(key).expect("the records key");
    let records: Vec<&RawValue> = serde_json::from_str(array.get()).expect("a JSON array");
    records.into_iter().map(RawValue::get).collect()
}

/// `body` with its `key` array replaced by `records`; everything else as served.
fn splice(body: &[u8], key: &str, records: &[String]) -> Vec<u8> {
    let top: BTreeMap<&str, &RawValue> = serde_json::from_slice(body).expect("a JSON object");
    let array = top.get(key).expect("the records key").get();
    let start = array.as_ptr() as usize - body.as_ptr() as usize;
    let end = start + array.len();
    let mut out = Vec::with_capacity(body.len() + records.iter().map(String::len).sum::<usize>());
    out.extend_from_slice(&body[..start]);
    out.push(b'[');
    out.extend_from_slice(records.join(",").as_bytes());
    out.push(b']');
    out.extend_from_slice(&body[end..]);
    out
}

fn lineage() -> Lineage {
    Lineage {
        ingested_at_micros: 1_714_521_600_000_000,
        run_id: Arc::from("bench"),
    }
}

/// voxlake's route: the run builds one flattener per call and table, from the table's plan.
fn flatten(plan: &Arc<FlattenPlan>, page: &Page) -> RecordBatch {
    let mut flattener = Flattener::from_plan(Arc::clone(plan));
    flattener
        .push_page(&page.body, &page.ctx())
        .expect("the page flattens");
    flattener
        .finish(&lineage())
        .expect("a batch")
        .expect("rows")
}

/// The baseline's input schema: `{records_key: List<Struct<…>>}`, nested from our paths.
struct NestedSchema {
    schema: Arc<Schema>,
    /// JSON-text columns, left out: arrow-json cannot put an object into a text column.
    json_text: Vec<String>,
    /// Columns from the request (`@call_sid`), not in the page: left out.
    context: Vec<String>,
    /// Timestamp columns read as text (RFC 2822 in the page).
    as_text: Vec<String>,
}

#[derive(Default)]
struct Node {
    leaf: Option<DataType>,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn insert(&mut self, segments: &[String], ty: DataType) {
        match segments.split_first() {
            None => self.leaf = Some(ty),
            Some((first, rest)) => self
                .children
                .entry(first.clone())
                .or_default()
                .insert(rest, ty),
        }
    }

    fn fields(&self) -> Fields {
        self.children
            .iter()
            .map(|(name, node)| match &node.leaf {
                Some(ty) if node.children.is_empty() => Field::new(name, ty.clone(), true),
                _ => Field::new(name, DataType::Struct(node.fields()), true),
            })
            .collect()
    }
}

fn nested_schema(schema: &TableSchema, page: &Page) -> NestedSchema {
    let records: Vec<Value> = raw_records(&page.body, &schema.records_key)
        .into_iter()
        .map(|r| serde_json::from_str(r).expect("a record"))
        .collect();
    let mut root = Node::default();
    let mut json_text = Vec::new();
    let mut context = Vec::new();
    let mut as_text = Vec::new();
    for column in &schema.columns {
        let Source::Record(segments) = &column.source else {
            context.push(column.name.clone());
            continue;
        };
        if column.json {
            json_text.push(column.name.clone());
            continue;
        }
        let ty = match column.ty {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp if rfc3339_or_absent(&records, segments) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
            ColumnType::Timestamp => {
                as_text.push(column.name.clone());
                DataType::Utf8
            }
        };
        root.insert(segments, ty);
    }
    let item = Field::new_list_field(DataType::Struct(root.fields()), true);
    let list = Field::new(&schema.records_key, DataType::List(Arc::new(item)), true);
    NestedSchema {
        schema: Arc::new(Schema::new(vec![list])),
        json_text,
        context,
        as_text,
    }
}

/// Whether every value at `path` in the records is RFC 3339 text (or absent).
fn rfc3339_or_absent(records: &[Value], path: &[String]) -> bool {
    records.iter().all(|record| {
        let value = path.iter().try_fold(record, |v, key| v.get(key));
        match value {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            Some(_) => false,
        }
    })
}

/// The baseline: decode the page with the nested schema, take the records' structs, normalize.
fn arrow_json(schema: &Arc<Schema>, body: &[u8]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema)).build_decoder()?;
    decoder.decode(body)?;
    let page = decoder
        .flush()?
        .ok_or_else(|| arrow::error::ArrowError::JsonError("no page".into()))?;
    let list = page
        .column(0)
        .as_any()
        .downcast_ref::<ListArray>()
        .ok_or_else(|| arrow::error::ArrowError::JsonError("not a list".into()))?;
    let structs = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| arrow::error::ArrowError::JsonError("not structs".into()))?;
    RecordBatch::from(structs.clone()).normalize("__", None)
}

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3")))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(131_072))
        .build()
}

/// The batches written as one Parquet file in memory; returns its size.
fn write_parquet(batches: &[&RecordBatch], props: &WriterProperties) -> usize {
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batches[0].schema(), Some(props.clone())).expect("a writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
    out.len()
}

fn benches(c: &mut Criterion) {
    let schemas = Schemas::builtin().expect("builtin schemas");
    let pages = fetch_pages();
    let props = writer_properties();
    for page in &pages {
        let schema = schemas.get(page.table);
        let plan = FlattenPlan::new(Arc::clone(&schema));
        let batch = flatten(&plan, page);
        assert_eq!(
            batch.num_rows(),
            page.rows,
            "{}: every record is a row",
            page.label
        );
        let nested = nested_schema(&schema, page);
        let baseline = arrow_json(&nested.schema, &page.body);
        eprintln!(
            "{}: {} rows, {} bytes of JSON ({} B/row); voxlake {} columns; arrow-json {}",
            page.label,
            page.rows,
            page.body.len(),
            page.body.len() / page.rows.max(1),
            batch.num_columns(),
            match &baseline {
                Ok(b) => format!(
                    "{} columns (left out: JSON text {}, request context {}; \
                     RFC 2822 read as text: {})",
                    b.num_columns(),
                    nested.json_text.join(" ").if_empty("none"),
                    nested.context.join(" ").if_empty("none"),
                    nested.as_text.join(" ").if_empty("none"),
                ),
                Err(e) => format!("fails ({e}): not measured"),
            }
        );

        let mut group = c.benchmark_group("flatten");
        group.throughput(page.throughput());
        group.bench_function(format!("voxlake/{}", page.label), |b| {
            b.iter(|| flatten(&plan, black_box(page)))
        });
        if baseline.is_ok() {
            group.bench_function(format!("arrow_json/{}", page.label), |b| {
                b.iter(|| arrow_json(&nested.schema, black_box(&page.body)).expect("decodes"))
            });
        }
        // The floor of a flattener built on serde_json: its tokenizer reading the page and
        // keeping nothing (`IgnoredAny`), on the same bytes.
        group.bench_function(format!("serde_json_tokens/{}", page.label), |b| {
            b.iter(|| {
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&page.body))
                    .expect("valid JSON")
            })
        });
        group.finish();

        let mut group = c.benchmark_group("parquet");
        group.throughput(page.throughput());
        group.bench_function(page.label.clone(), |b| {
            b.iter(|| write_parquet(&[black_box(&batch)], &props))
        });
        if page.table == Table::InsightsMetrics && page.rows >= 1000 {
            let copies = vec![&batch; 100];
            group.throughput(Throughput::ElementsAndBytes {
                elements: 100 * page.rows as u64,
                bytes: 100 * page.body.len() as u64,
            });
            group.sample_size(10);
            group.bench_function(format!("{}_x100", page.table.name()), |b| {
                b.iter(|| write_parquet(black_box(&copies), &props))
            });
        }
        group.finish();
    }
}

trait IfEmpty {
    fn if_empty(self, default: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, default: &str) -> String {
        if self.is_empty() {
            default.to_string()
        } else {
            self
        }
    }
}

criterion_group! {
    name = flatten_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(flatten_benches);
