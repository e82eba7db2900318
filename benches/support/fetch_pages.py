"""Saves the simulator's Insights metrics pages as newline-delimited JSON files (one page a line).

The calls are discovered the way voxlake discovers them (Calls.json for the covering days,
every page), then each call's Metrics pages are fetched with PageSize=1000, following
meta.next_page_url: the same requests and the same bytes voxlake reads in compare.sh.

usage: fetch_pages.py BASE_URL OUT_DIR FROM_DAY TO_DAY [THREADS]
prints one line: calls pages rows bytes seconds
"""

import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

ACCOUNT = "AC00000000000000000000000000000000"
AUTH = "Basic " + base64.b64encode(f"{ACCOUNT}:simulator-token".encode()).decode()
PAGES_PER_FILE = 1000


class Conn:
    """One keep-alive connection to the simulator."""

    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        assert url.hostname in ("127.0.0.1", "localhost"), "loopback only"
        self.host, self.port = url.hostname, url.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def get(self, path):
        for attempt in range(3):
            try:
                self.conn.request("GET", path, headers={"Authorization": AUTH})
                response = self.conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
                return body
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def path_of(url):
    parts = urllib.parse.urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def discover(base, day_from, day_to):
    conn = Conn(base)
    query = urllib.parse.urlencode(
        {"StartTime>": day_from, "StartTime<": day_to, "PageSize": 1000}
    )
    path = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json?{query}"
    sids = []
    while path:
        page = json.loads(conn.get(path))
        sids.extend(call["sid"] for call in page["calls"])
        path = page.get("next_page_uri")
    return sids


def main():
    base, out_dir, day_from, day_to = sys.argv[1:5]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    os.makedirs(out_dir, exist_ok=True)
    started = time.monotonic()
    sids = discover(base, day_from, day_to)
    chunks = [sids[i : i + PAGES_PER_FILE] for i in range(0, len(sids), PAGES_PER_FILE)]
    totals = {"pages": 0, "rows": 0, "bytes": 0}
    lock = threading.Lock()
    next_chunk = iter(enumerate(chunks))

    errors = []

    def worker():
        try:
            work()
        except Exception as e:  # reported after join: a thread's exception is otherwise lost
            errors.append(e)

    def work():
        conn = Conn(base)
        while True:
            with lock:
                item = next(next_chunk, None)
            if item is None:
                return
            index, chunk = item
            pages = rows = size = 0
            with open(os.path.join(out_dir, f"pages-{index:04}.json"), "wb") as out:
                for sid in chunk:
                    path = f"/v1/Voice/{sid}/Metrics?PageSize=1000"
                    while path:
                        body = conn.get(path)
                        page = json.loads(body)
                        out.write(body.replace(b"\n", b" ") + b"\n")
                        pages += 1
                        rows += len(page["metrics"])
                        size += len(body)
                        next_url = page["meta"].get("next_page_url")
                        path = path_of(next_url) if next_url else None
            with lock:
                totals["pages"] += pages
                totals["rows"] += rows
                totals["bytes"] += size

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    elapsed = time.monotonic() - started
    print(len(sids), totals["pages"], totals["rows"], totals["bytes"], f"{elapsed:.1f}")


if __name__ == "__main__":
    main()
