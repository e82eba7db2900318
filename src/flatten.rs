//! Pages → Arrow rows, by schema, in one pass.
//!
//! A page's JSON is walked once with serde, guided by a trie built from the table's schema: a key
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
//! Rows of a page that fails to parse are rolled back: a half-read page never reaches a batch.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringArray,
    StringBuilder, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use arrow::compute::concat;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::schema::{Column, ColumnType, ContextField, Source, TableSchema};
use crate::timefmt::parse_api_timestamp;

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

/// A schema node: a column, or an object whose keys lead on.
enum Node {
    Column(usize),
    Object(Trie),
}

/// Children of an object path. Fan-out is small, so a vector beats hashing.
struct Trie {
    path: String,
    children: Vec<(Box<str>, Node)>,
    /// Each child's key as a (length, first eight bytes) pair: a lookup compares these
    /// integers and calls `memcmp` only on a match of both.
    fingerprints: Vec<(usize, u64)>,
    /// Where this node's key-order memory starts in `RowState::next_key` (one slot for the
    /// first key, then one per child: the child that came after it last time).
    order_base: usize,
}

/// A key's length and its first eight bytes (zero-padded), as one comparable pair.
fn fingerprint(key: &[u8]) -> (usize, u64) {
    let mut head = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    (key.len(), u64::from_le_bytes(head))
}

impl Trie {
    /// The child at `key`, trying `hint` first (the child that followed the previous key
    /// last time: the records of a page share their key order).
    fn child(&self, key: &str, hint: usize) -> Option<(usize, &Node)> {
        if let Some((expected, node)) = self.children.get(hint)
            && expected.as_ref() == key
        {
            return Some((hint, node));
        }
        let bytes = key.as_bytes();
        let wanted = fingerprint(bytes);
        let matches = |i: usize| {
            self.fingerprints[i] == wanted
                && (bytes.len() <= 8 || self.children[i].0.as_bytes()[8..] == bytes[8..])
        };
        (0..self.children.len())
            .find(|&i| matches(i))
            .map(|i| (i, &self.children[i].1))
    }

    fn insert(&mut self, segments: &[String], column: usize) {
        let Some((first, rest)) = segments.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.push_child(first, Node::Column(column));
            return;
        }
        let position = self.children.iter().position(|(k, _)| k.as_ref() == first);
        let index = position.unwrap_or_else(|| {
            let path = join_path(&self.path, first);
            let node = Node::Object(Trie {
                path,
                children: Vec::new(),
                fingerprints: Vec::new(),
                order_base: 0,
            });
            self.push_child(first, node);
            self.children.len() - 1
        });
        if let Node::Object(child) = &mut self.children[index].1 {
            child.insert(rest, column);
        }
    }
}

impl Trie {
    fn push_child(&mut self, key: &str, node: Node) {
        self.fingerprints.push(fingerprint(key.as_bytes()));
        self.children.push((key.into(), node));
    }

