"""Dealer webhook results (SQLite and PostgreSQL): only processed events (ACCEPTED,
DUPLICATE_CONSUMER) are recorded and final; a resend of one is ALREADY_RECEIVED with the lead
id of then; a REJECTED event records nothing, so the dealer can correct it and resend it with
the same event id; concurrent copies of one event apply once."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from server.app import Application
from server.domain.dealers import DealerInput
from server.domain.principal import Principal, Role
from server.services.dealer_webhook import EventResult, EventStatus
from server.storage import models as m
from support.data import example_request
from support.webhook_signing import standard_headers

_n = itertools.count(100)
ACCEPTED = EventStatus.ACCEPTED
ALREADY_RECEIVED = EventStatus.ALREADY_RECEIVED
DUPLICATE_CONSUMER = EventStatus.DUPLICATE_CONSUMER
REJECTED = EventStatus.REJECTED


class Dealer:
    """A dealer and what it takes to send it signed webhooks."""

    def __init__(self, application: Application, dealer_id: str, secret: str) -> None:
        self.application = application
        self.dealer_id = dealer_id
        self.secret = secret

    async def send(self, *events: dict[str, Any]) -> list[EventResult]:
        body = json.dumps({"events": list(events)}).encode()
        return await self.application.dealer_webhook.receive(
            Principal(key_id="k", role=Role.DEALER, dealer_id=self.dealer_id),
            body,
            headers=standard_headers(body, self.secret),
        )

    async def one(self, event: dict[str, Any]) -> EventResult:
        [result] = await self.send(event)
        return result


@pytest.fixture(scope="module")
async def dealer(application: Application) -> Dealer:
    record, secret = await application.dealers.create(
        DealerInput(name="Results Motors", states=["IL"], daily_cap=1000)
    )
    return Dealer(application, record.dealer_id, secret)


def person(**changes: Any) -> dict[str, Any]:
    """A valid lead payload, a distinct consumer each time."""
    n = next(_n)
    lead: dict[str, Any] = example_request(
        email=f"results.{n}@example.com", phone=f"(312) 555-{n:04d}"
    )["lead"]
    return {**lead, **changes}


def lead_event(event_id: str, lead: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": "lead", "lead": lead}


def status_event(event_id: str, lead_id: str, status: str, reason: str = "") -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "status",
        "lead_id": lead_id,
        "status": status,
        "reason": reason,
    }


def recorded(dealer: Dealer, event_id: str) -> int:
    return (
        m.DealerEvent.select()
        .where((m.DealerEvent.dealer == dealer.dealer_id) & (m.DealerEvent.event_id == event_id))
        .count()
    )


def reports(lead_id: str) -> int:
    """How many dealer status reports the lead's activity log holds."""
    return (
        m.Activity.select()
        .where((m.Activity.lead == lead_id) & (m.Activity.kind == "dealer.status_updated"))
        .count()
    )


async def delivered_lead(dealer: Dealer, tag: str) -> str:
    """A new lead of this dealer's, delivered to it (as if its CRM had answered 2xx)."""
    result = await dealer.one(lead_event(f"{tag}-lead", person()))
    assert result.status is ACCEPTED, result
    m.Lead.update(dealer=dealer.dealer_id, status="delivered").where(
        m.Lead.id == result.lead_id
    ).execute()
    return result.lead_id


async def test_a_resend_is_already_received_with_the_lead_id_of_then(dealer: Dealer) -> None:
    lead_id = await delivered_lead(dealer, "resend")
    first = await dealer.one(status_event("resend-contacted", lead_id, "contacted"))
    assert first == EventResult("resend-contacted", ACCEPTED, "", lead_id)

    again = await dealer.send(
        lead_event("resend-lead", person()),  # another payload: the event id decides
        status_event("resend-contacted", lead_id, "contacted"),
    )
    assert again == [
        EventResult("resend-lead", ALREADY_RECEIVED, "", lead_id),
        EventResult("resend-contacted", ALREADY_RECEIVED, "", lead_id),
    ]
    assert reports(lead_id) == 1  # the repeat of "contacted" was not applied again
    assert m.Lead.select().where(m.Lead.source_dealer == dealer.dealer_id).count() >= 1


async def test_a_lead_event_for_a_consumer_who_is_already_a_lead_is_duplicate_consumer(
    dealer: Dealer,
) -> None:
    consumer = person()
    first = await dealer.one(lead_event("dup-1", consumer))
    assert first.status is ACCEPTED, first
    second = await dealer.one(lead_event("dup-2", {**consumer, "source": "showroom"}))
    assert (second.status, second.reason) == (DUPLICATE_CONSUMER, ""), second
    assert second.lead_id and second.lead_id != first.lead_id
    duplicate = m.Lead.get_by_id(second.lead_id)
    assert (duplicate.status, duplicate.duplicate_of_id) == ("duplicate", first.lead_id)
    assert recorded(dealer, "dup-2") == 1  # final: recorded
    resend = await dealer.one(lead_event("dup-2", consumer))
    assert resend == EventResult("dup-2", ALREADY_RECEIVED, "", second.lead_id)


