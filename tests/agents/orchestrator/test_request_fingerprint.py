"""The request fingerprint stored with every idempotency record must never change: it is the
SHA-256 of `dataclasses.asdict` of the lead as sorted-key JSON, however it is computed."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from server.agents.orchestrator.agent import request_fingerprint
from server.domain.leads import LeadInput
from server.transport.converters import lead_input
from support.data import example_message


def _by_asdict(lead: LeadInput) -> str:
    canonical = json.dumps(dataclasses.asdict(lead), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"visitor_id": None},
        {"trade_in": {"year": 2015, "make": "Honda", "model": "Civic", "mileage": 90000}},
        {"first_name": "Zoë", "last_name": "O'Brien-Núñez", "email": "zoe@example.com"},
    ],
)
def test_the_fingerprint_is_the_one_of_asdict(changes: dict[str, object]) -> None:
    lead = lead_input(example_message(**changes).lead)
    assert request_fingerprint(lead) == _by_asdict(lead)


def test_a_lead_without_consent_or_trade_in() -> None:
    lead = dataclasses.replace(lead_input(example_message().lead), consent=None, trade_in=None)
    assert request_fingerprint(lead) == _by_asdict(lead)