    /// Gives every node its slots of key-order memory from `next`; returns the slots used.
    fn number(&mut self, next: usize) -> usize {
        self.order_base = next;
        let mut next = next + 1 + self.children.len();
        for (_, node) in &mut self.children {
            if let Node::Object(child) = node {
                next = child.number(next);
            }
        }
        next
    }
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum ColumnBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// Rows a builder has room for before it first grows: a call's page is often small and most
/// columns of a wide schema stay null, so the default (1 024) wasted ~1 MB per flattener.
const INITIAL_ROWS: usize = 64;

impl ColumnBuilder {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Utf8 => {
                ColumnBuilder::Utf8(StringBuilder::with_capacity(INITIAL_ROWS, 256))
            }
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(INITIAL_ROWS)),
            ColumnType::Float64 => {
                ColumnBuilder::Float64(Float64Builder::with_capacity(INITIAL_ROWS))
            }
            ColumnType::Boolean => {
                ColumnBuilder::Boolean(BooleanBuilder::with_capacity(INITIAL_ROWS))
            }
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(INITIAL_ROWS).with_timezone("UTC"),
            ),
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Utf8(b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Float64(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
        }
    }

    fn append_nulls(&mut self, n: usize) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_nulls(n),
            ColumnBuilder::Int64(b) => b.append_nulls(n),
            ColumnBuilder::Float64(b) => b.append_nulls(n),
            ColumnBuilder::Boolean(b) => b.append_nulls(n),
            ColumnBuilder::Timestamp(b) => b.append_nulls(n),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Float64(b) => Arc::new(b.finish()),
            ColumnBuilder::Boolean(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// The row being built and the columns built so far.
///
/// Nulls are filled lazily: a column that gets a value first catches up with the rows it
/// missed (one `append_nulls`), and `finish` pads the rest. A row costs the fields it has,
/// not the width of the schema (a metrics sample fills ~20 of ~100 columns).
struct RowState {
    columns: Arc<[ColumnMeta]>,
    builders: Vec<ColumnBuilder>,
    /// Key-order memory of the trie's nodes (`Trie::order_base`): which child came next.
    next_key: Vec<u32>,
    extra: StringBuilder,
    /// Columns filled from the request (`@call_sid`), not the record.
    context_columns: Vec<(usize, ContextField)>,
    /// Rows completed; the row being read has this index.
    rows: usize,
    /// This row's `_extra` entries: (path, JSON text exactly as the API sent it).
    row_extras: Vec<(String, String)>,
    /// Reading numbers from their raw text (slower, exact): set for a page that had a value
    /// the fast path could not keep exactly.
    exact: bool,
    /// The fast path met such a value: the page is read again in exact mode.
    needs_exact: bool,
    unknown_seen: HashSet<String>,
    unknown_new: Vec<String>,
    partition_column: usize,
    last_partition_micros: Option<i64>,
}

struct ColumnMeta {
    ty: ColumnType,
    json: bool,
    path: String,
    context: Option<ContextField>,
}

impl RowState {
    fn begin_row(&mut self) {
        self.row_extras.clear();
    }

    fn end_row(&mut self, ctx: &RecordContext<'_>) {
        for i in 0..self.context_columns.len() {
            let (c, field) = self.context_columns[i];
            let value = match field {
                ContextField::CallSid => ctx.call_sid,
                ContextField::AccountSid => ctx.account_sid,
            };
            if let Some(text) = value
                && self.claim(c)
                && let ColumnBuilder::Utf8(b) = &mut self.builders[c]
            {
                b.append_value(text);
            }
        }
        if self.row_extras.is_empty() {
            self.extra.append_null();
        } else {
            let text = nest_extras(std::mem::take(&mut self.row_extras));
            self.extra.append_value(text);
        }
        self.rows += 1;
    }

    /// Claims column `c` for this row (catching up the nulls of the rows it missed); false
    /// if the record gave it twice.
    fn claim(&mut self, c: usize) -> bool {
        let builder = &mut self.builders[c];
        let len = builder.len();
        if len > self.rows {
            return false;
        }
        if len < self.rows {
            builder.append_nulls(self.rows - len);
        }
        true
    }

    /// Keeps a value (as JSON text) in the row's `_extra` and reports its path once.
    fn keep_extra(&mut self, path: String, json_text: String, why: &str) {
        if self.unknown_seen.insert(path.clone()) {
            self.unknown_new.push(format!("{path} ({why})"));
        }
        self.row_extras.push((path, json_text));
    }

    fn mismatch(&mut self, c: usize, value: Value) {
        self.mismatch_text(c, value.to_string());
    }

    fn mismatch_text(&mut self, c: usize, json_text: String) {
        let path = self.columns[c].path.clone();
        let why = format!("not a {}", self.columns[c].ty.name());
        self.keep_extra(path, json_text, &why);
    }

    /// A number as its JSON text (exact mode): into its column when the column can hold it
    /// exactly, else into `_extra` as the text the API sent.
    fn put_number_text(&mut self, c: usize, text: &str) {
        if !self.claim(c) {
            return self.mismatch_text(c, text.to_string());
        }
        let as_float = text.parse::<f64>().ok().filter(|v| v.is_finite());
        let integral = |v: &f64| v.fract() == 0.0 && v.abs() < 9.0e15;
        let ty = self.columns[c].ty;
        let stored = match &mut self.builders[c] {
            ColumnBuilder::Int64(b) => {
                match text
                    .parse::<i64>()
                    .ok()
                    .or(as_float.filter(integral).map(|v| v as i64))
                {
                    Some(v) => {
                        b.append_value(v);
                        true
                    }
                    None => false,
                }
            }
            ColumnBuilder::Float64(b) => match as_float {
                Some(v) => {
                    b.append_value(v);
                    true
                }
                None => false,
            },
            ColumnBuilder::Utf8(b) => {
                b.append_value(text);
                true
            }
            _ => false,
        };
        if !stored {
            let out_of_range = match ty {
                ColumnType::Int64 => as_float.is_none_or(|v| v.fract() == 0.0),
                ColumnType::Float64 => true,
                _ => false,
            };
            let why = if out_of_range {
                format!("out of range for {}", ty.name())
            } else {
                format!("not a {}", ty.name())
            };
            let path = self.columns[c].path.clone();
            self.keep_extra(path, text.to_string(), &why);
        }
    }

    fn put_str(&mut self, c: usize, text: &str) {
        if !self.claim(c) {
            return self.mismatch(c, Value::String(text.to_string()));
        }
        let parsed_ok = match &mut self.builders[c] {
            ColumnBuilder::Utf8(b) => {
                b.append_value(text);
                true
            }
            ColumnBuilder::Int64(b) => text
                .trim()
                .parse::<i64>()
                .map(|v| b.append_value(v))
                .is_ok(),
            ColumnBuilder::Float64(b) => match text.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => {
                    b.append_value(v);
                    true
                }
                _ => false,
            },
            ColumnBuilder::Boolean(b) => match text {
                "true" | "True" | "TRUE" => {
                    b.append_value(true);
                    true
                }
                "false" | "False" | "FALSE" => {
                    b.append_value(false);
                    true
                }
                _ => false,
            },
            ColumnBuilder::Timestamp(b) => parse_api_timestamp(text)
                .map(|micros| {
                    b.append_value(micros);
                    if c == self.partition_column {
                        self.last_partition_micros = Some(micros);
                    }
                })
                .is_some(),
        };
        if !parsed_ok {
            self.mismatch(c, Value::String(text.to_string()));
        }
    }

    fn put_i64(&mut self, c: usize, v: i64) {
        if !self.claim(c) {
            return self.mismatch(c, Value::from(v));
        }
        match &mut self.builders[c] {
            ColumnBuilder::Int64(b) => b.append_value(v),
            ColumnBuilder::Float64(b) => b.append_value(v as f64),
            ColumnBuilder::Utf8(b) => b.append_value(v.to_string()),
            _ => {
                self.mismatch(c, Value::from(v));
            }
        }
    }

    fn put_u64(&mut self, c: usize, v: u64) {
        match i64::try_from(v) {
            Ok(v) => self.put_i64(c, v),
            Err(_) if self.columns[c].ty == ColumnType::Float64 => {
                self.put_f64_or_keep(c, v as f64, Value::from(v))
            }
            // Its text decides: an Int64 column cannot hold it, `_extra` keeps it as sent.
            Err(_) => self.needs_exact = true,
        }
    }

    fn put_f64(&mut self, c: usize, v: f64) {
        let exact_here = match self.columns[c].ty {
            ColumnType::Float64 => true,
            ColumnType::Int64 => v.fract() == 0.0 && v.abs() < 9.0e15,
            _ => false,
        };
        if !exact_here {
            // A float for a text column (its text may differ from the float's), a big
            // integer, or a mismatch: the exact path keeps what the API wrote.
            self.needs_exact = true;
            return;
        }
        let original = serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        self.put_f64_or_keep(c, v, original)
    }

    fn put_f64_or_keep(&mut self, c: usize, v: f64, original: Value) {
        if !self.claim(c) {
            return self.mismatch(c, original);
        }
        let stored = match &mut self.builders[c] {
            ColumnBuilder::Float64(b) => {
                b.append_value(v);
                true
            }
            ColumnBuilder::Int64(b) if v.fract() == 0.0 && v.abs() < 9.0e15 => {
                b.append_value(v as i64);
                true
            }
            ColumnBuilder::Utf8(b) => {
                b.append_value(original.to_string());
                true
            }
            _ => false,
        };
        if !stored {
            self.mismatch(c, original);
        }
    }

    fn put_bool(&mut self, c: usize, v: bool) {
        if !self.claim(c) {
            return self.mismatch(c, Value::Bool(v));
        }
        match &mut self.builders[c] {
            ColumnBuilder::Boolean(b) => b.append_value(v),
            ColumnBuilder::Utf8(b) => b.append_value(if v { "true" } else { "false" }),
            _ => {
                self.mismatch(c, Value::Bool(v));
            }
        }
    }

    fn put_json_text(&mut self, c: usize, text: &str) {
        if text == "null" {
            return;
        }
        if !self.claim(c) {
            return self.mismatch_text(c, minified(text));
        }
        if let ColumnBuilder::Utf8(b) = &mut self.builders[c] {
            b.append_value(text);
        }
    }

    /// Finishes every builder (padding the nulls it still owes); keeps the first `len` rows.
    fn finish_columns(&mut self, len: usize) -> Vec<ArrayRef> {
        let rows = self.rows;
        for builder in &mut self.builders {
            let have = builder.len();
            if have < rows {
                builder.append_nulls(rows - have);
            }
        }
        let mut arrays: Vec<ArrayRef> = self.builders.iter_mut().map(|b| b.finish()).collect();
        arrays.push(Arc::new(self.extra.finish()));
        self.rows = 0;
        arrays
            .into_iter()
            .map(|a| if a.len() > len { a.slice(0, len) } else { a })
            .collect()
    }
}

