#!/usr/bin/env python3
"""Reads a local Delta Lake table the ways other tools do, for the Rust tests to compare.

Usage: delta_read.py TABLE_DIR [--version N] [--rows-checksum] [--partition-column date]

Run by the venv that tests/run.sh makes ($VOXLAKE_DELTA_PYTHON). Prints ONE JSON object:

  log               our own replay of _delta_log (NOT deltalake's): the active files, rows per
                    partition from the add actions' stats, the versions and their operations.
                    An independent reading of the protocol, so a writer bug that delta-rs
                    happens to tolerate still shows.
  duckdb_files      DuckDB read_parquet over exactly log.active_files: the rows really in the
                    files (and any file whose stats numRecords disagree with them).
  deltalake         delta-rs (the `deltalake` package): version, rows, files.
  polars            polars.read_delta.
  duckdb_delta_scan DuckDB's delta extension (delta-kernel-rs), loaded from the file shipped
                    by the duckdb-extension-delta package, with autoinstall/autoload off so
                    nothing is fetched; null if --version is asked and the extension cannot
                    time travel.
  checksum, file_count   (with --rows-checksum) md5 over every row of the active files as
                    text, plus its partition value, sorted: independent of file and row order.

Anything unexpected (missing stats, deletion vectors, a gap in the log, a reader failing)
exits non-zero with the reason on stderr, so a test shows why rather than a wrong count.
"""

import argparse
import json
import os
import re
import sys
import urllib.parse

NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"

COMMIT_RE = re.compile(r"^(\d{20})\.json$")
CHECKPOINT_RE = re.compile(r"^(\d{20})\.checkpoint\.parquet$")
MULTIPART_CHECKPOINT_RE = re.compile(r"^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$")
V2_CHECKPOINT_RE = re.compile(r"^(\d{20})\.checkpoint\.[0-9a-fA-F-]{36}\.(json|parquet)$")
# Files a reader may skip: checksums, the checkpoint hint, log compaction (the commits it
# summarises are still there), and directories (_commits/, _sidecars/ of newer features).
IGNORABLE_RE = re.compile(r"^(\d{20}\.crc|_last_checkpoint|\d{20}\.\d{20}\.compacted\.json)$")


class Fail(Exception):
    pass


def partition_key(value):
    """Partition values as one string per partition for every reader (dates print ISO)."""
    if value is None or value == "":
        # The protocol writes a null partition value as null (an empty string reads as null).
        return NULL_PARTITION
    return str(value)


# ----------------------------------------------------------------------------------------
# Our own reading of the Delta protocol.


