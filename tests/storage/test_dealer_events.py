"""Dealer event repository contract (SQLite and PostgreSQL): idempotency records, a duplicate
translated to False, the conditional status transition with its activity, the signing secret."""

from __future__ import annotations

import json

import pytest

from server.app import Application
from server.domain.lead_status import TransitionOutcome
from server.domain.leads import LeadStatus
from server.storage import models as m
from server.storage.dealer_events import DealerEventRepository
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
    assert repo.remember(dealer_id, "e1", "status" * 5, "rejected", "x" * 2000, "")
    earlier = repo.seen(dealer_id, "e1")
    assert earlier is not None
    assert (earlier.event_id, earlier.result, earlier.lead_id) == ("e1", "rejected", "")
    assert len(earlier.event_type) == 16 and len(earlier.reason) == 1000
    # The same event again (two copies at once): the unique index refuses it, as an outcome.
    assert repo.remember(dealer_id, "e1", "status", "accepted", "", "") is False
    assert repo.seen(other, "e1") is None  # event ids are per dealer


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
