"""A real OpenAI-compatible chat-completions server on loopback whose replies a test scripts.

    with ScriptedServer(lambda messages, params: "1. A task", fail_first={429: 1}) as server:
        BackendConfig(kind="openai", model="scripted", base_url=server.url, backoff_s=0.01)

- ``responder(messages, params) -> str`` gives each choice's text (``params`` is the request
  body: max_tokens, temperature, n, seed, stop...); choice ``i`` of ``n`` gets
  ``params["choice"] = i``. An exception in it is a 500 with its message.
- ``fail_first={status: k}``: the first ``k`` attempts of each distinct prompt (the last
  message's content) get that status; 429s carry ``Retry-After: 0``.
- ``slow_first=k, delay_s=s``: the first ``k`` attempts of each prompt sleep ``s`` seconds
  before answering (longer than a client timeout, to test retries on timeouts).
- ``attempts``: per prompt, how many requests arrived; ``total``: all of them.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[list[dict[str, str]], dict[str, Any]], str]


class ScriptedServer:
    def __init__(
        self,
        responder: Responder,
        *,
        fail_first: dict[int, int] | None = None,
        slow_first: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self.responder = responder
        self.fail_first = dict(fail_first or {})
        self.slow_first = slow_first
        self.delay_s = delay_s
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def total(self) -> int:
        return sum(self.attempts.values())

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def reply(self, status: int, body: dict[str, Any], headers: dict | None = None):
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if not self.path.endswith("/chat/completions"):
                    self.reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                messages = body["messages"]
                prompt = messages[-1]["content"]
                with server.lock:
                    server.attempts[prompt] += 1
                    attempt = server.attempts[prompt]
                if attempt <= server.slow_first:
                    time.sleep(server.delay_s)
                for status, count in server.fail_first.items():
                    if attempt <= count:
                        headers = {"Retry-After": "0"} if status == 429 else None
                        self.reply(status, {"error": {"message": f"scripted {status}"}}, headers)
                        return
                choices = []
                try:
                    for index in range(int(body.get("n", 1))):
                        text = server.responder(messages, {**body, "choice": index})
                        choices.append(
                            {
                                "index": index,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        )
                except Exception as error:  # the responder's failure is the server's 500
                    self.reply(500, {"error": {"message": str(error)}})
                    return
                self.reply(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "model": body.get("model", "scripted"),
                        "choices": choices,
                    },
                )

        return Handler
