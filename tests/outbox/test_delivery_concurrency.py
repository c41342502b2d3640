"""The delivery worker keeps deliveries in flight independently (SQLite and PostgreSQL): a dealer
whose endpoint hangs delays only its own deliveries, holds at most its share of the slots, and
stopping the worker loses and duplicates nothing.

The dealer CRMs are faked inside the HTTP client (an httpx transport), so a "hanging" endpoint
answers exactly when the test releases it: the assertions are about order, never speed."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest

from server.adapters.dealer_crm import EVENT_ID_HEADER, DealerCrmClient
from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.outbox.dealer_delivery import dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.storage import models as m
from server.storage.deliveries import DeliveryRepository, DueDelivery
from support.builders import credit_checked_lead, dealer

SECRET = "concurrency-test-secret-0123456789"
HANG, OK, BOOM = "http://crm.test/hang", "http://crm.test/ok", "http://crm.test/boom"
GUARD_SECONDS = 60.0  # only a hang guard: every wait below ends on an event, not a clock


class FakeCrms(httpx.AsyncBaseTransport):
    """Dealer CRMs by path: /ok answers 200 at once, /hang waits for `release` then answers
    200, /boom fails with an error the delivery client does not expect."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.received: list[str] = []  # event ids, one per request
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self.most_in_flight_total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.received.append(request.headers[EVENT_ID_HEADER])
        if path == "/boom":
            raise RuntimeError("unexpected failure inside one delivery")
        self.in_flight[path] += 1
        self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        self.most_in_flight_total = max(self.most_in_flight_total, self.in_flight.total())
        try:
            if path == "/hang":
                await self.release.wait()
        finally:
            self.in_flight[path] -= 1
        return httpx.Response(200, json={"ok": True})


def make_worker(
    application: Application, crms: FakeCrms, concurrency: int, per_dealer: int | None = None
) -> OutboxWorker[DueDelivery]:
    return dealer_delivery_worker(
        application.db,
        DealerCrmClient(timeout_seconds=GUARD_SECONDS, transport=crms),
        max_attempts=3,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.05,
        concurrency=concurrency,
        per_dealer=per_dealer,
    )


def queue(application: Application, url: str, count: int, due_minutes_ago: int) -> list[str]:
    """A new dealer at `url` with `count` deliveries due since `due_minutes_ago`; returns their
    ids. Every other dealer is left inactive (nothing of earlier tests is claimed)."""
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(endpoint_url=url, signing_secret=SECRET)
    ids = []
    for _ in range(count):
        lead_id = credit_checked_lead(application)
        with application.db.transaction():
            result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
        assert result.dealer_id == dealer_id and result.delivery_id
        ids.append(result.delivery_id)
    due = m.utcnow() - dt.timedelta(minutes=due_minutes_ago)
    m.Delivery.update(next_attempt_at=due).where(m.Delivery.id.in_(ids)).execute()
    return ids


def activate(*delivery_ids: str) -> None:
    dealers = m.Delivery.select(m.Delivery.dealer).where(m.Delivery.id.in_(delivery_ids))
    m.Dealer.update(active=True).where(m.Dealer.id.in_(dealers)).execute()


def states(ids: list[str]) -> Counter[str]:
    return Counter(r.state for r in m.Delivery.select().where(m.Delivery.id.in_(ids)))


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


@dataclass
class Running:
    task: asyncio.Task[None]
    stop: asyncio.Event


@contextlib.asynccontextmanager
async def running(worker: OutboxWorker[DueDelivery], crms: FakeCrms) -> AsyncIterator[Running]:
    """Runs `worker` for the block; then releases any hanging endpoint and stops it, so a
    failed assertion never leaves a worker behind to claim the next test's deliveries."""
    stop = asyncio.Event()
    run = Running(asyncio.create_task(worker.run(stop)), stop)
    try:
        yield run
    finally:
        crms.release.set()
        run.stop.set()
        await asyncio.wait_for(run.task, GUARD_SECONDS)
        await worker._handler._client.aclose()


def each_once(crms: FakeCrms, count: int) -> bool:
    return len(crms.received) == len(set(crms.received)) == count


