"""The orchestrator resumes pipelines a crash stopped, and never runs a lead's steps twice."""

from __future__ import annotations

import asyncio
import datetime as dt

from server.app import Application
from server.services.auth import Principal, Role
from server.services.validation import validate_lead
from server.storage import models as m
from server.transport.converters import lead_input
from support.builders import received_lead
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
        principal, "resume-1", lead, validate_lead(lead), None
    )
    assert m.Lead.get_by_id(stored.lead_id).pipeline_stage == "intake"
    result = await application.orchestrator.process(principal, "resume-1", lead_input(message.lead))
    assert result.idempotent_replay and result.lead.lead_id == stored.lead_id
    assert result.lead.credit is not None, "the retry ran the missing steps"
