"""Every RPC x every role over the wire (both backends), and the submit-only `intake` key
through Envoy: a role the policy does not list is PERMISSION_DENIED (ROLE_NOT_ALLOWED); a listed
role gets past authorisation (whatever the empty request then earns)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest

from server.domain.principal import Role, parse_role
from server.transport import policy
from support.data import example_request
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread

STREAMING_IN = {"/ccl.lead.v1.LeadService/ImportLeads"}
STREAMING_BOTH = {"/ccl.chat.v1.ChatService/Converse"}
METHODS = sorted(set(policy.ROLES) | policy.SIGNATURE_VERIFIED)
INTAKE_ALLOWED = {
    "/ccl.lead.v1.LeadService/ProcessLead",
    "/ccl.lead.v1.LeadService/TrackVisitorEvent",
}


@pytest.fixture(scope="module")
def channel(stack: ServerThread) -> Iterator[grpc.Channel]:
    with stack.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def keys(stack: ServerThread) -> dict[Role, str]:
    from server.storage import models

    stack.app.db.db.connect(reuse_if_open=True)
    try:
        dealer_id = str(models.Dealer.create(name="Matrix Motors", states_json='["IL"]').id)
    finally:
        stack.app.db.db.close()
    return {
        role: stack.create_key(role, dealer_id if role is Role.DEALER else None) for role in Role
    }


def call(channel: grpc.Channel, method: str, key: str) -> tuple[grpc.StatusCode, str]:
    metadata = auth(key)
    try:
        if method in STREAMING_BOTH:
            responses = channel.stream_stream(method)(iter([]), metadata=metadata, timeout=10)
            for _ in responses:
                pass
        elif method in STREAMING_IN:
            channel.stream_unary(method)(iter([]), metadata=metadata, timeout=10)
        else:
            channel.unary_unary(method)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as e:
        return e.code(), rich_error(e).reason
    return grpc.StatusCode.OK, ""


def test_intake_is_submit_only() -> None:
    assert parse_role("intake") is Role.INTAKE
    allowed = {method for method, roles in policy.ROLES.items() if Role.INTAKE in roles}
    assert allowed == INTAKE_ALLOWED


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_every_rpc_for_every_role(channel: grpc.Channel, keys: dict[Role, str], role: Role) -> None:
    for method in METHODS:
        code, reason = call(channel, method, keys[role])
        # The key itself is always good (a webhook's own signature may still be missing).
        assert not reason.startswith("API_KEY"), (method, reason)
        allowed = method in policy.SIGNATURE_VERIFIED or role in policy.ROLES[method]
        denied = code == grpc.StatusCode.PERMISSION_DENIED and reason == "ROLE_NOT_ALLOWED"
        assert denied is not allowed, (method, code, reason)


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=10) as client:
        yield client


@pytest.mark.e2e
def test_intake_key_submits_and_reads_nothing_through_rest(
    http: httpx.Client, keys: dict[Role, str]
) -> None:
    headers = {"Authorization": f"Bearer {keys[Role.INTAKE]}"}
    request = example_request(email="intake.rest@example.com", phone="(312) 555-0109")
    request["idempotency_key"] = "intake-rest-1"
    created = http.post("/api/leads/process", json=request, headers=headers)
    assert created.status_code == 200, created.text
    lead_id = created.json()["lead"]["lead_id"]
    for path in (f"/api/leads/{lead_id}", "/api/leads", f"/api/leads/{lead_id}/activity"):
        r = http.get(path, headers=headers)
        assert r.status_code == 403, (path, r.text)
    event = {"anonymous_id": "anon-intake", "event_type": "page_view"}
    tracked = http.post("/api/visitors/track", json=event, headers=headers)
    assert tracked.status_code != 403, tracked.text