/// A node of a row's `_extra` object: JSON text as the API sent it, or an object of paths.
enum ExtraNode {
    Text(String),
    Object(std::collections::BTreeMap<String, ExtraNode>),
}

/// Builds the `_extra` JSON object of a row: unknown paths nested as in the record, keys in
/// order, values as the API wrote them (no number is rounded through a float).
fn nest_extras(extras: Vec<(String, String)>) -> String {
    let mut root = std::collections::BTreeMap::new();
    for (path, text) in extras {
        let mut object = &mut root;
        let mut segments = path.split('.').peekable();
        while let Some(segment) = segments.next() {
            if segments.peek().is_none() {
                object.insert(segment.to_string(), ExtraNode::Text(minified(&text)));
                break;
            }
            let entry = object
                .entry(segment.to_string())
                .or_insert_with(|| ExtraNode::Object(Default::default()));
            if let ExtraNode::Text(_) = entry {
                *entry = ExtraNode::Object(Default::default());
            }
            match entry {
                ExtraNode::Object(inner) => object = inner,
                ExtraNode::Text(_) => break,
            }
        }
    }
    let mut out = String::new();
    write_extra_object(&root, &mut out);
    out
}

fn write_extra_object(object: &std::collections::BTreeMap<String, ExtraNode>, out: &mut String) {
    out.push('{');
    for (i, (key, node)) in object.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        match node {
            ExtraNode::Text(text) => out.push_str(text),
            ExtraNode::Object(inner) => write_extra_object(inner, out),
        }
    }
    out.push('}');
}

