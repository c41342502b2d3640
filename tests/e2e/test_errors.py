"""Error cases of every lead, dealer and visitor RPC through Envoy: HTTP status and ErrorInfo
reason (with the field violations), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from ccl.lead.v1 import lead_service_pb2, lead_service_pb2_grpc
from server.agents.orchestrator import agent as orchestrator
from support.data import example_message
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e
UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=envoy_proxy.base_url, headers=headers, timeout=10) as client:
        yield client


def error(response: httpx.Response) -> tuple[int, str, set[str]]:
    body = response.json()
    reason, fields = "", set()
    for d in body.get("details", []):
        if d["@type"].endswith("ErrorInfo"):
            reason = d["reason"]
        if d["@type"].endswith("BadRequest"):
            fields = {v["field"] for v in d["field_violations"]}
    return response.status_code, reason, fields


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"page_token": "garbage"}, (400, "INVALID_PAGE_TOKEN", {"page_token"})),
        ({"page_size": 501}, (400, "INVALID_PAGE_SIZE", {"page_size"})),
    ],
)
def test_list_leads_paging_errors(http: httpx.Client, params: dict, expected: tuple) -> None:  # type: ignore[type-arg]
    assert error(http.get("/api/leads", params=params)) == expected


@pytest.mark.parametrize("suffix", ["", "/activity", "/packages", "/deliveries"])
def test_unknown_lead_is_404(http: httpx.Client, suffix: str) -> None:
    assert error(http.get(f"/api/leads/{UNKNOWN}{suffix}"))[:2] == (404, "LEAD_NOT_FOUND")


def test_nul_characters_are_a_400_not_a_500(http: httpx.Client) -> None:
    for path in ("/api/leads/abc%00def", "/api/leads/abc%00def/activity", "/api/dealers/x%00y"):
        assert error(http.get(path))[:2] == (400, "INVALID_CHARACTER"), path
    assert error(http.get("/api/leads", params={"source": "a\x00b"}))[:2] == (
        400,
        "INVALID_CHARACTER",
    )
    r = http.post(
        "/api/visitors/track",
        json={"anonymous_id": "an\u0000on", "event_type": "VISITOR_EVENT_TYPE_PAGE_VIEW"},
    )
    assert error(r) == (400, "INVALID_CHARACTER", {"anonymous_id"})


def test_unknown_delivery_and_route(http: httpx.Client) -> None:
    assert error(http.post(f"/api/deliveries/{UNKNOWN}:redeliver", json={}))[:2] == (
        404,
        "DELIVERY_NOT_FOUND",
    )
    assert error(http.post(f"/api/leads/{UNKNOWN}:route", json={}))[:2] == (404, "LEAD_NOT_FOUND")


def test_bad_visitor_event_names_each_field(http: httpx.Client) -> None:
    r = http.post("/api/visitors/track", json={"page": {"url": "x" * 3000}})
    assert error(r) == (400, "INVALID_VISITOR_EVENT", {"anonymous_id", "event_type", "page.url"})


def test_dealer_errors(http: httpx.Client) -> None:
    assert error(http.get(f"/api/dealers/{UNKNOWN}"))[:2] == (404, "DEALER_NOT_FOUND")
    missing = http.patch(
        f"/api/dealers/{UNKNOWN}", json={"daily_cap": 3}, params={"update_mask": "daily_cap"}
    )
    assert error(missing)[:2] == (404, "DEALER_NOT_FOUND")
    no_mask = http.patch(f"/api/dealers/{UNKNOWN}", json={"daily_cap": 3})
    assert error(no_mask) == (400, "INVALID_DEALER", {"update_mask"})
    bad_mask = http.patch(
        f"/api/dealers/{UNKNOWN}", json={}, params={"update_mask": "signing_secret_set"}
    )
    assert error(bad_mask) == (400, "INVALID_DEALER", {"update_mask"})
    assert error(http.get("/api/dealers", params={"page_token": "garbage"}))[:2] == (
        400,
        "INVALID_PAGE_TOKEN",
    )


def test_dealer_admin_is_admin_only(envoy_proxy: EnvoyProcess, dealer_keys: dict) -> None:  # type: ignore[type-arg]
    headers = {"Authorization": f"Bearer {dealer_keys['A'][1]}"}
    r = httpx.get(f"{envoy_proxy.base_url}/api/dealers", headers=headers)
    assert error(r)[:2] == (403, "ROLE_NOT_ALLOWED")


def test_import_stream_too_large(
    stack: ServerThread, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(orchestrator, "MAX_IMPORT_RECORDS", 3)
    records = [
        lead_service_pb2.ImportLeadsRequest(record_ref=str(i), lead=example_message().lead)
        for i in range(4)
    ]
    with stack.channel() as channel, pytest.raises(grpc.RpcError) as e:
        lead_service_pb2_grpc.LeadServiceStub(channel).ImportLeads(
            iter(records), metadata=auth(admin_key)
        )
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "IMPORT_TOO_LARGE"
