"""The generic outbox worker over real storage (the dealer delivery store, SQLite and PostgreSQL)
with a fake handler that answers scripted outcomes: retries then delivery, dead-lettering after
the attempts run out (or at once), the per-partition cap, a hanging handler that blocks only its
own partition, and a stop that lets the items in flight finish. Every wait ends on an event or a
state, never on a clock."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.outbox.dealer_delivery import DealerDeliveryStore
from server.outbox.worker import OutboxItem, OutboxWorker, Outcome
from server.storage import models as m
from server.storage.deliveries import DeliveryRepository, DueDelivery
from support.builders import credit_checked_lead, dealer

GUARD_SECONDS = 60.0


class ScriptedHandler:
    """Answers each item's attempts from `script` (the last answer repeats); items of a
    partition in `hang` wait for `release` first."""

    def __init__(self, script: list[Outcome], hang: frozenset[str] = frozenset()) -> None:
        self.script = script
        self.hang = hang
        self.release = asyncio.Event()
        self.calls: Counter[str] = Counter()  # item id -> attempts handled
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()

    async def handle(self, item: OutboxItem[DueDelivery], /) -> Outcome:
        n = self.calls[item.id]
        self.calls[item.id] += 1
        self.in_flight[item.partition] += 1
        self.most_in_flight[item.partition] = max(
            self.most_in_flight[item.partition], self.in_flight[item.partition]
        )
        try:
            if item.partition in self.hang:
                await self.release.wait()
        finally:
            self.in_flight[item.partition] -= 1
        return self.script[min(n, len(self.script) - 1)]


def make_worker(
    application: Application,
    handler: ScriptedHandler,
    *,
    max_attempts: int = 3,
    concurrency: int = 4,
    per_partition: int | None = None,
) -> OutboxWorker[DueDelivery]:
    return OutboxWorker(
        DealerDeliveryStore(application.db, DeliveryRepository(application.db)),
        handler,
        max_attempts=max_attempts,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.02,
        concurrency=concurrency,
        per_partition=per_partition,
    )


def queue(application: Application, count: int) -> tuple[str, list[str]]:
    """A new active dealer with `count` due deliveries (every other dealer inactive, so nothing
    of earlier tests is claimed); returns the dealer id and the delivery ids."""
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(endpoint_url="http://crm.test/never-called")
    ids = []
    for _ in range(count):
        lead_id = credit_checked_lead(application)
        with application.db.transaction():
            result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
        assert result.dealer_id == dealer_id and result.delivery_id
        ids.append(result.delivery_id)
    return dealer_id, ids


def activate(*dealer_ids: str) -> None:
    m.Dealer.update(active=True).where(m.Dealer.id.in_(dealer_ids)).execute()


def states(ids: list[str]) -> Counter[str]:
    return Counter(r.state for r in m.Delivery.select().where(m.Delivery.id.in_(ids)))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(
    worker: OutboxWorker[DueDelivery], handler: ScriptedHandler
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield stop
    finally:
        handler.release.set()
        stop.set()
        await asyncio.wait_for(task, GUARD_SECONDS)


def test_backoff_doubles_is_capped_and_jittered_within_half_to_whole() -> None:
    worker = OutboxWorker(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        max_attempts=5,
        backoff_base_seconds=1.0,
        backoff_max_seconds=6.0,
        poll_seconds=1.0,
    )
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 6.0), (10, 6.0)]:
        delays = [worker.backoff(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > 0, "jittered"


async def test_retries_then_delivers(application: Application) -> None:
    dealer_id, ids = queue(application, 2)
    activate(dealer_id)
    handler = ScriptedHandler([Outcome.retry("busy"), Outcome.retry("busy"), Outcome.delivered()])
    worker = make_worker(application, handler, max_attempts=5)
    async with running(worker, handler):
        await until(lambda: states(ids)["delivered"] == 2, "delivered")
    rows = list(m.Delivery.select().where(m.Delivery.id.in_(ids)))
    assert all(r.attempts == 3 and r.locked_by == "" for r in rows)
    assert handler.calls == Counter({i: 3 for i in ids})
    assert worker.delivered == 2 and worker.failed == 0 and worker.in_flight == 0
    kinds = Counter(a.kind for a in m.Activity.select().where(m.Activity.lead == rows[0].lead_id))
    assert kinds["delivery.retry_scheduled"] == 2 and kinds["delivery.delivered"] == 1


@pytest.mark.parametrize(
    ("script", "attempts", "state"),
    [
        ([Outcome.retry("still down")], 3, "dead_lettered"),
        ([Outcome.dead("cannot be sent")], 1, "dead_lettered"),
        ([Outcome.reject("refused")], 1, "rejected"),
    ],
)
async def test_dead_letters_after_max_attempts_or_at_once(
    application: Application, script: list[Outcome], attempts: int, state: str
) -> None:
    dealer_id, ids = queue(application, 1)
    activate(dealer_id)
    handler = ScriptedHandler(script)
    worker = make_worker(application, handler, max_attempts=3)
    async with running(worker, handler):
        await until(lambda: states(ids)[state] == 1, state)
    row = m.Delivery.get_by_id(ids[0])
    assert row.attempts == attempts and handler.calls[ids[0]] == attempts
    assert row.last_error == script[0].error
    assert m.Lead.get_by_id(row.lead_id).status == "delivery_failed"
    assert worker.failed == 1 and worker.delivered == 0


async def test_a_hanging_partition_holds_its_share_and_blocks_no_other(
    application: Application,
) -> None:
    hanging, hanging_ids = queue(application, 6)
    healthy, healthy_ids = queue(application, 6)
    # The hanging dealer's deliveries are due first: a batch barrier would never get past them.
    m.Delivery.update(next_attempt_at=m.utcnow() - dt.timedelta(minutes=10)).where(
        m.Delivery.id.in_(hanging_ids)
    ).execute()
    activate(hanging, healthy)
    handler = ScriptedHandler([Outcome.delivered()], hang=frozenset({hanging}))
    worker = make_worker(application, handler, concurrency=6, per_partition=2)
    async with running(worker, handler):
        await until(lambda: states(healthy_ids)["delivered"] == 6, "the healthy dealer served")
        assert states(hanging_ids)["delivered"] == 0
        assert handler.in_flight[hanging] == 2 == handler.most_in_flight[hanging]
        handler.release.set()
        await until(lambda: states(hanging_ids)["delivered"] == 6, "the hanging dealer served")
    assert max(handler.most_in_flight.values()) <= 2, "no partition above its share"
    assert worker.delivered == 12 and worker.in_flight == 0
    assert set(handler.calls.values()) == {1}, "each item handled once"


async def test_stop_drains_the_items_in_flight_and_claims_nothing_more(
    application: Application,
) -> None:
    dealer_id, ids = queue(application, 5)
    activate(dealer_id)
    handler = ScriptedHandler([Outcome.delivered()], hang=frozenset({dealer_id}))
    worker = make_worker(application, handler, concurrency=4, per_partition=2)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await until(lambda: handler.in_flight[dealer_id] == 2, "two in flight")
        stop.set()
        await asyncio.sleep(0.1)
        assert not task.done(), "stopping waits for the items in flight"
        handler.release.set()
        await asyncio.wait_for(task, GUARD_SECONDS)
    finally:
        handler.release.set()
        stop.set()
        await asyncio.wait_for(task, GUARD_SECONDS)
    assert states(ids) == Counter({"delivered": 2, "pending": 3})
    left = m.Delivery.select().where(m.Delivery.id.in_(ids) & (m.Delivery.state == "pending"))
    assert all(r.locked_by == "" and r.attempts == 0 for r in left), "nothing leased on stop"
    assert worker.delivered == 2 and worker.in_flight == 0


async def test_run_once_waits_for_what_it_started(application: Application) -> None:
    dealer_id, ids = queue(application, 3)
    activate(dealer_id)
    handler = ScriptedHandler([Outcome.delivered()])
    worker = make_worker(application, handler, concurrency=2, per_partition=2)
    assert await worker.run_once() == 2
    assert worker.in_flight == 0 and states(ids) == Counter({"delivered": 2, "pending": 1})
    assert sorted(handler.calls.values()) == [1, 1]
