"""A fake OpenAI on 127.0.0.1: real HTTP, `POST /v1/chat/completions` answered whole or streamed
as server-sent events, the bearer key checked, modes that fail, hang, slow down or break a
stream, and a record of every request.

    with FakeOpenAI() as fake:
        client = AsyncOpenAI(api_key=fake.api_key, base_url=fake.base_url)
        ...
        assert fake.requests[0].body["store"] is False

Answers come from `answer(body) -> str` (the request's JSON body), by default
`default_answer`: "Hi <first name>, ..." when the last user message carries a `First name:` line.
A streamed answer is sent word by word as `chat.completion.chunk` events (the first carrying the
assistant role, the last `finish_reason: "stop"`; with `stream_options.include_usage` a usage
chunk with no choices follows), then `data: [DONE]`, in HTTP/1.1 chunked encoding.

Checks, as OpenAI makes them: `Authorization: Bearer <key>` (401 `invalid_api_key` otherwise),
the path (404), a JSON object with `model` and a non-empty `messages` list (400).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_API_KEY = "sk-fake-0123456789abcdef"
CHAT_PATH = "/v1/chat/completions"

Answer = Callable[[Mapping[str, Any]], str]


def last_user_text(body: Mapping[str, Any]) -> str:
    """The text of the request's last user message ("" without one)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts
                return " ".join(
                    str(p.get("text", "")) for p in content if isinstance(p, dict)
                ).strip()
    return ""


def default_answer(body: Mapping[str, Any]) -> str:
    """`Hi <first name>, good to see you again.` (or `Hi there, ...` without a first name)."""
    match = re.search(r"(?im)^first name:\s*(.+)$", last_user_text(body))
    name = match.group(1).strip() if match else "there"
    return f"Hi {name}, good to see you again."


@dataclass(frozen=True)
class OpenAIRequest:
    """One authorised, well-formed request: its path, headers (lower-case names), raw body and
    parsed JSON body."""

    path: str
    headers: Mapping[str, str]
    raw: bytes
    body: Mapping[str, Any]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class _Mode:
    fail: int = 0
    fail_status: int = 500
    hang: int = 0
    break_stream: int = 0


