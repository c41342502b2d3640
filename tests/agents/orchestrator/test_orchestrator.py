"""The orchestrator resumes pipelines a crash stopped, and never runs a lead's steps twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

import pytest

from server.agents.credit_check import CreditOutcome
from server.agents.lead_packaging.agent import RoutingResult
from server.agents.orchestrator.agent import PIPELINE_LEASE, request_fingerprint
from server.app import Application
from server.domain.clock import utcnow
from server.domain.credit import CreditApplicant
from server.domain.leads import LeadInput
from server.domain.principal import Principal, Role
from server.domain.validation import validate_lead
from server.storage import models as m
from server.storage.leads import LeadRepository, PipelineLease
from server.transport.converters import lead_input
from support.builders import dealer, received_lead
from support.data import example_message


async def test_sweep_resumes_a_lead_stopped_after_intake(application: Application) -> None:
    lead_id = received_lead(application)  # as if the process died right after intake
    assert m.Lead.get_by_id(lead_id).pipeline_stage == "intake"
    resumed = await application.orchestrator.sweep(dt.timedelta(seconds=0))
    assert resumed >= 1
    lead = m.Lead.get_by_id(lead_id)
    assert lead.pipeline_stage == "done"
    assert m.CreditCheck.select().where(m.CreditCheck.lead == lead_id).count() == 1


async def test_concurrent_advances_check_credit_once(application: Application) -> None:
    lead_id = received_lead(application)
    await asyncio.gather(*(application.orchestrator.advance([lead_id]) for _ in range(5)))
    assert m.CreditCheck.select().where(m.CreditCheck.lead == lead_id).count() == 1
    assert m.Lead.get_by_id(lead_id).pipeline_stage == "done"


async def test_retry_with_the_same_key_finishes_an_interrupted_pipeline(
    application: Application,
) -> None:
    principal = Principal(key_id="t", role=Role.SERVICE)
    message = example_message("resume-1", email="resume.me@example.com", phone="(608) 555-9911")
    lead = lead_input(message.lead)
    assert lead is not None
    # Intake only, as if the process died before the credit check: the lead is stored, born
    # holding its (dead) creator's lease.
    stored = await application.db.run(
        LeadRepository(application.db).create,
        validate_lead(lead),
        scope=principal.scope,
        idempotency_key="resume-1",
        request_hash=request_fingerprint(lead),
        source_dealer_id=None,
        pipeline_lease=PipelineLease("crashed-run", utcnow() + PIPELINE_LEASE),
    )
    assert m.Lead.get_by_id(stored.lead_id).pipeline_stage == "intake"
    # Its creator died holding the lead's lease; a retry before the lease ends leaves it alone.
    early = await application.orchestrator.process(principal, "resume-1", lead)
    assert early.idempotent_replay and early.lead.credit is None
    m.Lead.update(pipeline_locked_until=None).where(m.Lead.id == stored.lead_id).execute()
    result = await application.orchestrator.process(principal, "resume-1", lead_input(message.lead))
    assert result.idempotent_replay and result.lead.lead_id == stored.lead_id
    assert result.lead.credit is not None, "the retry ran the missing steps"


async def test_concurrent_runs_never_package_a_lead_twice(application: Application) -> None:
    """Several runs (sweeps in several replicas, a request and its retry) race for the same
    leads: each lead is credit checked, packaged and queued for delivery exactly once."""
    m.Dealer.update(active=False).execute()
    dealer()
    leads = [received_lead(application) for _ in range(15)]
    await asyncio.gather(*(application.orchestrator.advance(leads) for _ in range(4)))
    for lead_id in leads:
        assert m.CreditCheck.select().where(m.CreditCheck.lead == lead_id).count() == 1
        assert m.LeadPackage.select().where(m.LeadPackage.lead == lead_id).count() == 1
        assert m.Delivery.select().where(m.Delivery.lead == lead_id).count() == 1
    assert not m.Lead.select().where(m.Lead.id.in_(leads) & (m.Lead.pipeline_owner != "")).exists()


async def test_concurrent_first_events_of_one_browser(application: Application) -> None:
    from server.agents.visitor_identifier.agent import VisitorEventInput

    events = [
        VisitorEventInput(anonymous_id="anon-race", event_type=t, email="race.me@example.com")
        for t in ("page_view", "application_started", "step_completed", "identify")
    ]
    results = await asyncio.gather(*(application.leads.track(e, False) for e in events))
    assert len({r.visitor_id for r in results}) == 1
    assert m.Visitor.get(m.Visitor.anonymous_id == "anon-race").event_count == 4
    assert len({r.identity_id for r in results}) == 1


async def test_concurrent_visitors_identifying_as_one_person_share_an_identity(
    application: Application,
) -> None:
    from server.agents.visitor_identifier.agent import VisitorEventInput

    events = [
        VisitorEventInput(
            anonymous_id=f"anon-same-{i}", event_type="identify", email="one.person@example.com"
        )
        for i in range(4)
    ]
    results = await asyncio.gather(*(application.leads.track(e, False) for e in events))
    assert len({r.identity_id for r in results}) == 1
    assert len({r.visitor_id for r in results}) == 4
    empty = m.Identity.select().where(
        ~m.Identity.id.in_(m.IdentityIdentifier.select(m.IdentityIdentifier.identity))
        & ~m.Identity.id.in_(
            m.Visitor.select(m.Visitor.identity).where(m.Visitor.identity.is_null(False))
        )
    )
    assert not empty.exists(), "no empty identity left behind by the race"


_PHONES = itertools.count(3000)


def _leads(tag: str, count: int, poison: int = -1) -> list[LeadInput]:
    """Distinct consumers (email and phone never used by another test of this module)."""
    out = []
    for i in range(count):
        message = example_message(
            f"{tag}-{i}",
            email=f"{tag}.{i}@example.com",
            phone=f"(608) 555-{next(_PHONES):04d}",
            last_name="Poisonous" if i == poison else "Batchley",
        )
        lead = lead_input(message.lead)
        assert lead is not None
        out.append(lead)
    return out


async def test_calls_arriving_together_share_their_transactions(
    application: Application,
) -> None:
    orchestrator = application.orchestrator
    intake, finish = orchestrator._intake_batcher, orchestrator._finish_batcher
    before = (intake.batches, finish.batches)
    principal = Principal(key_id="t", role=Role.SERVICE)
    leads = _leads("together", 12)
    results = await asyncio.gather(
        *(orchestrator.process(principal, f"together-{i}", lead) for i, lead in enumerate(leads))
    )
    assert all(r.lead.credit is not None for r in results), "each caller got its own lead"
    assert len({r.lead.lead_id for r in results}) == 12
    assert (intake.batches - before[0], finish.batches - before[1]) == (1, 1)


async def test_a_lead_whose_routing_fails_fails_alone(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One lead that breaks its batch's transaction: the batch is run again lead by lead, the
    others finish, and the broken one is left, unlocked, for the sweep."""
    orchestrator = application.orchestrator
    poisoned: set[str] = set()
    real_check, real_route = orchestrator._credit.check, orchestrator._packaging.route_many

    async def check(applicant: CreditApplicant) -> CreditOutcome:
        if applicant.last_name == "Poisonous":
            poisoned.add(applicant.lead_id)
        return await real_check(applicant)

    def route_many(
        lead_ids: list[str], now: dt.datetime, known: Any = None
    ) -> dict[str, RoutingResult]:
        if poisoned & set(lead_ids):
            raise RuntimeError("routing broke")
        return real_route(lead_ids, now, known)

    monkeypatch.setattr(orchestrator._credit, "check", check)
    monkeypatch.setattr(orchestrator._packaging, "route_many", route_many)
    principal = Principal(key_id="t", role=Role.SERVICE)
    leads = _leads("poison", 5, poison=2)
    results = await asyncio.gather(
        *(orchestrator.process(principal, f"poison-{i}", lead) for i, lead in enumerate(leads)),
        return_exceptions=True,
    )
    assert isinstance(results[2], RuntimeError)
    for result in results[:2] + results[3:]:
        assert not isinstance(result, BaseException)
        assert result.lead.credit is not None
        assert m.Lead.get_by_id(result.lead.lead_id).pipeline_stage == "done"
    (broken,) = poisoned
    row = m.Lead.get_by_id(broken)
    assert (row.pipeline_stage, row.pipeline_owner) == ("intake", ""), "left for the sweep"