async def test_a_rejected_status_event_corrected_and_resent_with_its_id_is_accepted(
    dealer: Dealer,
) -> None:
    closed = await delivered_lead(dealer, "fix-closed")
    assert (await dealer.one(status_event("fix-lost", closed, "lost"))).status is ACCEPTED
    right = await delivered_lead(dealer, "fix-right")

    # The CRM names the wrong (closed) lead: refused, and nothing is recorded.
    wrong = await dealer.one(status_event("fix-sold", closed, "sold"))
    assert wrong.status is REJECTED
    assert wrong.reason.startswith("INVALID_TRANSITION: the lead is lost"), wrong
    assert recorded(dealer, "fix-sold") == 0
    assert (await dealer.one(status_event("fix-sold", closed, "sold"))).status is REJECTED

    corrected = await dealer.one(status_event("fix-sold", right, "sold"))
    assert corrected == EventResult("fix-sold", ACCEPTED, "", right)
    assert m.Lead.get_by_id(right).status == "sold"
    assert m.Lead.get_by_id(closed).status == "lost"

    # A returned lead without a reason, then with one; an unknown lead, then the right one.
    no_reason = await dealer.one(status_event("fix-returned", right, "returned"))
    assert no_reason.status is REJECTED and no_reason.reason.startswith("REASON_REQUIRED")
    with_reason = await dealer.one(status_event("fix-returned", right, "returned", "not her"))
    assert with_reason.status is ACCEPTED
    unknown = "00000000-0000-4000-8000-000000000000"
    other = await delivered_lead(dealer, "fix-other")
    assert (await dealer.one(status_event("fix-c", unknown, "contacted"))).reason == (
        "LEAD_NOT_FOUND"
    )
    assert (await dealer.one(status_event("fix-c", other, "contacted"))).status is ACCEPTED


async def test_a_lead_event_failing_validation_corrected_and_resent_is_accepted(
    dealer: Dealer,
) -> None:
    # A right-to-left override in the name (it would show "Maria" reversed to the dealer).
    bad = person(first_name="\u202eairaM", address={"street": "1 Main St"})
    rejected = await dealer.one(lead_event("val-1", bad))
    assert rejected.status is REJECTED
    assert "lead.first_name: must not contain invisible formatting" in rejected.reason
    assert "lead.address.city: is required" in rejected.reason
    assert recorded(dealer, "val-1") == 0

    fixed = person(first_name="Maria")
    accepted = await dealer.one(lead_event("val-1", fixed))
    assert (accepted.status, accepted.reason) == (ACCEPTED, ""), accepted
    assert m.Lead.get_by_id(accepted.lead_id).source_dealer_id == dealer.dealer_id
    assert (await dealer.one(lead_event("val-1", fixed))).status is ALREADY_RECEIVED


async def test_an_old_row_that_recorded_a_rejection_does_not_block_a_resend(
    dealer: Dealer,
) -> None:
    lead_id = await delivered_lead(dealer, "old")
    m.DealerEvent.create(
        dealer=dealer.dealer_id,
        event_id="old-appointment",
        event_type="status",
        result="rejected",
        reason="INVALID_TRANSITION: ...",
    )
    result = await dealer.one(status_event("old-appointment", lead_id, "appointment_set"))
    assert result == EventResult("old-appointment", ACCEPTED, "", lead_id)
    assert recorded(dealer, "old-appointment") == 1
    again = await dealer.one(status_event("old-appointment", lead_id, "appointment_set"))
    assert again.status is ALREADY_RECEIVED


@pytest.mark.parametrize("copies", [2, 6])
async def test_concurrent_copies_of_a_status_event_apply_once(dealer: Dealer, copies: int) -> None:
    # "contacted" may follow "contacted": only the event record keeps a copy from applying.
    lead_id = await delivered_lead(dealer, f"race{copies}")
    event = status_event(f"race{copies}-contacted", lead_id, "contacted")
    results = await asyncio.gather(*(dealer.one(event) for _ in range(copies)))
    assert sorted(r.status for r in results) == sorted(
        [ACCEPTED] + [ALREADY_RECEIVED] * (copies - 1)
    )
    assert {r.lead_id for r in results} == {lead_id}
    assert reports(lead_id) == 1
    assert recorded(dealer, event["event_id"]) == 1


async def test_copies_of_an_event_in_one_request_apply_once(dealer: Dealer) -> None:
    lead_id = await delivered_lead(dealer, "same")
    event = status_event("same-contacted", lead_id, "contacted")
    results = await dealer.send(event, event)
    assert [r.status for r in results] == [ACCEPTED, ALREADY_RECEIVED]
    assert reports(lead_id) == 1


async def test_concurrent_copies_of_a_lead_event_make_one_lead(dealer: Dealer) -> None:
    event = lead_event("race-lead", person())
    results = await asyncio.gather(dealer.one(event), dealer.one(event), dealer.one(event))
    assert sorted(r.status for r in results) == sorted([ACCEPTED] + [ALREADY_RECEIVED] * 2)
    assert len({r.lead_id for r in results}) == 1
    assert recorded(dealer, "race-lead") == 1
