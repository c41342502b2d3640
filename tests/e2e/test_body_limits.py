"""REST bodies over CCL_MAX_REQUEST_BYTES (1 MiB here) through real Envoy: every client reads a
413 with the JSON error body, never a reset, whether the body has a Content-Length or is chunked,
over HTTP/1.1 or HTTP/2, and whether the client reads the answer while sending or only after.
gRPC through Envoy is not limited (its streams are never buffered)."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from support.data import example_message, example_request
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e

LIMIT = 1_048_576  # CCL_MAX_REQUEST_BYTES, the default
BIG = 20 * 1024 * 1024
HANG_GUARD = 120.0  # only so that a regression fails instead of hanging
PROCESS = "/api/leads/process"


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body as an iterator, which the clients send with Transfer-Encoding: chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def assert_too_large(status: int, body: bytes) -> None:
    """413 with the error body every other error has: {"code","message","details"}."""
    assert status == 413, body[:200]
    payload: dict[str, Any] = json.loads(body)
    assert payload["code"] == 8  # RESOURCE_EXHAUSTED
    assert str(LIMIT) in payload["message"]
    (info,) = [d for d in payload["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert (info["reason"], info["domain"]) == ("REQUEST_TOO_LARGE", "ccl")
    assert info["metadata"]["max_bytes"] == str(LIMIT)
    assert info["metadata"]["request_id"]


def padded(idempotency_key: str, size: int) -> bytes:
    """A valid ProcessLead body of exactly `size` bytes (JSON allows trailing whitespace)."""
    request = example_request()
    request["idempotency_key"] = idempotency_key
    text = json.dumps(request).encode()
    return text + b" " * (size - len(text))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_20_mib_body_is_413_with_the_error_body(
    envoy_proxy: EnvoyProcess, admin_key: str, framing: str
) -> None:
    data = b"x" * BIG
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=HANG_GUARD) as http:
        content = data if framing == "content-length" else chunked(data)
        r = http.post(PROCESS, content=content, headers=headers(admin_key))
        assert_too_large(r.status_code, r.content)
        assert http.get("/api/agents/status", headers=headers(admin_key)).status_code == 200


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_client_that_reads_only_after_sending_all_gets_413(
    envoy_proxy: EnvoyProcess, admin_key: str, framing: str
) -> None:
    """http.client (which urllib and many SDKs use) sends the whole body before it reads the
    answer: Envoy must read the body to its end rather than answer and close under it."""
    data = b"x" * BIG
    connection = http.client.HTTPConnection("127.0.0.1", envoy_proxy.http_port, timeout=HANG_GUARD)
    try:
        connection.request(
            "POST",
            PROCESS,
            body=data if framing == "content-length" else chunked(data),
            headers=headers(admin_key),
        )
        response = connection.getresponse()
        assert_too_large(response.status, response.read())
    finally:
        connection.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_http2_client_gets_413(envoy_proxy: EnvoyProcess, admin_key: str, tmp_path: Path) -> None:
    body, answer = tmp_path / "body.json", tmp_path / "answer.json"
    body.write_bytes(b"x" * BIG)
    header_args = [arg for h in headers(admin_key).items() for arg in ("-H", ": ".join(h))]
    result = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--http2-prior-knowledge",
            "--max-time",
            str(int(HANG_GUARD)),
            "--output",
            str(answer),
            "--write-out",
            "%{http_version} %{http_code}",
            *header_args,
            "--data-binary",
            f"@{body}",
            envoy_proxy.base_url + PROCESS,
        ],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD + 30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    version, status = result.stdout.split()
    assert version == "2"
    assert_too_large(int(status), answer.read_bytes())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_limit_is_exact(envoy_proxy: EnvoyProcess, admin_key: str, framing: str) -> None:
    """A body of exactly the limit is served; one byte more is 413."""
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=HANG_GUARD) as http:

        def post(data: bytes) -> httpx.Response:
            content = data if framing == "content-length" else chunked(data)
            return http.post(PROCESS, content=content, headers=headers(admin_key))

        at_limit = post(padded(f"limit-{framing}", LIMIT))
        assert at_limit.status_code == 200, at_limit.text
        assert at_limit.json()["lead"]["lead_id"]
        over = post(padded(f"over-{framing}", LIMIT + 1))
        assert_too_large(over.status_code, over.content)


def test_past_the_drain_limit_envoy_still_answers_413(
    stack: ServerThread, admin_key: str, tmp_path: Path
) -> None:
    """Past `max_drain_bytes` Envoy stops reading and answers at once (and closes): a client
    that reads while sending, like httpx, still reads the 413."""
    proxy = EnvoyProcess([stack.port], tmp_path, max_drain_bytes=2 * LIMIT).start()
    try:
        with httpx.Client(base_url=proxy.base_url, timeout=HANG_GUARD) as http:
            r = http.post(PROCESS, content=b"x" * BIG, headers=headers(admin_key))
        assert_too_large(r.status_code, r.content)
        assert r.headers["connection"] == "close"
    finally:
        proxy.stop()


def test_grpc_through_envoy_has_no_body_limit(envoy_proxy: EnvoyProcess, admin_key: str) -> None:
    """A client stream of more than the REST limit, and a unary message over it, reach the
    server (whose own answers these are) instead of Envoy's 413."""

    def record(number: int) -> lead_pb.ImportLeadsRequest:
        record = lead_pb.ImportLeadsRequest(
            idempotency_key=f"big-{number}", lead=example_message().lead, record_ref=str(number)
        )
        record.lead.consent.consent_text = "x" * (LIMIT // 2)
        return record

    with grpc.insecure_channel(f"127.0.0.1:{envoy_proxy.http_port}") as channel:
        leads = lead_service_pb2_grpc.LeadServiceStub(channel)
        imported = leads.ImportLeads(
            (record(n) for n in range(4)), metadata=auth(admin_key), timeout=HANG_GUARD
        )
        assert imported.received_count == 4
        assert imported.rejected_count == 4  # consent text over 10,000 characters
        big = example_message("big-unary")
        big.lead.consent.consent_text = "x" * (LIMIT + LIMIT // 2)
        with pytest.raises(grpc.RpcError) as e:
            leads.ProcessLead(big, metadata=auth(admin_key), timeout=HANG_GUARD)
    err = rich_error(e.value)  # type: ignore[arg-type]
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_LEAD")
    assert "lead.consent.consent_text" in err.violations