async def test_a_caller_going_away_does_not_stop_its_accepted_lead(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's RPC is cancelled during the credit check: the lead is accepted already,
    so its steps run to the end anyway (not left to the sweep)."""
    orchestrator = application.orchestrator
    entered, release = asyncio.Event(), asyncio.Event()
    checked: list[str] = []
    real_check = orchestrator._credit.check

    async def slow_check(applicant: CreditApplicant) -> CreditOutcome:
        checked.append(applicant.lead_id)
        entered.set()
        await release.wait()
        return await real_check(applicant)

    monkeypatch.setattr(orchestrator._credit, "check", slow_check)
    principal = Principal(key_id="t", role=Role.SERVICE)
    (lead,) = _leads("leaving", 1)
    call = asyncio.create_task(orchestrator.process(principal, "leaving-0", lead))
    await asyncio.wait_for(entered.wait(), timeout=30)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    release.set()
    for _ in range(3000):  # the steps finish on their own (bounded: a hang guard, not a timing)
        if m.Lead.get_by_id(checked[0]).pipeline_stage == "done":
            break
        await asyncio.sleep(0.01)
    row = m.Lead.get_by_id(checked[0])
    assert (row.pipeline_stage, row.pipeline_owner) == ("done", "")


async def test_a_failing_group_never_runs_a_committed_group_again(
    application: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls of two callers (two idempotency scopes) in one batch: each scope's intake is its
    own transaction. One lead that breaks its group's transaction fails alone; the other group,
    committed already, is not stored a second time."""
    orchestrator = application.orchestrator
    real_intake = orchestrator._pipeline.intake_batch

    def intake_batch(leads, items, **kwargs):  # type: ignore[no-untyped-def]
        if any(lead.last_name == "Poisonous" for lead, _, _ in items):
            raise RuntimeError("intake broke")
        return real_intake(leads, items, **kwargs)

    monkeypatch.setattr(orchestrator._pipeline, "intake_batch", intake_batch)
    first = Principal(key_id="group-a", role=Role.SERVICE)
    second = Principal(key_id="group-b", role=Role.SERVICE)
    a_leads = _leads("group-a", 2)
    b_leads = _leads("group-b", 3, poison=1)
    calls = [orchestrator.process(first, f"ga-{i}", lead) for i, lead in enumerate(a_leads)]
    calls += [orchestrator.process(second, f"gb-{i}", lead) for i, lead in enumerate(b_leads)]
    before = orchestrator._intake_batcher.batches
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert orchestrator._intake_batcher.batches - before == 1, "they shared one batch"
    assert isinstance(results[3], RuntimeError)
    for result in results[:3] + results[4:]:
        assert not isinstance(result, BaseException)
        assert result.lead.credit is not None and not result.idempotent_replay
    for lead in a_leads + b_leads[:1] + b_leads[2:]:
        assert m.Lead.select().where(m.Lead.email == lead.email).count() == 1, lead.email


async def test_the_lead_returned_is_the_lead_stored(application: Application) -> None:
    """ProcessLead answers with the lead as intake wrote it plus what its steps changed, not a
    read of the whole row (issue 9): it must equal a full read, whatever the steps did."""
    dealer(states=["IL"])  # routed: a package and a delivery
    principal = Principal(key_id="t", role=Role.SERVICE)
    texas = {"street": "1 Elm St", "city": "Austin", "state": "TX", "zip_code": "73301"}
    cases = {
        "routed": {"last_name": "Prequalified"},
        "review": {"last_name": "Review"},
        "declined": {"last_name": "Declined", "address": texas},  # no dealer in Texas
        "unrouted": {"last_name": "Prequalified", "address": texas},
    }
    leads = {
        name: lead_input(
            example_message(
                email=f"stored.{name}@example.com", phone=f"(312) 555-{7000 + i}", **changes
            ).lead
        )
        for i, (name, changes) in enumerate(cases.items())
    }
    results = await asyncio.gather(
        *(application.orchestrator.process(principal, f"stored-{n}", v) for n, v in leads.items())
    )
    statuses = {name: r.lead.status.value for name, r in zip(leads, results, strict=True)}
    assert statuses == {
        "routed": "packaged",
        "review": "needs_review",
        "declined": "declined",
        "unrouted": "unrouted",
    }
    for result in results:
        stored = await application.db.run(LeadRepository(application.db).get, result.lead.lead_id)
        assert result.lead == stored


async def test_routing_sees_the_lead_in_memory_as_storage_reads_it(
    application: Application,
) -> None:
    """Finishing routes the leads it knows in memory without reading them back (issue 9): what
    routing gets must equal what storage reads for them."""
    from server.domain.routing import routing_lead_of
    from server.storage.packages import PackageRepository

    principal = Principal(key_id="t", role=Role.SERVICE)
    variants: list[dict[str, object]] = [
        {},
        {"visitor_id": None},
        {"trade_in": {"year": 2015, "make": "Honda", "model": "Civic", "mileage": 90000}},
        {
            "vehicle_status": "VEHICLE_STATUS_USED",
            "purchase_timeframe": "PURCHASE_TIMEFRAME_WITHIN_WEEK",
        },
    ]
    leads = []
    for i, changes in enumerate(variants):
        message = example_message(
            email=f"memory.{i}@example.com", phone=f"(312) 555-{7100 + i}", **changes
        )
        leads.append(lead_input(message.lead))
    results = await asyncio.gather(
        *(
            application.orchestrator.process(principal, f"memory-{i}", v)
            for i, v in enumerate(leads)
        )
    )
    ids = [r.lead.lead_id for r in results]
    stored = await application.db.run(PackageRepository.leads, ids)
    for result in results:
        assert routing_lead_of(result.lead) == stored[result.lead.lead_id]
