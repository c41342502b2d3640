"""Property: nothing a caller sends produces a 5xx. Hypothesis builds request bodies of every
JSON type for every field of the write endpoints, then hostile values for every field of every
RPC read from the contract (REST through Envoy and gRPC directly), forged page tokens and signed
dealer webhooks with hostile events, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import json_format, message_factory
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccl.agent.v1 import agent_service_pb2
from ccl.dealer.v1 import dealer_service_pb2
from ccl.lead.v1 import lead_pb2, lead_service_pb2
from server.domain.principal import Role
from support import hostile
from support.data import example_request
from support.rpc import auth
from support.stack import EnvoyProcess, ServerThread
from support.webhook_signing import signed_headers, whsec

pytestmark = pytest.mark.e2e

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "1990-02-30",
            "(312) 555-0182",
            "a@b.co",
            "IL",
            "62701",
            "9999-12-31T00:00:00Z",
            "a\x00b",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
LEAD_FIELDS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "address",
    "monthly_income_cents",
    "down_payment_cents",
    "vehicle",
    "consent",
    "source",
    "visitor_id",
    "months_employed",
]


def body_for(fields: list[str]) -> st.SearchStrategy[dict]:  # type: ignore[type-arg]
    return st.fixed_dictionaries({}, optional={f: values for f in fields})


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=envoy_proxy.base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10
    ) as c:
        yield c


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(lead=body_for(LEAD_FIELDS), key=values)
def test_process_lead_never_5xx(http: httpx.Client, lead: dict, key: object) -> None:  # type: ignore[type-arg]
    r = http.post("/api/leads/process", json={"idempotency_key": key, "lead": lead})
    assert r.status_code < 500, r.text


@FUZZ
@given(
    event=body_for(
        [
            "anonymous_id",
            "event_type",
            "page",
            "campaign",
            "client_time",
            "sent_time",
            "email",
            "phone",
            "event_id",
            "user_agent",
            "ip_address",
        ]
    )
)
def test_track_never_5xx(http: httpx.Client, event: dict) -> None:  # type: ignore[type-arg]
    r = http.post("/api/visitors/track", json=event)
    assert r.status_code < 500, r.text


@FUZZ
@given(
    dealer=body_for(
        [
            "name",
            "states",
            "zip_prefixes",
            "accepted_tiers",
            "daily_cap",
            "priority",
            "weight",
            "endpoint_url",
            "delivery_format",
            "signing_secret",
            "active",
        ]
    )
)
def test_create_dealer_never_5xx(http: httpx.Client, dealer: dict) -> None:  # type: ignore[type-arg]
    r = http.post("/api/dealers", json=dealer)
    assert r.status_code < 500, r.text


@FUZZ
@given(
    path=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), max_size=20
    ),
    params=st.dictionaries(
        st.sampled_from(["page_size", "page_token", "status", "source", "created_after"]),
        st.text(max_size=12),
        max_size=3,
    ),
)
def test_reads_never_5xx(http: httpx.Client, path: str, params: dict) -> None:  # type: ignore[type-arg]
    for url in (f"/api/leads/{path}", f"/api/leads/{path}/activity", "/api/leads", "/api/dealers"):
        r = http.get(url, params=params if url in ("/api/leads", "/api/dealers") else None)
        assert r.status_code < 500, (url, r.text)


# ---------------------------------------------------------------------------------------------
# Every RPC, from the contract: hostile strings (lone surrogates, control characters, oversized
# values at each column boundary), enum numbers the contract does not declare, integer edges,
# and forged page tokens, through Envoy (REST) and directly (gRPC), on SQLite and PostgreSQL.

SERVICES = [
    lead_service_pb2.DESCRIPTOR.services_by_name["LeadService"],
    dealer_service_pb2.DESCRIPTOR.services_by_name["DealerService"],
    agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"],
]
# A status a caller's input must never cause: the HTTP 5xx family.
SERVER_FAULTS = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
UNARY = [
    m for s in SERVICES for m in s.methods if not m.client_streaming and not m.server_streaming
]
REST = [
    (m, rule)
    for m in UNARY
    if (rule := m.GetOptions().Extensions[annotations_pb2.http]).WhichOneof("pattern")
    and m.input_type.fields_by_name.get("body") is None  # the raw, signed webhook: below
]
_PATH_PARAM = re.compile(r"\{([a-z_.]+)\}")
HOSTILE = FUZZ  # the same budget per method
QUERY_MESSAGES = {"google.protobuf.Timestamp", "google.protobuf.FieldMask"}


def _percent(value: str) -> str:
    """Percent-encodes any string, lone surrogates included (the bytes a careless client sends)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _query_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_query_value(v) for v in value]
    return value if isinstance(value, str) else json.dumps(value)


