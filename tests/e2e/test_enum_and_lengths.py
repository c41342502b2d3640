"""Request enums outside their definition and values longer than their columns are
INVALID_ARGUMENT with a field violation, never INTERNAL, on SQLite and PostgreSQL: gRPC
directly, REST through Envoy."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2

from ccl.dealer.v1 import dealer_service_pb2 as dealer_pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.storage import models as m
from support.data import example_request
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def channel(stack: ServerThread) -> Iterator[grpc.Channel]:
    with stack.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=envoy_proxy.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def dealer_id(channel: grpc.Channel, admin_key: str) -> str:
    created = dealer_service_pb2_grpc.DealerServiceStub(channel).CreateDealer(
        dealer_pb.CreateDealerRequest(dealer=dealer_pb.Dealer(name="Enum Motors", states=["IL"])),
        metadata=auth(admin_key),
    )
    return str(created.dealer.dealer_id)


def rest_error(response: httpx.Response) -> tuple[int, str, set[str]]:
    reason, fields = "", set()
    for d in response.json().get("details", []):
        if d["@type"].endswith("ErrorInfo"):
            reason = d["reason"]
        if d["@type"].endswith("BadRequest"):
            fields = {v["field"] for v in d["field_violations"]}
    return response.status_code, reason, fields


# --- enums --------------------------------------------------------------------------------

# Calls one RPC with `number` in its enum field: (channel, dealer id, number, API key).
EnumCall = Callable[[grpc.Channel, str, int, str], Any]


def list_leads(channel: grpc.Channel, dealer_id: str, number: int, key: str) -> Any:
    request = lead_pb.ListLeadsRequest(status=number)  # type: ignore[arg-type]
    return lead_service_pb2_grpc.LeadServiceStub(channel).ListLeads(request, metadata=auth(key))


def track(channel: grpc.Channel, dealer_id: str, number: int, key: str) -> Any:
    request = lead_pb.TrackVisitorEventRequest(anonymous_id="anon-enum", event_type=number)  # type: ignore[arg-type]
    return lead_service_pb2_grpc.LeadServiceStub(channel).TrackVisitorEvent(
        request, metadata=auth(key)
    )


def create_dealer(channel: grpc.Channel, dealer_id: str, number: int, key: str) -> Any:
    dealer = dealer_pb.Dealer(name="Enum Motors 2", delivery_format=number)  # type: ignore[arg-type]
    return dealer_service_pb2_grpc.DealerServiceStub(channel).CreateDealer(
        dealer_pb.CreateDealerRequest(dealer=dealer), metadata=auth(key)
    )


def update_dealer(channel: grpc.Channel, dealer_id: str, number: int, key: str) -> Any:
    dealer = dealer_pb.Dealer(dealer_id=dealer_id, delivery_format=number)  # type: ignore[arg-type]
    mask = field_mask_pb2.FieldMask(paths=["delivery_format"])
    return dealer_service_pb2_grpc.DealerServiceStub(channel).UpdateDealer(
        dealer_pb.UpdateDealerRequest(dealer=dealer, update_mask=mask), metadata=auth(key)
    )


ENUM_FIELDS = [
    pytest.param(list_leads, "INVALID_FILTER", "status", id="ListLeads.status"),
    pytest.param(track, "INVALID_VISITOR_EVENT", "event_type", id="TrackVisitorEvent.event_type"),
    pytest.param(
        create_dealer, "INVALID_DEALER", "dealer.delivery_format", id="CreateDealer.format"
    ),
    pytest.param(
        update_dealer, "INVALID_DEALER", "dealer.delivery_format", id="UpdateDealer.format"
    ),
]


@pytest.mark.parametrize("number", [999, -1, 2**31 - 1])
@pytest.mark.parametrize(("call", "reason", "field"), ENUM_FIELDS)
def test_unknown_enum_number_is_a_field_violation(
    channel: grpc.Channel,
    admin_key: str,
    dealer_id: str,
    call: EnumCall,
    reason: str,
    field: str,
    number: int,
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        call(channel, dealer_id, number, admin_key)
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err.message
    assert (err.reason, set(err.violations)) == (reason, {field})


def test_known_enum_values_still_work(
    channel: grpc.Channel, admin_key: str, dealer_id: str
) -> None:
    list_leads(channel, dealer_id, 7, admin_key)  # LEAD_STATUS_DELIVERED
    assert track(channel, dealer_id, 1, admin_key).visitor_id  # PAGE_VIEW
    updated = update_dealer(channel, dealer_id, dealer_pb.DELIVERY_FORMAT_ADF, admin_key)
    assert updated.dealer.delivery_format == dealer_pb.DELIVERY_FORMAT_ADF


@pytest.mark.parametrize(
    ("method", "path", "body", "reason", "field"),
    [
        (
            "POST",
            "/api/visitors/track",
            {"anonymous_id": "anon-enum", "event_type": 999},
            "INVALID_VISITOR_EVENT",
            "event_type",
        ),
        (
            "POST",
            "/api/dealers",
            {"name": "Enum Motors 3", "delivery_format": 999},
            "INVALID_DEALER",
            "dealer.delivery_format",
        ),
        (
            "PATCH",
            "/api/dealers/{dealer_id}?update_mask=delivery_format",
            {"delivery_format": -1},
            "INVALID_DEALER",
            "dealer.delivery_format",
        ),
    ],
)
def test_unknown_enum_number_in_a_json_body_is_400_through_envoy(
    http: httpx.Client,
    dealer_id: str,
    method: str,
    path: str,
    body: dict[str, Any],
    reason: str,
    field: str,
) -> None:
    # Envoy passes a number in a JSON body through as it is (proto3 enums are open).
    r = http.request(method, path.format(dealer_id=dealer_id), json=body)
    assert rest_error(r) == (400, reason, {field}), r.text


def test_unknown_status_in_a_query_is_400_through_envoy_too(http: httpx.Client) -> None:
    # Envoy refuses this one itself (a plain-text 400), like gRPC now does with a violation.
    assert http.get("/api/leads", params={"status": 999}).status_code == 400


# --- visitor event lengths ----------------------------------------------------------------


def test_over_long_visitor_values_are_400_through_envoy(http: httpx.Client) -> None:
    r = http.post(
        "/api/visitors/track",
        json={
            "anonymous_id": "anon-long",
            "event_type": "VISITOR_EVENT_TYPE_STEP_COMPLETED",
            "campaign": {
                "source": "s" * 201,
                "medium": "m" * 201,
                "name": "n" * 320,
                "term": "t" * 201,
                "content": "c" * 201,
            },
            "step": "x" * 65,
            "ip_address": "1" * 65,
        },
    )
    assert rest_error(r) == (
        400,
        "INVALID_VISITOR_EVENT",
        {
            "campaign.source",
            "campaign.medium",
            "campaign.name",
            "campaign.term",
            "campaign.content",
            "step",
            "ip_address",
        },
    )


@pytest.mark.parametrize("ip", ["<script>x</script>", "fe80::1%<script>x</script>"])
def test_script_as_ip_address_is_400_through_envoy(http: httpx.Client, ip: str) -> None:
    r = http.post(
        "/api/visitors/track",
        json={
            "anonymous_id": "anon-xss",
            "event_type": "VISITOR_EVENT_TYPE_PAGE_VIEW",
            "ip_address": ip,
        },
    )
    assert rest_error(r) == (400, "INVALID_VISITOR_EVENT", {"ip_address"})


def stored_event(stack: ServerThread, anonymous_id: str) -> m.VisitorEvent:
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        return (
            m.VisitorEvent.select()
            .join(m.Visitor)
            .where(m.Visitor.anonymous_id == anonymous_id)
            .get()
        )
    finally:
        stack.app.db.db.close()


def test_longest_accepted_visitor_values_are_stored(
    http: httpx.Client, stack: ServerThread
) -> None:
    anonymous_id = "a" * 127 + "L"
    r = http.post(
        "/api/visitors/track",
        json={
            "anonymous_id": anonymous_id,
            "event_type": "VISITOR_EVENT_TYPE_STEP_COMPLETED",
            "event_id": "e" * 128,
            "page": {
                "url": "https://x.com/" + "u" * 2034,
                "path": "/" + "p" * 2047,
                "referrer": "https://r.com/" + "r" * 2034,
                "title": "T" * 320,
            },
            "campaign": {
                "source": "s" * 200,
                "medium": "m" * 200,
                "name": "n" * 200,
                "term": "t" * 200,
                "content": "c" * 200,
            },
            "user_agent": "U" * 1000,
            "step": "x" * 64,
            "ip_address": "2001:DB8:0:0:0:0:0:0001",
        },
    )
    assert r.status_code == 200, r.text
    row = stored_event(stack, anonymous_id)
    assert (row.utm_source, row.utm_campaign, row.utm_content) == ("s" * 200, "n" * 200, "c" * 200)
    assert (row.step, row.event_id, row.page_title) == ("x" * 64, "e" * 128, "T" * 320)
    assert len(row.page_url) == len(row.page_path) == len(row.referrer) == 2048
    assert row.ip_address == "2001:db8::1"


# --- lead consent ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consent", "field"),
    [
        ({"ip_address": "fe80::1%" + "x" * 100}, "lead.consent.ip_address"),
        ({"page_url": "https://completecarloans.com/ap\nply"}, "lead.consent.page_url"),
        ({"page_url": "javascript:alert(1)"}, "lead.consent.page_url"),
    ],
)
def test_bad_consent_values_are_400_through_envoy(
    http: httpx.Client, consent: dict[str, str], field: str
) -> None:
    body = example_request()
    body["lead"]["consent"].update(consent)
    assert rest_error(http.post("/api/leads/process", json=body)) == (400, "INVALID_LEAD", {field})


def test_a_misspelt_income_field_is_a_violation_not_a_silent_zero(
    envoy_proxy: EnvoyProcess, admin_key: str
) -> None:
    """Envoy's transcoder drops unknown JSON names: `monthly_income` (for `..._cents`) used to
    leave the income at 0 and the lead declined. Income is required, so it is a 400."""
    request = example_request()
    request["lead"]["monthly_income"] = request["lead"].pop("monthly_income_cents")
    r = httpx.post(
        f"{envoy_proxy.base_url}/api/leads/process",
        json=request,
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert r.status_code == 400 and "lead.monthly_income_cents" in r.text, r.text
