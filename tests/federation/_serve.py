"""Shared by run.py and refrp_run.py: a fresh SQLite database and a threaded
WSGI server on loopback that prints one ready line when it answers."""
import logging
import os
import signal
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.request


def fresh_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def enable_sqlite_wal() -> None:
    """Readers and the writer of the one process must not block each other:
    the OP fetches statements from the TA (the same process) while it writes."""
    from django.db.backends.signals import connection_created

    def _wal(sender, connection, **kwargs):
        if connection.vendor == "sqlite":
            with connection.cursor() as c:
                c.execute("PRAGMA journal_mode=WAL;")
                c.execute("PRAGMA busy_timeout=30000;")

    connection_created.connect(_wal)


def wait_http_ok(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def start_server(host: str, port: int):
    """Starts Django's threaded WSGI server (the one of runserver, without the
    autoreloader) in a daemon thread; static files are served too."""
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
    from django.core.wsgi import get_wsgi_application

    server_cls = type("ThreadedWSGIServer", (socketserver.ThreadingMixIn, WSGIServer), {})
    httpd = server_cls((host, port), WSGIRequestHandler, ipv6=False)
    httpd.daemon_threads = True
    httpd.set_app(StaticFilesHandler(get_wsgi_application()))
    t = threading.Thread(target=httpd.serve_forever, name="wsgi", daemon=True)
    t.start()
    return httpd


def serve_until_signal(httpd, ready_url: str, ready_line: str, ready_timeout: float = 60,
                       before_ready=None) -> int:
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if not wait_http_ok(ready_url, ready_timeout):
        logging.getLogger("fedharness").error("%s did not answer in %ss", ready_url, ready_timeout)
        print(f"error: {ready_url} did not answer within {ready_timeout}s", file=sys.stderr)
        httpd.shutdown()
        return 1
    if before_ready is not None:
        before_ready()
    sys.stdout.write(ready_line + "\n")
    sys.stdout.flush()
    while not stop.wait(1.0):
        pass
    httpd.shutdown()
    httpd.server_close()
    return 0
