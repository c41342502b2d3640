"""The convenience client against a real server, directly and through Envoy."""

from __future__ import annotations

import asyncio
import concurrent.futures

import grpc
import pytest

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl_client import CclClient
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
