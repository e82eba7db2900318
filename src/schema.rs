//! Table schemas: `schemas/*.toml` compiled into the binary, checked once at start, and turned
//! into the Arrow schemas every Parquet file of a table is written with.
//!
//! A schema file names each column, its Arrow type and the JSON path it comes from. voxlake adds
//! three columns to every table: `_extra` (what the schema does not name, as JSON text),
//! `_ingested_at` and `_run_id` (lineage).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

pub use crate::tables::Table;

/// Name of the column that keeps, as JSON text, whatever the schema does not name.
pub const EXTRA_COLUMN: &str = "_extra";
/// Lineage: when the row was fetched.
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";
/// Lineage: the run that wrote the row.
pub const RUN_ID_COLUMN: &str = "_run_id";

/// A column's value type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Text (also JSON text for `json = true` columns).
    Utf8,
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Boolean,
    /// `Timestamp(Microsecond, "UTC")`.
    Timestamp,
}

impl ColumnType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "Utf8" => Some(ColumnType::Utf8),
            "Int64" => Some(ColumnType::Int64),
            "Float64" => Some(ColumnType::Float64),
            "Boolean" => Some(ColumnType::Boolean),
            "Timestamp(Microsecond, UTC)" => Some(ColumnType::Timestamp),
            _ => None,
        }
    }

    /// The Arrow type written to Parquet.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => timestamp_type(),
        }
    }

    /// The name used in schema files.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Utf8 => "Utf8",
            ColumnType::Int64 => "Int64",
            ColumnType::Float64 => "Float64",
            ColumnType::Boolean => "Boolean",
            ColumnType::Timestamp => "Timestamp(Microsecond, UTC)",
        }
    }
}

/// The Arrow type of every timestamp voxlake writes.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Where a column's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A dotted path inside the record, split into segments.
    Record(Vec<String>),
    /// A value of the request, not of the record (`@call_sid`, `@account_sid`).
    Context(ContextField),
}

/// Values a source knows about the request, for records that do not carry them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextField {
    /// The call SID in the request path.
    CallSid,
    /// The account SID in the request path.
    AccountSid,
}

/// One column of a table.
#[derive(Clone, Debug)]
pub struct Column {
    /// Column name (`sdk_edge__interval__mos`).
    pub name: String,
    /// Value type.
    pub ty: ColumnType,
    /// Where the value comes from.
    pub source: Source,
    /// The column holds the JSON text of whatever is at the path.
    pub json: bool,
    /// The path as written in the schema file (`sdk_edge.interval.mos.value`).
    pub path_text: String,
}

/// A checked table schema.
#[derive(Debug)]
pub struct TableSchema {
    /// Which table.
    pub table: Table,
    /// Key of the records array in a page (`events`, `metrics`, `data`...).
    pub records_key: String,
    /// Index in `columns` of the timestamp whose UTC day is the `date=` partition.
    pub partition_column: usize,
    /// The declared columns, in file order.
    pub columns: Vec<Column>,
    /// The Arrow schema of the written files: the columns, then `_extra`, `_ingested_at`, `_run_id`.
    pub arrow: SchemaRef,
}

impl TableSchema {
    /// Index of a declared column by name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// A schema file that does not hold together; a bug in `schemas/`, caught at start and by tests.
#[derive(Debug, thiserror::Error)]
#[error("schemas/{table}.toml: {message}")]
pub struct SchemaError {
    table: &'static str,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemaFile {
    table: String,
    records: String,
    partition_by: String,
    columns: Vec<ColumnEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnEntry {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    path: String,
    #[serde(default)]
    json: bool,
}

/// The schemas of every table, checked.
#[derive(Debug, Clone)]
pub struct Schemas {
    tables: Vec<Arc<TableSchema>>,
}

impl Schemas {
    /// Loads and checks the schema files compiled into the binary.
    pub fn builtin() -> Result<Schemas, SchemaError> {
        let tables = Table::ALL
            .into_iter()
            .map(|t| parse_schema(t, t.spec().schema_text).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schemas { tables })
    }

