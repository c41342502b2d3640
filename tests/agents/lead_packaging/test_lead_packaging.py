"""LeadPackaging's rules on SQLite and PostgreSQL: score, eligibility, caps, priority and
weighted round-robin, unrouted leads."""

from __future__ import annotations

import collections
import datetime as dt
import json
from pathlib import Path

import pytest
from lxml import etree

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


def route_batch(application: Application, lead_ids: list[str]):  # type: ignore[no-untyped-def]
    with application.db.transaction():
        return LeadPackaging(application.db.backend).route_many(lead_ids, m.utcnow())


def test_a_batch_routes_as_leads_one_by_one_would(
    application: Application, clean_dealers: None
) -> None:
    """One routing snapshot per batch, counted on as the batch assigns leads: caps and
    weighted round-robin come out exactly as routing the leads one at a time."""
    heavy = dealer(priority=10, weight=3, daily_cap=5)
    light = dealer(priority=10, weight=1)
    leads = [credit_checked_lead(application) for _ in range(10)]
    results = route_batch(application, leads)
    assert list(results) == leads, "one result per lead, in order"
    counts = collections.Counter(results[i].dealer_id for i in leads)
    # 3:1 while both have room (heavy takes 5 of the first 7 or so), then heavy's cap of 5
    # sends the rest to light.
    assert counts == {heavy: 5, light: 5}
    for lead_id in leads:
        assert m.Lead.get_by_id(lead_id).dealer_id == results[lead_id].dealer_id
    assert m.LeadPackage.select().where(m.LeadPackage.lead.in_(leads)).count() == 10
    kinds = [
        a.kind
        for a in m.Activity.select().where(m.Activity.lead == leads[0]).order_by(m.Activity.id)
    ]
    assert kinds[-4:] == ["lead.scored", "lead.routed", "package.created", "delivery.queued"]
    m.Dealer.update(daily_cap=0).where(m.Dealer.id == light).execute()
    m.Dealer.update(daily_cap=1).where(m.Dealer.id == light).execute()
    more = [credit_checked_lead(application) for _ in range(2)]
    later = route_batch(application, more)
    assert all(r.status is LeadStatus.UNROUTED for r in later.values()), (
        "both capped: today's packages, read from the database, count"
    )


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


ADF_DTD = etree.DTD(str(Path(__file__).parents[2] / "support" / "adf-1.0.dtd"))


def test_package_carries_the_stored_vehicle_details_timeframe_and_employment(
    application: Application, clean_dealers: None
) -> None:
    """What a lead says about its vehicles and timing is stored and reaches both formats."""
    details = {
        "vehicle_status": "VEHICLE_STATUS_NEW",
        "purchase_timeframe": "PURCHASE_TIMEFRAME_WITHIN_3_MONTHS",
        "trade_in": {"year": 2012, "make": "Honda", "model": "Fit", "mileage": 141000},
        "employment_status": "full_time",
        "months_employed": 40,
        "months_at_address": 22,
    }
    dealer(delivery_format="adf")
    result = route(application, credit_checked_lead(application, **details))
    root = etree.fromstring(m.LeadPackage.get_by_id(result.package_id).body.encode())
    assert ADF_DTD.validate(root), ADF_DTD.error_log.filter_from_errors()
    p = "/adf/prospect"
    assert root.xpath(f"string({p}/id)") == m.LeadPackage.get_by_id(result.package_id).lead_id
    assert root.xpath(f"string({p}/vehicle[@interest='buy']/@status)") == "new"
    trade = f"{p}/vehicle[@interest='trade-in']"
    assert [root.xpath(f"string({trade}/{t})") for t in ("year", "make", "model", "odometer")] == [
        "2012",
        "Honda",
        "Fit",
        "141000",
    ]
    assert root.xpath(f"string({p}/customer/timeframe)") == "Within 3 months"
    comments = str(root.xpath(f"string({p}/customer/comments)")).splitlines()
    assert "Employment: full_time; months employed 40" in comments
    assert "Months at address: 22" in comments

    m.Dealer.update(active=False).execute()
    dealer(delivery_format="json")
    result = route(application, credit_checked_lead(application, **details))
    doc = json.loads(m.LeadPackage.get_by_id(result.package_id).body)
    assert doc["vehicle"]["status"] == "new"
    assert doc["trade_in"] == {
        "interest": "trade-in",
        "year": 2012,
        "make": "Honda",
        "model": "Fit",
        "mileage": 141000,
    }
    assert doc["purchase_timeframe"] == "within_3_months"
    assert doc["employment"] == {
        "status": "full_time",
        "months_employed": 40,
        "months_at_address": 22,
    }


def test_package_of_a_lead_without_the_new_details(
    application: Application, clean_dealers: None
) -> None:
    dealer(delivery_format="adf")
    result = route(application, credit_checked_lead(application))
    root = etree.fromstring(m.LeadPackage.get_by_id(result.package_id).body.encode())
    assert ADF_DTD.validate(root), ADF_DTD.error_log.filter_from_errors()
    assert root.xpath("string(/adf/prospect/vehicle/@status)") == "used"
    assert root.xpath("count(/adf/prospect/vehicle)") == 1
    assert root.xpath("count(/adf/prospect/customer/timeframe)") == 0
