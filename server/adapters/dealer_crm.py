"""Dealer CRM delivery: one signed HTTP POST of a lead package, classified for the outbox.

Every attempt carries:
- `X-CCL-Timestamp`: Unix seconds when the attempt was signed;
- `X-CCL-Signature`: `sha256=` + hex HMAC-SHA256(dealer secret, timestamp + "." + body);
- `X-CCL-Event-Id` and `Idempotency-Key`: the delivery's event id, the same on every retry, so
  a dealer that saw an attempt whose answer was lost can drop the repeat.

Outcomes: 2xx delivered; 408, 429, 5xx, timeouts and connection errors retryable; any other
4xx rejected for good (recorded with the answer).

The recorded error never carries the endpoint's userinfo or query string (where credentials
live): an exception is recorded by its class name (httpx's texts include the URL), an answer's
body with every URL in it redacted (`server.redact`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from dataclasses import dataclass

import httpx

from server.redact import redact_urls

SIGNATURE_HEADER = "X-CCL-Signature"
TIMESTAMP_HEADER = "X-CCL-Timestamp"
EVENT_ID_HEADER = "X-CCL-Event-Id"
USER_AGENT = "CCL-Lead-Platform/1 (+dealer-delivery)"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, timestamp + "." + body): the scheme dealers verify,
    and the one the inbound dealer webhook is verified with."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    status_code: int
    error: str
    duration_ms: int


def classify(status_code: int) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome.DELIVERED
    if status_code in (408, 429) or status_code >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


class DealerCrmClient:
    """Posts packages to dealer endpoints. One client (connection pool) for all dealers."""

    def __init__(
        self,
        *,
        timeout_seconds: float,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`max_connections` at least the worker's concurrency, so no delivery waits for a
        connection (and times out) while a slot is free."""
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
            limits=httpx.Limits(max_connections=max_connections),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def deliver(
        self, *, url: str, body: bytes, content_type: str, secret: str, event_id: str
    ) -> AttemptResult:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: event_id,
            "Idempotency-Key": event_id,
        }
        start = time.perf_counter()
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return AttemptResult(Outcome.RETRY, 0, "timeout", _ms(start))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            # The dealer's endpoint cannot be used at all; retrying would not change that.
            return AttemptResult(Outcome.REJECTED, 0, type(e).__name__, _ms(start))
        except httpx.HTTPError as e:
            # The error's class names the failure (ConnectError, ...) without echoing the body.
            return AttemptResult(Outcome.RETRY, 0, type(e).__name__, _ms(start))
        outcome = classify(response.status_code)
        # The answer's body may echo the endpoint URL with its credentials; the error is shown to
        # admins, so URLs are redacted before it is cut short (a cut could split a URL's "@").
        error = (
            ""
            if outcome is Outcome.DELIVERED
            else f"HTTP {response.status_code}: "
            + redact_urls(response.text)[:200].replace("\n", " ")
        )
        return AttemptResult(outcome, response.status_code, error, _ms(start))

    async def aclose(self) -> None:
        await self._http.aclose()


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