def _request_class(method: Any) -> Any:
    return message_factory.GetMessageClass(method.input_type)


def _path_segment() -> st.SearchStrategy[str]:
    return hostile.hostile_text(surrogates=False).map(lambda s: quote(s, safe="") or "x")


VALID_EVENT = {
    "anonymous_id": "anon-fuzz",
    "event_type": "VISITOR_EVENT_TYPE_PAGE_VIEW",
    "page": {"url": "https://completecarloans.com/apply", "path": "/apply", "title": "Apply"},
    "campaign": {"source": "google", "medium": "cpc", "name": "spring"},
    "user_agent": "Mozilla/5.0",
    "ip_address": "203.0.113.9",
    "step": "income",
}
VALID_DEALER = {
    "name": "Fuzz Auto",
    "states": ["IL"],
    "zip_prefixes": ["627"],
    "accepted_tiers": ["A", "B"],
    "daily_cap": 10,
    "endpoint_url": "https://crm.example.com/leads",
    "delivery_format": "DELIVERY_FORMAT_ADF",
    "contact_email": "leads@fuzz-auto.example",
}


@dataclass(frozen=True)
class Known:
    """Rows that exist, so that a mutated request gets as far as the database."""

    lead_id: str
    dealer_id: str


@pytest.fixture(scope="module")
def known(http: httpx.Client) -> Known:
    lead = http.post("/api/leads/process", json=example_request())
    dealer = http.post("/api/dealers", json=VALID_DEALER)
    assert lead.status_code == dealer.status_code == 200, (lead.text, dealer.text)
    return Known(lead.json()["lead"]["lead_id"], dealer.json()["dealer"]["dealer_id"])


def baseline(method: Any, known: Known) -> dict[str, Any]:
    """A valid request of `method` (fields with hostile values are swapped in by the test)."""
    lead = {"lead_id": known.lead_id}
    request = example_request()
    del request["idempotency_key"]  # every lead new, so each reaches the insert
    return {
        "ProcessLead": request,
        "GetLead": lead,
        "ListLeadActivity": lead,
        "ListLeadPackages": lead,
        "ListLeadDeliveries": lead,
        "RouteLead": lead,
        "ListLeads": {"page_size": 5, "status": "LEAD_STATUS_PACKAGED"},
        "TrackVisitorEvent": VALID_EVENT,
        "RedeliverPackage": {"delivery_id": known.lead_id},
        "CreateDealer": {"dealer": VALID_DEALER},
        "GetDealer": {"dealer_id": known.dealer_id},
        "ListDealers": {"page_size": 5},
        "UpdateDealer": {
            "dealer": {**VALID_DEALER, "dealer_id": known.dealer_id},
            "update_mask": "name,zipPrefixes,endpointUrl",  # JSON FieldMask: lowerCamelCase
        },
        "TestDelivery": {"dealer_id": known.dealer_id},
        "ListDealerDeliveries": {"dealer_id": known.dealer_id, "page_size": 5},
    }.get(method.name, {})


def _lookup(request: dict[str, Any], dotted: str) -> Any:
    node: Any = request
    for name in dotted.split("."):
        node = node.get(name) if isinstance(node, dict) else None
    return node