/// JSON text without the whitespace between tokens (strings untouched).
fn minified(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for ch in text.chars() {
        if in_string {
            out.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == '"' {
                in_string = false;
            }
        } else if !ch.is_ascii_whitespace() {
            in_string = ch == '"';
            out.push(ch);
        }
    }
    out
}

/// What a table's schema compiles to for flattening: the trie of its JSON paths and its
/// columns' types. Built once per table and shared by every flattener of a run.
pub struct FlattenPlan {
    schema: Arc<TableSchema>,
    trie: Trie,
    columns: Arc<[ColumnMeta]>,
    /// Slots of key-order memory the trie's nodes use.
    order_slots: usize,
}

impl FlattenPlan {
    /// Compiles a table's schema.
    pub fn new(schema: Arc<TableSchema>) -> Arc<FlattenPlan> {
        let mut trie = Trie {
            path: String::new(),
            children: Vec::new(),
            fingerprints: Vec::new(),
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
        Arc::new(FlattenPlan {
            schema,
            trie,
            columns: columns.into(),
            order_slots,
        })
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
            plan,
            schema,
            state,
            committed_rows: 0,
            kept: Vec::new(),
        }
    }

    /// Reads one page: its records become rows, its other keys are returned for paging.
    /// On error the page's rows are dropped and earlier pages' rows are kept.
    ///
    /// A page is read on a fast path first; a value that path cannot keep exactly (a number
    /// beyond 64 bits or out of a float's range, a float where text or an integer goes) makes
    /// it read the page again from the numbers' raw text, so such a value lands in `_extra` as
    /// the API wrote it and the row still lands.
    pub fn push_page(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
    ) -> Result<PageRead, FlattenError> {
        let mut before = self.state.rows;
        let mut parsed = self.parse_page(body, ctx, false);
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

    fn parse_page(
        &mut self,
        body: &[u8],
        ctx: &RecordContext<'_>,
        exact: bool,
    ) -> Result<Option<Map<String, Value>>, serde_json::Error> {
        self.state.last_partition_micros = None;
        self.state.exact = exact;
        self.state.needs_exact = false;
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

/// A map key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The page object: the records array goes to rows, every other key into a map.
/// Yields `None` when the records key is absent.
struct PageSeed<'a, 'c> {
    trie: &'a Trie,
    state: &'a mut RowState,
    ctx: &'a RecordContext<'c>,
    records_key: &'a str,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_, '_> {
    type Value = Option<Map<String, Value>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_, '_> {
    type Value = Option<Map<String, Value>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut meta = Map::new();
        let mut found = false;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            if key.0 == self.records_key && !found {
                found = true;
                map.next_value_seed(RecordsSeed {
                    trie: self.trie,
                    state: &mut *self.state,
                    ctx: self.ctx,
                })?;
            } else {
                let value: Value = map.next_value()?;
                meta.insert(key.0.into_owned(), value);
            }
        }
        Ok(found.then_some(meta))
    }
}

/// The records array (null counts as empty).
struct RecordsSeed<'a, 'c> {
    trie: &'a Trie,
    state: &'a mut RowState,
    ctx: &'a RecordContext<'c>,
}

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RecordSeed {
                node: self.trie,
                state: &mut *self.state,
                ctx: self.ctx,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One record: an object walked along the trie, then the row is completed.
struct RecordSeed<'a, 'c> {
    node: &'a Trie,
    state: &'a mut RowState,
    ctx: &'a RecordContext<'c>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let RecordSeed { node, state, ctx } = self;
        state.begin_row();
        deserializer.deserialize_map(ObjectVisitor {
            node,
            state: &mut *state,
        })?;
        state.end_row(ctx);
        Ok(())
    }
}

/// The keys of an object at a known path.
struct ObjectVisitor<'a> {
    node: &'a Trie,
    state: &'a mut RowState,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // The slot of the key before this one (the node's own slot: none yet).
        let mut previous = self.node.order_base;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let hint = self.state.next_key[previous] as usize;
            let found = self.node.child(&key.0, hint);
            if let Some((index, _)) = found {
                self.state.next_key[previous] = index as u32;
                previous = self.node.order_base + 1 + index;
            }
            match found.map(|(_, node)| node) {
                Some(Node::Column(c)) => {
                    if self.state.columns[*c].json {
                        let raw: &'de RawValue = map.next_value()?;
                        self.state.put_json_text(*c, raw.get());
                    } else {
                        map.next_value_seed(ValueSeed {
                            column: *c,
                            state: &mut *self.state,
                        })?;
                    }
                }
                Some(Node::Object(child)) => map.next_value_seed(NestedSeed {
                    node: child,
                    state: &mut *self.state,
                })?,
                None => {
                    let raw: &'de RawValue = map.next_value()?;
                    let path = join_path(&self.node.path, &key.0);
                    self.state
                        .keep_extra(path, raw.get().to_string(), "not in the schema");
                }
            }
        }
        Ok(())
    }
}

