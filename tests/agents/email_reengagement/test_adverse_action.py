"""Transactional mail on both backends: a lead the pipeline declines gets its adverse-action
notice queued in the decision's transaction (once, recorded in its activity), sent as one
message with the FCRA/ECOA content through the fake Mailgun even to an address unsubscribed from
marketing, but never to an address that bounced hard or complained; simulation and throttling
as for campaign mail."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from server.adapters.mailgun import MailgunClient
from server.agents.email_reengagement import EmailDispatcher, NoticeDetails
from server.app import Application
from server.domain.campaigns import SuppressionReason
from server.domain.clock import utcnow
from server.domain.principal import Principal, Role
from server.domain.templates import decline_reasons
from server.services.campaigns import Sender
from server.storage import models as m
from server.storage.campaigns import CampaignRepository, SuppressionRepository, TemplateRepository
from server.storage.notices import notice_id
from server.transport.converters import lead_input
from support.data import example_message
from support.fake_mailgun import FakeMailgun

NOTICES = NoticeDetails(
    company_name="Sample Lending LLC",
    company_address="100 Main St, Springfield, IL 62701",
    bureau_name="Example Bureau",
    bureau_address="P.O. Box 1, Allen, TX 75013",
    bureau_phone="1-800-555-0100",
    bureau_website="https://bureau.example",
)
SENDER = Sender(
    company_name=NOTICES.company_name,
    company_address=NOTICES.company_address,
    public_base_url="https://apply.example.com",
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun() as server:
        yield server


@pytest.fixture
async def mailgun(fake: FakeMailgun) -> Any:
    fake.reset()
    client = MailgunClient(api_key=fake.api_key, domain=fake.domain, base_url=fake.url)
    yield fake, client
    await client.aclose()
    fake.reset()


_PHONES = itertools.count(7000)


def _dispatcher(
    application: Application, client: MailgunClient | None, **kw: Any
) -> EmailDispatcher:
    return EmailDispatcher(
        CampaignRepository(application.db),
        TemplateRepository(application.db),
        client,
        SENDER,
        [b"notice-test-key-0123456789abcdef"],
        application.db,
        from_address="Sample Lending <notices@mg.example.test>",
        notices=NOTICES,
        **kw,
    )


async def _declined(application: Application, n: int = 1, **changes: Any) -> list[str]:
    """Leads the pipeline declines (the simulation's sandbox last name `Declined`)."""
    principal = Principal(key_id="t", role=Role.SERVICE)
    ids = []
    for _ in range(n):
        key = f"declined-{m.new_id()}"
        message = example_message(
            email=f"{key}@example.com",
            phone=f"(608) 555-{next(_PHONES):04d}",
            last_name="Declined",
            idempotency_key=key,
            **changes,
        )
        result = await application.orchestrator.process(principal, key, lead_input(message.lead))
        assert result.lead.status.value == "declined"
        ids.append(result.lead.lead_id)
    return ids


def _notice(lead_id: str) -> m.EmailMessage:
    return m.EmailMessage.get_by_id(notice_id(lead_id))


async def test_a_decline_queues_its_notice_once_and_sends_it(
    application: Application, mailgun: tuple[FakeMailgun, MailgunClient]
) -> None:
    fake, client = mailgun
    [lead_id] = await _declined(application)
    row = _notice(lead_id)
    assert (row.kind, row.state, row.campaign_id) == ("transactional", "queued", None)
    activity = m.Activity.select().where(
        (m.Activity.lead == lead_id) & (m.Activity.kind == "email.adverse_action_queued")
    )
    assert activity.count() == 1
    address = row.to_email
    # An unsubscribe from marketing does not hold it back.
    SuppressionRepository(application.db).suppress(
        [(address, SuppressionReason.UNSUBSCRIBED, "")], utcnow()
    )
    assert await _dispatcher(application, client).send_notices() == ["sent"]
    [call] = fake.calls
    assert call.to == [address]
    assert call.get("o:tag") == "adverse-action"
    assert call.get("v:ccl_message") == row.id
    text, html = str(call.get("text")), str(call.get("html"))
    for part in (text, html):
        assert "We are unable to approve your request for credit" in part
        assert NOTICES.bureau_name in part and NOTICES.bureau_phone in part
        assert "free copy" in part and "60 days" in part
        assert "Equal Credit Opportunity Act" in part
        assert "unsubscribe" not in part.lower()
    lead = m.Lead.get_by_id(lead_id)
    check = m.CreditCheck.get(m.CreditCheck.lead == lead_id)
    assert lead.first_name in text
    assert all(reason in text for reason in decline_reasons(check.score_band))
    assert _notice(lead_id).state == "sent"
    assert await _dispatcher(application, client).send_notices() == [], "sent once"


async def test_never_to_an_address_that_bounced_or_complained(
    application: Application, mailgun: tuple[FakeMailgun, MailgunClient]
) -> None:
    fake, client = mailgun
    bounced, complained = await _declined(application, 2)
    SuppressionRepository(application.db).suppress(
        [
            (_notice(bounced).to_email, SuppressionReason.HARD_BOUNCE, ""),
            (_notice(complained).to_email, SuppressionReason.COMPLAINT, ""),
        ],
        utcnow(),
    )
    assert await _dispatcher(application, client).send_notices() == ["failed", "failed"]
    assert fake.calls == []
    assert {_notice(i).state for i in (bounced, complained)} == {"failed"}
    assert "hard_bounce" in _notice(bounced).last_error


async def test_simulation_records_the_notice_and_a_throttle_retries_it(
    application: Application, mailgun: tuple[FakeMailgun, MailgunClient]
) -> None:
    fake, client = mailgun
    forms: list[Any] = []
    [simulated] = await _declined(application)
    assert await _dispatcher(application, None, simulated_payloads=forms.append).send_notices() == [
        "simulated"
    ]
    assert _notice(simulated).state == "simulated"
    assert dict(forms[0])["to"] == _notice(simulated).to_email
    [throttled] = await _declined(application)
    fake.throttle(1, retry_after=60)
    before = utcnow()
    assert await _dispatcher(application, client).send_notices() == ["retry"]
    row = _notice(throttled)
    assert row.state == "queued" and row.next_attempt_at >= before + dt.timedelta(seconds=60)
    assert fake.calls == []
