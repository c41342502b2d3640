"""Dealer hand-off: the outbox worker that delivers packages to dealer CRMs.

Each server process runs one worker. It claims due deliveries under a lease, POSTs them (signed,
see `server.adapters.dealer_crm`) with bounded concurrency, and records each result:
delivered, rejected (a 4xx other than 408/429), retrying with exponential backoff and full
jitter (`base * 2^(attempt-1)`, capped, times a random factor in [0.5, 1]), or dead-lettered
after `max_attempts`. New work wakes it at once (`notify()`); otherwise it polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket

from server.adapters.dealer_crm import AttemptResult, DealerCrmClient, Outcome
from server.storage import models as m
from server.storage.db import Database
from server.storage.deliveries import DeliveryRepository, DueDelivery

log = logging.getLogger("ccl.delivery")


class DeliveryWorker:
    def __init__(
        self,
        db: Database,
        repository: DeliveryRepository,
        client: DealerCrmClient,
        *,
        max_attempts: int,
        backoff_base_seconds: float,
        backoff_max_seconds: float,
        poll_seconds: float,
        concurrency: int = 8,
        lease_seconds: float = 120.0,
    ) -> None:
        self._db = db
        self._repo = repository
        self._client = client
        self._max_attempts = max_attempts
        self._base = backoff_base_seconds
        self._cap = backoff_max_seconds
        self._poll = poll_seconds
        self._lease = dt.timedelta(seconds=lease_seconds)
        self._concurrency = concurrency
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failed = 0

    def notify(self) -> None:
        """New work was queued: look now rather than at the next poll."""
        self._wake.set()

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based), with full jitter."""
        delay = min(self._cap, self._base * 2.0 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                worked = await self.run_once()
            except Exception:
                log.exception("delivery worker pass failed")
                worked = 0
            if worked:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
                try:
                    await asyncio.wait(waits, timeout=self._poll, return_when="FIRST_COMPLETED")
                finally:
                    for task in waits:
                        task.cancel()

    async def run_once(self) -> int:
        """Claims and delivers one batch; returns how many deliveries it handled."""
        due = await self._db.run(
            self._repo.claim_due, self.worker_id, m.utcnow(), self._lease, self._concurrency
        )
        if due:
            results = await asyncio.gather(*(self._deliver(d) for d in due), return_exceptions=True)
            for d, r in zip(due, results, strict=True):
                if isinstance(r, BaseException):
                    # The lease expires and the delivery is tried again; one bad delivery never
                    # stops the others.
                    log.error(
                        "delivery failed unexpectedly",
                        extra={"delivery_id": d.delivery_id, "exception_type": type(r).__name__},
                    )
        return len(due)

    async def _deliver(self, due: DueDelivery) -> None:
        result = await self._client.deliver(
            url=due.url,
            body=due.body,
            content_type=due.content_type,
            secret=due.secret,
            event_id=due.event_id,
        )
        state, next_at = self._next_state(due, result)
        recorded = await self._db.run(
            self._repo.record,
            due,
            self.worker_id,
            now=m.utcnow(),
            state=state,
            status_code=result.status_code,
            error=result.error,
            duration_ms=result.duration_ms,
            next_attempt_at=next_at,
        )
        if recorded and state == "delivered":
            self.delivered += 1
        elif recorded and state in ("rejected", "dead_lettered"):
            self.failed += 1
        log.info(
            "delivery attempt",
            extra={
                "delivery_id": due.delivery_id,
                "dealer_id": due.dealer_id,
                "attempt": due.attempts + 1,
                "status_code": result.status_code,
                "state": state,
                "recorded": recorded,
            },
        )

    def _next_state(
        self, due: DueDelivery, result: AttemptResult
    ) -> tuple[str, dt.datetime | None]:
        if result.outcome is Outcome.DELIVERED:
            return "delivered", None
        if result.outcome is Outcome.REJECTED:
            return "rejected", None
        attempt = due.attempts + 1
        if attempt >= self._max_attempts:
            return "dead_lettered", None
        return "retrying", m.utcnow() + dt.timedelta(seconds=self.backoff(attempt))