/// Maps any JSON value that reaches a typed column into it (coercing) or into `_extra`.
struct ValueSeed<'a> {
    column: usize,
    state: &'a mut RowState,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if !self.state.exact {
            return deserializer.deserialize_any(self);
        }
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let (column, state) = (self.column, self.state);
        match text.as_bytes().first() {
            Some(b'"') => {
                let value: String = serde_json::from_str(text).map_err(de::Error::custom)?;
                state.put_str(column, &value);
            }
            Some(b't') => state.put_bool(column, true),
            Some(b'f') => state.put_bool(column, false),
            Some(b'n') | None => {}
            Some(b'{' | b'[') => state.mismatch_text(column, minified(text)),
            Some(_) => state.put_number_text(column, text),
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.state.put_bool(self.column, v);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.state.put_i64(self.column, v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.state.put_u64(self.column, v);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.state.put_f64(self.column, v);
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.state.put_str(self.column, v);
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    // An object or array where a value goes: the exact path keeps it as the API wrote it.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        de::IgnoredAny::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.state.needs_exact = true;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.state.needs_exact = true;
        Ok(())
    }
}

/// A value at a known object path: an object is descended into, null leaves its columns null,
/// anything else is kept in `_extra`.
struct NestedSeed<'a> {
    node: &'a Trie,
    state: &'a mut RowState,
}

