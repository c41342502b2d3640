"""The outbox worker: one per kind of work per process, knowing nothing of what the work is.

It claims due items from an `OutboxStore` under a lease, hands each to the kind's `Handler`,
and records the `Outcome` through the store: delivered; rejected for good; dead-lettered; or
retried after a backoff, until `max_attempts` attempts have been made, then dead-lettered.

Backoff (tenacity's wait strategies): retry number n waits `base * 2^(n-1)` seconds, capped at
`max`, times a random factor in [0.5, 1] — half the capped delay (`wait_exponential`) plus a
uniform share of the other half (`wait_random_exponential`, which draws in [0, capped delay]).

Up to `concurrency` items are in flight at once, each on its own: whenever one finishes, its
slot is claimed again, so a slow endpoint delays only its own work (no batch barrier). At most
`per_partition` of the slots (default a quarter, at least one) go to one partition (a dealer),
so a hanging partition with a long queue never takes them all. New work wakes the worker at
once (`notify()`); otherwise it polls. On stop it claims nothing more and lets the items in
flight finish; an item cut short keeps its lease, which expires, and is tried again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import tenacity
from tenacity.wait import wait_base

from server.domain.clock import utcnow

log = logging.getLogger("ccl.outbox")

P = TypeVar("P")

# Starts one claimed item: a TaskGroup's `create_task` in `run`, a plain task in `run_once`.
Spawn = Callable[[Coroutine[Any, Any, None]], object]


@dataclass(frozen=True)
class OutboxItem(Generic[P]):
    """One claimed piece of work: its row id, its partition (e.g. the dealer id), the attempts
    already made, and what the handler needs to do it."""

    id: str
    partition: str
    attempts: int
    payload: P


class Verdict(enum.StrEnum):
    """What a handler says of one attempt."""

    DELIVERED = "delivered"
    RETRY = "retry"  # worth trying again later (until the attempts run out)
    REJECT = "reject"  # refused for good by the other side
    DEAD = "dead"  # cannot succeed: set aside at once


@dataclass(frozen=True)
class Outcome:
    """One attempt's result; `detail` is what the kind's store records with it (opaque here)."""

    verdict: Verdict
    error: str = ""
    detail: Any = None

    @classmethod
    def delivered(cls, detail: Any = None) -> Outcome:
        return cls(Verdict.DELIVERED, "", detail)

    @classmethod
    def retry(cls, error: str, detail: Any = None) -> Outcome:
        return cls(Verdict.RETRY, error, detail)

    @classmethod
    def reject(cls, error: str, detail: Any = None) -> Outcome:
        return cls(Verdict.REJECT, error, detail)

    @classmethod
    def dead(cls, error: str, detail: Any = None) -> Outcome:
        return cls(Verdict.DEAD, error, detail)


class State(enum.StrEnum):
    """The state an attempt leaves its item in (the outbox tables' `state` values)."""

    DELIVERED = "delivered"
    RETRYING = "retrying"
    REJECTED = "rejected"
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Settlement:
    """What the worker asks the store to record for one attempt."""

    state: State
    outcome: Outcome
    next_attempt_at: dt.datetime | None  # when RETRYING


class Handler(Protocol[P]):
    async def handle(self, item: OutboxItem[P], /) -> Outcome: ...


class OutboxStore(Protocol[P]):
    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        lease: dt.timedelta,
        per_partition: int,
        busy: Mapping[str, int],
    ) -> list[OutboxItem[P]]:
        """Leases up to `limit` due items to `worker_id`, at most `per_partition - busy[key]`
        of one partition."""
        ...

    async def record(self, item: OutboxItem[Any], worker_id: str, settlement: Settlement) -> bool:
        """Records one attempt; False when `worker_id` no longer holds the item's lease."""
        ...


def backoff_strategy(base_seconds: float, max_seconds: float) -> wait_base:
    """`base * 2^(n-1)` capped at `max_seconds`, times a random factor in [0.5, 1]."""
    half_base, half_max = base_seconds / 2, max_seconds / 2
    return tenacity.wait_exponential(
        multiplier=half_base, max=half_max
    ) + tenacity.wait_random_exponential(multiplier=half_base, max=half_max)


