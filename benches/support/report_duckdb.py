"""DuckDB computing the aggregates of `voxlake report` over the same lake, for benches/report.sh.

    python3 report_duckdb.py LAKE FROM TO THREADS(0 = DuckDB's default)

Prints: seconds of the queries (connect and import left out), threads used, calls, MOS p50
of the first day with samples (a cross-check against the report's JSON).
"""
import sys
import time

import duckdb

lake, start, end, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
con = duckdb.connect()
if threads > 0:
    con.execute(f"SET threads = {threads}")
used = con.execute("SELECT current_setting('threads')").fetchone()[0]


def table(name):
    return (f"(SELECT * FROM read_parquet('{lake}/{name}/*/*.parquet', hive_partitioning = true) "
            f"WHERE date >= DATE '{start[:10]}' AND date <= DATE '{end[:10]}')")


def window(column):
    return f"{column} >= TIMESTAMPTZ '{start}' AND {column} < TIMESTAMPTZ '{end}'"


m, e, c, s = (table(t) for t in ("insights_metrics", "insights_events", "calls", "call_summaries"))
day = "strftime(timezone('UTC', {}), '%Y-%m-%d')"
queries = {
    "calls": f"SELECT {day.format('start_time')}, hour(timezone('UTC', start_time)), count(*) "
             f"FROM {c} WHERE {window('start_time')} GROUP BY ALL",
    "mos_hist": f"SELECT least(greatest(floor((sdk_edge__interval__mos - 1) / 0.25), 0), 15) b, count(*) "
                f"FROM {m} WHERE sdk_edge__interval__mos IS NOT NULL AND {window('timestamp')} GROUP BY 1",
    "series": "SELECT d, " + ", ".join(
        f"quantile_cont({col}, [0.05, 0.5, 0.95])" for col in (
            "sdk_edge__interval__mos", "sdk_edge__interval__rtt", "sdk_edge__interval__jitter",
            "sdk_edge__interval__packets_loss_percentage",
            "carrier_edge__interval__jitter__avg", "carrier_edge__interval__packets_loss_percentage",
            "sip_edge__interval__jitter__avg", "sip_edge__interval__packets_loss_percentage",
            "client_edge__interval__jitter__avg", "client_edge__interval__packets_loss_percentage"))
        + f" FROM (SELECT *, {day.format('timestamp')} d FROM {m} WHERE {window('timestamp')}) GROUP BY d",
    "per_call": f"""CREATE TEMP TABLE per_call AS
        WITH mm AS (SELECT call_sid, min(sdk_edge__interval__mos) low, avg(sdk_edge__interval__mos) mos,
                count(sdk_edge__interval__mos) mos_n, sum(sdk_edge__interval__mos) mos_sum,
                avg(sdk_edge__interval__rtt) rtt,
                avg(sdk_edge__interval__jitter) j0, max(sdk_edge__interval__jitter) x0, avg(sdk_edge__interval__packets_loss_percentage) l0,
                avg(carrier_edge__interval__jitter__avg) j1, max(carrier_edge__interval__jitter__max) x1, avg(carrier_edge__interval__packets_loss_percentage) l1,
                avg(sip_edge__interval__jitter__avg) j2, max(sip_edge__interval__jitter__max) x2, avg(sip_edge__interval__packets_loss_percentage) l2,
                avg(client_edge__interval__jitter__avg) j3, max(client_edge__interval__jitter__max) x3, avg(client_edge__interval__packets_loss_percentage) l3
              FROM {m} WHERE {window('timestamp')} GROUP BY 1),
          ee AS (SELECT call_sid, min(sdk_edge__metadata__country_code) country, min(sdk_edge__metadata__sdk__platform) platform,
                min(sdk_edge__metadata__sdk__version) version, min(sdk_edge__metadata__sdk__os__name) os,
                list_sort(list_distinct(list(sdk_edge__error__code))) codes
              FROM {e} WHERE {window('timestamp')} GROUP BY 1),
          ss AS (SELECT call_sid, min(tags) tags, min(from__country_code) country, min(from__carrier) carrier
              FROM {s} WHERE {window('start_time')} GROUP BY 1),
          cc AS (SELECT sid call_sid, min(start_time) start_time, min(duration) duration FROM {c} WHERE {window('start_time')} GROUP BY 1),
          ids AS (SELECT call_sid FROM mm UNION SELECT call_sid FROM ee UNION SELECT call_sid FROM ss UNION SELECT call_sid FROM cc)
        SELECT * FROM ids LEFT JOIN mm USING (call_sid) LEFT JOIN ee USING (call_sid)
          LEFT JOIN ss USING (call_sid) LEFT JOIN cc USING (call_sid)""",
    "tags": """SELECT tag, count(*) FROM (SELECT call_sid, unnest(CASE WHEN tags IS NOT NULL THEN from_json(tags, '["VARCHAR"]')
          ELSE list_value(CASE WHEN mos < 3.5 THEN 'low_mos' END, CASE WHEN rtt > 400 THEN 'high_latency' END,
            CASE WHEN (j0 > 5 AND x0 > 30) OR (j1 > 5 AND x1 > 30) OR (j2 > 5 AND x2 > 30) OR (j3 > 5 AND x3 > 30) THEN 'high_jitter' END,
            CASE WHEN l0 > 5 OR l1 > 5 OR l2 > 5 OR l3 > 5 THEN 'high_packet_loss' END) END) tag FROM per_call)
        WHERE tag IS NOT NULL GROUP BY 1""",
    "worst": "SELECT call_sid, low, mos, duration, start_time, country, platform, version, os, codes FROM per_call "
             "WHERE low IS NOT NULL ORDER BY low, call_sid LIMIT 20",
    "groups": "SELECT g, count(*), count(mos_n), sum(mos_sum) / sum(mos_n) FROM (SELECT unnest([coalesce(country, country_1), "
              "coalesce('sdk: ' || platform, 'carrier: ' || carrier), platform || ' ' || version]) g, mos_n, mos_sum FROM per_call) "
              "WHERE g IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 45",
    "events": f"SELECT level, sdk_edge__error__code, name, count(*), count(DISTINCT call_sid) FROM {e} "
              f"WHERE (level IN ('ERROR', 'WARNING') OR sdk_edge__error__code IS NOT NULL) AND {window('timestamp')} GROUP BY ALL",
}
began = time.perf_counter()
results = {}
for name, sql in queries.items():
    results[name] = con.execute(sql).fetchall()
took = time.perf_counter() - began
calls = sum(r[2] for r in results["calls"])
series = sorted(r for r in results["series"] if r[1] is not None)
print(f"{took:.3f} {used} {calls} {series[0][1][1] if series else 'none'}")
