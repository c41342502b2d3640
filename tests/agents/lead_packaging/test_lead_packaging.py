"""LeadPackaging's rules on SQLite and PostgreSQL: score, eligibility, caps, priority and
weighted round-robin, unrouted leads."""

from __future__ import annotations

import collections
import datetime as dt

import pytest

from server.agents.lead_packaging.agent import LeadPackaging
from server.app import Application
from server.domain.leads import LeadStatus
from server.domain.scoring import ScoringFacts, score_lead
from server.storage import models as m
from support.builders import credit_checked_lead, dealer


@pytest.fixture()
def clean_dealers(application: Application):  # type: ignore[no-untyped-def]
    m.Dealer.update(active=False).execute()
    yield
    m.Dealer.update(active=False).execute()


def route(application: Application, lead_id: str):  # type: ignore[no-untyped-def]
    with application.db.transaction():
        return LeadPackaging(application.db.backend).route(lead_id, m.utcnow())


def test_score_rules() -> None:
    lead = ScoringFacts(
        monthly_income_cents=420000,
        down_payment_cents=100000,
        months_employed=30,
        months_at_address=3,
        vehicle_make="Toyota",
        vehicle_model="",
    )
    score, parts = score_lead(lead, "A", has_certificate=True)
    assert parts == {
        "credit_tier": 40,
        "income": 15,
        "down_payment": 10,
        "employment": 10,
        "residence": 0,
        "vehicle": 5,
        "certificate": 5,
    }
    assert score == 85
    empty = ScoringFacts(
        monthly_income_cents=0,
        down_payment_cents=0,
        months_employed=0,
        months_at_address=0,
        vehicle_make="",
        vehicle_model="",
    )
    assert score_lead(empty, "", has_certificate=False)[0] == 0


def test_eligibility_by_state_zip_prefix_and_tier(
    application: Application, clean_dealers: None
) -> None:
    texas = dealer(states=["TX"])
    by_zip = dealer(states=[], zips=["627"], tiers=["A", "B"])
    only_a = dealer(states=["IL"], tiers=["A"])
    result = route(application, credit_checked_lead(application, tier="B"))
    assert result.dealer_id == by_zip and result.status is LeadStatus.PACKAGED
    assert texas != result.dealer_id and only_a != result.dealer_id


def test_priority_then_weighted_round_robin(application: Application, clean_dealers: None) -> None:
    heavy = dealer(priority=10, weight=3)
    light = dealer(priority=10, weight=1)
    backup = dealer(priority=50)
    counts = collections.Counter(
        route(application, credit_checked_lead(application)).dealer_id for _ in range(8)
    )
    assert counts == {heavy: 6, light: 2}, "3:1 by weight, the lower priority never used"
    assert backup not in counts


def test_daily_cap_then_unrouted_then_rerouted(
    application: Application, clean_dealers: None
) -> None:
    capped = dealer(daily_cap=2)
    assert route(application, credit_checked_lead(application)).dealer_id == capped
    assert route(application, credit_checked_lead(application)).dealer_id == capped
    waiting = credit_checked_lead(application)
    result = route(application, waiting)
    assert result.status is LeadStatus.UNROUTED and result.dealer_id is None
    assert m.Lead.get_by_id(waiting).status == "unrouted"
    spare = dealer()
    assert route(application, waiting).dealer_id == spare


def test_declined_goes_only_to_dealers_taking_its_tier(
    application: Application, clean_dealers: None
) -> None:
    dealer(tiers=["A", "B", "C"])
    declined = credit_checked_lead(application, tier="E", decision="declined")
    assert route(application, declined).status is LeadStatus.DECLINED
    subprime = dealer(tiers=["D", "E"])
    assert (
        route(
            application, credit_checked_lead(application, tier="E", decision="declined")
        ).dealer_id
        == subprime
    )


def test_needs_review_is_held(application: Application, clean_dealers: None) -> None:
    dealer()
    result = route(application, credit_checked_lead(application, tier="D", decision="needs_review"))
    assert result.status is LeadStatus.NEEDS_REVIEW and result.delivery_id is None


def test_package_and_delivery_are_written_with_the_decision(
    application: Application, clean_dealers: None
) -> None:
    d = dealer(delivery_format="adf")
    lead_id = credit_checked_lead(application)
    result = route(application, lead_id)
    package = m.LeadPackage.get_by_id(result.package_id)
    delivery = m.Delivery.get_by_id(result.delivery_id)
    assert package.dealer_id == d and package.format == "adf" and package.body.startswith("<?xml")
    assert delivery.state == "pending" and delivery.package_id == package.id
    lead = m.Lead.get_by_id(lead_id)
    assert lead.dealer_id == d and lead.delivery_state == "pending" and lead.score > 0
    assert m.Delivery.select().where(m.Delivery.created_at > dt.datetime(2000, 1, 1)).exists()
