"""The JSON API on a real loopback server: saves, and bad input that changes nothing."""

from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlsplit

import pytest

from ops.feedback.items import ratings
from ops.feedback.server import FeedbackServer
from tests.ops.feedback.conftest import id_of
from tests.ops.feedback.test_store import counts

PERU = "What is the capital of Peru?"


@pytest.fixture
def server(store) -> FeedbackServer:
    running = FeedbackServer(store, "127.0.0.1", 0, max_body_bytes=4096)
    thread = threading.Thread(target=running.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def call(server, method, path, body=None, headers=None):
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **(headers or {})}
    connection.request(method, path, body=data, headers=headers)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    kind = response.getheader("Content-Type", "")
    return response.status, json.loads(payload) if "json" in kind else payload


def test_the_page_the_queue_an_item_and_a_save(server):
    status, page = call(server, "GET", "/")
    assert status == 200 and b"instructflow feedback" in page
    status, queue = call(server, "GET", "/api/items?annotator=ana")
    assert status == 200 and len(queue["items"]) == 3
    item = id_of(PERU)
    body = {"annotator": "ana", "scores": {"0": 5, "1": 1}, "best": 0, "correction": "Lima."}
    assert call(server, "POST", f"/api/items/{item}/annotation", body)[0] == 200
    status, view = call(server, "GET", f"/api/items/{item}?annotator=ana")
    assert view["candidates"][0] == "Lima."
    assert view["annotation"] == {"scores": {"0": 5, "1": 1}, "best": 0, "correction": "Lima."}
    status, stats = call(server, "GET", "/api/stats")
    assert stats["annotators"] == {"ana": {"kind": "human", "ratings": 2}}


@pytest.mark.parametrize(
    "path, body, headers, status, field",
    [
        ("/api/items/" + "f" * 32 + "/annotation", {"annotator": "a", "scores": {}}, {}, 404, "id"),
        ("ITEM", {"annotator": "a", "scores": {"0": 9}}, {}, 422, "scores.0"),
        ("ITEM", {"annotator": "a", "scores": {"0": "5"}}, {}, 422, "scores.0"),
        ("ITEM", {"annotator": "a", "best": 5}, {}, 422, "best"),
        ("ITEM", {"scores": {"0": 3}}, {}, 422, "annotator"),
        ("ITEM", b'{"annotator": "a", "scores": {', {}, 400, None),
        ("ITEM", b"\xff\xfe", {}, 400, None),
        ("ITEM", {"annotator": "a", "correction": "x" * 8000}, {}, 413, None),
        ("ITEM", b"annotator=a", {"Content-Type": "application/x-www-form-urlencoded"}, 415, None),
        ("ITEM", {"annotator": "a"}, {"Host": "evil.example:80"}, 421, None),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_changes_nothing(server, path, body, headers, status, field):
    path = path.replace("ITEM", f"/api/items/{id_of(PERU)}/annotation")
    got, answer = call(server, "POST", path, body, headers)
    assert got == status
    assert answer["error"]
    assert answer.get("field") == field
    assert counts(server.store) == (0, 0, 0)


def test_an_unknown_item_and_page_are_404(server):
    assert call(server, "GET", "/api/items/" + "a" * 32)[0] == 404
    assert call(server, "GET", "/api/items/not-hex")[0] == 404
    assert call(server, "GET", "/admin")[0] == 404


def test_a_far_bigger_body_is_refused_unread(server):
    address = urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    connection.putrequest("POST", f"/api/items/{id_of(PERU)}/annotation")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(1 << 30))  # 1 GiB announced, never sent
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and b"limit is 4096" in response.read()
    assert ratings(server.store) == []
