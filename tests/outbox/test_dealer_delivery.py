"""The outbox worker with the dealer delivery handler against a fake dealer CRM over loopback
(SQLite and PostgreSQL): retries, timeouts, rejection, dead-lettering, redelivery, and leases
between workers."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from server.adapters.dealer_crm import DealerCrmClient, Outcome, classify, sign
from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.outbox.dealer_delivery import dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.storage import models as m
from server.storage.deliveries import DeliveryRepository, DueDelivery
from support.builders import credit_checked_lead, dealer
from support.fake_crm import FakeCrm, running

SECRET = "worker-test-secret-0123456789"


def make_worker(
    application: Application, *, max_attempts: int = 3, timeout: float = 2.0
) -> OutboxWorker[DueDelivery]:
    return dealer_delivery_worker(
        application.db,
        DealerCrmClient(timeout_seconds=timeout),
        max_attempts=max_attempts,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.01,
    )


@pytest.fixture()
def crm() -> Iterator[tuple[FakeCrm, str]]:
    fake = FakeCrm(secret=SECRET)
    with running(fake) as url:
        yield fake, url


def packaged_lead(application: Application, url: str) -> tuple[str, str]:
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(endpoint_url=url, signing_secret=SECRET)
    lead_id = credit_checked_lead(application)
    with application.db.transaction():
        result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
    assert result.dealer_id == dealer_id and result.delivery_id
    return lead_id, result.delivery_id


async def drain(worker: OutboxWorker[DueDelivery], rounds: int = 50) -> None:
    for _ in range(rounds):
        if not await worker.run_once():
            await asyncio.sleep(0.03)


def test_signature_scheme_and_classification() -> None:
    assert sign("k", "1700000000", b"{}") == (
        "sha256=" + __import__("hmac").new(b"k", b"1700000000.{}", "sha256").hexdigest()
    )
    assert classify(200) is Outcome.DELIVERED and classify(204) is Outcome.DELIVERED
    assert (
        classify(408) is Outcome.RETRY
        and classify(429) is Outcome.RETRY
        and classify(503) is Outcome.RETRY
    )
    assert classify(400) is Outcome.REJECTED and classify(410) is Outcome.REJECTED


async def test_retries_through_500s_then_delivers_once(application: Application, crm) -> None:  # type: ignore[no-untyped-def]
    fake, url = crm
    fake.script = [500, 503, 200]
    lead_id, delivery_id = packaged_lead(application, url)
    worker = make_worker(application, max_attempts=5)
    await drain(worker)
    assert [r.status for r in fake.received] == [500, 503, 200]
    assert all(r.signature_ok for r in fake.received)
    delivery = m.Delivery.get_by_id(delivery_id)
    assert delivery.state == "delivered" and delivery.attempts == 3
    assert m.Lead.get_by_id(lead_id).status == "delivered"
    await worker._handler._client.aclose()


async def test_client_error_is_rejected_without_retry(application: Application, crm) -> None:  # type: ignore[no-untyped-def]
    fake, url = crm
    fake.script = [400]
    lead_id, delivery_id = packaged_lead(application, url)
    worker = make_worker(application)
    await drain(worker, rounds=5)
    assert len(fake.received) == 1
    delivery = m.Delivery.get_by_id(delivery_id)
    assert delivery.state == "rejected" and "HTTP 400" in delivery.last_error
    assert m.Lead.get_by_id(lead_id).status == "delivery_failed"
    await worker._handler._client.aclose()


async def test_timeouts_are_retried_then_dead_lettered(application: Application, crm) -> None:  # type: ignore[no-untyped-def]
    fake, url = crm
    fake.delay = 0.5
    lead_id, delivery_id = packaged_lead(application, url)
    worker = make_worker(application, max_attempts=2, timeout=0.2)
    await drain(worker, rounds=40)
    delivery = m.Delivery.get_by_id(delivery_id)
    assert delivery.state == "dead_lettered" and delivery.attempts == 2
    assert delivery.last_error == "timeout"
    kinds = [a.kind for a in m.Activity.select().where(m.Activity.lead == lead_id)]
    assert "delivery.dead_lettered" in kinds
    view = DeliveryRepository(application.db).redeliver(delivery_id, m.utcnow(), None)
    assert view.state == "pending" and view.attempts == 0
    fake.delay = 0
    await drain(worker, rounds=20)
    assert m.Delivery.get_by_id(delivery_id).state == "delivered"
    await worker._handler._client.aclose()


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_ends(
    application: Application, crm
) -> None:  # type: ignore[no-untyped-def]
    _, url = crm
    _, delivery_id = packaged_lead(application, url)
    repo = DeliveryRepository(application.db)
    now = m.utcnow()
    lease = dt.timedelta(seconds=60)
    first = repo.claim_due("worker-1", now, lease, 100)
    assert delivery_id in {d.delivery_id for d in first}
    assert delivery_id not in {d.delivery_id for d in repo.claim_due("worker-2", now, lease, 100)}
    later = repo.claim_due("worker-2", now + dt.timedelta(seconds=61), lease, 100)
    assert delivery_id in {d.delivery_id for d in later}, "a dead worker's lease expires"
    due = next(d for d in first if d.delivery_id == delivery_id)
    recorded = repo.record(
        due,
        "worker-1",
        now=now,
        state="delivered",
        status_code=200,
        error="",
        duration_ms=1,
        next_attempt_at=None,
    )
    assert recorded is False, "only the lease holder records a result"


def test_nothing_is_sent_to_an_inactive_dealer(application: Application, crm) -> None:  # type: ignore[no-untyped-def]
    from server.errors import FailedPreconditionError

    _, url = crm
    _, delivery_id = packaged_lead(application, url)
    dealer_id = m.Delivery.get_by_id(delivery_id).dealer_id
    m.Dealer.update(active=False).where(m.Dealer.id == dealer_id).execute()
    repo = DeliveryRepository(application.db)
    due = repo.claim_due("w", m.utcnow(), dt.timedelta(seconds=60), 100)
    assert delivery_id not in {d.delivery_id for d in due}
    m.Delivery.update(state="dead_lettered").where(m.Delivery.id == delivery_id).execute()
    with pytest.raises(FailedPreconditionError) as e:
        repo.redeliver(delivery_id, m.utcnow(), None)
    assert e.value.reason == "DEALER_INACTIVE"
