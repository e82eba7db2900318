"""DuckDB's route for the same pages: read_json + unnest + the same flattened columns + COPY to
Hive-partitioned zstd Parquet, timed.

The column list comes from voxlake's own schema file (schemas/TABLE.toml): each column is the
value at its JSON path (`{value}` wrappers collapse by the path, as in voxlake), `date` is the
UTC day of the partition column, and `_extra`/`_ingested_at`/`_run_id` are added so the files
have voxlake's columns (`_extra` is NULL: DuckDB keeps no unnamed keys). read_json is given the
records' full STRUCT type, built from the same paths, so nothing depends on type sampling, and
every other top-level key of the pages (`meta`) as JSON: DuckDB 2.0.1 reads pages ~7x slower
when `columns` leaves a key of the objects out (54 k against 384 k rows/s here, parse only).

usage: duckdb_copy.py SCHEMA_TOML PAGES_GLOB OUT_DIR THREADS   (THREADS 0 = DuckDB's default)
prints one line: rows seconds threads
"""

import glob
import json
import sys
import time
import tomllib

import duckdb

TYPES = {
    "Utf8": "VARCHAR",
    "Int64": "BIGINT",
    "Float64": "DOUBLE",
    "Boolean": "BOOLEAN",
    "Timestamp(Microsecond, UTC)": "TIMESTAMPTZ",
}


def quote(name):
    return '"' + name.replace('"', '""') + '"'


def struct_type(tree):
    fields = []
    for key, node in tree.items():
        if isinstance(node, dict):
            fields.append(f"{quote(key)} {struct_type(node)}")
        else:
            fields.append(f"{quote(key)} {node}")
    return "STRUCT(" + ", ".join(fields) + ")"


def main():
    schema_path, pages, out_dir, threads = sys.argv[1:5]
    threads = int(threads)
    with open(schema_path, "rb") as f:
        schema = tomllib.load(f)
    key = schema["records"]
    tree = {}
    select = []
    for column in schema["columns"]:
        if column["path"].startswith("@"):
            continue  # request context (call SID from the URL): not in the pages
        segments = column["path"].split(".")
        ty = "JSON" if column.get("json") else TYPES[column["type"]]
        node = tree
        for segment in segments[:-1]:
            node = node.setdefault(segment, {})
        node[segments[-1]] = ty
        expr = "r." + ".".join(quote(s) for s in segments)
        if column.get("json"):
            expr = f"CAST({expr} AS VARCHAR)"
        select.append(f"{expr} AS {quote(column['name'])}")
    partition = next(
        c for c in schema["columns"] if c["name"] == schema["partition_by"]
    )
    partition_expr = "r." + ".".join(quote(s) for s in partition["path"].split("."))
    select += [
        "CAST(NULL AS VARCHAR) AS _extra",
        "CAST(now() AS TIMESTAMPTZ) AS _ingested_at",
        "'duckdb' AS _run_id",
        f"CAST({partition_expr} AS DATE) AS date",
    ]
    records_type = struct_type(tree) + "[]"
    first = sorted(glob.glob(pages))[0]
    with open(first, "rb") as f:
        top_keys = list(json.loads(f.readline()))
    columns = {k: "JSON" for k in top_keys if k != key}
    columns[key] = records_type
    sql = f"""
        COPY (
          SELECT {", ".join(select)}
          FROM (
            SELECT unnest({quote(key)}) AS r
            FROM read_json({pages!r}, format = 'newline_delimited',
                           columns = {columns!r},
                           maximum_object_size = 268435456)
          )
        ) TO {out_dir!r} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3,
                          PARTITION_BY (date), OVERWRITE_OR_IGNORE)
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if threads > 0:
        con.execute(f"SET threads = {threads}")
    used = con.execute("SELECT current_setting('threads')").fetchone()[0]
    started = time.monotonic()
    rows = con.execute(sql).fetchone()[0]
    elapsed = time.monotonic() - started
    print(rows, f"{elapsed:.3f}", used)


if __name__ == "__main__":
    main()