async def test_a_hanging_dealer_delays_only_its_own_deliveries(application: Application) -> None:
    # The hanging dealer's deliveries are the oldest: a worker that claims in due order and
    # waits for each batch, or lets one dealer take every slot, never reaches the healthy one.
    hanging = queue(application, HANG, 12, due_minutes_ago=10)
    healthy = queue(application, OK, 12, due_minutes_ago=5)
    activate(*hanging, *healthy)
    crms = FakeCrms()
    worker = make_worker(application, crms, concurrency=8)  # per dealer: 8 // 4 = 2
    async with running(worker, crms):
        await until(lambda: states(healthy)["delivered"] == 12, "healthy dealer served")
        assert not crms.release.is_set()
        assert states(hanging)["delivered"] == 0
        await until(lambda: crms.in_flight["/hang"] == 2, "the hanging dealer holds its share")
        assert crms.most_in_flight["/hang"] == 2, "one dealer never holds more than its share"

        crms.release.set()
        await until(lambda: states(hanging)["delivered"] == 12, "hanging dealer served at last")
    assert crms.most_in_flight_total <= 8
    assert each_once(crms, 24)
    assert worker.delivered == 24 and worker.in_flight == 0


async def test_stop_lets_deliveries_in_flight_finish_and_leaves_the_rest_queued(
    application: Application,
) -> None:
    ids = queue(application, HANG, 6, due_minutes_ago=1)
    activate(*ids)
    crms = FakeCrms()
    worker = make_worker(application, crms, concurrency=4, per_dealer=2)
    async with running(worker, crms) as run:
        await until(lambda: crms.in_flight["/hang"] == 2, "two deliveries in flight")
        run.stop.set()
        await asyncio.sleep(0.2)
        assert not run.task.done(), "stopping waits for the deliveries in flight"
        crms.release.set()
        await asyncio.wait_for(run.task, GUARD_SECONDS)
    assert states(ids) == Counter({"delivered": 2, "pending": 4})
    left = m.Delivery.select().where(m.Delivery.id.in_(ids) & (m.Delivery.state == "pending"))
    assert all(r.locked_by == "" and r.attempts == 0 for r in left), "nothing leased on stop"

    again = make_worker(application, crms, concurrency=4, per_dealer=2)
    async with running(again, crms):
        await until(lambda: states(ids)["delivered"] == 6, "the rest delivered by the next worker")
    assert each_once(crms, 6)


async def test_one_failing_delivery_does_not_stop_the_others(application: Application) -> None:
    failing = queue(application, BOOM, 1, due_minutes_ago=10)
    healthy = queue(application, OK, 5, due_minutes_ago=5)
    activate(*failing, *healthy)
    crms = FakeCrms()
    worker = make_worker(application, crms, concurrency=2, per_dealer=1)
    async with running(worker, crms):
        await until(lambda: states(healthy)["delivered"] == 5, "the others delivered")
    row = m.Delivery.get_by_id(failing[0])
    # Unrecorded: its lease expires and it is tried again.
    assert row.state == "pending" and row.attempts == 0 and row.locked_by == worker.worker_id


@pytest.mark.parametrize(("busy", "expected_hanging"), [(0, 2), (1, 1), (2, 0)])
def test_a_claim_takes_at_most_each_dealers_share(
    application: Application, busy: int, expected_hanging: int
) -> None:
    hanging = queue(application, HANG, 5, due_minutes_ago=10)
    healthy = queue(application, OK, 5, due_minutes_ago=5)
    activate(*hanging, *healthy)
    hanging_dealer = m.Delivery.get_by_id(hanging[0]).dealer_id
    healthy_dealer = m.Delivery.get_by_id(healthy[0]).dealer_id
    claimed = DeliveryRepository(application.db).claim_due(
        "w",
        m.utcnow(),
        dt.timedelta(seconds=60),
        6,
        per_dealer=2,
        busy={hanging_dealer: busy} if busy else {},
    )
    by_dealer = Counter(d.dealer_id for d in claimed)
    # Each dealer gets its share only, though the limit (6) leaves room for more.
    assert by_dealer == Counter({hanging_dealer: expected_hanging, healthy_dealer: 2})
