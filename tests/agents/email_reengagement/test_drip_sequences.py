"""Drip sequences on both backends, driven by a controllable clock through the campaign
lifecycle's turn and the dispatcher, against the fake Mailgun: an abandoned application enrols,
receives its steps (+1 h, +1 day, +3 days) with each step's own template, the frequency cap
spaces them, and the sequence ends when the application moves on, the lead converts, the
address is suppressed, or after the last step. Plus the drip's validation, enrolment of
applications abandoned after the start, and the cap across campaigns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from server.adapters.mailgun import MailgunClient
from server.agents.email_reengagement import EmailDispatcher
from server.agents.email_reengagement.campaigns import (
    KIND_DRIP,
    CampaignDraft,
    CampaignLifecycle,
)
from server.app import Application
from server.domain.campaigns import (
    Audience,
    CampaignState,
    DripStep,
    SuppressionReason,
    default_sequence,
)
from server.domain.templates import TemplateSpec
from server.errors import InvalidArgumentError, NotFoundError
from server.services.campaigns import Sender
from server.storage import models as m
from server.storage.campaigns import CampaignRepository, SuppressionRepository, TemplateRepository
from server.storage.drips import DripRepository
from support.builders import received_lead
from support.fake_mailgun import FakeMailgun

# 19:00 UTC in November: 13:00 in Illinois, outside quiet hours; so are all the steps below.
DAY = dt.datetime(2026, 11, 2, 19, 0, 0)
LEFT = DAY + dt.timedelta(minutes=5)  # when the test's applications were abandoned
KEYS = [b"drip-test-key-0123456789abcdefgh"]
SENDER = Sender(
    company_name="Sample Lending LLC",
    company_address="100 Main St, Springfield, IL 62701",
    public_base_url="https://apply.example.com",
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
async def mailgun(fake: FakeMailgun) -> Any:
    fake.reset()
    client = MailgunClient(api_key=fake.api_key, domain=fake.domain, base_url=fake.url)
    yield fake, client
    await client.aclose()
    fake.reset()


@pytest.fixture
def clock() -> Clock:
    return Clock(DAY)


@pytest.fixture
def repos(application: Application) -> tuple[CampaignRepository, TemplateRepository]:
    return CampaignRepository(application.db), TemplateRepository(application.db)


@pytest.fixture
def lifecycle(
    application: Application, repos: tuple[CampaignRepository, TemplateRepository], clock: Clock
) -> Iterator[CampaignLifecycle]:
    campaigns, templates = repos
    # Earlier tests' applications stopped before this one's drips start: none enrols.
    m.Lead.update(updated_at=DAY - dt.timedelta(days=30)).execute()
    ticks = iter(range(10**9))
    # Every turn enrols (a monotonic clock that moves an hour a call).
    yield CampaignLifecycle(
        application.db,
        campaigns,
        templates,
        SENDER,
        clock=clock,
        monotonic=lambda: float(next(ticks) * 3600),
    )
    c = m.Campaign
    c.update(state=CampaignState.CANCELLED.value).where(
        c.state.not_in([CampaignState.COMPLETED.value, CampaignState.CANCELLED.value])
    ).execute()


def _dispatcher(
    application: Application,
    repos: tuple[CampaignRepository, TemplateRepository],
    lifecycle: CampaignLifecycle,
    clock: Clock,
    client: MailgunClient,
) -> EmailDispatcher:
    campaigns, templates = repos
    return EmailDispatcher(
        campaigns,
        templates,
        client,
        SENDER,
        KEYS,
        application.db,
        from_address="offers@mg.example.test",
        clock=clock,
        batch_size=10,
        rate_per_second=1_000_000.0,
        hooks=lifecycle,
    )


async def _turns(dispatcher: EmailDispatcher, lifecycle: CampaignLifecycle) -> None:
    """What `EmailDispatcher.run` does each turn, until nothing is due."""
    while True:
        await lifecycle.tick()
        report = await dispatcher.run_once()
        if report is None:
            return
        await lifecycle.after_batch(report)


def _templates(templates: TemplateRepository, n: int = 3) -> list[str]:
    return [
        templates.create(
            TemplateSpec(
                name=f"Step {i + 1}",
                subject=f"Step {i + 1}: {{{{ first_name }}}}, finish your application",
                html="<p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>",
                text="Hi {{ first_name }}, resume at {{ application_url }}",
            ),
            DAY,
        ).template_id
        for i in range(n)
    ]


def _abandoned(application: Application, n: int, at: dt.datetime = LEFT) -> list[str]:
    """`n` applications that stopped at `at` (received, never finished)."""
    ids = [received_lead(application) for _ in range(n)]
    m.Lead.update(updated_at=at).where(m.Lead.id.in_(ids)).execute()
    return ids


def _email(lead_id: str) -> str:
    return str(m.Lead.get_by_id(lead_id).email_normalized)


def _received(fake: FakeMailgun) -> dict[str, list[str]]:
    """Each address: the subjects it was sent, in order (placeholders substituted)."""
    out: dict[str, list[str]] = {}
    for call in fake.calls:
        for address in call.to:
            out.setdefault(address, []).append(str(call.get("subject")).split(":")[0])
    return out


async def _start(lifecycle: CampaignLifecycle, steps: tuple[DripStep, ...], **kw: Any) -> str:
    draft = CampaignDraft(name="Come back", kind=KIND_DRIP, steps=steps, **kw)
    out = await lifecycle.bulk_send(idempotency_key="", scope="internal", draft=draft)
    assert out.campaign is not None
    assert out.campaign.record.state == CampaignState.RUNNING.value
    return out.campaign.record.campaign_id


async def test_an_abandoned_application_gets_its_steps_until_it_finishes(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
    mailgun: tuple[FakeMailgun, MailgunClient],
) -> None:
    fake, client = mailgun
    steps = default_sequence(_templates(repos[1]))
    stays, finishes = _abandoned(application, 2)
    decided = _abandoned(application, 1)[0]
    m.Lead.update(status="declined").where(m.Lead.id == decided).execute()
    cid = await _start(lifecycle, steps)
    view = await lifecycle.get(cid)
    assert view.record.recipients == 2, "a declined application is not an abandoned one"
    assert [s.template_version for s in view.steps] == [1, 1, 1]
    dispatcher = _dispatcher(application, repos, lifecycle, clock, client)
    a, b = _email(stays), _email(finishes)

    clock.at = LEFT + dt.timedelta(minutes=59)
    await _turns(dispatcher, lifecycle)
    assert fake.calls == [], "the first step falls due an hour after the application stopped"

    clock.at = LEFT + dt.timedelta(hours=1, seconds=1)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {a: ["Step 1"], b: ["Step 1"]}

    # One application moves on (it reached a dealer): its sequence ends there.
    m.Lead.update(status="delivered").where(m.Lead.id == finishes).execute()
    clock.at = LEFT + dt.timedelta(days=1, seconds=1)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {a: ["Step 1"], b: ["Step 1"]}, (
        "step 2 is due, but the frequency cap holds it until 24 h after step 1"
    )
    clock.at = LEFT + dt.timedelta(hours=25, seconds=2)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {a: ["Step 1", "Step 2"], b: ["Step 1"]}

    clock.at = LEFT + dt.timedelta(days=3, seconds=1)
    await _turns(dispatcher, lifecycle)
    clock.at = LEFT + dt.timedelta(days=30)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {a: ["Step 1", "Step 2", "Step 3"], b: ["Step 1"]}
    assert DripRepository.enrollments(cid) == {"completed": 1, "finished": 1}
    rows = m.EmailMessage.select().where(m.EmailMessage.campaign == cid)
    assert sorted((r.to_email, r.step_index, r.state) for r in rows) == sorted(
        [(a, 0, "sent"), (a, 1, "sent"), (a, 2, "sent"), (b, 0, "sent")]
    )
    # A drip runs until it is cancelled: it does not complete when its queue drains.
    assert (await lifecycle.get(cid)).record.state == CampaignState.RUNNING.value


async def test_conversion_unsubscribe_and_erasure_end_a_sequence(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
    mailgun: tuple[FakeMailgun, MailgunClient],
) -> None:
    fake, client = mailgun
    steps = (DripStep(dt.timedelta(hours=1), _templates(repos[1], 1)[0]),)
    sold, unsubscribed, erased, mailed = _abandoned(application, 4)
    cid = await _start(lifecycle, steps)
    assert (await lifecycle.get(cid)).record.recipients == 4
    m.Lead.update(status="sold").where(m.Lead.id == sold).execute()
    SuppressionRepository(application.db).suppress(
        [(_email(unsubscribed), SuppressionReason.UNSUBSCRIBED, "")], DAY
    )
    m.Lead.delete().where(m.Lead.id == erased).execute()
    clock.at = LEFT + dt.timedelta(hours=2)
    await _turns(_dispatcher(application, repos, lifecycle, clock, client), lifecycle)
    assert _received(fake) == {_email(mailed): ["Step 1"]}
    assert DripRepository.enrollments(cid) == {
        "converted": 1,
        "unsubscribed": 1,
        "lead_gone": 1,
        "completed": 1,
    }


async def test_applications_abandoned_after_the_start_enrol_on_a_later_turn(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
    mailgun: tuple[FakeMailgun, MailgunClient],
) -> None:
    fake, client = mailgun
    steps = (DripStep(dt.timedelta(minutes=30), _templates(repos[1], 1)[0]),)
    cid = await _start(lifecycle, steps, audience=Audience(states=frozenset({"IL"})))
    assert (await lifecycle.get(cid)).record.recipients == 0
    clock.at = DAY + dt.timedelta(hours=1)
    later = _abandoned(application, 1, at=clock.at)[0]
    elsewhere = _abandoned(application, 1, at=clock.at)[0]
    m.Lead.update(state="WI").where(m.Lead.id == elsewhere).execute()
    dispatcher = _dispatcher(application, repos, lifecycle, clock, client)
    await _turns(dispatcher, lifecycle)
    assert (await lifecycle.get(cid)).record.recipients == 1, "the audience's filters apply"
    clock.at += dt.timedelta(minutes=31)
    await _turns(dispatcher, lifecycle)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {_email(later): ["Step 1"]}, "each step once"


async def test_a_drip_is_validated_field_by_field(
    lifecycle: CampaignLifecycle, repos: tuple[CampaignRepository, TemplateRepository]
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await lifecycle.create(
            CampaignDraft(
                name="Bad drip",
                kind=KIND_DRIP,
                template_id="t",
                lead_ids=("x",),
                steps=(
                    DripStep(dt.timedelta(minutes=-1), " "),
                    DripStep(dt.timedelta(days=91), "t"),
                ),
            )
        )
    assert caught.value.reason == "INVALID_CAMPAIGN"
    assert sorted(v.field for v in caught.value.violations) == [
        "campaign.audience.lead_ids",
        "campaign.steps[0].delay_minutes",
        "campaign.steps[0].template_id",
        "campaign.steps[1].delay_minutes",
        "campaign.template_id",
    ]
    with pytest.raises(InvalidArgumentError) as caught:
        await lifecycle.create(CampaignDraft(name="No steps", kind=KIND_DRIP))
    assert [v.field for v in caught.value.violations] == ["campaign.steps"]
    with pytest.raises(NotFoundError):
        await lifecycle.create(
            CampaignDraft(
                name="Unknown template",
                kind=KIND_DRIP,
                steps=(DripStep(dt.timedelta(hours=1), "no-such-template"),),
            )
        )


async def test_the_frequency_cap_holds_across_campaigns(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
    mailgun: tuple[FakeMailgun, MailgunClient],
) -> None:
    fake, client = mailgun
    template = _templates(repos[1], 1)[0]
    leads = _abandoned(application, 2)
    dispatcher = _dispatcher(application, repos, lifecycle, clock, client)
    first = CampaignDraft(name="First", template_id=template, lead_ids=(leads[0],))
    await lifecycle.bulk_send(idempotency_key="cap-1", scope="internal", draft=first)
    await _turns(dispatcher, lifecycle)
    clock.at = DAY + dt.timedelta(hours=3)
    second = CampaignDraft(name="Second", template_id=template, lead_ids=tuple(leads))
    out = await lifecycle.bulk_send(idempotency_key="cap-2", scope="internal", draft=second)
    assert out.campaign is not None
    await _turns(dispatcher, lifecycle)
    a, b = _email(leads[0]), _email(leads[1])
    assert _received(fake) == {a: ["Step 1"], b: ["Step 1"]}, "a: once today; b: not capped"
    held = m.EmailMessage.get(
        (m.EmailMessage.campaign == out.campaign.record.campaign_id)
        & (m.EmailMessage.to_email == a)
    )
    assert held.state == "queued" and held.next_attempt_at == DAY + dt.timedelta(days=1)
    clock.at = DAY + dt.timedelta(days=1, seconds=1)
    await _turns(dispatcher, lifecycle)
    assert _received(fake) == {a: ["Step 1", "Step 1"], b: ["Step 1"]}