impl<'de> DeserializeSeed<'de> for NestedSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let NestedSeed { node, state } = self;
        if state.exact {
            // Exact: the value's raw text first; an object is then walked from that text.
            let raw = <&'de RawValue>::deserialize(deserializer)?;
            let text = raw.get();
            match text.as_bytes().first() {
                Some(b'{') => {
                    let mut inner = serde_json::Deserializer::from_str(text);
                    inner
                        .deserialize_map(ObjectVisitor { node, state })
                        .map_err(de::Error::custom)?;
                }
                Some(b'n') | None => {}
                Some(_) => state.keep_extra(node.path.clone(), minified(text), "not an object"),
            }
            return Ok(());
        }
        let value = deserializer.deserialize_any(NestedVisitor {
            node,
            state: &mut *state,
        })?;
        if let Some(value) = value {
            state.keep_extra(node.path.clone(), value.to_string(), "not an object");
        }
        Ok(())
    }
}

/// Yields the value when it is not an object or null, so the caller keeps it in `_extra`.
struct NestedVisitor<'a> {
    node: &'a Trie,
    state: &'a mut RowState,
}

impl<'de> Visitor<'de> for NestedVisitor<'_> {
    type Value = Option<Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        ObjectVisitor {
            node: self.node,
            state: self.state,
        }
        .visit_map(map)?;
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(v)))
    }
    // A float's text, or an array's numbers, may not survive a float: read exactly.
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<Value>, E> {
        self.state.needs_exact = true;
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(v.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        de::IgnoredAny::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        self.state.needs_exact = true;
        Ok(None)
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

    fn column<'a>(batch: &'a RecordBatch, name: &str) -> &'a dyn Array {
        batch.column_by_name(name).expect(name).as_ref()
    }

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
