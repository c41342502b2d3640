"""Outbound deliveries are Standard Webhooks (SQLite and PostgreSQL): a dealer's receiver
verifies each attempt with the `standardwebhooks` library; the event id is the `webhook-id` on
every retry; during a secret rotation a receiver holding either secret verifies, after the
overlap only the new one."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from server.adapters.dealer_crm import DealerCrmClient
from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.domain.dealers import generate_signing_secret
from server.outbox.dealer_delivery import dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.storage import models as m
from server.storage.deliveries import DueDelivery
from support.builders import credit_checked_lead, dealer
from support.fake_crm import FakeCrm, Received, running

SECRET = generate_signing_secret()


def make_worker(application: Application) -> OutboxWorker[DueDelivery]:
    return dealer_delivery_worker(
        application.db,
        DealerCrmClient(timeout_seconds=2.0),
        max_attempts=5,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.01,
    )


@pytest.fixture()
def crm() -> Iterator[tuple[FakeCrm, str]]:
    fake = FakeCrm(secret=SECRET)
    with running(fake) as url:
        yield fake, url


def packaged_lead(application: Application, url: str, secret: str) -> tuple[str, str, str]:
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(endpoint_url=url, signing_secret=secret)
    lead_id = credit_checked_lead(application)
    with application.db.transaction():
        result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
    assert result.dealer_id == dealer_id and result.delivery_id
    return dealer_id, lead_id, result.delivery_id


async def drain(worker: OutboxWorker[DueDelivery], count: int, fake: FakeCrm) -> None:
    for _ in range(100):
        if len(fake.received) >= count and not await worker.run_once():
            return
        if not await worker.run_once():
            await asyncio.sleep(0.03)


def verifies(secret: str, r: Received) -> bool:
    """As a dealer's receiver does it."""
    try:
        Webhook(secret).verify(r.body, r.headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


async def test_every_attempt_verifies_with_the_library_and_keeps_its_id(
    application: Application, crm: tuple[FakeCrm, str]
) -> None:
    fake, url = crm
    fake.script = [503, 200]
    _, _, delivery_id = packaged_lead(application, url, SECRET)
    await drain(make_worker(application), 2, fake)
    assert [r.status for r in fake.received] == [503, 200]
    assert all(r.signature_ok and verifies(SECRET, r) for r in fake.received)
    event_id = m.Delivery.get_by_id(delivery_id).event_id
    assert {r.headers["webhook-id"] for r in fake.received} == {event_id}
    for r in fake.received:
        assert re.fullmatch(r"v1,[A-Za-z0-9+/]+={0,2}", r.headers["webhook-signature"])
        assert r.headers["webhook-timestamp"].isdigit()
        assert r.headers["idempotency-key"] == event_id
    # The id is signed: a receiver given another id refuses the same signature.
    forged = {**fake.received[0].headers, "webhook-id": "evt_other"}
    assert not verifies(SECRET, Received("", forged, fake.received[0].body, 200, False))
    assert not verifies(generate_signing_secret(), fake.received[-1])


async def test_a_rotation_signs_with_both_secrets_until_the_overlap_ends(
    application: Application, crm: tuple[FakeCrm, str]
) -> None:
    fake, url = crm
    old = generate_signing_secret()
    fake.secret = old
    dealer_id, _, _ = packaged_lead(application, url, old)
    new = await application.dealers.rotate_secret(dealer_id, overlap_hours=24)
    assert new.startswith("whsec_") and new != old
    await drain(make_worker(application), 1, fake)
    during = fake.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verifies(old, during) and verifies(new, during)  # either receiver verifies

    # The overlap is over: only the new secret signs.
    m.Dealer.update(previous_secret_expires_at=m.utcnow() - dt.timedelta(seconds=1)).where(
        m.Dealer.id == dealer_id
    ).execute()
    second = credit_checked_lead(application)
    with application.db.transaction():
        assert LeadPackaging(application.db.backend).route(second, m.utcnow()).delivery_id
    await drain(make_worker(application), 2, fake)
    after = fake.received[-1]
    assert len(fake.received) == 2
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verifies(new, after) and not verifies(old, after)


async def test_a_rotation_without_overlap_drops_the_old_secret_at_once(
    application: Application, crm: tuple[FakeCrm, str]
) -> None:
    fake, url = crm
    dealer_id, _, _ = packaged_lead(application, url, SECRET)
    new = await application.dealers.rotate_secret(dealer_id, overlap_hours=0)
    await drain(make_worker(application), 1, fake)
    assert verifies(new, fake.received[-1]) and not verifies(SECRET, fake.received[-1])
