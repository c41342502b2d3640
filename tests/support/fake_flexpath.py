"""A fake FlexPath API on 127.0.0.1: real HTTP, scripted answers, and a record of every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

APPROVAL: dict[str, Any] = {
    "reference_id": "fp-0001",
    "decision": "prequalified",
    "tier": "B",
    "score_band": "660-699",
    "max_payment_cents": 75_600,
    "max_amount_cents": 4_080_000,
}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: wait `delay` seconds, then send `status` with `body` (JSON), or
    with `raw` bytes when given; `hang` waits until the server stops and never answers."""

    status: int = 200
    body: Any = field(default_factory=lambda: dict(APPROVAL))
    raw: bytes | None = None
    delay: float = 0.0
    hang: bool = False

    @classmethod
    def ok(cls, delay: float = 0.0, **changes: Any) -> Reply:
        return cls(body={**APPROVAL, **changes}, delay=delay)

    @classmethod
    def error(cls, status: int, delay: float = 0.0) -> Reply:
        return cls(
            status=status, body={"error": {"code": status, "message": "scripted"}}, delay=delay
        )

    @classmethod
    def hanging(cls) -> Reply:
        return cls(hang=True)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeFlexPath:
    """Runs until `stop()` (or the `with` block ends). `script(...)` queues replies, used in
    order; once they run out every request gets `default`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply.ok()
        self.requests: list[RecordedRequest] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval keeps `stop()` (and so every test using the fake) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-flexpath",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script = list(replies)

    def reset(self, default: Reply | None = None) -> None:
        with self._lock:
            self._script = []
            self.requests.clear()
            self.default = default or Reply.ok()

    def start(self) -> FakeFlexPath:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeFlexPath:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.pop(0) if self._script else self.default

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = RecordedRequest(
                    method="POST",
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                )
                reply = fake._next_reply(recorded)
                if reply.hang:
                    fake._stopping.wait(30)
                    self.close_connection = True
                    return
                if reply.delay and fake._stopping.wait(reply.delay):
                    return
                payload = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
                # The client may have given up (timeout) while we slept.
                with suppress(OSError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


def running(default: Reply | None = None) -> Iterator[FakeFlexPath]:
    """For fixtures: `yield from running()`."""
    with FakeFlexPath(default) as fake:
        yield fake
