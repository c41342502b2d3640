"""Dealer hand-off: the outbox worker that delivers packages to dealer CRMs.

Each server process runs one worker. It claims due deliveries under a lease, POSTs them (signed,
see `server.adapters.dealer_crm`) and records each result: delivered, rejected (a 4xx other
than 408/429), retrying with exponential backoff and full jitter (`base * 2^(attempt-1)`,
capped, times a random factor in [0.5, 1]), or dead-lettered after `max_attempts`.

Up to `concurrency` deliveries are in flight at once, each on its own: whenever one finishes,
its slot is claimed again, so a slow dealer endpoint delays only its own deliveries. At most
`per_dealer` of the slots (default a quarter, at least one) go to one dealer, so a hanging
dealer with a long queue never takes them all. New work wakes the worker at once (`notify()`);
otherwise it polls. On stop it claims nothing more and lets the deliveries in flight finish
(each is bounded by the client's timeout); a delivery cut short keeps its lease, which
expires, and is tried again with the same event id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import socket
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from server.adapters.dealer_crm import AttemptResult, DealerCrmClient, Outcome
from server.domain.clock import utcnow
from server.storage.db import Database
from server.storage.deliveries import DeliveryRepository, DueDelivery

log = logging.getLogger("ccl.delivery")

# Starts one claimed delivery: a TaskGroup's `create_task` in `run`, a plain task in `run_once`.
Spawn = Callable[[Coroutine[Any, Any, None]], object]


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
        concurrency: int = 16,
        per_dealer: int | None = None,
        lease_seconds: float = 120.0,
    ) -> None:
        if concurrency < 1 or (per_dealer is not None and per_dealer < 1):
            raise ValueError("concurrency and per_dealer must be at least 1")
        self._db = db
        self._repo = repository
        self._client = client
        self._max_attempts = max_attempts
        self._base = backoff_base_seconds
        self._cap = backoff_max_seconds
        self._poll = poll_seconds
        self._lease = dt.timedelta(seconds=lease_seconds)
        self._concurrency = concurrency
        self._per_dealer = per_dealer if per_dealer is not None else max(1, concurrency // 4)
        self._in_flight: Counter[str] = Counter()  # dealer id -> its deliveries in flight
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()
        self.delivered = 0
        self.failed = 0

    @property
    def in_flight(self) -> int:
        """Deliveries being attempted right now."""
        return self._in_flight.total()

    def notify(self) -> None:
        """New work was queued: look now rather than at the next poll."""
        self._wake.set()

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based), with full jitter."""
        delay = min(self._cap, self._base * 2.0 ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not security)

    async def run(self, stop: asyncio.Event) -> None:
        """Keeps the slots filled until `stop` is set, then waits for the deliveries in flight."""
        async with asyncio.TaskGroup() as deliveries:
            while not stop.is_set():
                # Cleared before claiming: new work or a freed slot from now on wakes the wait.
                self._wake.clear()
                try:
                    started = await self._start_due(deliveries.create_task)
                except Exception:
                    log.exception("delivery claim failed")
                    started = 0
                if started:
                    continue
                waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
                try:
                    await asyncio.wait(waits, timeout=self._poll, return_when="FIRST_COMPLETED")
                finally:
                    for task in waits:
                        task.cancel()

    async def run_once(self) -> int:
        """Claims what fits in the free slots and waits for those deliveries; returns how many
        it started. For tests and tools: `run` never waits for a group of deliveries."""
        started: list[asyncio.Task[None]] = []
        count = await self._start_due(lambda c: started.append(asyncio.create_task(c)))
        await asyncio.gather(*started)
        return count

    async def _start_due(self, spawn: Spawn) -> int:
        """Claims up to the free slots (within each dealer's share) and starts each delivery."""
        free = self._concurrency - self.in_flight
        if free <= 0:
            return 0
        due = await self._db.run(
            self._repo.claim_due,
            self.worker_id,
            utcnow(),
            self._lease,
            free,
            per_dealer=self._per_dealer,
            busy=dict(self._in_flight),
        )
        for d in due:
            self._in_flight[d.dealer_id] += 1
            spawn(self._attempt(d))
        return len(due)

    async def _attempt(self, due: DueDelivery) -> None:
        """One delivery on its own: its failure never touches the others, its end frees a slot."""
        try:
            await self._deliver(due)
        except Exception as e:
            # The lease expires and the delivery is tried again.
            log.error(
                "delivery failed unexpectedly",
                extra={"delivery_id": due.delivery_id, "exception_type": type(e).__name__},
            )
        finally:
            self._in_flight[due.dealer_id] -= 1
            if self._in_flight[due.dealer_id] <= 0:
                del self._in_flight[due.dealer_id]
            self._wake.set()

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
            now=utcnow(),
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
        return "retrying", utcnow() + dt.timedelta(seconds=self.backoff(attempt))
