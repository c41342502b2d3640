"""Dealer event repository contract (SQLite and PostgreSQL): idempotency records, a duplicate
translated to False, the conditional status transition with its activity, the signing secret."""

from __future__ import annotations

import json

import pytest

from server.app import Application
from server.domain.lead_status import TransitionOutcome
from server.domain.leads import LeadStatus
from server.storage import models as m
from server.storage.dealer_events import (
    RESULT_ACCEPTED,
    RESULT_DUPLICATE_CONSUMER,
    DealerEventRepository,
)
from support.builders import dealer, received_lead


@pytest.fixture(scope="module")
def repo(application: Application) -> DealerEventRepository:
    application.db.db.connect(reuse_if_open=True)
    return DealerEventRepository(application.db)


def _delivered_lead(application: Application, dealer_id: str) -> str:
    lead_id = received_lead(application)
    m.Lead.update(dealer=dealer_id, status=LeadStatus.DELIVERED.value).where(
        m.Lead.id == lead_id
    ).execute()
    return str(lead_id)


def test_signing_secret(repo: DealerEventRepository) -> None:
    assert repo.signing_secret(dealer(signing_secret="s" * 20)) == "s" * 20
    assert repo.signing_secret(dealer()) == ""
    assert repo.signing_secret("no-such-dealer") == ""


def test_an_event_is_recorded_once(repo: DealerEventRepository) -> None:
    dealer_id, other = dealer(), dealer()
    assert repo.seen(dealer_id, "e1") is None
    assert repo.remember(dealer_id, "e1", "status" * 5, RESULT_ACCEPTED, "")
    earlier = repo.seen(dealer_id, "e1")
    assert earlier is not None
    assert (earlier.event_id, earlier.result, earlier.lead_id) == ("e1", "accepted", "")
    assert len(earlier.event_type) == 16
    # The same event again (two copies at once): the unique index refuses it, as an outcome.
    assert repo.remember(dealer_id, "e1", "status", RESULT_DUPLICATE_CONSUMER, "") is False
    assert repo.seen(other, "e1") is None  # event ids are per dealer


def test_an_old_rejected_row_records_nothing_and_is_taken_over(
    repo: DealerEventRepository,
) -> None:
    """Rows that recorded a rejection (before rejections stopped being recorded) do not block a
    corrected resend of the event."""
    dealer_id = dealer()
    m.DealerEvent.create(
        dealer=dealer_id, event_id="old", event_type="status", result="rejected", reason="x"
    )
    assert repo.seen(dealer_id, "old") is None
    assert repo.remember(dealer_id, "old", "lead", RESULT_ACCEPTED, "")
    earlier = repo.seen(dealer_id, "old")
    assert earlier is not None
    assert (earlier.result, earlier.event_type, earlier.reason) == ("accepted", "lead", "")
    assert m.DealerEvent.select().where(m.DealerEvent.dealer == dealer_id).count() == 1
    assert repo.remember(dealer_id, "old", "lead", RESULT_ACCEPTED, "") is False


def test_a_status_event_is_recorded_with_its_change_or_not_at_all(
    application: Application, repo: DealerEventRepository
) -> None:
    dealer_id = dealer()
    lead_id = _delivered_lead(application, dealer_id)
    moved = repo.apply_status(dealer_id, lead_id, "s1", "returned", "bad phone")
    assert (moved.outcome, moved.lead_id) == (TransitionOutcome.MOVED, lead_id)
    again = repo.apply_status(dealer_id, lead_id, "s1", "lost", "")
    assert (again.outcome, again.lead_id) == (TransitionOutcome.ALREADY_RECEIVED, lead_id)
    closed = repo.apply_status(dealer_id, lead_id, "s2", "sold", "")
    assert closed.outcome is TransitionOutcome.NOT_ALLOWED
    assert repo.seen(dealer_id, "s2") is None  # rolled back with the refused change
    assert repo.seen(dealer_id, "no-lead") is None
    assert repo.apply_status(dealer_id, "no-such-lead", "no-lead", "sold", "").outcome is (
        TransitionOutcome.NOT_FOUND
    )
    assert repo.seen(dealer_id, "no-lead") is None
    assert m.Lead.get_by_id(lead_id).status == "returned"


def test_a_status_report_moves_the_lead_and_logs_it(
    application: Application, repo: DealerEventRepository
) -> None:
    dealer_id = dealer()
    lead_id = _delivered_lead(application, dealer_id)
    change = repo.apply_status(dealer_id, lead_id, "ev-1", "sold", "  ")
    assert (change.outcome, change.from_status) == (TransitionOutcome.MOVED, "delivered")
    lead = m.Lead.get_by_id(lead_id)
    assert (lead.status, lead.reason) == ("sold", "")
    step = (
        m.Activity.select()
        .where((m.Activity.lead == lead_id) & (m.Activity.kind == "dealer.status_updated"))
        .get()
    )
    assert step.summary == "Dealer reports sold"
    assert json.loads(step.details_json) == {
        "from": "delivered",
        "to": "sold",
        "event_id": "ev-1",
        "reason_given": False,
    }


def test_a_status_that_may_not_follow_is_refused_without_writing(
    application: Application, repo: DealerEventRepository
) -> None:
    dealer_id = dealer()
    lead_id = _delivered_lead(application, dealer_id)
    assert repo.apply_status(dealer_id, lead_id, "a", "lost", "gone").outcome is (
        TransitionOutcome.MOVED
    )
    change = repo.apply_status(dealer_id, lead_id, "b", "contacted", "")
    assert (change.outcome, change.from_status) == (TransitionOutcome.NOT_ALLOWED, "lost")
    assert m.Lead.get_by_id(lead_id).status == "lost"
    kinds = [a.kind for a in m.Activity.select().where(m.Activity.lead == lead_id)]
    assert kinds.count("dealer.status_updated") == 1


def test_another_dealers_lead_is_not_found(
    application: Application, repo: DealerEventRepository
) -> None:
    owner, stranger = dealer(), dealer()
    lead_id = _delivered_lead(application, owner)
    assert repo.apply_status(stranger, lead_id, "x", "sold", "").outcome is (
        TransitionOutcome.NOT_FOUND
    )
    assert repo.apply_status(owner, "no-such-lead", "x", "sold", "").outcome is (
        TransitionOutcome.NOT_FOUND
    )
    assert m.Lead.get_by_id(lead_id).status == "delivered"
