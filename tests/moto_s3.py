"""moto S3 server for tests with atomic conditional writes.

Usage: python tests/moto_s3.py PORT BUCKET
Creates BUCKET, listens on 127.0.0.1:PORT, prints `ready` (flushed) once the
socket accepts connections, then serves until killed.

Why: moto implements conditional PUT (`If-None-Match: *`, sent by object_store's
PutMode::Create and relied on by Delta Lake commits) as check-then-write, so
under the threaded `moto_server` two racing creators can both get 200. Here
every call into moto runs under one lock (moto handles one request at a time),
which makes check-and-write atomic: exactly one creator wins, the rest get 412.

The lock covers only moto's handling, not the network I/O: the response is
built in memory under the lock and sent after it is released. A fully
single-threaded server (run_simple(threaded=False)) is atomic too, but it stalls
every client while one client leaves a large response unread.
"""

import logging
import sys
import threading

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server


def serialized(app):
    lock = threading.Lock()

    def wsgi(environ, start_response):
        with lock:
            it = app(environ, start_response)
            try:
                body = b"".join(it)
            finally:
                getattr(it, "close", lambda: None)()
        return [body]

    return wsgi


def main() -> None:
    port, bucket = int(sys.argv[1]), sys.argv[2]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].create_bucket(bucket, "us-east-1")
    app = DomainDispatcherApplication(create_backend_app)  # as moto_server does
    app.debug = True
    server = make_server("127.0.0.1", port, serialized(app), threaded=True,
                         request_handler=MotoRequestHandler)
    print("ready", flush=True)  # bound and listening from here on
    server.serve_forever()


if __name__ == "__main__":
    main()
