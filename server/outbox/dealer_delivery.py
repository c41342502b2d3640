"""Dealer delivery, the outbox's first kind of work: a package POSTed to a dealer's CRM.

The handler signs (Standard Webhooks; during a secret rotation with the dealer's current and
previous secrets), authenticates with the dealer's endpoint credentials (Basic or a header) if
it has some, POSTs the package through `server.adapters.dealer_crm` and maps its
answer to an `Outcome`: 2xx delivered; a 4xx other than 408/429 (or an endpoint URL that cannot
be used) rejected for good; 408, 429, 5xx, timeouts and connection errors retried. The event id
is the same on every attempt, so a dealer can drop a repeat.

The store adapts `server.storage.deliveries.DeliveryRepository` (the `delivery` table, its lease
and per-dealer cap, the lead's delivery state and activity) to the worker's `OutboxStore`; the
partition is the dealer. A package or dealer secret no configured data key decrypts is
dead-lettered by the claim itself, in storage, where decryption happens: it never reaches the
handler (nor the worker's counters), as before the generic outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from server.adapters.dealer_crm import AttemptResult, DealerCrmClient
from server.adapters.dealer_crm import Outcome as HttpOutcome
from server.domain.clock import utcnow
from server.outbox.worker import OutboxItem, OutboxWorker, Outcome, Settlement
from server.storage.db import Database
from server.storage.deliveries import DeliveryRepository, DueDelivery

log = logging.getLogger("ccl.delivery")


class DealerDeliveryHandler:
    def __init__(self, client: DealerCrmClient) -> None:
        self._client = client

    async def handle(self, item: OutboxItem[DueDelivery], /) -> Outcome:
        due = item.payload
        result = await self._client.deliver(
            url=due.url,
            body=due.body,
            content_type=due.content_type,
            secret=due.secret,
            event_id=due.event_id,
            previous_secret=due.previous_secret,
            credentials=due.credentials,
        )
        if result.outcome is HttpOutcome.DELIVERED:
            return Outcome.delivered(result)
        if result.outcome is HttpOutcome.REJECTED:
            return Outcome.reject(result.error, result)
        return Outcome.retry(result.error, result)


class DealerDeliveryStore:
    """The dealer deliveries as an `OutboxStore`: items are `DueDelivery`s by dealer."""

    def __init__(self, db: Database, repository: DeliveryRepository) -> None:
        self._db = db
        self._repo = repository

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        lease: dt.timedelta,
        per_partition: int,
        busy: Mapping[str, int],
    ) -> list[OutboxItem[DueDelivery]]:
        due = await self._db.run(
            self._repo.claim_due,
            worker_id,
            utcnow(),
            lease,
            limit,
            per_dealer=per_partition,
            busy=dict(busy),
        )
        return [OutboxItem(d.delivery_id, d.dealer_id, d.attempts, d) for d in due]

    async def record(self, item: OutboxItem[Any], worker_id: str, settlement: Settlement) -> bool:
        due: DueDelivery = item.payload
        result = settlement.outcome.detail
        status_code, duration_ms = (
            (result.status_code, result.duration_ms)
            if isinstance(result, AttemptResult)
            else (0, 0)
        )
        recorded = await self._db.run(
            self._repo.record,
            due,
            worker_id,
            now=utcnow(),
            state=settlement.state.value,
            status_code=status_code,
            error=settlement.outcome.error,
            duration_ms=duration_ms,
            next_attempt_at=settlement.next_attempt_at,
        )
        log.info(
            "delivery attempt",
            extra={
                "delivery_id": due.delivery_id,
                "dealer_id": due.dealer_id,
                "attempt": due.attempts + 1,
                "status_code": status_code,
                "state": settlement.state.value,
                "recorded": recorded,
            },
        )
        return recorded


def dealer_delivery_worker(
    db: Database,
    client: DealerCrmClient,
    *,
    max_attempts: int,
    backoff_base_seconds: float,
    backoff_max_seconds: float,
    poll_seconds: float,
    concurrency: int = 16,
    per_dealer: int | None = None,
    lease_seconds: float = 120.0,
) -> OutboxWorker[DueDelivery]:
    """The outbox worker for dealer deliveries: at most `per_dealer` (default a quarter of
    `concurrency`, at least one) in flight to one dealer."""
    return OutboxWorker(
        DealerDeliveryStore(db, DeliveryRepository(db)),
        DealerDeliveryHandler(client),
        max_attempts=max_attempts,
        backoff_base_seconds=backoff_base_seconds,
        backoff_max_seconds=backoff_max_seconds,
        poll_seconds=poll_seconds,
        concurrency=concurrency,
        per_partition=per_dealer,
        lease_seconds=lease_seconds,
        name="dealer_delivery",
    )
