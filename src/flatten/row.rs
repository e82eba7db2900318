//! The row being built: typed column builders, the coercions from the API's JSON values
//! into them, and `_extra` for what they cannot hold.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder, new_null_array,
};
use serde_json::Value;

use crate::schema::{ColumnType, ContextField};
use crate::timefmt::parse_api_timestamp;

use super::RecordContext;

pub(super) enum ColumnBuilder {
    Utf8(StringBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

/// Rows a builder has room for before it first grows: a call's page is often small and most
/// columns of a wide schema stay null, so the default (1 024) wasted ~1 MB per flattener.
pub(super) const INITIAL_ROWS: usize = 64;

/// Rows a builder is made ready for after a batch, at most: the next call's page is about
/// the size of the last, and a builder growing from nothing reallocates at every doubling
/// (a quarter of a fetch thread's time went to the allocator), but a one-off large batch
/// should not stay reserved in every idle flattener.
const MAX_RESERVED_ROWS: usize = 1024;

impl ColumnBuilder {
    pub(super) fn new(ty: ColumnType) -> Self {
        ColumnBuilder::with_room(ty, INITIAL_ROWS, 256)
    }

    /// An empty builder with room for `rows` values (and `bytes` of text).
    fn with_room(ty: ColumnType, rows: usize, bytes: usize) -> Self {
        match ty {
            ColumnType::Utf8 => ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, bytes)),
            ColumnType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(rows)),
            ColumnType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
        }
    }

    /// The column built so far; the builder is left empty, with room for as many rows as it
    /// held (up to [`MAX_RESERVED_ROWS`]).
    fn take(&mut self, ty: ColumnType) -> ArrayRef {
        let rows = self.len().clamp(1, MAX_RESERVED_ROWS);
        let bytes = match self {
            ColumnBuilder::Utf8(b) => b.values_slice().len().min(rows * 64),
            _ => 0,
        };
        let array = self.finish();
        *self = ColumnBuilder::with_room(ty, rows, bytes);
        array
    }

    pub(super) fn len(&self) -> usize {
        match self {
            ColumnBuilder::Utf8(b) => b.len(),
            ColumnBuilder::Int64(b) => b.len(),
            ColumnBuilder::Float64(b) => b.len(),
            ColumnBuilder::Boolean(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
        }
    }

    pub(super) fn append_nulls(&mut self, n: usize) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_nulls(n),
            ColumnBuilder::Int64(b) => b.append_nulls(n),
            ColumnBuilder::Float64(b) => b.append_nulls(n),
            ColumnBuilder::Boolean(b) => b.append_nulls(n),
            ColumnBuilder::Timestamp(b) => b.append_nulls(n),
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
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
pub(super) struct RowState {
    pub(super) columns: Arc<[ColumnMeta]>,
    pub(super) builders: Vec<ColumnBuilder>,
    /// Key-order memory of the trie's nodes (`Trie::order_base`): which child came next.
    pub(super) next_key: Vec<u32>,
    pub(super) extra: StringBuilder,
    /// Columns filled from the request (`@call_sid`), not the record.
    pub(super) context_columns: Vec<(usize, ContextField)>,
    /// Rows completed; the row being read has this index.
    pub(super) rows: usize,
    /// This row's `_extra` entries: (path, JSON text exactly as the API sent it).
    pub(super) row_extras: Vec<(String, String)>,
    /// Reading numbers from their raw text (slower, exact): set for a page that had a value
    /// the fast path could not keep exactly.
    pub(super) exact: bool,
    /// The fast path met such a value: the page is read again in exact mode.
    pub(super) needs_exact: bool,
    pub(super) unknown_seen: HashSet<String>,
    pub(super) unknown_new: Vec<String>,
    pub(super) partition_column: usize,
    pub(super) last_partition_micros: Option<i64>,
}

pub(super) struct ColumnMeta {
    pub(super) ty: ColumnType,
    pub(super) json: bool,
    pub(super) path: String,
    pub(super) context: Option<ContextField>,
}

impl RowState {
    /// Before a page is read: in exact mode or not, with nothing learned of it yet.
    pub(super) fn begin_page(&mut self, exact: bool) {
        self.last_partition_micros = None;
        self.exact = exact;
        self.needs_exact = false;
    }

    pub(super) fn begin_row(&mut self) {
        self.row_extras.clear();
    }

    pub(super) fn end_row(&mut self, ctx: &RecordContext<'_>) {
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
    pub(super) fn claim(&mut self, c: usize) -> bool {
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
    pub(super) fn keep_extra(&mut self, path: String, json_text: String, why: &str) {
        if self.unknown_seen.insert(path.clone()) {
            self.unknown_new.push(format!("{path} ({why})"));
        }
        self.row_extras.push((path, json_text));
    }

    pub(super) fn mismatch(&mut self, c: usize, value: Value) {
        self.mismatch_text(c, value.to_string());
    }

    pub(super) fn mismatch_text(&mut self, c: usize, json_text: String) {
        let path = self.columns[c].path.clone();
        let why = format!("not a {}", self.columns[c].ty.name());
        self.keep_extra(path, json_text, &why);
    }

    /// A number as its JSON text (exact mode): into its column when the column can hold it
    /// exactly, else into `_extra` as the text the API sent.
    pub(super) fn put_number_text(&mut self, c: usize, text: &str) {
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

    pub(super) fn put_str(&mut self, c: usize, text: &str) {
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

    pub(super) fn put_i64(&mut self, c: usize, v: i64) {
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

    pub(super) fn put_u64(&mut self, c: usize, v: u64) {
        match i64::try_from(v) {
            Ok(v) => self.put_i64(c, v),
            Err(_) if self.columns[c].ty == ColumnType::Float64 => {
                self.put_f64_or_keep(c, v as f64, || Value::from(v))
            }
            // Its text decides: an Int64 column cannot hold it, `_extra` keeps it as sent.
            Err(_) => self.needs_exact = true,
        }
    }

    pub(super) fn put_f64(&mut self, c: usize, v: f64) {
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
        let original = || serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        self.put_f64_or_keep(c, v, original)
    }

    /// A float into column `c`; `original` (the value as JSON, for `_extra`) is made only
    /// when the column cannot take it as a number.
    pub(super) fn put_f64_or_keep(&mut self, c: usize, v: f64, original: impl Fn() -> Value) {
        if !self.claim(c) {
            return self.mismatch(c, original());
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
                b.append_value(original().to_string());
                true
            }
            _ => false,
        };
        if !stored {
            self.mismatch(c, original());
        }
    }

    pub(super) fn put_bool(&mut self, c: usize, v: bool) {
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

    pub(super) fn put_json_text(&mut self, c: usize, text: &str) {
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

    /// Finishes every builder (padding the nulls it still owes; a column no row touched is a
    /// shared all-null array); keeps the first `len` rows.
    pub(super) fn finish_columns(&mut self, len: usize) -> Vec<ArrayRef> {
        let rows = self.rows;
        // A column no row touched is all null: one shared null array per type stands for
        // every such column (a call fills one or two of the four edges' columns).
        let mut nulls: Vec<(ColumnType, ArrayRef)> = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.builders.len() + 1);
        for (builder, meta) in self.builders.iter_mut().zip(self.columns.iter()) {
            let have = builder.len();
            if have == 0 && rows > 0 {
                arrays.push(null_array(&mut nulls, meta.ty, rows));
                continue;
            }
            if have < rows {
                builder.append_nulls(rows - have);
            }
            arrays.push(builder.take(meta.ty));
        }
        arrays.push(Arc::new(self.extra.finish()));
        self.rows = 0;
        arrays
            .into_iter()
            .map(|a| if a.len() > len { a.slice(0, len) } else { a })
            .collect()
    }
}

/// An all-null array of `ty` and `rows` rows, made once per type and shared.
fn null_array(made: &mut Vec<(ColumnType, ArrayRef)>, ty: ColumnType, rows: usize) -> ArrayRef {
    if let Some((_, array)) = made.iter().find(|(t, _)| *t == ty) {
        return Arc::clone(array);
    }
    let array = new_null_array(&ty.arrow_type(), rows);
    made.push((ty, Arc::clone(&array)));
    array
}

/// A node of a row's `_extra` object: JSON text as the API sent it, or an object of paths.
pub(super) enum ExtraNode {
    Text(String),
    Object(std::collections::BTreeMap<String, ExtraNode>),
}

/// Builds the `_extra` JSON object of a row: unknown paths nested as in the record, keys in
/// order, values as the API wrote them (no number is rounded through a float).
pub(super) fn nest_extras(extras: Vec<(String, String)>) -> String {
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

pub(super) fn write_extra_object(
    object: &std::collections::BTreeMap<String, ExtraNode>,
    out: &mut String,
) {
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
pub(super) fn minified(text: &str) -> String {
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