class OutboxWorker(Generic[P]):
    def __init__(
        self,
        store: OutboxStore[P],
        handler: Handler[P],
        *,
        max_attempts: int,
        backoff_base_seconds: float,
        backoff_max_seconds: float,
        poll_seconds: float,
        concurrency: int = 16,
        per_partition: int | None = None,
        lease_seconds: float = 120.0,
        name: str = "outbox",
    ) -> None:
        if concurrency < 1 or (per_partition is not None and per_partition < 1):
            raise ValueError("concurrency and per_partition must be at least 1")
        self._store = store
        self._handler = handler
        self._max_attempts = max_attempts
        self._wait = backoff_strategy(backoff_base_seconds, backoff_max_seconds)
        self._poll = poll_seconds
        self._lease = dt.timedelta(seconds=lease_seconds)
        self._concurrency = concurrency
        self._per_partition = (
            per_partition if per_partition is not None else max(1, concurrency // 4)
        )
        self._in_flight: Counter[str] = Counter()  # partition -> its items in flight
        self._name = name
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[:64]
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.delivered = 0  # attempts recorded as delivered
        self.failed = 0  # attempts recorded as rejected or dead-lettered

    @property
    def in_flight(self) -> int:
        """Items being attempted right now."""
        return self._in_flight.total()

    def notify(self) -> None:
        """New work was queued: look now rather than at the next poll. Safe from any thread
        (the pipeline queues deliveries on a database thread): `asyncio.Event` is not, so the
        set is handed to the worker's loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()  # not running yet: the first look happens anyway
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def backoff(self, attempt: int) -> float:
        """Seconds before retry number `attempt` (1-based), jittered."""
        state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt
        return float(self._wait(state))

    async def run(self, stop: asyncio.Event) -> None:
        """Keeps the slots filled until `stop` is set, then waits for the items in flight."""
        self._loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as attempts:
            while not stop.is_set():
                # Cleared before claiming: new work or a freed slot from now on wakes the wait.
                self._wake.clear()
                try:
                    started = await self._start_due(attempts.create_task)
                except Exception:
                    log.exception("outbox claim failed", extra={"outbox": self._name})
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
        """Claims what fits in the free slots and waits for those items; returns how many it
        started. For tests and tools: `run` never waits for a group of items."""
        started: list[asyncio.Task[None]] = []
        count = await self._start_due(lambda c: started.append(asyncio.create_task(c)))
        await asyncio.gather(*started)
        return count

    async def _start_due(self, spawn: Spawn) -> int:
        """Claims up to the free slots (within each partition's share) and starts each item."""
        free = self._concurrency - self.in_flight
        if free <= 0:
            return 0
        due = await self._store.claim(
            self.worker_id,
            free,
            lease=self._lease,
            per_partition=self._per_partition,
            busy=dict(self._in_flight),
        )
        for item in due:
            self._in_flight[item.partition] += 1
            spawn(self._attempt(item))
        return len(due)

    async def _attempt(self, item: OutboxItem[P]) -> None:
        """One item on its own: its failure never touches the others, its end frees a slot."""
        try:
            await self._handle(item)
        except Exception as e:
            # The lease expires and the item is tried again.
            log.error(
                "outbox attempt failed unexpectedly",
                extra={
                    "outbox": self._name,
                    "item_id": item.id,
                    "exception_type": type(e).__name__,
                },
            )
        finally:
            self._in_flight[item.partition] -= 1
            if self._in_flight[item.partition] <= 0:
                del self._in_flight[item.partition]
            self._wake.set()

    async def _handle(self, item: OutboxItem[P]) -> None:
        outcome = await self._handler.handle(item)
        settlement = self._settle(item, outcome)
        recorded = await self._store.record(item, self.worker_id, settlement)
        if recorded and settlement.state is State.DELIVERED:
            self.delivered += 1
        elif recorded and settlement.state in (State.REJECTED, State.DEAD_LETTERED):
            self.failed += 1
        log.debug(
            "outbox attempt",
            extra={
                "outbox": self._name,
                "item_id": item.id,
                "partition": item.partition,
                "attempt": item.attempts + 1,
                "state": settlement.state.value,
                "recorded": recorded,
            },
        )

    def _settle(self, item: OutboxItem[P], outcome: Outcome) -> Settlement:
        if outcome.verdict is Verdict.DELIVERED:
            return Settlement(State.DELIVERED, outcome, None)
        if outcome.verdict is Verdict.REJECT:
            return Settlement(State.REJECTED, outcome, None)
        attempt = item.attempts + 1
        if outcome.verdict is Verdict.DEAD or attempt >= self._max_attempts:
            return Settlement(State.DEAD_LETTERED, outcome, None)
        delay = dt.timedelta(seconds=self.backoff(attempt))
        return Settlement(State.RETRYING, outcome, utcnow() + delay)