@HOSTILE
@pytest.mark.parametrize(("method", "rule"), REST, ids=[m.full_name for m, _ in REST])
@given(data=st.data())
def test_every_rest_route_never_5xx(
    http: httpx.Client, known: Known, method: Any, rule: Any, data: st.DataObject
) -> None:
    request = data.draw(
        hostile.json_body(method.input_type)
        | hostile.mutated_json(method.input_type, baseline(method, known))
    )
    verb = rule.WhichOneof("pattern")
    template: str = getattr(rule, verb)
    path_fields = _PATH_PARAM.findall(template)

    def segment(dotted: str) -> str:
        value = _lookup(request, dotted)
        return _percent(value) if isinstance(value, str) and value else data.draw(_path_segment())

    path = _PATH_PARAM.sub(lambda match: segment(match.group(1)), template)
    bound = {p.split(".")[0] for p in path_fields}
    if rule.body == "*":
        body: Any = {k: v for k, v in request.items() if k not in bound}
    elif rule.body:
        body = dict(request.get(rule.body) or {})
        for p in path_fields:
            body.pop(p.partition(".")[2], None)
    else:
        body = None
    params = {
        name: _query_value(value)
        for name, value in request.items()
        if rule.body != "*" and name != rule.body and name not in bound
    }
    if verb == "get" and "page_token" in method.input_type.fields_by_name:
        if data.draw(st.booleans()):
            params["page_token"] = data.draw(hostile.page_tokens())
    query = "&".join(
        f"{name}={_percent(v)}"
        for name, value in params.items()
        for v in (value if isinstance(value, list) else [value])
    )
    content = json.dumps(body).encode() if body is not None else None  # ASCII: \ud800 survives
    url = f"{path}?{query}" if query else path
    assume(len(url) < 60_000)  # past Envoy's 60 KiB header limit (431) and httpx's own
    r = http.request(
        verb.upper(),
        url,
        content=content,
        headers={"content-type": "application/json"} if content is not None else None,
    )
    assert r.status_code < 500, (verb, url, body, r.text)


@pytest.fixture(scope="module")
def channel(stack: ServerThread) -> Iterator[grpc.Channel]:
    with stack.channel() as c:
        yield c


@HOSTILE
@pytest.mark.parametrize("method", UNARY, ids=[m.full_name for m in UNARY])
@given(data=st.data())
def test_every_grpc_method_never_a_server_fault(
    channel: grpc.Channel, admin_key: str, known: Known, method: Any, data: st.DataObject
) -> None:
    cls = _request_class(method)
    request = data.draw(
        hostile.message(cls) | hostile.mutated_message(cls, baseline(method, known))
    )
    if "page_token" in method.input_type.fields_by_name and data.draw(st.booleans()):
        request.page_token = data.draw(hostile.page_tokens().filter(_is_utf8))
    assert_no_server_fault(channel, admin_key, method, request)


def assert_no_server_fault(channel: grpc.Channel, key: str, method: Any, request: Any) -> None:
    """Calls `method` directly; any answer but a server fault passes."""
    call = channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=bytes,
    )
    try:
        call(request, metadata=auth(key), timeout=30)
    except grpc.RpcError as e:
        assert e.code() not in SERVER_FAULTS, (method.name, request, e.code(), e.details())


LISTS = [m for m in UNARY if "page_token" in m.input_type.fields_by_name]


@HOSTILE
@pytest.mark.parametrize("method", LISTS, ids=[m.full_name for m in LISTS])
@given(token=hostile.page_tokens())
def test_forged_page_tokens_never_5xx(
    http: httpx.Client,
    channel: grpc.Channel,
    admin_key: str,
    known: Known,
    method: Any,
    token: str,
) -> None:
    """Every list, REST and gRPC: a forged token is INVALID_PAGE_TOKEN (or an empty page for a
    well-formed one), never a server fault."""
    rule = method.GetOptions().Extensions[annotations_pb2.http]
    path = _PATH_PARAM.sub(known.lead_id, rule.get)
    url = f"{path}?page_token={_percent(token)}"
    if len(url) < 60_000:  # past Envoy's 60 KiB header limit (431) and httpx's own
        r = http.get(url)
        assert r.status_code < 500, (path, token, r.text)
    if not _is_utf8(token):
        return  # protobuf strings are UTF-8: gRPC cannot carry it
    request = json_format.ParseDict(baseline(method, known), _request_class(method)())
    request.page_token = token
    assert_no_server_fault(channel, admin_key, method, request)


