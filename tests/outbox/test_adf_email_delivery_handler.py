"""ADF by email (SQLite and PostgreSQL): a delivery to a dealer whose channel is `email` goes
through the Mailgun client to a fake Mailgun on loopback as one plain-text email (to the intake
address, the body exactly the package's ADF XML, the dealer's name in the subject, our delivery
id in `v:ccl_delivery`); Mailgun's answer maps like an HTTP one (accepted with its message id,
429/5xx retried, another 4xx rejected); simulation mode records the form and marks the delivery
`simulated`, never delivered; and Mailgun's events move an accepted delivery."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator

import pytest

from server.adapters.dealer_crm import DealerCrmClient
from server.adapters.mailgun import Form, MailgunClient
from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.domain.email import parse_event
from server.domain.leads import LeadStatus
from server.outbox.dealer_delivery import ADF_EMAIL_TAG, dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.storage import models as m
from server.storage.deliveries import DeliveryRepository, DueDelivery
from support.builders import credit_checked_lead, dealer
from support.fake_mailgun import FakeMailgun, webhook_body

INTAKE = "leads@crm.email-motors.example.com"
SENDER = '"Test Lending" <noreply@mg.example.test>'


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun() as server:
        yield server


def make_worker(
    application: Application,
    mailgun: MailgunClient | None,
    simulated: list[Form] | None = None,
) -> OutboxWorker[DueDelivery]:
    return dealer_delivery_worker(
        application.db,
        DealerCrmClient(timeout_seconds=2.0),
        max_attempts=3,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.01,
        mailgun=mailgun,
        from_address=SENDER,
        simulated_payloads=None if simulated is None else simulated.append,
    )


def client(fake: FakeMailgun) -> MailgunClient:
    return MailgunClient(
        api_key=fake.api_key, domain=fake.domain, base_url=fake.url, timeout_seconds=2.0
    )


async def run(worker: OutboxWorker[DueDelivery], rounds: int = 1) -> None:
    for _ in range(rounds):
        await worker.run_once()
        await asyncio.sleep(0.03)


def email_delivery(application: Application, name: str = "Email Motors") -> tuple[str, str]:
    """A lead routed to a new email dealer (the only active one, with no endpoint URL)."""
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(
        name=name,
        endpoint_url="",
        delivery_format="adf",
        contact_email="sales@email-motors.example.com",
        delivery_channel="email",
        intake_email=INTAKE,
    )
    lead_id = credit_checked_lead(application)
    with application.db.transaction():
        result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
    assert result.dealer_id == dealer_id and result.delivery_id
    return lead_id, result.delivery_id


def package_body(delivery_id: str) -> str:
    delivery = m.Delivery.get_by_id(delivery_id)
    return str(m.LeadPackage.get_by_id(delivery.package_id).body)


async def test_the_intake_address_gets_the_adf_xml_as_a_plain_text_email(
    application: Application, fake: FakeMailgun
) -> None:
    fake.reset()
    lead_id, delivery_id = email_delivery(application, name="Email Motors of Springfield")
    mailgun = client(fake)
    try:
        await run(make_worker(application, mailgun))
    finally:
        await mailgun.aclose()
    assert len(fake.calls) == 1
    call = fake.calls[0]
    assert call.to == [INTAKE]
    body = package_body(delivery_id)
    assert body.lstrip().startswith("<?xml") and "<adf>" in body
    assert call.get("text") == body, "the body is exactly the ADF XML"
    assert call.get("html") is None
    assert call.get("subject") == "New lead for Email Motors of Springfield"
    assert call.get("from") == SENDER
    assert call.get("v:ccl_delivery") == delivery_id
    assert call.get("o:tag") == ADF_EMAIL_TAG
    assert call.get("o:tracking") == "no"
    row = m.Delivery.get_by_id(delivery_id)
    assert row.state == "accepted"
    assert row.provider_message_id == call.message_id.strip("<>")
    assert row.delivered_at is None
    lead = m.Lead.get_by_id(lead_id)
    assert lead.delivery_state == "accepted"
    assert lead.status == LeadStatus.PACKAGED.value, "not delivered until Mailgun says so"
    kinds = [
        a.kind
        for a in m.Activity.select().where(m.Activity.lead == lead_id).order_by(m.Activity.id)
    ]
    assert "delivery.accepted" in kinds and "delivery.delivered" not in kinds


@pytest.mark.parametrize(
    ("status", "state"),
    [(429, "retrying"), (500, "retrying"), (503, "retrying"), (400, "rejected")],
)
async def test_mailgun_answers_map_like_http_answers(
    application: Application, fake: FakeMailgun, status: int, state: str
) -> None:
    fake.reset()
    if status == 429:
        fake.throttle(1)
    else:
        fake.fail(1, status)
    lead_id, delivery_id = email_delivery(application)
    mailgun = client(fake)
    try:
        await run(make_worker(application, mailgun))
    finally:
        await mailgun.aclose()
    row = m.Delivery.get_by_id(delivery_id)
    assert (row.state, row.last_status_code, row.provider_message_id) == (state, status, "")
    assert m.Lead.get_by_id(lead_id).delivery_state == state


async def test_a_retried_email_goes_out_once_accepted(
    application: Application, fake: FakeMailgun
) -> None:
    fake.reset()
    fake.fail(1, 502)
    _, delivery_id = email_delivery(application)
    mailgun = client(fake)
    try:
        await run(make_worker(application, mailgun), rounds=10)
    finally:
        await mailgun.aclose()
    assert [c.get("v:ccl_delivery") for c in fake.calls] == [delivery_id]
    assert m.Delivery.get_by_id(delivery_id).state == "accepted"


async def test_simulation_mode_records_the_email_and_claims_no_delivery(
    application: Application, fake: FakeMailgun
) -> None:
    fake.reset()
    lead_id, delivery_id = email_delivery(application, name="Sim Motors")
    recorded: list[Form] = []
    await run(make_worker(application, None, recorded))
    assert fake.calls == []
    assert len(recorded) == 1
    form = dict(recorded[0])
    assert (form["to"], form["subject"], form["v:ccl_delivery"]) == (
        INTAKE,
        "New lead for Sim Motors",
        delivery_id,
    )
    assert form["text"] == package_body(delivery_id)
    row = m.Delivery.get_by_id(delivery_id)
    assert (row.state, row.delivered_at) == ("simulated", None)
    lead = m.Lead.get_by_id(lead_id)
    assert (lead.delivery_state, lead.status) == ("simulated", LeadStatus.PACKAGED.value)


def test_an_http_dealers_delivery_carries_the_https_channel(application: Application) -> None:
    m.Dealer.update(active=False).execute()
    dealer(endpoint_url="https://crm.example.com/in")
    credit_checked_lead(application)  # routed below
    lead_id = credit_checked_lead(application)
    with application.db.transaction():
        LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
    due = DeliveryRepository(application.db).claim_due("probe", m.utcnow(), dt.timedelta(0), 100)
    assert due and {d.channel for d in due} == {"https"}


# --- Mailgun's events -------------------------------------------------------------------------


def accepted_delivery(application: Application, provider_id: str) -> tuple[str, str]:
    lead_id, delivery_id = email_delivery(application)
    m.Delivery.update(state="accepted", provider_message_id=provider_id).where(
        m.Delivery.id == delivery_id
    ).execute()
    m.Lead.update(delivery_state="accepted").where(m.Lead.id == lead_id).execute()
    return lead_id, delivery_id


def apply(application: Application, event: str, delivery_id: str, **kwargs: object) -> bool:
    data = webhook_body(
        event,
        INTAKE,
        user_variables={"ccl_delivery": delivery_id},
        **kwargs,  # type: ignore[arg-type]
    )["event-data"]
    with application.db.transaction():
        return DeliveryRepository(application.db).apply_mailgun_event(parse_event(data), m.utcnow())


def test_delivered_delivers_the_lead_once(application: Application) -> None:
    lead_id, delivery_id = accepted_delivery(application, "msg-1@mg.example.test")
    assert not apply(application, "opened", delivery_id, message_id="msg-1@mg.example.test")
    assert not apply(application, "delivered", delivery_id, message_id="old@mg.example.test"), (
        "an event about an earlier send of the delivery changes nothing"
    )
    assert apply(application, "delivered", delivery_id, message_id="msg-1@mg.example.test")
    row = m.Delivery.get_by_id(delivery_id)
    assert row.state == "delivered" and row.delivered_at is not None
    lead = m.Lead.get_by_id(lead_id)
    assert (lead.delivery_state, lead.status) == ("delivered", LeadStatus.DELIVERED.value)
    assert not apply(application, "delivered", delivery_id, message_id="msg-1@mg.example.test")
    assert not apply(
        application,
        "failed",
        delivery_id,
        message_id="msg-1@mg.example.test",
        severity="permanent",
    ), "a late failure does not undo a delivery"


def test_a_permanent_failure_dead_letters_with_the_reason(application: Application) -> None:
    lead_id, delivery_id = accepted_delivery(application, "msg-2@mg.example.test")
    assert apply(
        application,
        "failed",
        delivery_id,
        message_id="msg-2@mg.example.test",
        severity="temporary",
        reason="generic",
        delivery_code=452,
        delivery_message="mailbox full",
    )
    row = m.Delivery.get_by_id(delivery_id)
    assert row.state == "accepted" and "mailbox full" in row.last_error
    assert apply(
        application,
        "failed",
        delivery_id,
        message_id="msg-2@mg.example.test",
        severity="permanent",
        reason="bounce",
        delivery_code=550,
        delivery_message=f"5.1.1 {INTAKE}: no such user",
    )
    row = m.Delivery.get_by_id(delivery_id)
    assert (row.state, row.last_status_code) == ("dead_lettered", 550)
    assert "no such user" in row.last_error and INTAKE not in row.last_error
    lead = m.Lead.get_by_id(lead_id)
    assert (lead.delivery_state, lead.status) == (
        "dead_lettered",
        LeadStatus.DELIVERY_FAILED.value,
    )
    kinds = [
        a.kind
        for a in m.Activity.select().where(m.Activity.lead == lead_id).order_by(m.Activity.id)
    ]
    assert kinds[-2:] == ["delivery.email_deferred", "delivery.dead_lettered"]
    assert m.Suppression.select().count() == 0


def test_events_of_no_delivery_of_ours_are_acknowledged(application: Application) -> None:
    assert not apply(application, "delivered", "no-such-delivery")
