"""Email campaign storage (SQLite and PostgreSQL): versioned templates, suppressions, webhook
token replay, the recipient snapshot and its filters, exactly-once batch claims, Mailgun events,
grouped stats, and the statement counts of the set-based parts."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from server.app import Application
from server.domain.campaigns import Audience, CampaignState, SuppressionReason
from server.domain.email import EventSeverity, MailgunEvent, MailgunEventType
from server.domain.leads import Page
from server.domain.templates import TemplateSpec
from server.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from server.storage import models as m
from server.storage.campaigns import (
    CampaignRepository,
    NewSuppression,
    SuppressionRepository,
    TemplateRepository,
    prune_webhook_tokens,
    remember_webhook_token,
)

_n = itertools.count()
NOW = dt.datetime(2026, 11, 1, 12, 0, 0)
LEASE = dt.timedelta(minutes=5)
SPEC = TemplateSpec(name="Welcome", subject="Hi {{ first_name }}", html="<p>Hi</p>", text="Hi")


@pytest.fixture(scope="module")
def db(application: Application) -> Any:
    application.db.db.connect(reuse_if_open=True)
    return application.db


@pytest.fixture(scope="module")
def templates(db: Any) -> TemplateRepository:
    return TemplateRepository(db)


@pytest.fixture(scope="module")
def suppressions(db: Any) -> SuppressionRepository:
    return SuppressionRepository(db)


@pytest.fixture(scope="module")
def campaigns(db: Any) -> CampaignRepository:
    return CampaignRepository(db)


def _source() -> str:
    return f"src{next(_n)}"


def _email() -> str:
    return f"person{next(_n)}@example.com"


def add_leads(rows: list[dict[str, Any]]) -> list[str]:
    """Leads straight into the table (one insert), with a granted `tcpa` consent unless a row
    says `consent=False` (or `consent=None`: no consent row), and credit checks from `tiers`
    (oldest first)."""
    leads, consents, checks = [], [], []
    for row in rows:
        lead_id = str(m.new_id())
        created = row.get("created_at", NOW - dt.timedelta(days=1))
        email = row.get("email", _email())
        leads.append(
            {
                "id": lead_id,
                "status": row.get("status", "delivered"),
                "outcome": "accepted",
                "source": row.get("source", "website"),
                "first_name": "Pat",
                "last_name": "Doe",
                "email": email,
                "email_normalized": email.strip().lower(),
                "phone_e164": "+13125550100",
                "date_of_birth": "1990-01-01",
                "monthly_income_cents": "400000",
                "street": "1 A St",
                "city": "X",
                "state": row.get("state", "IL"),
                "zip_code": "62701",
                "created_at": created,
                "updated_at": row.get("updated_at", created),
            }
        )
        consent = row.get("consent", True)
        if consent is not None:
            consents.append(
                {
                    "lead": lead_id,
                    "kind": "tcpa",
                    "granted": consent,
                    "consent_text": "ok",
                    "consented_at": created,
                }
            )
        for i, tier in enumerate(row.get("tiers", ())):
            checks.append(
                {
                    "id": str(m.new_id()),
                    "lead": lead_id,
                    "source": "simulated",
                    "decision": "prequalified",
                    "tier": tier,
                    "created_at": created + dt.timedelta(minutes=i),
                }
            )
    m.Lead.insert_many(leads).execute()
    if consents:
        m.LeadConsent.insert_many(consents).execute()
    if checks:
        m.CreditCheck.insert_many(checks).execute()
    return [str(lead["id"]) for lead in leads]


def _campaign(
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    state: CampaignState = CampaignState.DRAFT,
) -> tuple[str, str]:
    template = templates.create(SPEC, NOW)
    record = campaigns.create(
        name="c",
        kind="one_off",
        template_id=template.template_id,
        template_version=1,
        audience_json="{}",
        steps_json="[]",
        state=state,
        now=NOW,
    )
    return record.campaign_id, template.template_id


def _recipients(campaign_id: str, state: str | None = None) -> set[str]:
    e = m.EmailMessage
    query = e.select(e.lead).where(e.campaign == campaign_id)
    if state is not None:
        query = query.where(e.state == state)
    return {str(r.lead_id) for r in query}


def _materialise(
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    audience: Audience | list[str],
) -> tuple[str, tuple[int, int]]:
    campaign_id, template_id = _campaign(campaigns, templates)
    return campaign_id, campaigns.materialise(campaign_id, audience, template_id, 1, NOW)


# --- templates -------------------------------------------------------------------------------


def test_template_versions(templates: TemplateRepository) -> None:
    first = templates.create(SPEC, NOW)
    assert (first.version, first.current_version, first.spec) == (1, 1, SPEC)
    changed = TemplateSpec(name="Welcome 2", subject="Hello", html="", text="Hello there")
    second = templates.add_version(first.template_id, changed, NOW + dt.timedelta(minutes=1))
    assert (second.version, second.current_version, second.spec) == (2, 2, changed)
    assert templates.get(first.template_id).spec == changed
    pinned = templates.get(first.template_id, 1)
    assert (pinned.subject, pinned.current_version, pinned.name) == (SPEC.subject, 2, "Welcome 2")
    for missing in (lambda: templates.get(first.template_id, 3), lambda: templates.get("nope")):
        with pytest.raises(NotFoundError) as e:
            missing()
        assert e.value.reason == "TEMPLATE_NOT_FOUND"
    with pytest.raises(NotFoundError):
        templates.add_version(str(m.new_id()), changed, NOW)


def test_template_list_is_newest_first_and_paginated(templates: TemplateRepository) -> None:
    later = dt.datetime(2100, 1, 1)
    made = [templates.create(SPEC, later + dt.timedelta(seconds=i)).template_id for i in range(3)]
    first = templates.list(Page(size=2))
    assert [t.template_id for t in first.items] == made[::-1][:2]
    assert first.next_page_token
    second = templates.list(Page(size=2, token=first.next_page_token))
    assert second.items[0].template_id == made[0]
    with pytest.raises(InvalidArgumentError) as e:
        templates.list(Page(size=2, token="garbage!"))
    assert e.value.reason == "INVALID_PAGE_TOKEN"


# --- suppressions and tokens -----------------------------------------------------------------


def test_suppression_is_idempotent_and_looked_up_normalised(
    suppressions: SuppressionRepository,
) -> None:
    a, b = _email(), _email()
    entries: list[Any] = [
        (a, SuppressionReason.UNSUBSCRIBED, "unsubscribe"),
        (" " + a.upper(), SuppressionReason.COMPLAINT, "webhook"),
        NewSuppression(b, SuppressionReason.HARD_BOUNCE, "webhook", "c1", "m1"),
    ]
    assert suppressions.suppress(entries, NOW) == 2
    assert suppressions.suppress(entries, NOW) == 0
    found = suppressions.suppressed_among([a.upper(), b, "other@example.com", ""])
    assert found == {a: "unsubscribed", b: "hard_bounce"}
    assert suppressions.suppressed_among([]) == {}
    listed = suppressions.list(Page(size=500)).items
    mine = {s.address: s for s in listed if s.address in (a, b)}
    assert mine[b].source == "webhook" and mine[b].message_id == "m1"
    assert mine[a].source == "unsubscribe"
    assert suppressions.remove(a.upper()) is True
    assert suppressions.remove(a) is False
    assert suppressions.suppressed_among([a]) == {}


def test_suppression_list_pages(suppressions: SuppressionRepository) -> None:
    later = dt.datetime(2100, 1, 1)
    addresses = [_email() for _ in range(3)]
    for i, address in enumerate(addresses):
        suppressions.suppress(
            [(address, SuppressionReason.MANUAL, "admin")], later + dt.timedelta(seconds=i)
        )
    first = suppressions.list(Page(size=2))
    assert [s.address for s in first.items] == addresses[::-1][:2]
    second = suppressions.list(Page(size=2, token=first.next_page_token))
    assert second.items[0].address == addresses[0]


def test_webhook_token_replay(db: Any) -> None:
    token = f"tok-{next(_n)}"
    with db.transaction():
        assert remember_webhook_token(db, token, NOW) is True
    with db.transaction():
        assert remember_webhook_token(db, token, NOW) is False
    assert prune_webhook_tokens(NOW + dt.timedelta(seconds=1)) >= 1
    assert remember_webhook_token(db, token, NOW) is True


# --- campaigns -------------------------------------------------------------------------------


def test_campaign_create_is_idempotent_per_key(
    campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    template = templates.create(SPEC, NOW)
    args: dict[str, Any] = {
        "name": "c",
        "kind": "one_off",
        "template_id": template.template_id,
        "template_version": 1,
        "audience_json": "{}",
        "steps_json": "[]",
        "state": CampaignState.DRAFT,
        "now": NOW,
        "idempotency_scope": "key-1",
        "idempotency_key": f"k{next(_n)}",
        "request_hash": "h1",
    }
    first = campaigns.create(**args)
    again = campaigns.create(**args)
    assert (again.campaign_id, again.replay, first.replay) == (first.campaign_id, True, False)
    with pytest.raises(AlreadyExistsError) as e:
        campaigns.create(**{**args, "request_hash": "h2"})
    assert e.value.reason == "IDEMPOTENCY_KEY_REUSED"
    other_scope = campaigns.create(**{**args, "idempotency_scope": "key-2"})
    assert other_scope.campaign_id != first.campaign_id
    unkeyed = [campaigns.create(**{**args, "idempotency_key": ""}) for _ in range(2)]
    assert unkeyed[0].campaign_id != unkeyed[1].campaign_id
    with pytest.raises(NotFoundError):
        campaigns.create(**{**args, "idempotency_key": "", "template_version": 9})


def test_campaign_transition_is_conditional(
    campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    campaign_id, _ = _campaign(campaigns, templates)
    draft, running, paused = CampaignState.DRAFT, CampaignState.RUNNING, CampaignState.PAUSED
    assert campaigns.transition(campaign_id, [draft], running, NOW)
    assert not campaigns.transition(campaign_id, [draft], running, NOW)
    assert campaigns.transition(campaign_id, [running], paused, NOW, "COMPLAINT_RATE")
    record = campaigns.get(campaign_id)
    assert (record.state, record.paused_reason) == ("paused", "COMPLAINT_RATE")
    assert campaigns.transition(campaign_id, [paused], running, NOW)
    assert campaigns.get(campaign_id).paused_reason == ""
    assert not campaigns.transition(str(m.new_id()), [draft], running, NOW)
    with pytest.raises(NotFoundError) as e:
        campaigns.get("nope")
    assert e.value.reason == "CAMPAIGN_NOT_FOUND"


def test_campaign_list_is_newest_first(
    campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    later = dt.datetime(2100, 1, 1)
    made = [
        campaigns.create(
            name=f"c{i}",
            kind="one_off",
            template_id=None,
            template_version=0,
            audience_json="{}",
            steps_json="[]",
            state=CampaignState.DRAFT,
            now=later + dt.timedelta(seconds=i),
        ).campaign_id
        for i in range(3)
    ]
    first = campaigns.list(Page(size=2))
    assert [c.campaign_id for c in first.items] == made[::-1][:2]
    second = campaigns.list(Page(size=2, token=first.next_page_token))
    assert second.items[0].campaign_id == made[0]


# --- materialise -----------------------------------------------------------------------------


def test_materialise_filters(campaigns: CampaignRepository, templates: TemplateRepository) -> None:
    src = _source()
    day = dt.timedelta(days=1)
    ids = add_leads(
        [
            {"source": src, "status": "delivered", "state": "IL", "tiers": ["A"]},  # 0
            {"source": src, "status": "declined", "state": "WI", "tiers": ["A", "C"]},  # 1
            {"source": src, "status": "sold", "state": "IL", "tiers": ["C"]},  # 2: converted
            {"source": src, "status": "received", "updated_at": NOW - 3 * day},  # 3: abandoned
            {"source": src, "status": "unrouted", "created_at": NOW - 10 * day},  # 4: abandoned
            {"source": src, "status": "needs_review", "created_at": NOW - 30 * day},  # 5
        ]
    )

    def picked(**filters: Any) -> set[str]:
        audience = Audience(**{"sources": frozenset({src}), **filters})
        campaign_id, _ = _materialise(campaigns, templates, audience)
        return _recipients(campaign_id)

    everyone = set(ids)
    assert picked() == everyone - {ids[2]}
    assert picked(exclude_converted=False) == everyone
    assert picked(statuses={"declined", "sold"}) == {ids[1]}
    assert picked(states={"WI"}) == {ids[1]}
    assert picked(credit_tiers={"A"}) == {ids[0]}  # lead 1's latest check is C
    assert picked(credit_tiers={"C"}, exclude_converted=False) == {ids[1], ids[2]}
    assert picked(created_after=NOW - 11 * day, created_before=NOW - 2 * day) == {ids[4]}
    assert picked(abandoned_after=NOW - 4 * day, abandoned_before=NOW - 2 * day) == {ids[3]}
    assert picked(abandoned_before=NOW) == {ids[3], ids[4], ids[5]}
    assert picked(sources={"other-source"}) == set()


def test_materialise_always_excludes(
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    suppressions: SuppressionRepository,
) -> None:
    src = _source()
    shared, blocked = _email(), _email()
    ids = add_leads(
        [
            {"source": src},  # 0: gets one
            {"source": src, "consent": False},  # 1: consent refused
            {"source": src, "consent": None},  # 2: no consent row
            {"source": src, "email": ""},  # 3: no address
            {"source": src, "email": shared.upper(), "created_at": NOW - dt.timedelta(days=5)},
            {"source": src, "email": shared, "created_at": NOW - dt.timedelta(days=2)},  # 5: dup
            {"source": src, "email": blocked},  # 6: suppressed
            {"source": src, "email": blocked, "created_at": NOW - dt.timedelta(days=9)},  # 7
        ]
    )
    suppressions.suppress([(blocked, SuppressionReason.COMPLAINT, "webhook")], NOW)
    campaign_id, counts = _materialise(campaigns, templates, Audience(sources={src}))
    assert counts == (2, 1)
    assert _recipients(campaign_id, "queued") == {ids[0], ids[4]}
    assert _recipients(campaign_id, "suppressed") == {ids[7]}  # the earliest of the address
    record = campaigns.get(campaign_id)
    assert (record.recipients, record.suppressed) == (2, 1)
    # Explicit ids get the same exclusions; unknown ids are ignored.
    campaign_id, counts = _materialise(campaigns, templates, [*ids, "no-such-lead"])
    assert counts == (2, 1)
    assert _recipients(campaign_id) == {ids[0], ids[4], ids[7]}
    campaign_id, counts = _materialise(campaigns, templates, [ids[5], ids[1]])
    assert counts == (1, 0)
    assert _recipients(campaign_id) == {ids[5]}
    # A second call adds no one twice, nor any address the campaign already has.
    template_id = campaigns.get(campaign_id).template_id
    assert campaigns.materialise(campaign_id, [ids[5]], template_id, 1, NOW) == (1, 0)
    assert campaigns.materialise(campaign_id, ids, template_id, 1, NOW) == (2, 1)
    assert _recipients(campaign_id) == {ids[5], ids[0], ids[7]}
    e = m.EmailMessage
    row = e.get((e.campaign == campaign_id) & (e.lead == ids[5]))
    assert (row.to_email, row.template_version, row.kind) == (shared, 1, "marketing")
    assert len(row.id) == 36 and row.id == row.id.lower() and row.id[14] == "4"


@contextmanager
def counting(application: Application) -> Iterator[list[str]]:
    """The first word of every statement the application's database executes meanwhile."""
    database = application.db.db
    seen: list[str] = []
    original = database.execute_sql

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append(sql.split(None, 1)[0].upper() if sql.strip() else "")
        return original(sql, params, *args, **kwargs)

    database.execute_sql = execute_sql  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del database.execute_sql