    /// The schema of one table.
    pub fn get(&self, table: Table) -> Arc<TableSchema> {
        let index = Table::ALL.iter().position(|t| *t == table).unwrap_or(0);
        Arc::clone(&self.tables[index])
    }
}

fn parse_schema(table: Table, text: &str) -> Result<TableSchema, SchemaError> {
    let fail = |message: String| SchemaError {
        table: table.name(),
        message,
    };
    let file: SchemaFile = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
    if file.table != table.name() {
        return Err(fail(format!("declares table {:?}", file.table)));
    }
    let columns = file
        .columns
        .iter()
        .map(parse_column)
        .collect::<Result<Vec<_>, String>>()
        .map_err(&fail)?;
    check_unique(&columns).map_err(&fail)?;
    let partition_column = columns
        .iter()
        .position(|c| c.name == file.partition_by && c.ty == ColumnType::Timestamp)
        .ok_or_else(|| {
            fail(format!(
                "partition_by {:?} is not a timestamp column",
                file.partition_by
            ))
        })?;
    let arrow = arrow_schema(table, &columns);
    Ok(TableSchema {
        table,
        records_key: file.records,
        partition_column,
        columns,
        arrow,
    })
}

fn parse_column(entry: &ColumnEntry) -> Result<Column, String> {
    let ty = ColumnType::parse(&entry.ty)
        .ok_or_else(|| format!("column {}: unknown type {:?}", entry.name, entry.ty))?;
    if entry.json && ty != ColumnType::Utf8 {
        return Err(format!("column {}: json columns are Utf8", entry.name));
    }
    let source = match entry.path.strip_prefix('@') {
        Some("call_sid") => Source::Context(ContextField::CallSid),
        Some("account_sid") => Source::Context(ContextField::AccountSid),
        Some(other) => return Err(format!("column {}: unknown context @{other}", entry.name)),
        None => {
            let segments: Vec<String> = entry.path.split('.').map(str::to_string).collect();
            if segments.iter().any(|s| s.is_empty()) {
                return Err(format!("column {}: bad path {:?}", entry.name, entry.path));
            }
            Source::Record(segments)
        }
    };
    if entry.name.starts_with('_') || entry.name == "date" {
        return Err(format!("column name {} is reserved", entry.name));
    }
    Ok(Column {
        name: entry.name.clone(),
        ty,
        source,
        json: entry.json,
        path_text: entry.path.clone(),
    })
}

/// Column names and record paths must be unique, and no path may be a prefix of another
/// (a value cannot be both a column and an object with columns inside).
fn check_unique(columns: &[Column]) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for c in columns {
        if !names.insert(c.name.as_str()) {
            return Err(format!("column {} is declared twice", c.name));
        }
        if let Source::Record(segments) = &c.source
            && !paths.insert(segments.clone())
        {
            return Err(format!("path {} is declared twice", c.path_text));
        }
    }
    for c in columns {
        if let Source::Record(segments) = &c.source {
            for len in 1..segments.len() {
                if paths.contains(&segments[..len]) {
                    return Err(format!(
                        "path {} is inside column path {}",
                        c.path_text,
                        segments[..len].join(".")
                    ));
                }
            }
        }
    }
    Ok(())
}

fn arrow_schema(table: Table, columns: &[Column]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, c.ty.arrow_type(), true))
        .collect();
    fields.push(Field::new(EXTRA_COLUMN, DataType::Utf8, true));
    fields.push(Field::new(INGESTED_AT_COLUMN, timestamp_type(), false));
    fields.push(Field::new(RUN_ID_COLUMN, DataType::Utf8, false));
    let metadata: std::collections::HashMap<String, String> =
        [("voxlake.table".to_string(), table.name().to_string())].into();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

/// The column name DESIGN §5 derives from a path: segments joined by `__`, a trailing `value`
/// segment collapsed into its parent.
///
/// ```
/// assert_eq!(voxlake::schema::derived_name("sdk_edge.interval.mos.value"), "sdk_edge__interval__mos");
/// assert_eq!(voxlake::schema::derived_name("request.method"), "request__method");
/// ```
pub fn derived_name(path: &str) -> String {
    let mut segments: Vec<&str> = path.trim_start_matches('@').split('.').collect();
    if segments.len() > 1 && segments.last() == Some(&"value") {
        segments.pop();
    }
    segments.join("__")
}

/// Renders a schema for `voxlake schemas`: one line per column, name, Arrow type, JSON path.
pub fn describe(schema: &TableSchema) -> String {
    let width = schema
        .columns
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max(EXTRA_COLUMN.len());
    let mut out = format!(
        "{} (records under `{}`, partitioned by the UTC day of `{}`)\n",
        schema.table, schema.records_key, schema.columns[schema.partition_column].name
    );
    for c in &schema.columns {
        let ty = if c.json {
            "Utf8 (JSON text)"
        } else {
            c.ty.name()
        };
        out.push_str(&format!(
            "  {:width$}  {:28}  {}\n",
            c.name, ty, c.path_text
        ));
    }
    let extra = [
        (
            EXTRA_COLUMN,
            "Utf8 (JSON text)",
            "whatever the schema does not name",
        ),
        (
            INGESTED_AT_COLUMN,
            "Timestamp(Microsecond, UTC)",
            "lineage: when fetched",
        ),
        (RUN_ID_COLUMN, "Utf8", "lineage: the run that wrote it"),
    ];
    for (name, ty, what) in extra {
        out.push_str(&format!("  {name:width$}  {ty:28}  ({what})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_load() {
        let schemas = Schemas::builtin().expect("schemas/ must be valid");
        for table in Table::ALL {
            let schema = schemas.get(table);
            assert_eq!(schema.table, table);
            assert!(schema.columns.len() > 3, "{table}");
        }
    }

    #[test]
    fn column_names_follow_the_path_rule() {
        let schemas = Schemas::builtin().expect("schemas/ must be valid");
        for table in Table::ALL {
            for c in &schemas.get(table).columns {
                assert_eq!(
                    c.name,
                    derived_name(&c.path_text),
                    "{table}: {}",
                    c.path_text
                );
            }
        }
    }

    #[test]
    fn every_table_has_a_call_or_leg_key() {
        let schemas = Schemas::builtin().expect("schemas/ must be valid");
        for table in Table::ALL {
            let unit_column = table.spec().unit_column;
            assert!(
                schemas.get(table).column_index(unit_column).is_some(),
                "{table}"
            );
        }
    }

    #[test]
    fn bad_schemas_are_refused() {
        let text = r#"
            table = "call_events"
            records = "events"
            partition_by = "t"
            columns = [{ name = "t", type = "Utf8", path = "t" }]
        "#;
        assert!(parse_schema(Table::CallEvents, text).is_err());
        let nested = r#"
            table = "call_events"
            records = "events"
            partition_by = "t"
            columns = [
              { name = "t", type = "Timestamp(Microsecond, UTC)", path = "t" },
              { name = "t__x", type = "Utf8", path = "t.x" },
            ]
        "#;
        assert!(parse_schema(Table::CallEvents, nested).is_err());
    }
}
