"""What a dealer key reads of a lead (GetLead, ListLeads) over gRPC and REST through Envoy, on
both backends: exactly what its package carries; and redelivering a delivered package is
FAILED_PRECONDITION (ALREADY_DELIVERED)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.agents.lead_packaging.agent import LeadPackaging
from server.domain.principal import Role
from server.storage import models as m
from support import builders
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def routed(stack: ServerThread) -> dict[str, str]:
    """A credit-checked lead routed to a dealer of its own (Wyoming), and that dealer's key."""
    app = stack.app
    app.db.db.connect(reuse_if_open=True)
    try:
        dealer_id = builders.dealer(states=["WY"])
        lead_id = builders.credit_checked_lead(app, state="WY", zip_code="82001")
        with app.db.transaction():
            result = LeadPackaging(app.db.backend).route(lead_id, m.utcnow())
        assert result.dealer_id == dealer_id and result.delivery_id
    finally:
        app.db.db.close()
    return {
        "dealer_id": dealer_id,
        "lead_id": lead_id,
        "delivery_id": result.delivery_id,
        "dealer_key": stack.create_key(Role.DEALER, dealer_id),
        "admin_key": stack.create_key(Role.ADMIN),
    }


@pytest.fixture(scope="module")
def leads(stack: ServerThread) -> Iterator[lead_service_pb2_grpc.LeadServiceStub]:
    with stack.channel() as ch:
        yield lead_service_pb2_grpc.LeadServiceStub(ch)


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=10) as client:
        yield client


def assert_dealer_view_grpc(lead) -> None:  # type: ignore[no-untyped-def]
    a = lead.applicant
    # What the package carries.
    assert a.first_name and a.last_name and a.email and a.phone
    assert a.address.street and a.address.state == "WY"
    assert a.monthly_income_cents == 420000 and a.down_payment_cents == 100000
    assert (a.vehicle.year, a.vehicle.make, a.vehicle.model) == (2021, "Toyota", "Camry")
    assert a.consent.tcpa and a.consent.page_url == "https://completecarloans.com/apply"
    assert lead.credit.tier == "B" and lead.credit.score_band == "620-659"
    # What it does not.
    assert a.date_of_birth == "" and a.visitor_id == ""
    assert a.consent.ip_address == "" and a.consent.user_agent == ""
    assert a.consent.consent_text == "" and not a.consent.fcra_soft_pull
    assert lead.credit.reference_id == "" and not lead.credit.HasField("check_time")
    assert lead.identity_id == "" and lead.duplicate_of_lead_id == ""


def test_dealer_reads_only_the_package_over_grpc(leads, routed: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    key, lead_id = auth(routed["dealer_key"]), routed["lead_id"]
    got = leads.GetLead(lead_pb.GetLeadRequest(lead_id=lead_id), metadata=key).lead
    assert_dealer_view_grpc(got)
    listed = leads.ListLeads(lead_pb.ListLeadsRequest(page_size=100), metadata=key).leads
    assert [lead.lead_id for lead in listed] == [lead_id]
    assert_dealer_view_grpc(listed[0])
    # An admin still reads the whole lead.
    full = leads.GetLead(
        lead_pb.GetLeadRequest(lead_id=lead_id), metadata=auth(routed["admin_key"])
    ).lead
    assert full.applicant.date_of_birth == "1990-04-12"
    assert full.applicant.consent.ip_address == "203.0.113.9"
    assert full.credit.reference_id == "ref" and full.credit.HasField("check_time")


def assert_dealer_view_json(lead: dict) -> None:  # type: ignore[type-arg]
    a = lead["applicant"]
    assert a["monthly_income_cents"] == "420000" or a["monthly_income_cents"] == 420000
    assert a["consent"]["page_url"] == "https://completecarloans.com/apply"
    assert lead["credit"]["tier"] == "B"
    for absent in ("date_of_birth", "visitor_id"):
        assert not a.get(absent), absent
    for absent in ("ip_address", "user_agent", "consent_text", "fcra_soft_pull"):
        assert not a["consent"].get(absent), absent
    assert not lead["credit"].get("reference_id") and not lead["credit"].get("check_time")
    assert not lead.get("identity_id")


def test_dealer_reads_only_the_package_through_rest(
    http: httpx.Client, routed: dict[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {routed['dealer_key']}"}
    got = http.get(f"/api/leads/{routed['lead_id']}", headers=headers)
    assert got.status_code == 200, got.text
    assert_dealer_view_json(got.json()["lead"])
    listed = http.get("/api/leads", headers=headers)
    assert listed.status_code == 200, listed.text
    (only,) = listed.json()["leads"]
    assert_dealer_view_json(only)


def test_redeliver_of_a_delivered_package_is_failed_precondition(
    stack: ServerThread, leads, http: httpx.Client, routed: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    delivery_id = routed["delivery_id"]
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        now = m.utcnow()
        # Delivered, and any worker's lease on it gone (so no in-flight attempt overwrites it).
        m.Delivery.update(
            state="delivered", locked_by="", locked_until=None, delivered_at=now, updated_at=now
        ).where(m.Delivery.id == delivery_id).execute()
    finally:
        stack.app.db.db.close()
    with pytest.raises(grpc.RpcError) as e:
        leads.RedeliverPackage(
            lead_pb.RedeliverPackageRequest(delivery_id=delivery_id),
            metadata=auth(routed["admin_key"]),
        )
    err = rich_error(e.value)
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_DELIVERED")
    r = http.post(
        f"/api/deliveries/{delivery_id}:redeliver",
        json={},
        headers={"Authorization": f"Bearer {routed['admin_key']}"},
    )
    assert r.status_code == 400, r.text
    info = next(d for d in r.json()["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "ALREADY_DELIVERED"
