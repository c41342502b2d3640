"""The campaign lifecycle on both backends: create (validated, one violation per bad field,
template version pinned), bulk send (snapshot, counts, idempotent replay, an existing draft),
dry run (counts and rendered samples, nothing stored), scheduling, pause, resume, cancel
(cancelled messages never claimed), completion and auto-pause through the dispatcher's hooks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from server.agents.email_reengagement import EmailDispatcher
from server.agents.email_reengagement.campaigns import CampaignDraft, CampaignLifecycle
from server.app import Application
from server.domain.campaigns import Audience, CampaignState, SuppressionReason
from server.domain.templates import TemplateSpec
from server.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from server.services.campaigns import Sender
from server.storage import models as m
from server.storage.campaigns import (
    CampaignRepository,
    MessageCounts,
    SuppressionRepository,
    TemplateRepository,
)
from support.builders import received_lead

DAY = dt.datetime(2026, 11, 2, 19, 0, 0)
KEYS = [b"lifecycle-test-key-0123456789abcd"]
SENDER = Sender(
    company_name="Sample Lending LLC",
    company_address="100 Main St, Springfield, IL 62701",
    public_base_url="https://apply.example.com",
)
SPEC = TemplateSpec(
    name="Come back",
    subject="{{ first_name }}, finish your application",
    html="<p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>",
    text="Hi {{ first_name }}, resume at {{ application_url }}",
)


class Clock:
    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


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
    yield CampaignLifecycle(application.db, campaigns, templates, SENDER, clock=clock)
    # Later tests' dispatchers must not see this test's campaigns.
    c = m.Campaign
    c.update(state=CampaignState.CANCELLED.value).where(
        c.state.not_in([CampaignState.COMPLETED.value, CampaignState.CANCELLED.value])
    ).execute()


def _dispatcher(
    application: Application,
    repos: tuple[CampaignRepository, TemplateRepository],
    lifecycle: CampaignLifecycle,
    clock: Clock,
) -> EmailDispatcher:
    campaigns, templates = repos
    return EmailDispatcher(
        campaigns,
        templates,
        None,
        SENDER,
        KEYS,
        application.db,
        from_address="offers@mg.example.test",
        clock=clock,
        batch_size=10,
        rate_per_second=1_000_000.0,
        hooks=lifecycle,
    )


async def _drain(dispatcher: EmailDispatcher, lifecycle: CampaignLifecycle) -> int:
    """What `EmailDispatcher.run` does each turn, until nothing is due."""
    batches = 0
    while True:
        await lifecycle.tick()
        report = await dispatcher.run_once()
        if report is None:
            return batches
        await lifecycle.after_batch(report)
        batches += 1


def _template(templates: TemplateRepository) -> str:
    return templates.create(SPEC, DAY).template_id


def _leads(application: Application, n: int, state: str = "IL") -> list[str]:
    return [received_lead(application, state=state) for _ in range(n)]


def _email(lead_id: str) -> str:
    return str(m.Lead.get_by_id(lead_id).email_normalized)


async def test_create_validates_every_field_at_once(
    lifecycle: CampaignLifecycle,
) -> None:
    draft = CampaignDraft(
        name=" ",
        kind="weekly",
        template_id="",
        audience=Audience(states=frozenset({"ZZ"}), credit_tiers=frozenset({"Q"})),
        lead_ids=("x",),
        abandoned_within_days=-1,
    )
    with pytest.raises(InvalidArgumentError) as e:
        await lifecycle.create(draft)
    assert e.value.reason == "INVALID_CAMPAIGN"
    fields = sorted(v.field for v in e.value.violations)
    assert fields == [
        "campaign.audience.abandoned_within_days",
        "campaign.audience.credit_tiers",
        "campaign.audience.lead_ids",
        "campaign.audience.states",
        "campaign.kind",
        "campaign.name",
        "campaign.template_id",
    ]
    with pytest.raises(NotFoundError) as nf:
        await lifecycle.create(CampaignDraft(name="n", template_id="no-such-template"))
    assert nf.value.reason == "TEMPLATE_NOT_FOUND"


async def test_create_pins_the_current_version_and_reads_back(
    lifecycle: CampaignLifecycle, repos: tuple[CampaignRepository, TemplateRepository]
) -> None:
    _, templates = repos
    template_id = _template(templates)
    templates.add_version(template_id, SPEC, DAY)
    view = await lifecycle.create(
        CampaignDraft(name="Spring", template_id=template_id, audience=Audience())
    )
    assert view.record.state == "draft" and view.record.template_version == 2
    got = await lifecycle.get(view.record.campaign_id)
    assert got.record.name == "Spring" and got.counts.recipients == 0
    page = await lifecycle.list_campaigns(50, "")
    assert view.record.campaign_id in [v.record.campaign_id for v in page.items]


async def test_bulk_send_snapshots_and_replays(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
) -> None:
    _, templates = repos
    template_id = _template(templates)
    leads = _leads(application, 6, state="VT")
    SuppressionRepository(application.db).suppress(
        [(_email(leads[0]), SuppressionReason.UNSUBSCRIBED, "admin")], DAY
    )
    draft = CampaignDraft(
        name="Vermont", template_id=template_id, audience=Audience(states=frozenset({"VT"}))
    )
    out = await lifecycle.bulk_send(idempotency_key="k1", scope="internal", draft=draft)
    assert (out.queued, out.suppressed, out.replay) == (5, 1, False)
    assert out.campaign is not None and out.campaign.record.state == "running"
    again = await lifecycle.bulk_send(idempotency_key="k1", scope="internal", draft=draft)
    assert again.replay and again.campaign is not None
    assert again.campaign.record.campaign_id == out.campaign.record.campaign_id
    assert (again.queued, again.suppressed) == (5, 1)
    assert (
        m.EmailMessage.select()
        .where(m.EmailMessage.campaign == out.campaign.record.campaign_id)
        .count()
        == 6
    )
    with pytest.raises(AlreadyExistsError) as e:
        other = CampaignDraft(name="Other", template_id=template_id, lead_ids=(leads[1],))
        await lifecycle.bulk_send(idempotency_key="k1", scope="internal", draft=other)
    assert e.value.reason == "IDEMPOTENCY_KEY_REUSED"
    # A lead created after the start is not added to the running campaign.
    _leads(application, 1, state="VT")
    dispatcher = _dispatcher(application, repos, lifecycle, clock)
    assert await _drain(dispatcher, lifecycle) == 1
    done = await lifecycle.get(out.campaign.record.campaign_id)
    assert done.record.state == "completed" and done.counts.count("simulated") == 5
    assert done.counts.as_stats().sent == 0  # simulated, not sent


async def test_an_existing_draft_is_sent_once(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
) -> None:
    _, templates = repos
    leads = _leads(application, 3)
    view = await lifecycle.create(
        CampaignDraft(name="Draft", template_id=_template(templates), lead_ids=tuple(leads))
    )
    cid = view.record.campaign_id
    out = await lifecycle.bulk_send(idempotency_key="d1", scope="internal", campaign_id=cid)
    assert out.queued == 3 and not out.replay
    replay = await lifecycle.bulk_send(idempotency_key="d1", scope="internal", campaign_id=cid)
    assert replay.replay and replay.queued == 3
    with pytest.raises(FailedPreconditionError) as e:
        await lifecycle.bulk_send(idempotency_key="d2", scope="internal", campaign_id=cid)
    assert e.value.reason == "CAMPAIGN_ALREADY_SENT"
    with pytest.raises(NotFoundError):
        await lifecycle.bulk_send(idempotency_key="", scope="internal", campaign_id="nope")
    with pytest.raises(InvalidArgumentError):
        await lifecycle.bulk_send(idempotency_key="", scope="internal")


async def test_dry_run_counts_and_renders_without_storing(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
) -> None:
    _, templates = repos
    _leads(application, 5, state="WY")
    before = m.Campaign.select().count(), m.EmailMessage.select().count()
    draft = CampaignDraft(
        name="Dry", template_id=_template(templates), audience=Audience(states=frozenset({"WY"}))
    )
    out = await lifecycle.bulk_send(
        idempotency_key="dry", scope="internal", draft=draft, dry_run=True
    )
    assert (out.queued, out.suppressed) == (5, 0) and out.campaign is None
    assert len(out.samples) == 3
    for sample in out.samples:
        lead = m.Lead.get_by_id(sample.lead_id)
        assert sample.email.subject == f"{lead.first_name}, finish your application"
        assert "Sample Lending LLC" in sample.email.text
        assert "/api/unsubscribe/preview" in sample.email.html
    assert (m.Campaign.select().count(), m.EmailMessage.select().count()) == before


async def test_a_scheduled_campaign_starts_when_due(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
) -> None:
    _, templates = repos
    leads = _leads(application, 2)
    draft = CampaignDraft(
        name="Later",
        template_id=_template(templates),
        lead_ids=tuple(leads),
        send_at=DAY + dt.timedelta(hours=1),
    )
    out = await lifecycle.bulk_send(idempotency_key="s1", scope="internal", draft=draft)
    assert out.campaign is not None and out.campaign.record.state == "scheduled"
    assert out.queued == 0
    cid = out.campaign.record.campaign_id
    dispatcher = _dispatcher(application, repos, lifecycle, clock)
    assert await _drain(dispatcher, lifecycle) == 0
    assert (await lifecycle.get(cid)).record.state == "scheduled"
    clock.at = DAY + dt.timedelta(hours=1, seconds=1)
    assert await _drain(dispatcher, lifecycle) == 1
    done = await lifecycle.get(cid)
    assert done.record.state == "completed" and done.record.recipients == 2


async def test_pause_resume_and_cancel(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
    clock: Clock,
) -> None:
    campaigns, templates = repos
    leads = _leads(application, 25)
    draft = CampaignDraft(name="P", template_id=_template(templates), lead_ids=tuple(leads))
    out = await lifecycle.bulk_send(idempotency_key="p1", scope="internal", draft=draft)
    assert out.campaign is not None
    cid = out.campaign.record.campaign_id
    paused = await lifecycle.pause(cid)
    assert paused.record.state == "paused" and paused.record.paused_reason == "operator"
    dispatcher = _dispatcher(application, repos, lifecycle, clock)
    assert await _drain(dispatcher, lifecycle) == 0  # a paused campaign's messages wait
    with pytest.raises(FailedPreconditionError) as e:
        await lifecycle.pause(cid)
    assert e.value.reason == "INVALID_CAMPAIGN_TRANSITION"
    resumed = await lifecycle.resume(cid)
    assert resumed.record.state == "running" and resumed.record.paused_reason == ""
    report = await dispatcher.run_once()  # one batch of 10, then cancel
    assert report is not None and report.recipients == 10
    cancelled = await lifecycle.cancel(cid)
    assert cancelled.record.state == "cancelled"
    assert await _drain(dispatcher, lifecycle) == 0  # cancelled: never claimed
    stats = (await lifecycle.get(cid)).counts
    assert stats.count("simulated") == 10 and stats.count("queued") == 15
    with pytest.raises(FailedPreconditionError):
        await lifecycle.resume(cid)
    assert campaigns.get(cid).state == "cancelled"


async def test_a_campaign_pauses_itself_after_consecutive_failures(
    application: Application,
    lifecycle: CampaignLifecycle,
    repos: tuple[CampaignRepository, TemplateRepository],
) -> None:
    campaigns, templates = repos
    leads = _leads(application, 2)
    draft = CampaignDraft(name="F", template_id=_template(templates), lead_ids=tuple(leads))
    out = await lifecycle.bulk_send(idempotency_key="f1", scope="internal", draft=draft)
    assert out.campaign is not None
    cid = out.campaign.record.campaign_id
    m.Campaign.update(consecutive_failures=50).where(m.Campaign.id == cid).execute()
    from server.agents.email_reengagement import DispatchReport

    await lifecycle.after_batch(DispatchReport("b", cid, "failed", 0))
    record = campaigns.get(cid)
    assert record.state == "paused" and record.paused_reason == "CONSECUTIVE_FAILURES"


class _CountingRepository:
    """The part of CampaignRepository `after_batch` reads, with canned statistics: complaints
    over the threshold once `complaining` is set."""

    def __init__(self, campaign_id: str) -> None:
        self.campaign_id = campaign_id
        self.state = CampaignState.RUNNING.value
        self.complaining = False
        self.stats_calls = 0
        self.paused_reason = ""

    def get(self, campaign_id: str) -> Any:
        return SimpleNamespace(campaign_id=campaign_id, state=self.state, consecutive_failures=0)

    def stats(self, ids: list[str]) -> dict[str, MessageCounts]:
        self.stats_calls += 1
        complained = 10 if self.complaining else 0
        counts = MessageCounts(by_state={"sent": 1000}, delivered=1000, complained=complained)
        return {i: counts for i in ids}

    def transition(self, campaign_id: str, _from: Any, to: Any, _at: Any, reason: str) -> bool:
        self.state, self.paused_reason = to.value, reason
        return True

    def complete_if_drained(self, campaign_id: str, now: Any) -> bool:
        return False


async def test_the_rate_rules_are_counted_after_the_first_batch_then_at_intervals(
    application: Application, repos: tuple[CampaignRepository, TemplateRepository]
) -> None:
    """Counting a campaign's messages scans its snapshot: not after every batch of 1,000 (that
    made a 100,000-recipient campaign quadratic), but after its first and then every
    `rate_check_seconds`; a complaint rate over the threshold still pauses it within that."""
    from server.agents.email_reengagement import DispatchReport

    repo = _CountingRepository("c1")
    now = [0.0]
    lifecycle = CampaignLifecycle(
        application.db,
        repo,  # type: ignore[arg-type]
        repos[1],
        SENDER,
        rate_check_seconds=5.0,
        monotonic=lambda: now[0],
    )
    report = DispatchReport("b", "c1", "sent", 1000)
    await lifecycle.after_batch(report)
    assert repo.stats_calls == 1 and repo.state == "running"
    repo.complaining = True
    for at in (1.0, 2.0, 4.9):
        now[0] = at
        await lifecycle.after_batch(report)
    assert repo.stats_calls == 1 and repo.state == "running"
    now[0] = 5.0
    await lifecycle.after_batch(report)
    assert repo.stats_calls == 2
    assert repo.state == "paused" and repo.paused_reason == "COMPLAINT_RATE"
