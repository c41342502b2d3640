"""A fake Mailgun on 127.0.0.1: real HTTP, Mailgun's checks on a send, modes that throttle, fail
or hang, and a record of every accepted call; plus signed webhook bodies as Mailgun posts them.

    with FakeMailgun() as mailgun:
        client = MailgunClient(api_key=mailgun.api_key, domain=mailgun.domain,
                               base_url=mailgun.url)
        ...
        assert mailgun.calls[0].to == [...]

Checks, as Mailgun makes them: HTTP Basic `api:<key>` (401 otherwise), the domain in the path
(404), `from`, `to`, `subject` and `text` or `html` present (400), at most 1,000 `to` (400), and
`recipient-variables`, when there are several recipients or when given, a JSON object with an
entry for every `to` (400). Accepted calls answer `{"id": "<...@domain>", "message": "Queued.
Thank you."}`.

`GET /v3/<domain>/events` lists an `accepted` event per recipient of each accepted call (with its
`v:` variables substituted, its tags and Mailgun's message id), filtered by `event`,
`recipient`, `tags`, `begin` and `end`, paged by `limit` and `paging.next`.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

from server.domain.email import sign_webhook

MAX_RECIPIENTS = 1000
DEFAULT_DOMAIN = "mg.example.test"
DEFAULT_API_KEY = "key-fake-0123456789abcdef"
DEFAULT_SIGNING_KEY = "signing-key-fake-0123456789"


@dataclass(frozen=True)
class MailgunCall:
    """One accepted send: its form fields in order, and the id the fake answered with."""

    path: str
    fields: tuple[tuple[str, str], ...]
    message_id: str  # as answered, with angle brackets
    headers: Mapping[str, str]
    accepted_at: float = 0.0  # epoch seconds

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return default

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def to(self) -> list[str]:
        return _addresses(self.getall("to"))

    @property
    def recipient_variables(self) -> dict[str, dict[str, Any]]:
        raw = self.get("recipient-variables")
        return json.loads(raw) if raw else {}

    def rendered(self, name: str, address: str) -> str | None:
        """Field `name` as `address` would get it: `%recipient.x%` substituted from their
        recipient variables (what Mailgun does for bodies, headers and `v:` values)."""
        value = self.get(name)
        if value is None:
            return None
        for key, item in self.recipient_variables.get(address, {}).items():
            value = value.replace(f"%recipient.{key}%", str(item))
        return value


@dataclass
class _Mode:
    throttle: int = 0
    retry_after: str = "1"
    fail: int = 0
    fail_status: int = 500
    fail_accepts: bool = False
    hang: int = 0
    hang_accepts: bool = False
    latency: float = 0.0


@dataclass
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class FakeMailgun:
    """Runs until `stop()` (or the `with` block ends). Modes may be changed at any time, from any
    thread: `throttle(n)`, `fail(n)`, `hang(n)`, `latency`."""

    def __init__(
        self,
        *,
        domain: str = DEFAULT_DOMAIN,
        api_key: str = DEFAULT_API_KEY,
        latency: float = 0.0,
        hang_seconds: float = 30.0,
    ) -> None:
        self.domain = domain
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        self.calls: list[MailgunCall] = []
        # Every request, accepted or not: (status answered, path).
        self.attempts: list[tuple[int, str]] = []
        self._mode = _Mode(latency=latency)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-mailgun",
            daemon=True,
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL (what `MailgunClient(base_url=...)` takes)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMailgun:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and sleeping handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeMailgun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- modes ------------------------------------------------------------------------------

    @property
    def latency(self) -> float:
        return self._mode.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        with self._lock:
            self._mode.latency = seconds

    def throttle(self, calls: int = 1, retry_after: str | int | float = 1) -> None:
        """The next `calls` requests get 429 with `Retry-After: retry_after` (seconds or an
        HTTP date), and are not sent."""
        with self._lock:
            self._mode.throttle = calls
            self._mode.retry_after = str(retry_after)

    def fail(self, calls: int = 1, status: int = 500, *, accepted: bool = False) -> None:
        """The next `calls` requests get `status`. With `accepted`, each is recorded as sent all
        the same (Mailgun took it, then answered an error)."""
        with self._lock:
            self._mode.fail = calls
            self._mode.fail_status = status
            self._mode.fail_accepts = accepted

    def hang(self, calls: int = 1, *, accepted: bool = False) -> None:
        """The next `calls` requests get no answer for `hang_seconds` (or until `stop()`). With
        `accepted`, each is recorded as sent all the same (the answer was lost)."""
        with self._lock:
            self._mode.hang = calls
            self._mode.hang_accepts = accepted

    def reset(self) -> None:
        with self._lock:
            self._mode = _Mode()
            self.calls.clear()
            self.attempts.clear()

    # --- assertions -------------------------------------------------------------------------

    def recipient_counts(self) -> collections.Counter[str]:
        """How many accepted calls named each address (1 each, after an exactly-once run)."""
        with self._lock:
            return collections.Counter(a for call in self.calls for a in call.to)

    # --- the server -------------------------------------------------------------------------

    def _check(self, fields: list[tuple[str, str]]) -> str:
        """ "" when the call is acceptable, else the 400 message."""
        names = {k for k, _ in fields}
        for required in ("from", "to", "subject"):
            if required not in names:
                return f"'{required}' parameter is missing"
        if "text" not in names and "html" not in names and "template" not in names:
            return "Need at least one of 'text', 'html' or 'template' parameters specified"
        to = _addresses([v for k, v in fields if k == "to"])
        if not to:
            return "'to' parameter is missing"
        if len(to) > MAX_RECIPIENTS:
            return f"Too many recipients: {len(to)} (the maximum is {MAX_RECIPIENTS})"
        raw = next((v for k, v in fields if k == "recipient-variables"), None)
        if raw is None:
            if len(to) > 1:
                return "batch sending needs 'recipient-variables'"
            return ""
        try:
            variables = json.loads(raw)
        except ValueError:
            return "'recipient-variables' parameter is not a valid JSON"
        if not isinstance(variables, dict) or not all(
            isinstance(v, dict) for v in variables.values()
        ):
            return "'recipient-variables' must be a JSON object of objects"
        missing = [a for a in to if a not in variables]
        if missing:
            return f"'recipient-variables' lacks {len(missing)} of the recipients"
        return ""

    def _reply(self, path: str, headers: Mapping[str, str], body: bytes) -> tuple[_Reply, float]:
        if not _authorized(headers.get("authorization", ""), self.api_key):
            return _Reply(401, {"message": "Forbidden"}), 0.0
        if path.split("?", 1)[0] != f"/v3/{self.domain}/messages":
            return _Reply(404, {"message": "Domain not found"}), 0.0
        try:
            fields = _parse_form(headers.get("content-type", ""), body)
        except ValueError:
            return _Reply(400, {"message": "the body is not a form"}), 0.0
        problem = self._check(fields)
        if problem:
            return _Reply(400, {"message": problem}), 0.0
        with self._lock:
            mode = self._mode
            latency = mode.latency
            if mode.throttle > 0:
                mode.throttle -= 1
                return _Reply(
                    429, {"message": "Too many requests"}, {"Retry-After": mode.retry_after}
                ), latency
            accept = True
            reply: _Reply | None = None
            if mode.fail > 0:
                mode.fail -= 1
                accept = mode.fail_accepts
                reply = _Reply(mode.fail_status, {"message": "Internal Server Error"})
            elif mode.hang > 0:
                mode.hang -= 1
                accept = mode.hang_accepts
                reply = _Reply(0, {}, hang=True)
            message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{next(self._ids):08d}@{self.domain}>"
            if accept:
                self.calls.append(
                    MailgunCall(path, tuple(fields), message_id, dict(headers), time.time())
                )
            if reply is None:
                reply = _Reply(200, {"id": message_id, "message": "Queued. Thank you."})
            return reply, latency

    def _events(self, path: str, headers: Mapping[str, str]) -> _Reply:
        """`GET /v3/<domain>/events`: an `accepted` event per recipient of each accepted call,
        filtered as Mailgun filters them (`event`, `recipient`, `tags`, `begin`/`end` in epoch
        seconds), oldest first, `limit` (at most 300) a page, `paging.next` to the next page
        (empty `items` after the last)."""
        if not _authorized(headers.get("authorization", ""), self.api_key):
            return _Reply(401, {"message": "Forbidden"})
        route, _, query = path.partition("?")
        if route != f"/v3/{self.domain}/events":
            return _Reply(404, {"message": "Domain not found"})
        q = dict(parse_qsl(query))
        limit = min(300, int(q.get("limit", "100")))
        offset = int(q.get("offset", "0"))
        begin, end = float(q.get("begin", "0")), float(q.get("end", "1e12"))
        items = []
        with self._lock:
            calls = list(self.calls)
        if q.get("event", "accepted") == "accepted":
            for call in calls:
                if not begin <= call.accepted_at <= end:
                    continue
                if "tags" in q and q["tags"] not in call.getall("o:tag"):
                    continue
                for address in call.to:
                    if "recipient" in q and q["recipient"] != address:
                        continue
                    variables = {
                        k[2:]: call.rendered(k, address) for k, _ in call.fields if k[:2] == "v:"
                    }
                    items.append(
                        {
                            "event": "accepted",
                            "timestamp": call.accepted_at,
                            "recipient": address,
                            "tags": call.getall("o:tag"),
                            "user-variables": variables,
                            "message": {"headers": {"message-id": call.message_id.strip("<>")}},
                        }
                    )
        page = items[offset : offset + limit]
        rest = {k: v for k, v in q.items() if k != "offset"}
        following = urlencode({**rest, "offset": str(offset + len(page))})
        return _Reply(200, {"items": page, "paging": {"next": f"{self.url}{route}?{following}"}})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply, latency = fake._reply(self.path, headers, body)
                if reply.hang:
                    with fake._lock:
                        fake.attempts.append((0, self.path))
                    fake._stopping.wait(fake.hang_seconds)
                    self.close_connection = True
                    return
                if latency and fake._stopping.wait(latency):
                    return
                with fake._lock:
                    fake.attempts.append((reply.status, self.path))
                payload = json.dumps(reply.body).encode()
                with suppress(OSError):  # the client may have given up
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)

            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake._events(self.path, headers)
                with fake._lock:
                    fake.attempts.append((reply.status, self.path))
                payload = json.dumps(reply.body).encode()
                with suppress(OSError):
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


def running(**kwargs: Any) -> Iterator[FakeMailgun]:
    """For fixtures: `yield from running()`."""
    with FakeMailgun(**kwargs) as fake:
        yield fake


def _authorized(header: str, api_key: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return False
    return user == "api" and secrets.compare_digest(password, api_key)


def _addresses(values: list[str]) -> list[str]:
    # `to` may be given several times and each may hold comma-separated addresses.
    return [a.strip() for value in values for a in value.split(",") if a.strip()]


def _parse_form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    if kind == "multipart/form-data":
        return _parse_multipart(content_type, body)
    raise ValueError("unsupported content type")


_DISPOSITION_NAME = re.compile(rb'form-data;[^\r\n]*?\bname="([^"]*)"', re.IGNORECASE)


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a multipart/form-data body (RFC 7578), their bytes exactly as sent: split
    on the boundary, each part's headers from its body at the first blank line."""
    boundary = re.search(r'boundary="?([^";]+)"?', content_type)
    if boundary is None:
        raise ValueError("multipart without a boundary")
    dash = b"--" + boundary.group(1).encode()
    chunks = body.split(dash)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("not a complete multipart body")
    fields = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("a malformed part")
        headers, sep, value = chunk[2:-2].partition(b"\r\n\r\n")
        name = _DISPOSITION_NAME.search(headers)
        if not sep or name is None:
            raise ValueError("a part without a name")
        fields.append((name.group(1).decode(), value.decode()))
    return fields


