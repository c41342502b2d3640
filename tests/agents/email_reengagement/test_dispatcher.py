"""The email dispatcher on both backends against the fake Mailgun: batches of at most 1,000
rendered once, each recipient's substituted message equal to the template's own render for them,
signed unsubscribe links, simulation mode, 429 retries, unknown outcomes never re-sent,
suppression, quiet hours and the lease check before any call."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from server.adapters.mailgun import Form, MailgunClient
from server.agents.email_reengagement import EmailDispatcher
from server.app import Application
from server.domain.campaigns import (
    CampaignState,
    SuppressionReason,
    sign_unsubscribe,
    verify_unsubscribe,
)
from server.domain.clock import utcnow
from server.domain.templates import (
    RecipientContext,
    TemplateSpec,
    compile_template,
    substitute,
)
from server.services.campaigns import Sender
from server.storage import models as m
from server.storage.campaigns import (
    CampaignRepository,
    SuppressionRepository,
    TemplateRepository,
)
from support.builders import received_lead
from support.fake_mailgun import FakeMailgun

# 19:00 UTC in November: daytime on every US wall clock (Honolulu 09:00, New York 14:00).
DAY = dt.datetime(2026, 11, 2, 19, 0, 0)
KEYS = [b"dispatcher-test-key-0123456789ab"]
SENDER = Sender(
    company_name="Sample <Lending> LLC",
    company_address="100 Main St, Springfield, IL 62701",
    public_base_url="https://apply.example.com",
)
SPEC = TemplateSpec(
    name="Come back",
    subject="{{ first_name }}, your {{ vehicle }} is waiting",
    html="<html><body><p>Hi {{ first_name }} from {{ company_name }},"
    " <a href='{{ application_url }}'>resume</a> {{ dealer_name }}</p></body></html>",
    text="Hi {{ first_name }}, resume at {{ application_url }} ({{ vehicle_make }})",
)


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun() as server:
        yield server


@pytest.fixture
def mailgun(fake: FakeMailgun) -> Iterator[FakeMailgun]:
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="module")
def campaigns(application: Application) -> CampaignRepository:
    return CampaignRepository(application.db)


@pytest.fixture(scope="module")
def templates(application: Application) -> TemplateRepository:
    return TemplateRepository(application.db)


@pytest.fixture
async def client(mailgun: FakeMailgun) -> Any:
    c = MailgunClient(api_key=mailgun.api_key, domain=mailgun.domain, base_url=mailgun.url)
    yield c
    await c.aclose()


def _dispatcher(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient | None,
    clock: Clock,
    sender: Sender = SENDER,
    **kwargs: Any,
) -> EmailDispatcher:
    kwargs.setdefault("batch_size", 50)
    kwargs.setdefault("rate_per_second", 1_000_000.0)
    kwargs.setdefault("poll_seconds", 0.02)
    return EmailDispatcher(
        campaigns,
        templates,
        client,
        sender,
        KEYS,
        application.db,
        from_address="Sample Lending <offers@mg.example.test>",
        clock=clock,
        **kwargs,
    )


def _campaign(
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    lead_ids: list[str],
    spec: TemplateSpec = SPEC,
) -> str:
    template = templates.create(spec, DAY)
    record = campaigns.create(
        name="c",
        kind="one_off",
        template_id=template.template_id,
        template_version=1,
        audience_json="{}",
        steps_json="[]",
        state=CampaignState.DRAFT,
        now=DAY,
    )
    campaigns.materialise(record.campaign_id, lead_ids, template.template_id, 1, DAY)
    assert campaigns.transition(
        record.campaign_id, [CampaignState.DRAFT], CampaignState.RUNNING, DAY
    )
    return record.campaign_id


def _stop(campaigns: CampaignRepository, campaign_id: str) -> None:
    """So that later tests' dispatchers do not see this campaign's leftovers."""
    campaigns.transition(
        campaign_id, [CampaignState.RUNNING, CampaignState.PAUSED], CampaignState.CANCELLED, DAY
    )


def _messages(campaign_id: str) -> dict[str, Any]:
    e = m.EmailMessage
    return {r.to_email: r for r in e.select().where(e.campaign == campaign_id)}


def _leads(application: Application, n: int, **changes: Any) -> list[str]:
    return [received_lead(application, **changes) for _ in range(n)]


def _expected(row: Any, lead: Any) -> RecipientContext:
    token = sign_unsubscribe(KEYS, row.id, row.to_email)
    return RecipientContext(
        first_name=lead.first_name,
        vehicle_year=lead.vehicle_year or 0,
        vehicle_make=lead.vehicle_make or "",
        vehicle_model=lead.vehicle_model or "",
        dealer_name="",
        application_url=SENDER.application_url(lead.id),
        unsubscribe_url=SENDER.unsubscribe_url(token),
        company_name=SENDER.company_name,
        company_address=SENDER.company_address,
    )


async def _drain(dispatcher: EmailDispatcher) -> list[Any]:
    reports = []
    while (report := await dispatcher.run_once()) is not None:
        reports.append(report)
    return reports


async def test_a_large_campaign_goes_out_in_batches_personalised_exactly(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    lead_ids = _leads(application, 2500)
    campaign_id = _campaign(campaigns, templates, lead_ids)
    dispatcher = _dispatcher(application, campaigns, templates, client, Clock(DAY), batch_size=1000)
    reports = await _drain(dispatcher)
    assert [r.outcome for r in reports] == ["sent"] * 3
    assert sorted(len(call.to) for call in mailgun.calls) == [500, 1000, 1000]
    counts = mailgun.recipient_counts()
    rows = _messages(campaign_id)
    assert set(counts) == set(rows) and set(counts.values()) == {1}
    assert {r.state for r in rows.values()} == {"sent"}
    leads = {lead.id: lead for lead in m.Lead.select().where(m.Lead.id.in_(lead_ids))}
    compiled = compile_template(SPEC)
    by_address = {a: call for call in mailgun.calls for a in call.to}
    for call in mailgun.calls:
        assert call.get("v:ccl_batch") and call.get("o:tag") == campaign_id
        assert call.get("h:List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    variables = {a: v for call in mailgun.calls for a, v in call.recipient_variables.items()}
    # Every recipient's message as Mailgun makes it is the template's own render for them.
    for address, row in rows.items():
        call = by_address[address]
        own = compiled.render(_expected(row, leads[row.lead_id]))
        mine = variables[address]
        for part in ("subject", "html", "text"):
            assert substitute(call.get(part) or "", mine) == getattr(own, part)
    # The same through the fake's own substitution, for a sample (it re-reads the JSON).
    for address in list(rows)[::97]:
        row, call = rows[address], by_address[address]
        own = compiled.render(_expected(row, leads[row.lead_id]))
        assert call.rendered("subject", address) == own.subject
        assert call.rendered("html", address) == own.html
        assert call.rendered("text", address) == own.text
        assert call.rendered("v:ccl_message", address) == row.id
        link = call.rendered("h:List-Unsubscribe", address)
        assert link is not None and link.startswith("<https://apply.example.com/api/unsubscribe/")
        claim = verify_unsubscribe(KEYS, link[1:-1].rsplit("/", 1)[1])
        assert claim is not None and claim.recipient_id == row.id
        assert call.recipient_variables[address]["first_name"] == leads[row.lead_id].first_name
    _stop(campaigns, campaign_id)


async def test_simulation_records_the_payloads_and_sends_nothing(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 7))
    payloads: list[Form] = []
    dispatcher = _dispatcher(
        application, campaigns, templates, None, Clock(DAY), simulated_payloads=payloads.append
    )
    assert dispatcher.simulating
    reports = await _drain(dispatcher)
    assert [r.outcome for r in reports] == ["simulated"]
    assert not mailgun.attempts
    (form,) = payloads
    rows = _messages(campaign_id)
    assert sorted(v for k, v in form if k == "to") == sorted(rows)
    assert dict(form)["v:ccl_batch"] == rows[next(iter(rows))].batch_id
    assert {r.state for r in rows.values()} == {"simulated"}
    _stop(campaigns, campaign_id)


async def test_a_development_stack_simulates_with_its_plain_http_links(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
) -> None:
    """`make run` serves on http://127.0.0.1:8080: simulation still records what would be sent,
    with the unsubscribe page's link but no one-click header (RFC 8058 is https only; a live
    Mailgun key refuses to start without an https CCL_PUBLIC_BASE_URL)."""
    campaign_id = _campaign(campaigns, templates, _leads(application, 3))
    payloads: list[Form] = []
    local = Sender(
        company_name=SENDER.company_name,
        company_address=SENDER.company_address,
        public_base_url="http://127.0.0.1:8080",
    )
    dispatcher = _dispatcher(
        application,
        campaigns,
        templates,
        None,
        Clock(DAY),
        local,
        simulated_payloads=payloads.append,
    )
    reports = await _drain(dispatcher)
    assert [r.outcome for r in reports] == ["simulated"]
    (form,) = payloads
    assert "h:List-Unsubscribe-Post" not in dict(form)
    assert {r.state for r in _messages(campaign_id).values()} == {"simulated"}
    _stop(campaigns, campaign_id)


async def test_a_throttled_batch_is_sent_later_and_only_once(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 5))
    clock = Clock(DAY)
    dispatcher = _dispatcher(
        application, campaigns, templates, client, clock, retry_base_seconds=10
    )
    mailgun.throttle(1, retry_after=120)
    first = await dispatcher.run_once()
    assert first is not None and first.outcome == "retry"
    assert not mailgun.calls and mailgun.attempts[0][0] == 429
    assert {r.state for r in _messages(campaign_id).values()} == {"queued"}
    assert await dispatcher.run_once() is None  # not due before Retry-After
    clock.at = DAY + dt.timedelta(seconds=119)
    assert await dispatcher.run_once() is None
    clock.at = DAY + dt.timedelta(seconds=121)
    again = await dispatcher.run_once()
    assert again is not None and again.outcome == "sent"
    assert set(mailgun.recipient_counts().values()) == {1} and len(mailgun.calls) == 1
    assert {r.state for r in _messages(campaign_id).values()} == {"sent"}
    assert {r.attempts for r in _messages(campaign_id).values()} == {2}
    _stop(campaigns, campaign_id)


async def test_an_answer_lost_after_mailgun_took_the_batch_is_never_resent(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 6))
    clock = Clock(DAY)
    dispatcher = _dispatcher(application, campaigns, templates, client, clock)
    mailgun.fail(1, 503, accepted=True)
    report = await dispatcher.run_once()
    assert report is not None and report.outcome == "unknown"
    assert {r.state for r in _messages(campaign_id).values()} == {"unknown"}
    for later in (DAY, DAY + dt.timedelta(hours=1), DAY + dt.timedelta(days=1)):
        clock.at = later
        assert await dispatcher.run_once() is None
    counts = mailgun.recipient_counts()
    assert len(counts) == 6 and set(counts.values()) == {1}
    _stop(campaigns, campaign_id)


async def test_a_refused_batch_fails_and_a_suppressed_address_is_never_mailed(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    lead_ids = _leads(application, 4)
    suppressed = m.Lead.get_by_id(lead_ids[0]).email_normalized
    SuppressionRepository(application.db).suppress(
        [(suppressed, SuppressionReason.MANUAL, "admin")], DAY
    )
    campaign_id = _campaign(campaigns, templates, lead_ids)
    assert _messages(campaign_id)[suppressed].state == "suppressed"
    dispatcher = _dispatcher(application, campaigns, templates, client, Clock(DAY))
    mailgun.fail(1, 400)
    report = await dispatcher.run_once()
    assert report is not None and (report.outcome, report.recipients) == ("failed", 3)
    assert await dispatcher.run_once() is None
    rows = _messages(campaign_id)
    assert rows[suppressed].state == "suppressed"
    assert {r.state for a, r in rows.items() if a != suppressed} == {"failed"}
    assert suppressed not in mailgun.recipient_counts()
    _stop(campaigns, campaign_id)


async def test_recipients_in_quiet_hours_wait_for_their_morning(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    # 03:30 UTC: 21:30 in Chicago (quiet), 19:30 in Los Angeles (not).
    evening = dt.datetime(2026, 11, 3, 3, 30)
    west = _leads(application, 2, state="CA", zip_code="90012")
    central = _leads(application, 3, state="IL", zip_code="62701")
    campaign_id = _campaign(campaigns, templates, west + central)
    clock = Clock(evening)
    dispatcher = _dispatcher(application, campaigns, templates, client, clock)
    report = await dispatcher.run_once()
    assert report is not None and (report.outcome, report.recipients, report.deferred) == (
        "sent",
        2,
        3,
    )
    rows = _messages(campaign_id)
    central_rows = [r for r in rows.values() if r.lead_id in central]
    chicago_morning = dt.datetime(2026, 11, 3, 14, 0)  # 08:00 CST
    assert {(r.state, r.next_attempt_at, r.batch_id) for r in central_rows} == {
        ("queued", chicago_morning, "")
    }
    assert await dispatcher.run_once() is None
    clock.at = chicago_morning
    later = await dispatcher.run_once()
    assert later is not None and (later.outcome, later.recipients) == ("sent", 3)
    assert len(mailgun.recipient_counts()) == 5 and set(mailgun.recipient_counts().values()) == {1}
    _stop(campaigns, campaign_id)


async def test_nothing_is_sent_once_the_lease_is_lost(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 3))
    clock = Clock(DAY)
    dispatcher = _dispatcher(application, campaigns, templates, client, clock)
    real = campaigns.claim_batch

    def claim_then_expire(*args: Any, **kwargs: Any) -> Any:
        batch = real(*args, **kwargs)
        clock.at = DAY + dt.timedelta(hours=1)  # the lease runs out before the mark
        return batch

    campaigns_claim = campaigns.claim_batch
    try:
        campaigns.claim_batch = claim_then_expire  # type: ignore[method-assign]
        report = await dispatcher.run_once()
    finally:
        campaigns.claim_batch = campaigns_claim  # type: ignore[method-assign]
    assert report is not None and report.outcome == "lost"
    assert not mailgun.attempts
    _stop(campaigns, campaign_id)


async def test_run_sends_until_stopped(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 12))
    dispatcher = _dispatcher(application, campaigns, templates, client, Clock(DAY), batch_size=5)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    for _ in range(200):
        if len(mailgun.recipient_counts()) == 12:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(mailgun.calls) == 3 and set(mailgun.recipient_counts().values()) == {1}
    _stop(campaigns, campaign_id)


async def test_a_recipient_the_subject_does_not_fit_is_failed_alone(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    long_name = _leads(application, 1, first_name="A" * 100)
    others = _leads(application, 2)
    spec = dataclasses.replace(SPEC, subject="{{ first_name }} " * 4)  # 403 chars for 100
    campaign_id = _campaign(campaigns, templates, long_name + others, spec)
    dispatcher = _dispatcher(application, campaigns, templates, client, Clock(DAY))
    report = await dispatcher.run_once()
    assert report is not None and (report.outcome, report.recipients, report.failed) == (
        "sent",
        2,
        1,
    )
    rows = {r.lead_id: r for r in _messages(campaign_id).values()}
    assert rows[long_name[0]].state == "failed"
    assert "subject" in rows[long_name[0]].last_error
    assert rows[long_name[0]].to_email not in mailgun.recipient_counts()
    _stop(campaigns, campaign_id)


async def test_a_template_stored_before_the_batch_rules_fails_its_batch_unsent(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    # Saved without today's check: it would uppercase the placeholder, not the name.
    old = dataclasses.replace(SPEC, subject="Hi {{ first_name|upper }}")
    campaign_id = _campaign(campaigns, templates, _leads(application, 2), old)
    dispatcher = _dispatcher(application, campaigns, templates, client, Clock(DAY))
    report = await dispatcher.run_once()
    assert report is not None and (report.outcome, report.failed) == ("failed", 2)
    assert "template.subject" in report.reason
    assert {r.state for r in _messages(campaign_id).values()} == {"failed"}
    assert not mailgun.attempts
    _stop(campaigns, campaign_id)


async def test_an_unknown_batch_mailgun_took_is_settled_from_its_events(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    """No webhook: Mailgun's Events API shows the batch accepted, so it is sent, never again."""
    campaign_id = _campaign(campaigns, templates, _leads(application, 4))
    now = utcnow()  # the fake's events carry real times
    clock = Clock(now)
    dispatcher = _dispatcher(application, campaigns, templates, client, clock, quiet_hours=False)
    mailgun.fail(1, 503, accepted=True)
    report = await dispatcher.run_once()
    assert report is not None and report.outcome == "unknown"
    # (Earlier tests' unknown batches are resolved too: only this one's outcome is checked.)
    assert report.batch_id not in await dispatcher.resolve_unknown(), "events take a moment"
    clock.at = now + dt.timedelta(minutes=3)
    assert (await dispatcher.resolve_unknown())[report.batch_id] == "sent"
    rows = _messages(campaign_id).values()
    assert {r.state for r in rows} == {"sent"}
    assert {r.provider_message_id for r in rows} == {mailgun.calls[0].message_id.strip("<>")}
    clock.at = now + dt.timedelta(days=1)
    assert await dispatcher.run_once() is None
    assert set(mailgun.recipient_counts().values()) == {1}
    _stop(campaigns, campaign_id)


async def test_an_unknown_batch_mailgun_never_took_is_sent_once_after_the_grace(
    application: Application,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    client: MailgunClient,
    mailgun: FakeMailgun,
) -> None:
    campaign_id = _campaign(campaigns, templates, _leads(application, 3))
    now = utcnow()
    clock = Clock(now)
    dispatcher = _dispatcher(application, campaigns, templates, client, clock, quiet_hours=False)
    mailgun.fail(1, 502, accepted=False)
    report = await dispatcher.run_once()
    assert report is not None and report.outcome == "unknown"
    clock.at = now + dt.timedelta(minutes=30)
    assert (await dispatcher.resolve_unknown())[report.batch_id] == "waiting"
    assert mailgun.calls == []
    clock.at = now + dt.timedelta(hours=1, minutes=1)
    assert (await dispatcher.resolve_unknown())[report.batch_id] == "requeued"
    resent = await dispatcher.run_once()
    assert resent is not None and resent.outcome == "sent"
    counts = mailgun.recipient_counts()
    assert len(counts) == 3 and set(counts.values()) == {1}
    assert any("/events?" in path for _, path in mailgun.attempts), "it asked Mailgun first"
    _stop(campaigns, campaign_id)