def test_materialise_statement_count_does_not_grow(
    application: Application, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    counts = []
    for size in (5, 300):
        src = _source()
        add_leads([{"source": src} for _ in range(size)])
        campaign_id, template_id = _campaign(campaigns, templates)
        with counting(application) as seen:
            queued = campaigns.materialise(
                campaign_id, Audience(sources={src}), template_id, 1, NOW
            )
        assert queued == (size, 0)
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 6, counts


# --- dispatch --------------------------------------------------------------------------------


def _running(
    campaigns: CampaignRepository, templates: TemplateRepository, size: int
) -> tuple[str, list[str]]:
    src = _source()
    ids = add_leads([{"source": src} for _ in range(size)])
    campaign_id, _ = _materialise(campaigns, templates, Audience(sources={src}))
    assert campaigns.transition(campaign_id, [CampaignState.DRAFT], CampaignState.RUNNING, NOW)
    return campaign_id, ids


def _drain(campaigns: CampaignRepository, now: dt.datetime) -> None:
    """Marks every due message sent, so later tests start with nothing due."""
    while (batch := campaigns.claim_batch("drain", now, LEASE)) is not None:
        assert campaigns.mark_batch_sending(batch.batch_id, now, LEASE, len(batch.messages))
        campaigns.record_batch_sent(batch.batch_id, "drained", now)


def test_claims_are_batches_of_one_running_campaign(
    application: Application, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    _drain(campaigns, NOW)
    campaign_id, ids = _running(campaigns, templates, 2300)
    _idle, _ = _materialise(campaigns, templates, Audience(sources={_source()}))
    draft_src = _source()
    add_leads([{"source": draft_src}])
    draft, _ = _materialise(campaigns, templates, Audience(sources={draft_src}))
    sizes, seen, statements = [], set(), []
    while True:
        with counting(application) as executed:
            batch = campaigns.claim_batch("w1", NOW, LEASE)
        if batch is None:
            break
        statements.append(len(executed))
        assert batch.campaign_id == campaign_id and batch.template_version == 1
        sizes.append(len(batch.messages))
        assert all(msg.address.endswith("@example.com") for msg in batch.messages)
        assert all(msg.first_name == "Pat" for msg in batch.messages)
        seen |= {msg.lead_id for msg in batch.messages}
    assert sizes == [1000, 1000, 300]
    # BEGIN, the expiry sweep, the campaign, the rows, the lease, the recipients, COMMIT.
    assert max(statements) <= 7, statements
    assert seen == set(ids)
    assert _recipients(draft, "queued")  # a draft campaign's messages wait


def test_two_workers_never_claim_the_same_message(
    db: Any, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    later = NOW + dt.timedelta(hours=1)
    _drain(campaigns, later)
    _running(campaigns, templates, 1500)
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def work(worker: str) -> None:
        db.db.connect(reuse_if_open=True)
        try:
            barrier.wait()
            mine: list[str] = []
            while (batch := campaigns.claim_batch(worker, later, LEASE, limit=200)) is not None:
                mine += [msg.message_id for msg in batch.messages]
            claimed[worker] = mine
        finally:
            db.db.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = claimed["a"], claimed["b"]
    assert len(a) + len(b) == 1500
    assert not set(a) & set(b)
    assert len(set(a) | set(b)) == 1500


def test_lease_expiry_while_sending_is_unknown_not_requeued(
    campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    t0 = NOW + dt.timedelta(hours=2)
    _drain(campaigns, t0)
    _running(campaigns, templates, 30)
    sending = campaigns.claim_batch("w1", t0, LEASE, limit=10)
    claimed_only = campaigns.claim_batch("w1", t0, LEASE, limit=10)
    assert sending is not None and claimed_only is not None
    assert campaigns.mark_batch_sending(sending.batch_id, t0, LEASE, 10)
    assert not campaigns.mark_batch_sending(sending.batch_id, t0, LEASE, 10)  # not twice
    # The worker dies. After the leases expire, the claimed-only batch is claimed again (it never
    # reached Mailgun); the sending one becomes unknown and is never claimed again by itself.
    t1 = t0 + LEASE + dt.timedelta(seconds=1)
    again = []
    while (batch := campaigns.claim_batch("w2", t1, LEASE)) is not None:
        again.append(batch)
    reclaimed = {msg.message_id for b in again for msg in b.messages}
    assert {msg.message_id for msg in claimed_only.messages} <= reclaimed
    assert not {msg.message_id for msg in sending.messages} & reclaimed
    assert len(reclaimed) == 20
    e = m.EmailMessage
    states = {r.state for r in e.select(e.state).where(e.batch_id == sending.batch_id)}
    assert states == {"unknown"}
    # The first worker's late calls on the batch it lost change nothing.
    assert not campaigns.mark_batch_sending(claimed_only.batch_id, t1, LEASE, 10)
    assert campaigns.release_batch_for_retry(claimed_only.batch_id, t1, "late", t1) == 0
    assert [b for b, _, _ in campaigns.unknown_batches()].count(sending.batch_id) == 1
    # Resolved as not sent: queued again.
    assert campaigns.resolve_unknown_batch(sending.batch_id, False, "", t1) == 10
    retry = campaigns.claim_batch("w3", t1, LEASE)
    assert retry is not None
    assert {msg.message_id for msg in retry.messages} == {
        msg.message_id for msg in sending.messages
    }
    assert all(msg.attempts == 1 for msg in retry.messages)
    assert campaigns.resolve_unknown_batch(retry.batch_id, True, "x", t1) == 0  # not unknown
    for b in again:
        assert campaigns.mark_batch_sending(b.batch_id, t1, LEASE, len(b.messages))
        assert campaigns.record_batch_sent(b.batch_id, f"<{b.batch_id}@mg>", t1) == len(b.messages)


def test_batch_results(campaigns: CampaignRepository, templates: TemplateRepository) -> None:
    t0 = NOW + dt.timedelta(hours=3)
    _drain(campaigns, t0)
    campaign_id, _ = _running(campaigns, templates, 40)

    def claim(limit: int = 10) -> Any:
        batch = campaigns.claim_batch("w", t0, LEASE, limit=limit)
        assert batch is not None
        assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, len(batch.messages))
        return batch

    retry = claim()
    assert campaigns.release_batch_for_retry(retry.batch_id, t0 + LEASE, "429", t0) == 10
    assert campaigns.get(campaign_id).consecutive_failures == 1
    unknown = claim()
    assert campaigns.record_batch_unknown(unknown.batch_id, "timeout", t0) == 10
    failed = claim()
    assert campaigns.record_batch_failed(failed.batch_id, "400", t0) == 10
    assert campaigns.get(campaign_id).consecutive_failures == 3
    sent = claim()
    # Recorded after the lease ran out (the sweep made it unknown): Mailgun's answer wins.
    assert campaigns.expire_sending(t0 + LEASE + dt.timedelta(seconds=1)) == 10
    assert campaigns.record_batch_sent(sent.batch_id, "mg-1", t0) == 10
    assert campaigns.get(campaign_id).consecutive_failures == 0
    assert campaigns.claim_batch("w", t0, LEASE) is None  # the retried batch is not due yet
    later = campaigns.claim_batch("w", t0 + LEASE, LEASE)
    assert later is not None
    assert {msg.message_id for msg in later.messages} == {msg.message_id for msg in retry.messages}
    assert campaigns.mark_batch_sending(later.batch_id, t0 + LEASE, LEASE, 10)
    assert campaigns.record_batch_simulated(later.batch_id, t0) == 10
    counts = campaigns.stats([campaign_id])[campaign_id]
    assert dict(counts.by_state) == {"simulated": 10, "unknown": 10, "failed": 10, "sent": 10}
    assert not campaigns.complete_if_drained(campaign_id, t0)  # an unknown batch is open
    assert campaigns.resolve_unknown_batch(unknown.batch_id, True, "mg-0", t0) == 10
    assert campaigns.complete_if_drained(campaign_id, t0)
    assert campaigns.get(campaign_id).state == "completed"
    counts = campaigns.stats([campaign_id])[campaign_id]
    stats = counts.as_stats()
    assert (stats.sent, stats.failed, stats.queued) == (20, 10, 0)  # simulated: not sent


# --- events ----------------------------------------------------------------------------------


def _event(
    kind: MailgunEventType,
    message_id: str = "",
    provider_id: str = "",
    recipient: str = "",
    severity: EventSeverity = EventSeverity.NONE,
    batch_id: str = "",
) -> MailgunEvent:
    variables = {"ccl_message": message_id, "ccl_batch": batch_id} if message_id else {}
    return MailgunEvent(
        type=kind,
        name=kind.value,
        event_id=f"ev{next(_n)}",
        recipient=recipient,
        timestamp=NOW.replace(tzinfo=dt.UTC).timestamp(),
        message_id=provider_id,
        user_variables=variables,
        severity=severity,
        reason="550 no such user" if severity else "",
    )


def test_events_are_applied_once(
    db: Any,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
    suppressions: SuppressionRepository,
) -> None:
    t0 = NOW + dt.timedelta(hours=4)
    _drain(campaigns, t0)
    campaign_id, _ = _running(campaigns, templates, 6)
    batch = campaigns.claim_batch("w", t0, LEASE)
    assert batch is not None
    assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 6)
    assert campaigns.record_batch_sent(batch.batch_id, "mg-batch@example.org", t0) == 6
    one, two, three, four, five, six = batch.messages
    T = MailgunEventType

    def apply(event: MailgunEvent) -> bool:
        with db.transaction():
            return campaigns.apply_event(event, t0)

    for kind in (T.DELIVERED, T.OPENED, T.CLICKED):
        assert apply(_event(kind, one.message_id)) is True
        assert apply(_event(kind, one.message_id)) is False
    # Found by Mailgun's id and the recipient when our variable is missing.
    by_provider = _event(T.DELIVERED, provider_id="mg-batch@example.org", recipient=two.address)
    assert apply(by_provider) is True
    assert apply(by_provider) is False
    hard = _event(T.FAILED, three.message_id, severity=EventSeverity.PERMANENT)
    assert apply(hard) is True
    assert apply(hard) is False
    soft = _event(T.FAILED, four.message_id, severity=EventSeverity.TEMPORARY)
    assert apply(soft) is True
    assert apply(soft) is False
    assert apply(_event(T.COMPLAINED, five.message_id)) is True
    assert apply(_event(T.COMPLAINED, five.message_id)) is False
    assert apply(_event(T.UNSUBSCRIBED, six.message_id)) is True
    assert apply(_event(T.UNSUBSCRIBED, six.message_id)) is False
    assert apply(_event(T.DELIVERED, str(m.new_id()))) is False
    assert apply(_event(T.UNKNOWN, one.message_id)) is False
    found = suppressions.suppressed_among([three.address, four.address, five.address, six.address])
    assert found == {
        three.address: "hard_bounce",
        five.address: "complaint",
        six.address: "unsubscribed",
    }
    e = m.EmailMessage
    assert e.get_by_id(three.message_id).state == "bounced"
    assert e.get_by_id(four.message_id).state == "sent"
    assert "550" in e.get_by_id(four.message_id).last_error
    counts = campaigns.stats([campaign_id])[campaign_id]
    assert (counts.delivered, counts.opened, counts.clicked) == (2, 1, 1)
    assert (counts.bounced, counts.complained, counts.unsubscribed) == (1, 1, 1)
    assert counts.by_state == {"sent": 5, "bounced": 1}
    assert counts.as_stats().bounced == 1


def test_an_event_resolves_an_unknown_batch(
    db: Any, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    t0 = NOW + dt.timedelta(hours=5)
    _drain(campaigns, t0)
    _running(campaigns, templates, 4)
    batch = campaigns.claim_batch("w", t0, LEASE)
    assert batch is not None
    assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 4)
    assert campaigns.record_batch_unknown(batch.batch_id, "timeout", t0) == 4
    event = _event(MailgunEventType.ACCEPTED, batch.messages[0].message_id, provider_id="mg-2@x")
    with db.transaction():
        assert campaigns.apply_event(event, t0) is True
    with db.transaction():
        assert campaigns.apply_event(event, t0) is False
    e = m.EmailMessage
    rows = list(e.select(e.state, e.provider_message_id).where(e.batch_id == batch.batch_id))
    assert {(r.state, r.provider_message_id) for r in rows} == {("sent", "mg-2@x")}


def test_an_event_during_sending_settles_the_batch_and_the_late_answer_changes_nothing(
    db: Any, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    """Mailgun's event may come before its answer (or after the worker died mid-call): it
    proves the batch was accepted, so the batch is `sent` at once rather than left `sending`,
    to become `unknown` when the lease runs out with its one event already spent."""
    t0 = NOW + dt.timedelta(hours=5, minutes=30)
    _drain(campaigns, t0)
    _running(campaigns, templates, 3)
    batch = campaigns.claim_batch("w", t0, LEASE)
    assert batch is not None
    assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 3)
    event = _event(MailgunEventType.DELIVERED, batch.messages[1].message_id, provider_id="mg-3@x")
    with db.transaction():
        assert campaigns.apply_event(event, t0) is True
    e = m.EmailMessage
    rows = list(e.select(e.state, e.locked_until).where(e.batch_id == batch.batch_id))
    assert {(r.state, r.locked_until) for r in rows} == {("sent", None)}
    # The worker's late outcome, whichever it is, moves nothing back.
    assert campaigns.record_batch_unknown(batch.batch_id, "timeout", t0) == 0
    assert campaigns.release_batch_for_retry(batch.batch_id, t0, "late", t0) == 0
    assert campaigns.record_batch_sent(batch.batch_id, "mg-3@x", t0) == 0
    later = t0 + LEASE + dt.timedelta(seconds=1)
    assert campaigns.expire_sending(later) == 0
    assert batch.batch_id not in [b for b, _, _ in campaigns.unknown_batches()]


def test_stats_are_one_grouped_statement(
    application: Application, campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    a, _ = _running(campaigns, templates, 3)
    src = _source()
    blocked = _email()
    add_leads([{"source": src}, {"source": src, "email": blocked}])
    SuppressionRepository(application.db).suppress(
        [(blocked, SuppressionReason.MANUAL, "admin")], NOW
    )
    b, counts = _materialise(campaigns, templates, Audience(sources={src}))
    assert counts == (1, 1)
    with counting(application) as seen:
        stats = campaigns.stats([a, b, "none"])
    assert len(seen) == 1
    assert stats[a].by_state == {"queued": 3} and stats[a].recipients == 3
    assert stats[b].by_state == {"queued": 1, "suppressed": 1} and stats[b].recipients == 1
    assert stats[b].as_stats().queued == 1 and stats[b].as_stats().suppressed == 1
    assert stats["none"].recipients == 0
    assert campaigns.stats([]) == {}


@contextmanager
def plans(application: Application) -> Iterator[list[str]]:
    """SQLite's plan of every SELECT and UPDATE executed meanwhile, one text per statement."""
    database = application.db.db
    original = database.execute_sql
    found: list[str] = []

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE")):
            rows = original("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            found.append(" | ".join(str(r[-1]) for r in rows))
        return original(sql, params, *args, **kwargs)

    database.execute_sql = execute_sql  # type: ignore[method-assign]
    try:
        yield found
    finally:
        del database.execute_sql


def test_dispatch_reads_messages_through_indexes(
    application: Application,
    backend: str,
    campaigns: CampaignRepository,
    templates: TemplateRepository,
) -> None:
    """Claiming and settling a batch never scans the message table (SQLite's plans; a
    PostgreSQL plan depends on its statistics)."""
    if backend != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    t0 = NOW + dt.timedelta(hours=6)
    _drain(campaigns, t0)
    _running(campaigns, templates, 5)
    with plans(application) as found:
        batch = campaigns.claim_batch("w", t0, LEASE)
        assert batch is not None
        assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 5)
        assert campaigns.record_batch_sent(batch.batch_id, "mg", t0) == 5
    steps = [step for plan in found for step in plan.split(" | ")]
    scans = [step for step in steps if step.startswith("SCAN")]
    assert all("campaign_created_at" in step for step in scans), found  # campaigns, oldest first
    assert any("email_message_campaign_id_state_next_attempt_at" in step for step in steps)
    assert any("email_message_batch_id_state" in step for step in steps)


def test_messages_deferred_or_failed_out_of_a_claimed_batch(
    campaigns: CampaignRepository, templates: TemplateRepository
) -> None:
    t0 = NOW + dt.timedelta(hours=40)
    _drain(campaigns, t0)
    campaign_id, _ = _running(campaigns, templates, 12)
    batch = campaigns.claim_batch("w", t0, LEASE, limit=12)
    assert batch is not None and len(batch.messages) == 12
    ids = [msg.message_id for msg in batch.messages]
    morning, later = t0 + dt.timedelta(hours=9), t0 + dt.timedelta(hours=11)
    deferrals = [(i, morning) for i in ids[:3]] + [(i, later) for i in ids[3:5]]
    assert campaigns.defer_messages(batch.batch_id, deferrals, t0) == 5
    assert campaigns.fail_messages(batch.batch_id, ids[5:6], "subject too long", t0) == 1
    # The rest of the batch is still whole: it is marked sending by its new size.
    assert not campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 12)
    assert campaigns.mark_batch_sending(batch.batch_id, t0, LEASE, 6)
    # A deferred message is not touched by its old batch's results...
    assert campaigns.release_batch_for_retry(batch.batch_id, t0, "429", t0) == 6
    assert campaigns.defer_messages(batch.batch_id, deferrals, t0) == 0  # not twice
    e = m.EmailMessage
    rows = {r.id: r for r in e.select().where(e.id.in_(ids[:6]))}
    assert {rows[i].next_attempt_at for i in ids[:3]} == {morning}
    assert {rows[i].next_attempt_at for i in ids[3:5]} == {later}
    assert all(rows[i].state == "queued" and rows[i].batch_id == "" for i in ids[:5])
    assert all(rows[i].attempts == 0 and rows[i].locked_until is None for i in ids[:5])
    assert (rows[ids[5]].state, rows[ids[5]].last_error) == ("failed", "subject too long")
    # ...and is claimed again only when due.
    retried = campaigns.claim_batch("w", t0, LEASE)
    assert retried is not None and {msg.message_id for msg in retried.messages} == set(ids[6:])
    assert campaigns.mark_batch_sending(retried.batch_id, t0, LEASE, 6)
    campaigns.record_batch_sent(retried.batch_id, "mg", t0)
    assert campaigns.claim_batch("w", t0, LEASE) is None
    first = campaigns.claim_batch("w", morning, LEASE)
    assert first is not None and {msg.message_id for msg in first.messages} == set(ids[:3])
    campaigns.defer_messages(first.batch_id, [(i, later) for i in ids[:3]], morning)
    second = campaigns.claim_batch("w", later, LEASE)
    assert second is not None and {msg.message_id for msg in second.messages} == set(ids[:5])
    assert campaigns.stats([campaign_id])[campaign_id].count("failed") == 1
