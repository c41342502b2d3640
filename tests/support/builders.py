"""Builders for agent tests: dealers and leads at a given pipeline stage, straight in storage."""

from __future__ import annotations

import itertools
import json
from typing import Any

from server.app import Application
from server.domain.leads import CreditResult
from server.domain.validation import validate_lead
from server.storage import models as m
from server.storage.leads import LeadRepository
from server.storage.pipeline import PipelineRepository
from server.transport.converters import lead_input
from support.data import example_message

_n = itertools.count()


def dealer(**kw: object) -> str:
    """An active dealer serving IL (override with states=, zips=, tiers= and column values)."""
    values = {
        "name": f"D{next(_n)}",
        "states_json": json.dumps(kw.pop("states", ["IL"])),
        "zip_prefixes_json": json.dumps(kw.pop("zips", [])),
        "accepted_tiers_json": json.dumps(kw.pop("tiers", [])),
        "endpoint_url": "http://127.0.0.1:9/x",
        "active": True,
        **kw,
    }
    return str(m.Dealer.create(**values).id)


def received_lead(
    application: Application, state: str = "IL", zip_code: str = "62701", **lead_changes: Any
) -> str:
    """A distinct valid lead after intake (stage "intake": not credit checked yet);
    `lead_changes` are LeadInput JSON fields."""
    i = next(_n)
    message = example_message(
        email=f"builder{i}@example.com",
        phone=f"(608) 555-{1000 + i % 9000:04d}",
        address={"street": "1 A St", "city": "X", "state": state, "zip_code": zip_code},
        **lead_changes,
    )
    stored = LeadRepository(application.db).create(
        validate_lead(lead_input(message.lead)),
        scope="internal",
        idempotency_key=f"builder-{i}",
        request_hash="h",
        source_dealer_id=None,
    )
    return stored.lead_id


def credit_checked_lead(
    application: Application,
    tier: str = "B",
    decision: str = "prequalified",
    state: str = "IL",
    zip_code: str = "62701",
    **lead_changes: Any,
) -> str:
    """A lead after intake and credit check (stage "credit_checked": ready to route)."""
    lead_id = received_lead(application, state, zip_code, **lead_changes)
    now = m.utcnow()
    with application.db.transaction():
        PipelineRepository(application.db).record_credit(
            lead_id, CreditResult(decision, "simulated", tier, "620-659", 0, 0, "ref", now), "", now
        )
    return lead_id
