"""A dealer's deliveries: a test delivery to its endpoint, and its delivery log.

`test_delivery` sends a sample package (`render.sample_package`: a made-up sandbox applicant,
`"test": true` in JSON, a `TEST PACKAGE` comment in ADF) exactly as the delivery worker sends a
real one: the dealer's format, `DealerCrmClient.deliver` with the dealer's signing secrets
(current and, during a rotation, previous) and its endpoint credentials. Its `webhook-id` is
`test_` + a random id, so a dealer can tell it from a real delivery before reading the body.
Nothing is stored: no lead, no package, no delivery row. An inactive dealer may still test (it
is how an endpoint is checked before the dealer goes live).

`list_deliveries` pages through the dealer's deliveries, newest first, with their attempts.

Admin keys (and ops keys for the log) may name any dealer; a dealer key only itself: another
dealer's id is NOT_FOUND (DEALER_NOT_FOUND), exactly as an unknown id, so a dealer cannot learn
which ids exist.
"""

from __future__ import annotations

import datetime as dt
import http
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from server.adapters.dealer_crm import DealerCrmClient, Outcome, classify
from server.agents.lead_packaging.render import sample_package
from server.domain.clock import utcnow
from server.domain.leads import Page, PageResult
from server.domain.principal import Principal, Role
from server.domain.routing import PACKAGE_FORMATS
from server.errors import FailedPreconditionError, NotFoundError
from server.storage.db import Database
from server.storage.dealers import DealerRepository
from server.storage.deliveries import DeliveryView, list_for_dealer
from server.storage.pagination import page_size

log = logging.getLogger("ccl.delivery")

TEST_ID_PREFIX = "test_"
DEFAULT_PAGE_SIZE = 50

# What the adapter records for an attempt that got no answer, said for the person testing.
_TRANSPORT_ERRORS = {
    "timeout": "timeout: the endpoint did not answer within the delivery timeout",
    "ConnectError": "connection failed: refused, unreachable, unknown host or TLS failure",
    "InvalidURL": "the endpoint URL cannot be used",
    "UnsupportedProtocol": "the endpoint URL cannot be used (not http or https)",
    "RemoteProtocolError": "the endpoint closed the connection or broke the HTTP protocol",
    "ReadError": "the connection broke while reading the answer",
    "WriteError": "the connection broke while sending the package",
}


@dataclass(frozen=True)
class TestDeliveryResult:
    """What a dealer's endpoint answered a sample package."""

    __test__ = False  # not a pytest test class, whatever its name

    delivered: bool
    http_status: int
    error: str
    response_excerpt: str
    latency_ms: int
    webhook_id: str
    format: str  # "json" | "adf"
    retryable: bool


def _not_found() -> NotFoundError:
    return NotFoundError("dealer not found", reason="DEALER_NOT_FOUND")


def _check_access(principal: Principal, dealer_id: str) -> None:
    """A dealer key acts only on its own dealer; anything else is an unknown dealer to it."""
    if principal.role is Role.DEALER and principal.dealer_id != dealer_id:
        raise _not_found()


def _error_text(status_code: int, adapter_error: str, delivered: bool) -> str:
    """The status's meaning, or what went wrong with the connection. Never the adapter's answer
    text (that is the excerpt) nor anything of the URL (it may hold credentials)."""
    if delivered:
        return ""
    if status_code:
        try:
            phrase = http.HTTPStatus(status_code).phrase
        except ValueError:
            phrase = "non-standard status"
        return f"HTTP {status_code} {phrase}"
    return _TRANSPORT_ERRORS.get(adapter_error, f"connection failed ({adapter_error})")


class DealerDeliveryService:
    def __init__(
        self,
        db: Database,
        crm: DealerCrmClient,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._db = db
        self._crm = crm
        self._clock = clock
        self._dealers = DealerRepository(db)

    async def test_delivery(self, principal: Principal, dealer_id: str) -> TestDeliveryResult:
        """Sends a signed sample to the dealer's endpoint and reports its answer."""
        _check_access(principal, dealer_id)
        now = self._clock()
        target = await self._db.run(DealerRepository.delivery_target, dealer_id, now)
        if target is None:
            raise _not_found()
        if not target.url:
            raise FailedPreconditionError(
                "the dealer has no endpoint URL to deliver to", reason="ENDPOINT_NOT_SET"
            )
        fmt = target.delivery_format if target.delivery_format in PACKAGE_FORMATS else "json"
        webhook_id = TEST_ID_PREFIX + uuid.uuid4().hex
        body, content_type = sample_package(
            fmt,
            sample_id=webhook_id,
            created_at=now,
            dealer_id=target.dealer_id,
            dealer_name=target.name,
            dealer_email=target.contact_email,
            dealer_phone=target.contact_phone,
        )
        secrets = target.secrets
        result = await self._crm.deliver(
            url=target.url,
            body=body,
            content_type=content_type,
            secret=secrets[0] if secrets else "",
            event_id=webhook_id,
            previous_secret=secrets[1] if len(secrets) > 1 else "",
            credentials=target.credentials,
        )
        delivered = result.outcome is Outcome.DELIVERED
        retryable = (
            classify(result.status_code) is Outcome.RETRY
            if result.status_code
            else result.outcome is Outcome.RETRY
        )
        log.info(
            "test delivery",
            extra={
                "dealer_id": target.dealer_id,
                "webhook_id": webhook_id,
                "status_code": result.status_code,
                "delivered": delivered,
                "duration_ms": result.duration_ms,
            },
        )
        return TestDeliveryResult(
            delivered=delivered,
            http_status=result.status_code,
            error=_error_text(result.status_code, result.error, delivered),
            response_excerpt=result.response_excerpt,
            latency_ms=result.duration_ms,
            webhook_id=webhook_id,
            format=fmt,
            retryable=retryable,
        )

    async def list_deliveries(
        self, principal: Principal, dealer_id: str, state: str, size: int, token: str
    ) -> PageResult[DeliveryView]:
        """The dealer's deliveries, newest first; `state` "" for every state."""
        _check_access(principal, dealer_id)
        page = Page(size=page_size(size, DEFAULT_PAGE_SIZE), token=token)

        def read() -> PageResult[DeliveryView]:
            self._dealers.get(dealer_id)  # DEALER_NOT_FOUND for an unknown id
            return list_for_dealer(dealer_id, state, page)

        return await self._db.run(read)
