"""The orchestrator resumes pipelines a crash stopped, and never runs a lead's steps twice."""

from __future__ import annotations

import asyncio
import datetime as dt

from server.app import Application
from server.domain.principal import Principal, Role
from server.domain.validation import validate_lead
from server.storage import models as m
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
    # Intake only, as if the process died before the credit check.
    stored = await application.orchestrator._intake(
        principal, "resume-1", lead, validate_lead(lead), None, "crashed-run"
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
