"""Hostile strings in the dealer webhook and forged page tokens, through Envoy (REST) and gRPC,
on SQLite and PostgreSQL.

- A lone surrogate or a NUL in any string of a webhook event (event id, type, lead id, status,
  reason, the nested lead, a key) rejects that event only: the other events are applied, the
  answer is 200, nothing of the bad event is applied, and a retry answers the same.
- A page token the list did not issue (NUL, lone surrogate, 2^70, wrong types or kind, extra
  keys, garbage, over-long) is INVALID_ARGUMENT / INVALID_PAGE_TOKEN on ListLeads,
  ListLeadActivity and ListDealers; the tokens the lists issue still page through everything.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2

from ccl.dealer.v1 import dealer_service_pb2 as dealer_pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.domain.principal import Role
from support.data import example_request
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread
from support.webhook_signing import signed_headers, whsec

pytestmark = pytest.mark.e2e
SECRET = whsec("hostile-dealer-secret-0123456789")
WEBHOOK = "/api/webhook/dealer-leads"
_n = itertools.count(10)


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=envoy_proxy.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def channel(stack: ServerThread) -> Iterator[grpc.Channel]:
    with stack.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def leads(channel: grpc.Channel) -> lead_service_pb2_grpc.LeadServiceStub:
    return lead_service_pb2_grpc.LeadServiceStub(channel)


@pytest.fixture(scope="module")
def dealers(channel: grpc.Channel) -> dealer_service_pb2_grpc.DealerServiceStub:
    return dealer_service_pb2_grpc.DealerServiceStub(channel)


@pytest.fixture(scope="module")
def dealer(http: httpx.Client, stack: ServerThread) -> dict[str, str]:
    """An Illinois dealer with a signing secret (its leads come back to it), and its key."""
    r = http.post(
        "/api/dealers",
        json={
            "name": "Hostile Test Motors",
            "states": ["IL"],
            "accepted_tiers": ["A", "B", "C"],
            "daily_cap": 1000,
            "endpoint_url": "http://127.0.0.1:9/crm",
            "signing_secret": SECRET,
            "active": True,
        },
    )
    assert r.status_code == 200, r.text
    dealer_id = r.json()["dealer"]["dealer_id"]
    return {"id": dealer_id, "key": stack.create_key(Role.DEALER, dealer_id)}


def new_lead() -> dict[str, Any]:
    """A valid lead payload, a distinct person each time (so never a duplicate)."""
    n = next(_n)
    lead: dict[str, Any] = example_request(
        email=f"hostile.{n}@example.com", phone=f"(312) 555-{n:04d}"
    )["lead"]
    return lead


def signed_body(events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    """The JSON body (lone surrogates as `\\ud800` escapes, as a CRM's JSON encoder writes them)
    and its signature headers."""
    body = json.dumps({"events": events}).encode()
    return body, signed_headers(body, SECRET)


def post_rest(envoy: EnvoyProcess, key: str, events: list[dict[str, Any]]) -> list[dict[str, str]]:
    body, signed = signed_body(events)
    headers = {"Authorization": f"Bearer {key}", **signed}
    r = httpx.post(f"{envoy.base_url}{WEBHOOK}", content=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    results: list[dict[str, str]] = r.json()["results"]
    return [
        {
            "event_id": x.get("event_id", ""),
            "status": x["status"].removeprefix("EVENT_RESULT_STATUS_"),
            "reason": x.get("reason", ""),
            "lead_id": x.get("lead_id", ""),
        }
        for x in results
    ]


def post_grpc(
    stub: lead_service_pb2_grpc.LeadServiceStub, key: str, events: list[dict[str, Any]]
) -> list[dict[str, str]]:
    body, signed = signed_body(events)
    response = stub.ReceiveDealerWebhook(
        lead_pb.ReceiveDealerWebhookRequest(
            body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
        ),
        metadata=[*auth(key), *((k, v) for k, v in signed.items() if k != "content-type")],
        timeout=60,
    )
    return [
        {
            "event_id": x.event_id,
            "status": lead_pb.EventResultStatus.Name(x.status).removeprefix("EVENT_RESULT_STATUS_"),
            "reason": x.reason,
            "lead_id": x.lead_id,
        }
        for x in response.results
    ]


Post = Callable[[list[dict[str, Any]]], list[dict[str, str]]]


@pytest.fixture(scope="module", params=["rest", "grpc"])
def post(
    request: pytest.FixtureRequest,
    envoy_proxy: EnvoyProcess,
    leads: lead_service_pb2_grpc.LeadServiceStub,
    dealer: dict[str, str],
) -> Post:
    """Sends a signed batch as the dealer, through Envoy (REST) or to the server (gRPC)."""
    if request.param == "rest":
        return lambda events: post_rest(envoy_proxy, dealer["key"], events)
    return lambda events: post_grpc(leads, dealer["key"], events)


def hostile_events(lead_id: str, tag: str) -> list[tuple[dict[str, Any], str, bool]]:
    """(event, the field its reason names, whether the event id is echoed): one lone surrogate
    or NUL each. Each, if applied, would close `lead_id` as lost."""

    def status(event_id: str, **changes: Any) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "type": "status",
            "lead_id": lead_id,
            "status": "lost",
            "reason": "no answer",
            **changes,
        }

    def lead(event_id: str, **changes: Any) -> dict[str, Any]:
        return {"event_id": event_id, "type": "lead", "lead": {**new_lead(), **changes}}

    address = {"street": "1 A St", "city": "X", "state": "IL", "zip_code": "62701"}
    return [
        (status(f"{tag}\ud800"), "event_id", False),
        (status(f"{tag}\x00"), "event_id", False),
        (status(f"{tag}-type-s", type="status\ud800"), "type", True),
        (status(f"{tag}-type-n", type="sta\x00tus"), "type", True),
        (status(f"{tag}-lead-s", lead_id=lead_id + "\udc00"), "lead_id", True),
        (status(f"{tag}-lead-n", lead_id=lead_id + "\x00"), "lead_id", True),
        (status(f"{tag}-status-s", status="lost\ud800"), "status", True),
        (status(f"{tag}-status-n", status="lost\x00"), "status", True),
        (status(f"{tag}-reason-s", reason="no \ud800 answer"), "reason", True),
        (status(f"{tag}-reason-n", reason="no \x00 answer"), "reason", True),
        (lead(f"{tag}-name-s", first_name="Ana\ud800"), "lead.first_name", True),
        (lead(f"{tag}-key-s", address={**address, "\ud800": "x"}), "lead.address", True),
        (
            lead(f"{tag}-deep-n", address={**address, "street2": "\x00"}),
            "lead.address.street2",
            True,
        ),
    ]


def test_hostile_strings_reject_their_event_only_and_a_retry_answers_the_same(
    post: Post, http: httpx.Client, request: pytest.FixtureRequest
) -> None:
    tag = f"h-{request.node.callspec.id}"
    first = post([{"event_id": f"{tag}-seed", "type": "lead", "lead": new_lead()}])
    assert first[0]["status"] == "ACCEPTED", first
    lead_id = first[0]["lead_id"]
    lead = http.get(f"/api/leads/{lead_id}").json()["lead"]
    assert lead["status"] in {
        "LEAD_STATUS_PACKAGED",
        "LEAD_STATUS_DELIVERED",
        "LEAD_STATUS_DELIVERY_FAILED",
    }, lead

    hostile = hostile_events(lead_id, tag)
    events = [
        {"event_id": f"{tag}-new", "type": "lead", "lead": new_lead()},
        *(event for event, _, _ in hostile),
        {
            "event_id": f"{tag}-contacted",
            "type": "status",
            "lead_id": lead_id,
            "status": "contacted",
        },
    ]
    results = post(events)

    assert len(results) == len(events)
    assert results[0]["status"] == "ACCEPTED" and results[0]["lead_id"], results[0]
    assert results[-1] == {
        "event_id": f"{tag}-contacted",
        "status": "ACCEPTED",
        "reason": "",
        "lead_id": lead_id,
    }
    for i, ((event, field, echoed), result) in enumerate(
        zip(hostile, results[1:-1], strict=True), start=1
    ):
        assert result["status"] == "REJECTED", (field, result)
        assert result["reason"].startswith(f"INVALID_EVENT: events[{i}].{field} "), result
        assert result["event_id"] == (event["event_id"] if echoed else ""), result
        assert result["lead_id"] == "", result
    # None of the bad "lost" events was applied: the lead moved on to contacted only.
    lead = http.get(f"/api/leads/{lead_id}").json()["lead"]
    assert lead["status"] == "LEAD_STATUS_CONTACTED", lead
    assert lead.get("reason", "") == ""

    again = post(events)
    assert again[1:-1] == results[1:-1], "a bad event is answered the same on every retry"
    assert [(r["status"], r["lead_id"]) for r in (again[0], again[-1])] == [
        ("ALREADY_RECEIVED", results[0]["lead_id"]),
        ("ALREADY_RECEIVED", lead_id),
    ]


def test_a_batch_of_only_hostile_events_is_answered(
    post: Post, request: pytest.FixtureRequest
) -> None:
    tag = f"only-{request.node.callspec.id}"
    unknown = "00000000-0000-4000-8000-000000000000"
    events = [event for event, _, _ in hostile_events(unknown, tag)]
    first = post(events)
    assert [r["status"] for r in first] == ["REJECTED"] * len(events)
    assert post(events) == first


def test_fields_of_other_json_types_reject_their_event(
    post: Post, request: pytest.FixtureRequest
) -> None:
    """A list or an object where text belongs (`status` was looked up in a dict: unhashable,
    a 500 on every retry) rejects that event only."""
    tag = f"types-{request.node.callspec.id}"
    unknown = "00000000-0000-4000-8000-000000000000"
    events = [
        {"event_id": f"{tag}-{i}", "type": "status", "lead_id": unknown, **fields}
        for i, fields in enumerate(
            [
                {"status": ["sold"]},
                {"status": {"a": 1}},
                {"status": "sold", "reason": ["x"]},
                {"status": "sold", "lead_id": {"a": 1}},
                {"type": ["status"], "status": "sold"},
            ]
        )
    ]
    first = post(events)
    assert [r["status"] for r in first] == ["REJECTED"] * len(events)
    # Not recorded, like any other rejected event: a retry answers the same, never a 500.
    assert post(events) == first


# --- page tokens ------------------------------------------------------------------------

T = "2024-01-01T00:00:00.000001"
U = "0b7c2a4e-5d1f-4c3a-9e8b-1a2b3c4d5e6f"


def forge(document: object) -> str:
    """A token as the lists spell them (base64url without padding) around any JSON or bytes."""
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


ANY_LIST = {
    "garbage": "garbage!",
    "not-base64": "@@@@",
    "one-char": "a",
    "padded": forge({"k": "activity", "i": 1}) + "==",
    "over-long": "A" * 5000,
    "not-json": forge(b"not json"),
    "not-utf8": forge(b'{"k":"\xff"}'),
    "utf16": forge('{"k":"activity","i":1}'.encode("utf-16")),
    "array": forge([1, 2]),
    "empty-object": forge({}),
    "no-kind": forge({"i": 1}),
}
PER_LIST: dict[str, dict[str, object]] = {
    "leads": {
        "id-nul": {"k": "leads", "t": T, "i": "a\x00b"},
        "id-surrogate": {"k": "leads", "t": T, "i": "\ud800"},
        "id-not-an-id": {"k": "leads", "t": T, "i": "x"},
        "id-number": {"k": "leads", "t": T, "i": 5},
        "time-nul": {"k": "leads", "t": T + "\x00", "i": U},
        "time-surrogate": {"k": "leads", "t": "2024-01-01T00:00:00\udfff", "i": U},
        "time-number": {"k": "leads", "t": 1_700_000_000, "i": U},
        "time-year-1": {"k": "leads", "t": "0001-01-01T00:00:00", "i": U},
        "time-year-9999": {"k": "leads", "t": "9999-12-31T23:59:59", "i": U},
        "time-zoned": {"k": "leads", "t": "2024-01-01T00:00:00+05:00", "i": U},
        "time-garbage": {"k": "leads", "t": "yesterday", "i": U},
        "missing-id": {"k": "leads", "t": T},
        "extra-key": {"k": "leads", "t": T, "i": U, "x": 1},
        "other-kind": {"k": "dealers", "t": T, "i": U},
    },
    "activity": {
        "id-2^70": {"k": "activity", "i": 2**70},
        "id-2^63": {"k": "activity", "i": 2**63},
        "id-negative": {"k": "activity", "i": -1},
        "id-bool": {"k": "activity", "i": True},
        "id-float": {"k": "activity", "i": 1.5},
        "id-string": {"k": "activity", "i": "1"},
        "id-nul": {"k": "activity", "i": "1\x00"},
        "id-surrogate": {"k": "activity", "i": "\ud800"},
        "extra-key": {"k": "activity", "i": 1, "t": T},
        "other-kind": {"k": "leads", "i": 1},
    },
    "dealers": {
        "name-nul": {"k": "dealers", "n": "a\x00b", "i": U},
        "name-surrogate": {"k": "dealers", "n": "a\ud800", "i": U},
        "name-control": {"k": "dealers", "n": "a\x01", "i": U},
        "name-too-long": {"k": "dealers", "n": "x" * 201, "i": U},
        "name-empty": {"k": "dealers", "n": "", "i": U},
        "name-number": {"k": "dealers", "n": 5, "i": U},
        "id-nul": {"k": "dealers", "n": "A", "i": "\x00"},
        "id-surrogate": {"k": "dealers", "n": "A", "i": "\udc00"},
        "extra-key": {"k": "dealers", "n": "A", "i": U, "x": None},
        "other-kind": {"k": "leads", "n": "A", "i": U},
    },
}
FORGED = [
    pytest.param(name, token, id=f"{name}-{case}")
    for name in PER_LIST
    for case, token in [
        *ANY_LIST.items(),
        *((case, forge(doc)) for case, doc in PER_LIST[name].items()),
    ]
]


@pytest.fixture(scope="module")
def activity_lead(envoy_proxy: EnvoyProcess, dealer: dict[str, str], http: httpx.Client) -> str:
    """Something on every list: three leads (the first one's id is returned, for its activity
    log) and dealers whose names a strict parser must still take back from a token."""
    events = [{"event_id": f"tokens-{i}", "type": "lead", "lead": new_lead()} for i in range(3)]
    results = post_rest(envoy_proxy, dealer["key"], events)
    assert [r["status"] for r in results] == ["ACCEPTED"] * 3, results
    for name in ("Çafé Motors 🚗", 'Zoë\'s "Quoted" Autos', "日本車センター"):
        r = http.post("/api/dealers", json={"name": name, "states": ["TX"]})
        assert r.status_code == 200, r.text
    return results[0]["lead_id"]


def list_grpc(
    name: str,
    token: str,
    lead_id: str,
    leads: lead_service_pb2_grpc.LeadServiceStub,
    dealers: dealer_service_pb2_grpc.DealerServiceStub,
    key: str,
    size: int = 1,
) -> tuple[list[str], str]:
    """(item ids, next token) of one page of list `name` over gRPC."""
    md = auth(key)
    if name == "leads":
        r = leads.ListLeads(lead_pb.ListLeadsRequest(page_size=size, page_token=token), metadata=md)
        return [x.lead_id for x in r.leads], r.next_page_token
    if name == "activity":
        request = lead_pb.ListLeadActivityRequest(lead_id=lead_id, page_size=size, page_token=token)
        a = leads.ListLeadActivity(request, metadata=md)
        return [x.activity_id for x in a.activities], a.next_page_token
    d = dealers.ListDealers(
        dealer_pb.ListDealersRequest(page_size=size, page_token=token), metadata=md
    )
    return [x.dealer_id for x in d.dealers], d.next_page_token


def rest_path(name: str, lead_id: str) -> str:
    return {"leads": "/api/leads", "activity": f"/api/leads/{lead_id}/activity"}.get(
        name, "/api/dealers"
    )


def rest_items(name: str, body: dict[str, Any]) -> list[str]:
    field, key = {
        "leads": ("leads", "lead_id"),
        "activity": ("activities", "activity_id"),
        "dealers": ("dealers", "dealer_id"),
    }[name]
    return [x[key] for x in body.get(field, [])]


@pytest.mark.parametrize(("name", "token"), FORGED)
def test_forged_page_token_is_invalid_page_token(
    name: str,
    token: str,
    activity_lead: str,
    http: httpx.Client,
    leads: lead_service_pb2_grpc.LeadServiceStub,
    dealers: dealer_service_pb2_grpc.DealerServiceStub,
    admin_key: str,
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        list_grpc(name, token, activity_lead, leads, dealers, admin_key)
    err = rich_error(e.value)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN"), err
    assert set(err.violations) == {"page_token"}

    r = http.get(rest_path(name, activity_lead), params={"page_size": 1, "page_token": token})
    assert r.status_code == 400, r.text
    reasons = [d.get("reason") for d in r.json().get("details", [])]
    assert "INVALID_PAGE_TOKEN" in reasons, r.text


@pytest.mark.parametrize("name", ["leads", "activity", "dealers"])
def test_issued_tokens_page_through_everything(
    name: str,
    activity_lead: str,
    http: httpx.Client,
    leads: lead_service_pb2_grpc.LeadServiceStub,
    dealers: dealer_service_pb2_grpc.DealerServiceStub,
    admin_key: str,
) -> None:
    everything, _ = list_grpc(name, "", activity_lead, leads, dealers, admin_key, size=500)
    assert len(everything) >= 3

    seen, token = [], ""
    for _ in range(len(everything) + 1):  # a hang guard only
        page, token = list_grpc(name, token, activity_lead, leads, dealers, admin_key)
        seen += page
        if not token:
            break
    assert seen == everything

    seen, token = [], ""
    for _ in range(len(everything) + 1):
        params = {"page_size": 1, **({"page_token": token} if token else {})}
        r = http.get(rest_path(name, activity_lead), params=params)
        assert r.status_code == 200, r.text
        seen += rest_items(name, r.json())
        token = r.json().get("next_page_token", "")
        if not token:
            break
    assert seen == everything
