"""The convenience client against a real server, directly and through Envoy."""

from __future__ import annotations

import asyncio
import concurrent.futures

import grpc
import pytest

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.dealer.v1 import dealer_service_pb2 as dealer_pb
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl_client import CclClient, errors
from ccl_client.aio import AsyncCclClient
from support.data import example_message
from support.stack import EnvoyProcess, ServerThread


@pytest.fixture(params=["server", "envoy"])
def target(request, stack: ServerThread, envoy_proxy: EnvoyProcess) -> str:  # type: ignore[no-untyped-def]
    return stack.address if request.param == "server" else f"127.0.0.1:{envoy_proxy.http_port}"


def test_client_authenticates_and_processes(target: str, admin_key: str) -> None:
    with CclClient(target, api_key=admin_key) as ccl:
        created = ccl.leads.ProcessLead(example_message(f"client-{target}"))
        got = ccl.leads.GetLead(lead_pb.GetLeadRequest(lead_id=created.lead.lead_id))
        assert got.lead.lead_id == created.lead.lead_id
        assert len(ccl.agents.ListAgentStatus(agent_pb.ListAgentStatusRequest()).agents) == 5


def test_client_without_key_is_unauthenticated(target: str) -> None:
    with CclClient(target) as ccl, pytest.raises(grpc.RpcError) as e:
        ccl.agents.GetSystemStats(agent_pb.GetSystemStatsRequest())
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_client_applies_its_default_deadline(  # type: ignore[no-untyped-def]
    target: str, admin_key: str, stack: ServerThread, monkeypatch
) -> None:
    async def slow():  # type: ignore[no-untyped-def]
        await asyncio.sleep(2)

    monkeypatch.setattr(stack.app.stats, "system_stats", slow)
    with CclClient(target, api_key=admin_key, timeout=0.3) as ccl:
        with pytest.raises(grpc.RpcError) as e:
            ccl.agents.GetSystemStats(agent_pb.GetSystemStatsRequest())
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_retries_unavailable_and_sends_its_key() -> None:
    """A real gRPC server that is UNAVAILABLE twice, then answers: the client gets the answer."""
    calls: list[dict[str, str]] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.append(dict(context.invocation_metadata()))  # type: ignore[arg-type]
        if len(calls) < 3:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return agent_pb.GetSystemStatsResponse(leads_total=7).SerializeToString()

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "ccl.agent.v1.AgentService",
                {"GetSystemStats": grpc.unary_unary_rpc_method_handler(handler)},
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with CclClient(f"127.0.0.1:{port}", api_key="ccl_k_s", timeout=5) as ccl:
            reply = ccl.agents.GetSystemStats(agent_pb.GetSystemStatsRequest())
    finally:
        server.stop(None)
    assert reply.leads_total == 7
    assert len(calls) == 3
    assert all(c.get("authorization") == "Bearer ccl_k_s" for c in calls)


def test_a_field_violation_is_a_typed_exception(target: str, admin_key: str) -> None:
    bad = example_message(f"typed-{target}", email="not-an-email", phone="12")
    with CclClient(target, api_key=admin_key) as ccl, pytest.raises(errors.InvalidArgument) as e:
        ccl.leads.ProcessLead(bad)
    assert isinstance(e.value, grpc.RpcError) and e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "INVALID_LEAD" and e.value.domain == "ccl"
    fields = {v.field for v in e.value.violations}
    assert {"lead.email", "lead.phone"} <= fields, e.value.violations
    assert e.value.request_id, "the server's request id comes with the error"
    assert "lead.email" in str(e.value)


def test_typed_errors_per_status(target: str, admin_key: str) -> None:
    with CclClient(target, api_key=admin_key) as ccl, pytest.raises(errors.NotFound) as e:
        ccl.leads.GetLead(lead_pb.GetLeadRequest(lead_id="00000000-0000-4000-8000-000000000000"))
    assert e.value.reason == "LEAD_NOT_FOUND"
    with CclClient(target) as anonymous, pytest.raises(errors.Unauthenticated):
        anonymous.agents.GetSystemStats(agent_pb.GetSystemStatsRequest())


def test_a_retried_process_lead_carries_one_idempotency_key() -> None:
    """A keyless ProcessLead gets a key before it is sent, so gRPC's own retry (here after an
    UNAVAILABLE) sends the same key again and the server can never create the lead twice."""
    keys: list[str] = []

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        keys.append(lead_pb.ProcessLeadRequest.FromString(request).idempotency_key)
        if len(keys) < 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return lead_pb.ProcessLeadResponse().SerializeToString()

    server = grpc.server(concurrent.futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "ccl.lead.v1.LeadService",
                {"ProcessLead": grpc.unary_unary_rpc_method_handler(handler)},
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    request = example_message()
    request.ClearField("idempotency_key")
    try:
        with CclClient(f"127.0.0.1:{port}", api_key="ccl_k_s", timeout=5) as ccl:
            ccl.leads.ProcessLead(request)
            ccl.leads.ProcessLead(request)
    finally:
        server.stop(None)
    assert not request.idempotency_key, "the caller's message is left as it was"
    assert len(keys) == 3 and keys[0] and keys[0] == keys[1], keys  # the retry: one key
    assert keys[2] and keys[2] != keys[0], "another call, another key"


def test_the_dealer_service_is_served(target: str, admin_key: str) -> None:
    name = f"Client Motors {abs(hash(target)) % 10_000}"
    with CclClient(target, api_key=admin_key) as ccl:
        created = ccl.dealers.CreateDealer(
            dealer_pb.CreateDealerRequest(dealer=dealer_pb.Dealer(name=name, states=["IL"]))
        )
        got = ccl.dealers.GetDealer(dealer_pb.GetDealerRequest(dealer_id=created.dealer.dealer_id))
    assert got.dealer.name == name and list(got.dealer.states) == ["IL"]


async def test_the_async_client(target: str, admin_key: str) -> None:
    async with AsyncCclClient(target, api_key=admin_key) as ccl:
        created = await ccl.leads.ProcessLead(example_message(None, email="async@example.com"))
        got = await ccl.leads.GetLead(lead_pb.GetLeadRequest(lead_id=created.lead.lead_id))
        assert got.lead.lead_id == created.lead.lead_id
        with pytest.raises(errors.InvalidArgument) as e:
            await ccl.leads.ProcessLead(example_message(None, email="not-an-email"))
        assert "lead.email" in {v.field for v in e.value.violations}
    async with AsyncCclClient(target) as anonymous:
        with pytest.raises(errors.Unauthenticated):
            await anonymous.agents.GetSystemStats(agent_pb.GetSystemStatsRequest())
