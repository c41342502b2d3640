"""A fake dealer CRM: a real HTTP server on 127.0.0.1 that answers from a script and records
every request, checking each signature with the dealer's secret exactly as a dealer would:
`standardwebhooks.Webhook(secret).verify(body, headers)`."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def as_whsec(secret: str) -> str:
    """The secret as a dealer gives it to the library: a `whsec_` secret as it is; one stored
    before secrets were `whsec_` (raw text) as `whsec_` + base64 of its text, as documented."""
    if secret.startswith("whsec_"):
        return secret
    return "whsec_" + base64.b64encode(secret.encode()).decode()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    signature_ok: bool


@dataclass
class FakeCrm:
    """`script`: statuses to answer, in order (the last one repeats); `delay`: seconds to wait
    before answering (to provoke client timeouts); `answer`: the body to answer with, when not
    the default `{"ok": ...}` (it may be a function of the request's headers, to echo them)."""

    secret: str = ""
    script: list[int] = field(default_factory=lambda: [200])
    delay: float = 0.0
    answer: bytes | Callable[[dict[str, str]], bytes] | None = None
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self._lock:
            index = len(self.received)
        return self.script[min(index, len(self.script) - 1)]

    def verify(self, headers: dict[str, str], body: bytes) -> bool:
        try:
            Webhook(as_whsec(self.secret)).verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError):
            return False
        return True

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.received if 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"CRM got {len(self.received)} requests, wanted {count}")
            time.sleep(0.02)


@contextmanager
def running(crm: FakeCrm) -> Iterator[str]:
    """Serves `crm`; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = crm.next_status()
            if crm.delay:
                time.sleep(crm.delay)
            with crm._lock:
                crm.received.append(
                    Received(self.path, headers, body, status, crm.verify(headers, body))
                )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if crm.answer is None:
                self.wfile.write(b'{"ok": %s}' % (b"true" if status < 300 else b"false"))
            else:
                self.wfile.write(crm.answer(headers) if callable(crm.answer) else crm.answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/leads"
    finally:
        server.shutdown()
        server.server_close()
