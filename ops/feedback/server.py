"""``instructflow feedback serve``: the annotation page and its JSON API, on the standard
library's threading HTTP server (one thread per request; the database serialises writes).

    GET  /                               the page (static/index.html)
    GET  /api/items?annotator=NAME       every item id in order, ``done`` for this annotator
    GET  /api/items/ID?annotator=NAME    the prompt, its candidates, NAME's saved annotation
    POST /api/items/ID/annotation        {annotator, scores: {index: 1-5|null}, best, correction}
    GET  /api/stats                      counts per annotator and their agreement

A save is all or nothing, and bad input changes nothing: an unknown item is 404, a field
out of range or of the wrong type 422 naming the field, malformed JSON 400, a body over
``max_body_bytes`` 413 (not read), a body that is not ``application/json`` 415 (which also
keeps other sites' forms from posting here). It listens on loopback unless told otherwise,
and then answers only requests whose Host is a loopback name (no DNS rebinding).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ops.feedback.agreement import agreement_report
from ops.feedback.items import (
    InvalidField,
    best_picks,
    failures,
    item_view,
    queue,
    ratings,
    save_annotation,
)
from ops.feedback.store import FeedbackError, Store, UnknownItem

MAX_BODY_BYTES = 256 * 1024
DRAIN_LIMIT_BYTES = 16 * 1024 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_ITEM = re.compile(r"^/api/items/([0-9a-f]{1,64})$")
_SAVE = re.compile(r"^/api/items/([0-9a-f]{1,64})/annotation$")
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'"
)


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def page() -> bytes:
    return resources.files("ops.feedback").joinpath("static/index.html").read_bytes()


def stats(store: Store) -> dict[str, Any]:
    scores, picks = ratings(store), best_picks(store)
    per_annotator: dict[str, Counter] = {}
    for rating in scores:
        counts = per_annotator.setdefault(rating["annotator"], Counter(kind=rating["kind"]))
        counts["ratings"] += 1
    return {
        "items": len(queue(store, None)),
        "annotators": {
            name: {"kind": counts["kind"], "ratings": counts["ratings"]}
            for name, counts in sorted(per_annotator.items())
        },
        "best_picks": len(picks),
        "rating_failures": len(failures(store)),
        "agreement": agreement_report(scores, picks),
    }


class FeedbackHandler(BaseHTTPRequestHandler):
    server: FeedbackServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _answer(self, route: Any) -> None:
        try:
            self._check_host()
            status, body, kind = route(urlsplit(self.path))
        except ApiError as error:
            problem = {"error": error.message, **({"field": error.field} if error.field else {})}
            status, body, kind = error.status, json.dumps(problem).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if kind == "text/html":
            self.send_header("Content-Security-Policy", _PAGE_POLICY)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _check_host(self) -> None:
        if not self.server.loopback_only:
            return
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        if host not in LOOPBACK_HOSTS:
            self.close_connection = True
            raise ApiError(HTTPStatus.MISDIRECTED_REQUEST, f"host {host!r} is not served here")

    def _get(self, url: Any) -> tuple[int, bytes, str]:
        store = self.server.store
        annotator = parse_qs(url.query).get("annotator", [None])[0]
        if url.path in ("/", "/index.html"):
            return HTTPStatus.OK, page(), "text/html"
        if url.path == "/api/items":
            return _json(HTTPStatus.OK, {"items": queue(store, annotator)})
        if url.path == "/api/stats":
            return _json(HTTPStatus.OK, stats(store))
        found = _ITEM.match(url.path)
        if found:
            try:
                return _json(HTTPStatus.OK, item_view(store, found.group(1), annotator))
            except UnknownItem as error:
                raise ApiError(HTTPStatus.NOT_FOUND, str(error), "id") from None
        raise ApiError(HTTPStatus.NOT_FOUND, f"no page {url.path}")

    def _post(self, url: Any) -> tuple[int, bytes, str]:
        found = _SAVE.match(url.path)
        if not found:
            self._read_body()  # the connection stays usable
            raise ApiError(HTTPStatus.NOT_FOUND, f"no endpoint {url.path}")
        payload = self._json_body()
        try:
            annotation = save_annotation(self.server.store, found.group(1), payload)
        except UnknownItem as error:
            raise ApiError(HTTPStatus.NOT_FOUND, str(error), "id") from None
        except InvalidField as error:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error), error.field) from None
        except FeedbackError as error:
            raise ApiError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        saved = {"saved": found.group(1), "annotator": annotation.annotator}
        return _json(HTTPStatus.OK, saved)

    def _read_body(self) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is None or not length_header.isdigit():
            self.close_connection = True
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        length = int(length_header)
        if length > self.server.max_body_bytes:
            self._discard(length)
            raise ApiError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes; the limit is {self.server.max_body_bytes}",
            )
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        """Drain a body somewhat over the limit, so the client reads the 413 rather than a
        reset; a far bigger one is not read at all and the connection is closed."""
        if length > DRAIN_LIMIT_BYTES:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def _json_body(self) -> Any:
        body = self._read_body()
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send Content-Type application/json")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"malformed JSON: {error}") from None

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


def _json(status: HTTPStatus, document: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(document, ensure_ascii=False).encode("utf-8"), "application/json"


class FeedbackServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        store: Store,
        host: str = "127.0.0.1",
        port: int = 8765,
        max_body_bytes: int = MAX_BODY_BYTES,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), FeedbackHandler)
        self.store, self.max_body_bytes, self.verbose = store, max_body_bytes, verbose
        self.loopback_only = host in LOOPBACK_HOSTS or host.startswith("127.")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