# --- webhooks ---------------------------------------------------------------------------------


def webhook_body(
    event: str,
    recipient: str,
    *,
    signing_key: str = DEFAULT_SIGNING_KEY,
    message_id: str = "20261129120000.00000001@mg.example.test",
    user_variables: Mapping[str, Any] | None = None,
    severity: str | None = None,
    reason: str | None = None,
    delivery_code: int | None = None,
    delivery_message: str | None = None,
    timestamp: int | None = None,
    token: str | None = None,
    event_timestamp: float | None = None,
    tags: list[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A webhook body as Mailgun posts it (`{"signature": ..., "event-data": ...}`), signed with
    `signing_key` at `timestamp` (now by default) with a fresh 50-character token unless given."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    token = token or secrets.token_hex(25)
    data: dict[str, Any] = {
        "event": event,
        "id": secrets.token_urlsafe(16),
        "timestamp": float(stamp) if event_timestamp is None else event_timestamp,
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2],
        "message": {"headers": {"message-id": message_id}},
        "user-variables": dict(user_variables) if user_variables else [],
        "tags": tags or [],
        "log-level": "error" if event == "failed" else "info",
    }
    if severity is not None:
        data["severity"] = severity
    if reason is not None:
        data["reason"] = reason
    if delivery_code is not None or delivery_message is not None:
        data["delivery-status"] = {
            "code": delivery_code if delivery_code is not None else 0,
            "message": delivery_message or "",
            "description": "",
        }
    if extra:
        data.update(extra)
    return {
        "signature": {
            "timestamp": stamp,
            "token": token,
            "signature": sign_webhook(signing_key, stamp, token),
        },
        "event-data": data,
    }


def webhook_bytes(event: str, recipient: str, **kwargs: Any) -> bytes:
    """`webhook_body(...)` as the JSON bytes of a request."""
    return json.dumps(webhook_body(event, recipient, **kwargs)).encode()