class FakeOpenAI:
    """Runs until `stop()` (or the `with` block ends). Modes may be changed at any time, from any
    thread: `fail(n)`, `hang(n)`, `break_stream(n)`, `latency` (before each answer), `chunk_delay`
    (between streamed chunks), `answer`."""

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        answer: Answer = default_answer,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        hang_seconds: float = 30.0,
    ) -> None:
        self.api_key = api_key
        self.answer = answer
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.hang_seconds = hang_seconds
        self.requests: list[OpenAIRequest] = []
        # Every request: (status answered, path); 0 for one never answered (hang, broken stream).
        self.attempts: list[tuple[int, str]] = []
        self.peak_in_flight = 0
        self._in_flight = 0
        self._mode = _Mode()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-openai",
            daemon=True,
        )

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What `AsyncOpenAI(base_url=...)` takes."""
        return f"{self.url}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hanging and sleeping handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- modes ------------------------------------------------------------------------------

    def fail(self, calls: int = 1, status: int = 500) -> None:
        """The next `calls` requests get `status` with an OpenAI error body."""
        with self._lock:
            self._mode.fail = calls
            self._mode.fail_status = status

    def hang(self, calls: int = 1) -> None:
        """The next `calls` requests get no answer for `hang_seconds` (or until `stop()`)."""
        with self._lock:
            self._mode.hang = calls

    def break_stream(self, calls: int = 1) -> None:
        """The next `calls` streaming requests get the role chunk and the first word's chunk,
        then the connection drops (no further chunk, no `[DONE]`, no end of the chunked body)."""
        with self._lock:
            self._mode.break_stream = calls

    def reset(self) -> None:
        with self._lock:
            self._mode = _Mode()
            self.requests.clear()
            self.attempts.clear()
            self.peak_in_flight = 0

    # --- answers ----------------------------------------------------------------------------

    def completion(self, body: Mapping[str, Any], content: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(body, content),
        }

    def chunks(self, body: Mapping[str, Any], content: str) -> list[dict[str, Any]]:
        """The stream of one answer: a role chunk, one chunk per word (with its leading space),
        a `finish_reason` chunk, and a usage chunk when asked for."""
        ident = f"chatcmpl-fake{next(self._ids):06d}"
        created = int(time.time())
        model = str(body.get("model", ""))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        pieces = re.findall(r"\s*\S+", content) or [content]
        out = [chunk({"role": "assistant", "content": ""})]
        out.extend(chunk({"content": piece}) for piece in pieces)
        out.append(chunk({}, "stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            out.append(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(body, content),
                }
            )
        return out

    # --- the server -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                with fake._lock:
                    fake._in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake._in_flight)
                try:
                    self._post()
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

            def _post(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                path = self.path.split("?", 1)[0]
                if not _authorized(headers.get("authorization", ""), fake.api_key):
                    return self._error(
                        401,
                        "Incorrect API key provided.",
                        "invalid_request_error",
                        "invalid_api_key",
                    )
                if path != CHAT_PATH:
                    return self._error(404, "Not found.", "invalid_request_error", None)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                if not isinstance(body, dict) or not body.get("model"):
                    return self._error(
                        400, "you must provide a model parameter", "invalid_request_error", None
                    )
                if not isinstance(body.get("messages"), list) or not body["messages"]:
                    return self._error(
                        400, "'messages' must be a non-empty array", "invalid_request_error", None
                    )
                with fake._lock:
                    fake.requests.append(OpenAIRequest(self.path, headers, raw, body))
                    mode = fake._mode
                    fail_status = 0
                    hang = broken = False
                    if mode.fail > 0:
                        mode.fail -= 1
                        fail_status = mode.fail_status
                    elif mode.hang > 0:
                        mode.hang -= 1
                        hang = True
                    elif body.get("stream") and mode.break_stream > 0:
                        mode.break_stream -= 1
                        broken = True
                if hang:
                    fake._record(0, self.path)
                    fake._stopping.wait(fake.hang_seconds)
                    self.close_connection = True
                    return None
                if fake.latency and fake._stopping.wait(fake.latency):
                    return None
                if fail_status:
                    return self._error(
                        fail_status, "The server had an error.", "server_error", None
                    )
                content = fake.answer(body)
                if body.get("stream"):
                    return self._stream(body, content, broken)
                fake._record(200, self.path)
                return self._json(200, fake.completion(body, content))

            def _stream(self, body: Mapping[str, Any], content: str, broken: bool) -> None:
                fake._record(0 if broken else 200, self.path)
                self.close_connection = True  # a stream ends its connection either way
                with suppress(OSError):  # the client may have given up
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream; charset=utf-8")
                    self.send_header("Cache-Control", "no-cache")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for index, chunk in enumerate(fake.chunks(body, content)):
                        if index and fake.chunk_delay and fake._stopping.wait(fake.chunk_delay):
                            return
                        self._send_chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                        if broken and index >= 1:
                            # Drop the connection mid-body: the client sees a truncated stream.
                            with suppress(OSError):
                                self.connection.shutdown(2)
                            return
                    self._send_chunk(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")

            def _send_chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _error(self, status: int, message: str, kind: str, code: str | None) -> None:
                fake._record(status, self.path)
                error = {"message": message, "type": kind, "param": None, "code": code}
                self._json(status, {"error": error})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                with suppress(OSError):
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler

    def _record(self, status: int, path: str) -> None:
        with self._lock:
            self.attempts.append((status, path))


def running(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """For fixtures: `yield from running()`."""
    with FakeOpenAI(**kwargs) as fake:
        yield fake


def _authorized(header: str, api_key: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        token.strip().encode(), api_key.encode()
    )


def _usage(body: Mapping[str, Any], content: str) -> dict[str, int]:
    prompt = sum(
        len(str(m.get("content", "")).split())
        for m in body.get("messages", [])
        if isinstance(m, dict)
    )
    completion = len(content.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
