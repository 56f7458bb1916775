"""`evolve ui`: the report's views, live, from the standard library's HTTP server.

Read-only by construction: the database is opened read-only, the server answers GET only,
and it runs no stored code. It binds 127.0.0.1 unless told otherwise. The page polls a
small JSON feed; the server recomputes a run's views only when its stamp (row counts,
status, champion) moved, so a poll of an idle run costs one cheap query.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from evolve.report.data import collect, stamp
from evolve.report.page import LIVE_CSP, page, run_list, sections
from evolve.report.source import RunSource, SourceError

RUN_PAGE = re.compile(r"^/run/(\d+)/?$")
RUN_FEED = re.compile(r"^/run/(\d+)/feed$")
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}


class LiveViews:
    """The latest views of each run in one database, recomputed when the run moved."""

    def __init__(self, source: RunSource) -> None:
        self.source = source
        self._cache: dict[int, tuple[str, dict[str, Any], dict[str, str]]] = {}
        self._lock = threading.Lock()

    def current(self, run_id: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        now = stamp(self.source, run_id)
        with self._lock:
            cached = self._cache.get(run_id)
            if cached is None or cached[0] != now:
                data = collect(self.source, run_id)
                cached = (now, data, sections(data))
                self._cache[run_id] = cached
            return cached


def make_server(source: RunSource, host: str = "127.0.0.1", port: int = 8765,
                interval: float = 3.0) -> ThreadingHTTPServer:
    views = LiveViews(source)
    server = ThreadingHTTPServer((host, port), _handler(views, interval, host in LOOPBACK))
    server.daemon_threads = True
    return server


def _handler(views: LiveViews, interval: float, loopback: bool) -> type[BaseHTTPRequestHandler]:
    source = views.source

    class Handler(BaseHTTPRequestHandler):
        server_version = "evolve-ui"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
            return None  # the terminal stays quiet; the page shows its own state

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            if loopback and not self._local_host():
                self._send(403, "text/plain", b"this view answers only on 127.0.0.1")
                return
            url = urlsplit(self.path)
            routes: list[tuple[re.Pattern[str], Callable[[int, dict[str, list[str]]], None]]] = [
                (RUN_PAGE, self._page), (RUN_FEED, self._feed)]
            try:
                if url.path in ("/", "/runs"):
                    self._index(listing=url.path == "/runs")
                    return
                for pattern, action in routes:
                    match = pattern.match(url.path)
                    if match:
                        action(int(match.group(1)), parse_qs(url.query))
                        return
                self._send(404, "text/plain", b"not found")
            except SourceError as error:
                self._send(404, "text/plain", str(error).encode())
            except Exception as error:  # noqa: BLE001 - a busy or half-written database: say so, keep serving
                self._send(503, "application/json", json.dumps({"error": f"{type(error).__name__}: {error}"}).encode())

        def _local_host(self) -> bool:
            """Refuse other Host names (DNS rebinding: a web page aiming its requests at this port)."""
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            return host in LOOPBACK

        def _index(self, listing: bool) -> None:
            """`/`: the run directory's own run (or the only one), else the list; `/runs`: always the list."""
            runs = source.runs()
            if not listing and (source.default_run is not None or len(runs) == 1):
                self._redirect(f"/run/{source.run_id()}")
                return
            html = run_list([r.__dict__ for r in runs], lambda i: f"/run/{i}", source.label)
            self._send(200, "text/html; charset=utf-8", html.encode())

        def _page(self, run_id: int, _query: dict[str, list[str]]) -> None:
            run_id = source.run_id(run_id)
            current, data, _ = views.current(run_id)
            live = {"feed": f"/run/{run_id}/feed", "interval": interval, "stamp": current, "runs_url": "/runs"}
            self._send(200, "text/html; charset=utf-8", page(data, live).encode())

        def _feed(self, run_id: int, query: dict[str, list[str]]) -> None:
            run_id = source.run_id(run_id)
            current, _, parts = views.current(run_id)
            since = (query.get("since") or [""])[0]
            reply: dict[str, Any] = {"stamp": current}
            if since != current:
                reply["sections"] = parts
            self._send(200, "application/json", json.dumps(reply).encode())

        def _redirect(self, location: str) -> None:
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", LIVE_CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve(source: RunSource, host: str, port: int, interval: float, announce: Callable[[str], None]) -> None:
    """Serve until interrupted (Ctrl-C)."""
    server = make_server(source, host, port, interval)
    bound_host, bound_port = server.server_address[:2]
    announce(f"http://{'127.0.0.1' if bound_host == '127.0.0.1' else bound_host}:{bound_port}/")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        source.close()
