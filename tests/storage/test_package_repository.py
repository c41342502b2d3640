"""PackageRepository contract, on SQLite and PostgreSQL: routing reads (a lead as routing sees
it, dealers open to routing, packages per dealer today) and the routing decision's writes."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest

from server.app import Application
from server.domain.leads import AgentName, LeadStatus
from server.domain.routing import RoutingDealer
from server.storage import models as m
from server.storage.packages import PackageRepository
from support.builders import credit_checked_lead, dealer, received_lead

A = AgentName.LEAD_PACKAGING


@pytest.fixture()
def repo(application: Application) -> Iterator[PackageRepository]:
    m.Dealer.update(active=False).execute()
    yield PackageRepository(application.db.backend)
    m.Dealer.update(active=False).execute()


def test_lead_reads_the_lead_its_latest_credit_and_tcpa_consent(
    application: Application, repo: PackageRepository
) -> None:
    lead_id = credit_checked_lead(application, tier="C", decision="declined")
    row = m.Lead.get_by_id(lead_id)
    lead = repo.lead(lead_id)
    assert lead.lead_id == lead_id and lead.source_dealer_id is None
    assert (lead.first_name, lead.email, lead.state, lead.zip_code) == (
        row.first_name,
        row.email_normalized,
        row.state,
        row.zip_code,
    )
    assert lead.monthly_income_cents == int(row.monthly_income_cents) > 0
    assert lead.credit is not None
    assert (lead.credit.decision, lead.credit.tier) == ("declined", "C")
    tcpa = m.LeadConsent.get((m.LeadConsent.lead == lead_id) & (m.LeadConsent.kind == "tcpa"))
    assert lead.tcpa is not None and lead.tcpa.granted == tcpa.granted
    assert lead.tcpa.certificate_id == tcpa.certificate_id

    unchecked = repo.lead(received_lead(application))
    assert unchecked.credit is None


def test_open_dealers_and_source_dealer(application: Application, repo: PackageRepository) -> None:
    with application.db.transaction():
        assert repo.open_dealers() == []
    d = dealer(states=["IL", "WI"], zips=["606"], tiers=["A"], daily_cap=3, priority=7, weight=2)
    no_endpoint = dealer(endpoint_url="")
    inactive = dealer(active=False)
    with application.db.transaction():
        dealers = repo.open_dealers()
    assert dealers == [
        RoutingDealer(
            dealer_id=d,
            name=m.Dealer.get_by_id(d).name,
            states=("IL", "WI"),
            zip_prefixes=("606",),
            accepted_tiers=("A",),
            daily_cap=3,
            priority=7,
            weight=2,
            delivery_format="json",
        )
    ]
    assert repo.source_dealer(d) == dealers[0]
    assert repo.source_dealer(no_endpoint) is None
    assert repo.source_dealer(inactive) is None
    assert repo.source_dealer("no-such-dealer") is None


def test_store_package_writes_package_delivery_and_lead_and_counts_today(
    application: Application, repo: PackageRepository
) -> None:
    d = dealer()
    other = dealer()
    lead_id = credit_checked_lead(application)
    now = m.utcnow()
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    before = repo.packages_since([d, other], start)
    with application.db.transaction():
        stored = repo.store_package(
            lead_id, d, fmt="json", content_type="application/json", body=b"{}", score=42, now=now
        )
        repo.add_activities([(lead_id, [(A, "package.created", "made", {"n": 1})])], now)
    package = m.LeadPackage.get_by_id(stored.package_id)
    delivery = m.Delivery.get_by_id(stored.delivery_id)
    assert (package.lead_id, package.dealer_id, package.body) == (lead_id, d, "{}")
    assert delivery.package_id == package.id and delivery.state == "pending"
    assert delivery.event_id == stored.event_id and delivery.next_attempt_at == now
    lead = m.Lead.get_by_id(lead_id)
    assert lead.status == LeadStatus.PACKAGED.value and lead.dealer_id == d
    assert lead.delivery_state == "pending" and lead.score == 42
    entry = m.Activity.get((m.Activity.lead == lead_id) & (m.Activity.kind == "package.created"))
    assert json.loads(entry.details_json) == {"n": 1} and entry.agent == A.value
    after = repo.packages_since([d, other], start)
    assert after.get(d, 0) == before.get(d, 0) + 1 and after.get(other, 0) == 0
    assert repo.packages_since([d], now + dt.timedelta(seconds=1)) == {}
    assert repo.packages_since([], start) == {}


def test_hold_and_close_unrouted(application: Application, repo: PackageRepository) -> None:
    held = credit_checked_lead(application, decision="needs_review")
    waiting = credit_checked_lead(application)
    now = m.utcnow()
    with application.db.transaction():
        repo.hold(held, 17, now)
        repo.close_unrouted(waiting, LeadStatus.UNROUTED, 23, now)
        repo.add_activities(
            [
                (held, [(A, "routing.held", "held", {})]),
                (waiting, [(A, "routing.unrouted", "none", {}), (A, "x.second", "two", {})]),
            ],
            now,
        )
    lead = m.Lead.get_by_id(held)
    assert lead.score == 17 and lead.status == "needs_review"
    lead = m.Lead.get_by_id(waiting)
    assert lead.score == 23 and lead.status == "unrouted" and lead.dealer_id is None
    kinds = {
        (a.lead_id, a.kind) for a in m.Activity.select().where(m.Activity.lead.in_([held, waiting]))
    }
    assert {(held, "routing.held"), (waiting, "routing.unrouted")} <= kinds
    in_order = [
        a.kind
        for a in m.Activity.select().where(m.Activity.lead == waiting).order_by(m.Activity.id)
    ]
    assert in_order[-2:] == ["routing.unrouted", "x.second"], "a lead's entries keep their order"


def test_leads_reads_a_batch_as_lead_reads_each(
    application: Application, repo: PackageRepository
) -> None:
    ids = [credit_checked_lead(application) for _ in range(3)]
    batch = repo.leads([*ids, "no-such-lead"])
    assert set(batch) == set(ids), "a missing id is left out"
    for lead_id in ids:
        assert batch[lead_id] == repo.lead(lead_id)
        assert batch[lead_id].credit is not None