def relative_path(table_dir, raw):
    """An add/remove path: a URL-encoded path relative to the table, or an absolute URI."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", raw):
        parsed = urllib.parse.urlparse(raw)
        if parsed.scheme != "file":
            raise Fail(f"absolute path with scheme {parsed.scheme!r} in the log: {raw}")
        local = urllib.parse.unquote(parsed.path)
        rel = os.path.relpath(local, os.path.realpath(table_dir))
        if rel.startswith(".."):
            raise Fail(f"file outside the table in the log: {raw}")
        return rel
    path = urllib.parse.unquote(raw)
    if path.startswith("/") or ".." in path.split("/"):
        raise Fail(f"path in the log is not relative to the table: {raw!r}")
    return path


def as_dict(value):
    """partitionValues from JSON (a dict) or from a checkpoint (a list of (key, value))."""
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    return dict(value)


def num_records(add, where):
    stats = add.get("stats")
    if stats is not None:
        try:
            parsed = json.loads(stats)
        except ValueError as e:
            raise Fail(f"{where}: add {add['path']!r} has stats that are not JSON: {e}")
        if "numRecords" not in parsed:
            raise Fail(f"{where}: add {add['path']!r} has stats without numRecords: {stats}")
        return int(parsed["numRecords"])
    parsed = add.get("stats_parsed")
    if parsed and parsed.get("numRecords") is not None:
        return int(parsed["numRecords"])
    raise Fail(f"{where}: add {add['path']!r} has no stats (numRecords is needed to count rows)")


class Replay:
    def __init__(self, table_dir, partition_column):
        self.table_dir = table_dir
        self.partition_column = partition_column
        self.active = {}  # relative path -> {"partition": str, "rows": int, "raw": str}
        self.protocol = None
        self.metadata = None

    def add(self, add, where):
        if add.get("deletionVector"):
            raise Fail(f"{where}: add {add['path']!r} has a deletion vector; rows from stats "
                       "would be wrong and our writer does not write them")
        values = as_dict(add.get("partitionValues"))
        if values is None:
            raise Fail(f"{where}: add {add['path']!r} has no partitionValues")
        rel = relative_path(self.table_dir, add["path"])
        # A later add of the same path replaces the earlier one (protocol: e.g. new stats).
        self.active[rel] = {
            "partition": partition_key(values.get(self.partition_column)),
            "rows": num_records(add, where),
            "raw": add["path"],
        }

    def remove(self, remove):
        self.active.pop(relative_path(self.table_dir, remove["path"]), None)

    def apply_commit(self, version, path):
        """One commit file: newline-delimited JSON actions, applied in order."""
        where = os.path.basename(path)
        commit_info = None
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    action = json.loads(line)
                except ValueError as e:
                    raise Fail(f"{where}:{lineno}: not JSON: {e}")
                if not isinstance(action, dict) or len(action) != 1:
                    raise Fail(f"{where}:{lineno}: an action must be one JSON object with one key")
                (kind, body), = action.items()
                if kind == "add":
                    self.add(body, f"{where}:{lineno}")
                elif kind == "remove":
                    self.remove(body)
                elif kind == "metaData":
                    self.metadata = body
                elif kind == "protocol":
                    self.protocol = body
                elif kind == "commitInfo":
                    if commit_info is None:
                        commit_info = body
                # txn, cdc, domainMetadata, ... do not change the files or the rows.
        return commit_info

    def apply_checkpoint(self, paths):
        import pyarrow.parquet as pq

        adds, removes = [], []
        for path in paths:
            table = pq.read_table(path)
            names = set(table.column_names)
            if "sidecar" in names and table.column("sidecar").null_count != table.num_rows:
                raise Fail(f"{os.path.basename(path)}: a V2 checkpoint with sidecars is not handled")
            for row in table.to_pylist():
                if row.get("add") is not None:
                    adds.append(row["add"])
                if row.get("remove") is not None:
                    removes.append(row["remove"])
                if row.get("metaData") is not None:
                    self.metadata = row["metaData"]
                if row.get("protocol") is not None:
                    self.protocol = row["protocol"]
        where = os.path.basename(paths[0])
        for add in adds:
            self.add(add, where)
        # Removes in a checkpoint are tombstones of files already gone; applied after the
        # adds, they can only drop a path the checkpoint wrongly lists as both.
        for remove in removes:
            self.remove(remove)


def list_log(table_dir):
    log_dir = os.path.join(table_dir, "_delta_log")
    if not os.path.isdir(log_dir):
        raise Fail(f"{table_dir} is not a Delta table: no _delta_log/")
    commits, checkpoints, ignored = {}, {}, []
    multipart = {}
    for name in sorted(os.listdir(log_dir)):
        full = os.path.join(log_dir, name)
        if os.path.isdir(full):
            continue
        m = COMMIT_RE.match(name)
        if m:
            commits[int(m.group(1))] = full
            continue
        m = CHECKPOINT_RE.match(name)
        if m:
            checkpoints[int(m.group(1))] = [full]
            continue
        m = MULTIPART_CHECKPOINT_RE.match(name)
        if m:
            key = (int(m.group(1)), int(m.group(3)))
            multipart.setdefault(key, {})[int(m.group(2))] = full
            continue
        if V2_CHECKPOINT_RE.match(name):
            raise Fail(f"_delta_log/{name}: V2 checkpoints are not handled")
        if not IGNORABLE_RE.match(name):
            # Unknown files (temp files a writer left?) are listed for the tests to look at.
            ignored.append(name)
    for (version, total), parts in multipart.items():
        if sorted(parts) == list(range(1, total + 1)):
            checkpoints.setdefault(version, [parts[i] for i in range(1, total + 1)])
    last_checkpoint = None
    hint = os.path.join(log_dir, "_last_checkpoint")
    if os.path.exists(hint):
        with open(hint, encoding="utf-8") as f:
            last_checkpoint = json.load(f).get("version")
    return commits, checkpoints, ignored, last_checkpoint


def read_log(table_dir, version, partition_column):
    commits, checkpoints, ignored, last_checkpoint = list_log(table_dir)
    if not commits and not checkpoints:
        raise Fail(f"{table_dir}/_delta_log has no commits")
    latest = max(list(commits) + list(checkpoints))
    target = latest if version is None else version
    if target > latest:
        raise Fail(f"version {target} asked, the log ends at {latest}")
    if last_checkpoint is not None and last_checkpoint not in checkpoints:
        raise Fail(f"_last_checkpoint names version {last_checkpoint}, whose checkpoint is missing")

    usable = [v for v in checkpoints if v <= target]
    start_checkpoint = max(usable) if usable else None
    first = 0 if start_checkpoint is None else start_checkpoint + 1
    missing = [v for v in range(first, target + 1) if v not in commits]
    if missing:
        raise Fail(f"commits missing from the log: {missing}"
                   + ("" if start_checkpoint is None else f" (after checkpoint {start_checkpoint})"))

    def replay(from_checkpoint):
        r = Replay(table_dir, partition_column)
        begin = 0
        if from_checkpoint is not None:
            r.apply_checkpoint(checkpoints[from_checkpoint])
            begin = from_checkpoint + 1
        infos = {}
        for v in range(begin, target + 1):
            infos[v] = r.apply_commit(v, commits[v])
        return r, infos

    state, _ = replay(start_checkpoint)
    # Operations come from every commit file we have (also those a checkpoint summarises).
    versions = sorted(v for v in commits if v <= target)
    operations = []
    full_replay_possible = versions == list(range(0, target + 1))
    if full_replay_possible:
        full, infos = replay(None)
        if start_checkpoint is not None:
            # The checkpoint must say what the commits before it say.
            a = {p: (e["partition"], e["rows"]) for p, e in state.active.items()}
            b = {p: (e["partition"], e["rows"]) for p, e in full.active.items()}
            if a != b:
                raise Fail(f"checkpoint {start_checkpoint} disagrees with replaying the commits: "
                           f"only in checkpoint replay {sorted(set(a) - set(b))}, "
                           f"only in commit replay {sorted(set(b) - set(a))}")
    else:
        infos = {}
        for v in versions:
            infos[v] = Replay(table_dir, partition_column).apply_commit(v, commits[v])
    for v in versions:
        info = infos.get(v)
        operations.append(None if info is None else info.get("operation"))

    if state.metadata is None or state.protocol is None:
        raise Fail(f"no {'metaData' if state.metadata is None else 'protocol'} action up to version {target}")
    partition_columns = list(state.metadata.get("partitionColumns") or [])
    if partition_column not in partition_columns:
        raise Fail(f"table is not partitioned by {partition_column!r} "
                   f"(partitionColumns: {partition_columns})")

    rows_by_date = {}
    for entry in state.active.values():
        rows_by_date[entry["partition"]] = rows_by_date.get(entry["partition"], 0) + entry["rows"]
    protocol = {k: state.protocol.get(k) for k in
                ("minReaderVersion", "minWriterVersion", "readerFeatures", "writerFeatures")
                if state.protocol.get(k) is not None}
    log = {
        "version": target,
        "active_files": sorted(state.active),
        "rows_by_date": rows_by_date,
        "rows": sum(rows_by_date.values()),
        "versions": versions,
        "operations": operations,
        "partition_columns": partition_columns,
        "protocol": protocol,
        "table_id": state.metadata.get("id"),
        "checkpoint_version": start_checkpoint,
        "last_checkpoint": last_checkpoint,
        "ignored_files": ignored,
    }
    return log, state.active


# ----------------------------------------------------------------------------------------
# Other readers.


def duckdb_connection():
    import duckdb

    con = duckdb.connect(":memory:")
    # Nothing from the network, no extension but what we load by path.
    con.execute("SET autoinstall_known_extensions=false")
    con.execute("SET autoload_known_extensions=false")
    return con


def read_duckdb_files(table_dir, active):
    if not active:
        return {"rows": 0, "rows_by_date": {}, "stats_mismatches": []}
    full = {os.path.join(table_dir, rel): rel for rel in sorted(active)}
    con = duckdb_connection()
    # hive_partitioning off: the partition comes from the add action, not from the folder
    # name (a writer may put files anywhere; the log is what counts).
    counts = con.execute(
        "SELECT filename, count(*) FROM read_parquet($files, filename=true, "
        "hive_partitioning=false, union_by_name=true) GROUP BY filename",
        {"files": list(full)},
    ).fetchall()
    by_file = {full[f]: n for f, n in counts}
    rows_by_date, mismatches = {}, []
    for rel, entry in sorted(active.items()):
        n = by_file.get(rel, 0)
        rows_by_date[entry["partition"]] = rows_by_date.get(entry["partition"], 0) + n
        if n != entry["rows"]:
            mismatches.append({"path": rel, "stats_rows": entry["rows"], "file_rows": n})
    return {"rows": sum(by_file.values()), "rows_by_date": rows_by_date,
            "stats_mismatches": mismatches}


def rows_checksum(table_dir, active):
    con = duckdb_connection()
    if not active:
        return con.execute("SELECT md5('')").fetchone()[0]
    full = sorted(os.path.join(table_dir, rel) for rel in active)
    parts = [(os.path.join(table_dir, rel), e["partition"]) for rel, e in active.items()]
    con.execute("CREATE TEMP TABLE delta_read_partitions (filename VARCHAR, partition VARCHAR)")
    con.executemany("INSERT INTO delta_read_partitions VALUES (?, ?)", parts)
    # Each row as DuckDB prints a struct (column names and values), then its partition value
    # from the log; rows sorted, so neither file order nor row order matters.
    return con.execute(
        "SELECT md5(coalesce(string_agg(r::VARCHAR, chr(10) ORDER BY r::VARCHAR), '')) FROM ("
        "SELECT f.* EXCLUDE (filename), p.partition AS __delta_read_partition "
        "FROM read_parquet($files, filename=true, hive_partitioning=false, union_by_name=true) f "
        "JOIN delta_read_partitions p USING (filename)) r",
        {"files": full},
    ).fetchone()[0]


def relative_uri(table_dir, uri):
    if uri.startswith("file://"):
        uri = urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    return os.path.relpath(uri, os.path.realpath(table_dir))


def arrow_rows_by(table, column):
    import pyarrow as pa
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(table.column(column).cast(pa.string())).to_pylist()
    return {partition_key(c["values"]): c["counts"] for c in counts}


def read_deltalake(table_dir, version, column):
    from deltalake import DeltaTable

    dt = DeltaTable(table_dir, version=version)
    table = dt.to_pyarrow_table(columns=[column])
    # History from the latest table: deltalake 1.6.6's history() on a table loaded at an older
    # version lists the newest commits, numbered down from that version (0, -1, -2, ...).
    history = sorted((h for h in DeltaTable(table_dir).history() if h["version"] <= dt.version()),
                     key=lambda h: h["version"])
    return {
        "version": dt.version(),
        "rows": table.num_rows,
        "rows_by_date": arrow_rows_by(table, column),
        "files": sorted(relative_uri(table_dir, u) for u in dt.file_uris()),
        "operations": [h.get("operation") for h in history],
    }


def read_polars(table_dir, version, column):
    import polars as pl

    df = pl.read_delta(table_dir, version=version, columns=[column])
    counts = df.group_by(column).len()
    return {
        "rows": df.height,
        "rows_by_date": {partition_key(None if d is None else str(d)): n
                         for d, n in counts.iter_rows()},
    }


def delta_extension_path():
    import duckdb

    override = os.environ.get("VOXLAKE_DUCKDB_DELTA_EXTENSION")
    if override:
        return override
    try:
        import duckdb_extension_delta
    except ImportError:
        raise Fail("duckdb_extension_delta is not installed (tests/run.sh installs it)")
    base = os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions")
    path = os.path.join(base, "v" + duckdb.__version__, "delta.duckdb_extension")
    if not os.path.exists(path):
        have = sorted(os.listdir(base)) if os.path.isdir(base) else []
        raise Fail(f"no delta extension for duckdb {duckdb.__version__} in {base} (has {have}): "
                   "pin duckdb-extension-delta to the duckdb version")
    return path


def read_delta_scan(table_dir, version, column):
    con = duckdb_connection()
    con.execute(f"LOAD '{delta_extension_path()}'")
    params = con.execute(
        "SELECT list_distinct(flatten(list(parameters))) FROM duckdb_functions() "
        "WHERE function_name = 'delta_scan'").fetchone()[0] or []
    args = {"table": table_dir}
    version_arg = ""
    if version is not None:
        if "version" not in params:
            return None  # this build of the extension cannot time travel
        version_arg = ", version := $version"
        args["version"] = version
    rows = con.execute(
        f'SELECT CAST("{column}" AS VARCHAR), count(*) FROM delta_scan($table{version_arg}) '
        "GROUP BY 1", args).fetchall()
    by = {partition_key(d): n for d, n in rows}
    return {"rows": sum(by.values()), "rows_by_date": by}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table_dir")
    ap.add_argument("--version", type=int, default=None)
    ap.add_argument("--rows-checksum", action="store_true")
    ap.add_argument("--partition-column", default="date")
    args = ap.parse_args()
    table_dir = os.path.abspath(args.table_dir)
    column = args.partition_column

    out = {}
    stage = "log"
    try:
        out["log"], active = read_log(table_dir, args.version, column)
        stage = "duckdb_files"
        out["duckdb_files"] = read_duckdb_files(table_dir, active)
        stage = "deltalake"
        out["deltalake"] = read_deltalake(table_dir, args.version, column)
        stage = "polars"
        out["polars"] = read_polars(table_dir, args.version, column)
        stage = "duckdb_delta_scan"
        out["duckdb_delta_scan"] = read_delta_scan(table_dir, args.version, column)
        if args.rows_checksum:
            stage = "checksum"
            out["checksum"] = rows_checksum(table_dir, active)
            out["file_count"] = len(active)
    except Fail as e:
        print(f"delta_read.py: {stage}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a reader failing is a finding: say which one
        print(f"delta_read.py: {stage} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