def _is_utf8(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


WEBHOOK_SECRET = whsec("fuzz-dealer-secret-0123456789abcdef")


@pytest.fixture(scope="module")
def webhook_dealer(http: httpx.Client, stack: ServerThread) -> str:
    r = http.post(
        "/api/dealers",
        json={"name": "Fuzz Motors", "states": ["IL"], "signing_secret": WEBHOOK_SECRET},
    )
    assert r.status_code == 200, r.text
    return stack.create_key(Role.DEALER, r.json()["dealer"]["dealer_id"])


def _event() -> st.SearchStrategy[dict[str, Any]]:
    """An event whose fields are hostile text, or a value of any JSON type (`values`)."""
    text = hostile.hostile_text(surrogates=True)
    return st.fixed_dictionaries(
        {"event_id": text | st.uuids().map(str) | values},
        optional={
            "type": st.sampled_from(["lead", "status"]) | text | values,
            "lead_id": text | values,
            "status": st.sampled_from(["contacted", "sold", "returned"]) | text | values,
            "reason": text | values,
            "lead": hostile.json_body(lead_pb2.LeadInput.DESCRIPTOR) | values,
        },
    )


@HOSTILE
@given(events=st.lists(_event(), max_size=4))
def test_dealer_webhook_never_5xx_and_retries_get_the_same_answer(
    envoy_proxy: EnvoyProcess, webhook_dealer: str, events: list[dict[str, Any]]
) -> None:
    body = json.dumps({"events": events}).encode()  # ASCII escapes: lone surrogates survive
    headers = {"Authorization": f"Bearer {webhook_dealer}", **signed_headers(body, WEBHOOK_SECRET)}
    url = f"{envoy_proxy.base_url}/api/webhook/dealer-leads"
    first = httpx.post(url, content=body, headers=headers, timeout=30)
    assert first.status_code < 500, first.text
    again = httpx.post(url, content=body, headers=headers, timeout=30)
    assert again.status_code == first.status_code, again.text
    if first.status_code == 200:
        assert len(first.json()["results"]) == len(events)


BODY_ROUTES = [
    (rule.WhichOneof("pattern"), getattr(rule, rule.WhichOneof("pattern")))
    for m in UNARY
    if (rule := m.GetOptions().Extensions[annotations_pb2.http]).WhichOneof("pattern") and rule.body
]


@pytest.mark.parametrize(("verb", "template"), BODY_ROUTES, ids=[t for _, t in BODY_ROUTES])
def test_every_oversized_body_is_413_never_a_reset(
    envoy_proxy: EnvoyProcess, admin_key: str, verb: str, template: str
) -> None:
    """20 MiB to every route that takes a body, from a client that reads only after sending it
    all (http.client, as urllib and many SDKs): a 413 with the JSON error, never a reset."""
    path = _PATH_PARAM.sub("x", template)
    connection = HTTPConnection("127.0.0.1", envoy_proxy.http_port, timeout=120)
    try:
        connection.request(
            verb.upper(),
            path,
            body=b"{" + b" " * (20 * 1024 * 1024) + b"}",
            headers={"Authorization": f"Bearer {admin_key}", "content-type": "application/json"},
        )
        response = connection.getresponse()
        assert response.status == 413, response.read()[:500]
        assert b"REQUEST_TOO_LARGE" in response.read()
    finally:
        connection.close()


def _import_requests(known: Known) -> st.SearchStrategy[list[Any]]:
    cls = lead_service_pb2.ImportLeadsRequest
    lead = example_request()["lead"]
    base = {"idempotency_key": "import-fuzz", "lead": lead, "record_ref": "row-1"}
    return st.lists(hostile.message(cls) | hostile.mutated_message(cls, base), max_size=4)


@HOSTILE
@given(data=st.data())
def test_import_stream_never_a_server_fault(
    channel: grpc.Channel, admin_key: str, known: Known, data: st.DataObject
) -> None:
    """The client-streaming ImportLeads: hostile records are rejected one by one, never a
    server fault."""
    requests = data.draw(_import_requests(known))
    call = channel.stream_unary(
        "/ccl.lead.v1.LeadService/ImportLeads",
        request_serializer=lead_service_pb2.ImportLeadsRequest.SerializeToString,
        response_deserializer=bytes,
    )
    try:
        call(iter(requests), metadata=auth(admin_key), timeout=60)
    except grpc.RpcError as e:
        assert e.code() not in SERVER_FAULTS, (requests, e.code(), e.details())
