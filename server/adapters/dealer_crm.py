"""Dealer CRM delivery: one signed HTTP POST of a lead package, classified for the outbox.

Every attempt is signed by the Standard Webhooks scheme (https://www.standardwebhooks.com/),
with its reference library (`standardwebhooks`), so a dealer verifies it with
`standardwebhooks.Webhook(secret).verify(body, headers)`:
- `webhook-id`: the delivery's event id, the same on every retry (the dealer's de-duplication
  key, covered by the signature); also sent as `Idempotency-Key`;
- `webhook-timestamp`: Unix seconds when the attempt was signed;
- `webhook-signature`: `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>`, the
  key being the bytes of the dealer's `whsec_<base64>` secret. While a secret rotates, one
  signature per secret, space-separated (the new one first): a receiver holding either verifies.

Deprecated, sent during a transition window so that receivers written for it keep working:
`X-CCL-Timestamp` (the same timestamp), `X-CCL-Signature` (`sha256=` + hex HMAC-SHA256(key,
timestamp + "." + body), with the current secret's key: for a secret stored before `whsec_`
secrets, its text) and `X-CCL-Event-Id`.

A dealer's endpoint credentials (`EndpointCredentials`), when it has some, go with every
attempt: HTTP Basic as `Authorization: Basic ...` (httpx's `BasicAuth`), or the dealer's own
header. Validation keeps that header from being one of ours or hop-by-hop; should one slip
through, ours win.

Outcomes: 2xx delivered; 408, 429, 5xx, timeouts and connection errors retryable; any other
4xx rejected for good (recorded with the answer).

`AttemptResult.response_excerpt` keeps the first 1,000 characters of the answer's body, URLs
redacted, for an admin testing an endpoint. The recorded error never carries the endpoint's
userinfo or query string (where credentials live): an exception is recorded by its class name
(httpx's texts include the URL), an answer's body with every URL in it redacted
(`server.redact`). An answer that echoes the endpoint credentials' secrets has them replaced by
`[redacted]`, in the excerpt and in the recorded error.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from standardwebhooks import Webhook

from server.domain.dealers import EndpointCredentials, signing_key
from server.redact import redact_urls

if TYPE_CHECKING:
    import httpx

WEBHOOK_ID_HEADER = "webhook-id"
WEBHOOK_TIMESTAMP_HEADER = "webhook-timestamp"
WEBHOOK_SIGNATURE_HEADER = "webhook-signature"
# Deprecated (see above).
SIGNATURE_HEADER = "X-CCL-Signature"
TIMESTAMP_HEADER = "X-CCL-Timestamp"
EVENT_ID_HEADER = "X-CCL-Event-Id"
USER_AGENT = "CCL-Lead-Platform/1 (+dealer-delivery)"
EXCERPT_CHARS = 1000


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Deprecated `X-CCL-Signature`: `sha256=<hex>` of HMAC-SHA256(key, timestamp + "." + body),
    the key being `signing_key(secret)`."""
    mac = hmac.new(signing_key(secret), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One Standard Webhooks signature (`v1,<base64>`) of `{msg_id}.{timestamp}.{body}`, by the
    reference library. The body must be UTF-8 (packages are; `UnicodeDecodeError` otherwise)."""
    when = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)
    return Webhook(signing_key(secret)).sign(msg_id, when, body.decode("utf-8"))


def standard_signatures(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated."""
    return " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets)


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
    # The start of the answer's body, URLs redacted ("" when there was no answer).
    response_excerpt: str = ""


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
        self._timeout_seconds = timeout_seconds
        self._max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool, made on the first attempt: a server that delivers nothing never
        imports httpx or loads the CA bundle (several MB of idle memory)."""
        if self._client is None:
            import httpx  # lazy: see above

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    self._timeout_seconds, connect=min(5.0, self._timeout_seconds)
                ),
                limits=httpx.Limits(max_connections=self._max_connections),
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
            )
        return self._client

    async def deliver(
        self,
        *,
        url: str,
        body: bytes,
        content_type: str,
        secret: str,
        event_id: str,
        previous_secret: str = "",
        credentials: EndpointCredentials | None = None,
    ) -> AttemptResult:
        """One attempt, signed with `secret` and, during a rotation, `previous_secret` too,
        authenticated with the endpoint's `credentials` when there are some."""
        now = int(time.time())
        timestamp = str(now)
        secrets = [s for s in (secret, previous_secret) if s]
        headers = {
            "Content-Type": content_type,
            WEBHOOK_ID_HEADER: event_id,
            WEBHOOK_TIMESTAMP_HEADER: timestamp,
            WEBHOOK_SIGNATURE_HEADER: standard_signatures(secrets, event_id, now, body),
            "Idempotency-Key": event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            EVENT_ID_HEADER: event_id,
        }
        http = self._http
        import httpx  # lazy (see `_http`); loaded by now, so only a dict lookup

        auth: httpx.Auth | None = None
        if credentials is not None and credentials.kind == "basic":
            auth = httpx.BasicAuth(credentials.username, credentials.password)
        elif credentials is not None and credentials.kind == "header":
            if credentials.name.lower() not in {name.lower() for name in headers} | {"user-agent"}:
                headers[credentials.name] = credentials.value
        start = time.perf_counter()
        try:
            if auth is None:
                response = await http.post(url, content=body, headers=headers)
            else:
                response = await http.post(url, content=body, headers=headers, auth=auth)
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
        answer = _scrub(redact_urls(response.text), credentials)
        error = (
            ""
            if outcome is Outcome.DELIVERED
            else f"HTTP {response.status_code}: " + answer[:200].replace("\n", " ")
        )
        excerpt = answer[:EXCERPT_CHARS]
        return AttemptResult(outcome, response.status_code, error, _ms(start), excerpt)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _scrub(text: str, credentials: EndpointCredentials | None) -> str:
    """`text` without the credentials' secrets, should an endpoint echo what it was sent (its
    answer is recorded and shown to admins)."""
    if credentials is None:
        return text
    secrets = [credentials.password, credentials.value]
    # "Bearer <token>": the token alone may be echoed too.
    scheme, _, token = credentials.value.partition(" ")
    if scheme and len(token) >= 8:
        secrets.append(token.strip())
    if credentials.kind == "basic":
        pair = f"{credentials.username}:{credentials.password}".encode()
        secrets.append(base64.b64encode(pair).decode())
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
