"""A unary gRPC call must send its one request message in time: a client that sends its headers
and nothing else is answered (DEADLINE_EXCEEDED, REQUEST_NOT_RECEIVED) after the server's
`request_message_timeout_seconds`, directly and through Envoy, instead of being held open for
ever. Streaming requests may idle; a unary call still takes exactly one message."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.agent.v1 import agent_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from server.domain.principal import Role
from support.data import example_message
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread, make_settings

REQUEST_TIMEOUT = 1.0  # the server's request_message_timeout_seconds in this module
HANG_GUARD = 60.0  # the client's own deadline: only so that a regression fails, not hangs

LIST_AGENTS = "/ccl.agent.v1.AgentService/ListAgentStatus"
UNARY_METHODS = {
    "unary-unary": LIST_AGENTS,
    "open unary-unary": "/grpc.health.v1.Health/Check",
    "unary-stream": "/grpc.health.v1.Health/Watch",
}


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    settings = make_settings(db_url, request_message_timeout_seconds=REQUEST_TIMEOUT)
    running = ServerThread(settings).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(server: ServerThread) -> str:
    return server.create_key(Role.ADMIN)


@pytest.fixture(scope="module")
def proxy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess([server.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    yield envoy
    envoy.stop()


@pytest.fixture(params=["server", pytest.param("envoy", marks=pytest.mark.e2e)])
def target(request: pytest.FixtureRequest, server: ServerThread) -> str:
    if request.param == "server":
        return server.address
    proxy: EnvoyProcess = request.getfixturevalue("proxy")
    return f"127.0.0.1:{proxy.http_port}"


def raw_stream(channel: grpc.aio.Channel, method: str) -> grpc.aio.StreamStreamMultiCallable:
    """Any method called as a bidi stream of raw bytes (the wire format is the same), so that
    the test decides how many messages it sends and whether it ends the request."""
    return channel.stream_stream(method, request_serializer=None, response_deserializer=None)


async def finish(call: grpc.aio.StreamStreamCall) -> list[bytes]:
    return [response async for response in call]


@pytest.mark.parametrize("method", list(UNARY_METHODS.values()), ids=list(UNARY_METHODS))
async def test_unary_call_that_never_sends_its_message_is_refused(
    target: str, key: str, method: str
) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = raw_stream(channel, method)(metadata=auth(key), timeout=HANG_GUARD)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await finish(call)  # headers only: no message, no half-close
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (err.reason, err.domain) == ("REQUEST_NOT_RECEIVED", "ccl")  # the server's, not ours
    assert err.metadata["timeout_seconds"] == "1"


async def test_unary_calls_still_work(target: str, key: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        agents = agent_service_pb2_grpc.AgentServiceStub(channel)
        listed = await agents.ListAgentStatus(
            agent_pb.ListAgentStatusRequest(), metadata=auth(key), timeout=HANG_GUARD
        )
        assert len(listed.agents) == 5
        health = health_pb2_grpc.HealthStub(channel)
        checked = await health.Check(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD)
        assert checked.status == health_pb2.HealthCheckResponse.SERVING
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=HANG_GUARD)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = reflection.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=HANG_GUARD
        )
        services = [s.name async for a in answers for s in a.list_services_response.service]
        assert "ccl.agent.v1.AgentService" in services


async def test_slow_answer_is_not_cut_by_the_request_timeout(
    target: str, key: str, server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout bounds the wait for the request message, not the call."""
    original = server.app.stats.system_stats

    async def slow():  # type: ignore[no-untyped-def]
        await asyncio.sleep(REQUEST_TIMEOUT * 2)
        return await original()

    monkeypatch.setattr(server.app.stats, "system_stats", slow)
    async with grpc.aio.insecure_channel(target) as channel:
        agents = agent_service_pb2_grpc.AgentServiceStub(channel)
        stats = await agents.GetSystemStats(
            agent_pb.GetSystemStatsRequest(), metadata=auth(key), timeout=HANG_GUARD
        )
    assert stats.database_backend in {"sqlite", "postgresql"}


@pytest.mark.parametrize("messages", [0, 2], ids=["no message", "two messages"])
async def test_unary_call_takes_exactly_one_message(target: str, key: str, messages: int) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = raw_stream(channel, LIST_AGENTS)(metadata=auth(key), timeout=HANG_GUARD)
        for _ in range(messages):
            await call.write(agent_pb.ListAgentStatusRequest().SerializeToString())
        await call.done_writing()
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await finish(call)
    err = rich_error(e.value)
    assert (err.code, err.reason) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "REQUEST_CARDINALITY_VIOLATION",
    )


async def test_unary_call_without_a_key_is_refused_at_once(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        call = raw_stream(channel, LIST_AGENTS)(timeout=HANG_GUARD)
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await finish(call)
    assert rich_error(e.value).reason == "API_KEY_MISSING"


async def test_client_streaming_request_may_idle_longer(target: str, key: str) -> None:
    """ImportLeads waits for its records as long as the client takes: no request timeout."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = raw_stream(channel, "/ccl.lead.v1.LeadService/ImportLeads")(
            metadata=auth(key), timeout=HANG_GUARD
        )
        await asyncio.sleep(REQUEST_TIMEOUT * 2)
        record = lead_pb.ImportLeadsRequest(
            idempotency_key=f"idle-{target}",
            lead=example_message(email="idle.import@example.com").lead,
            record_ref="1",
        )
        await call.write(record.SerializeToString())
        await call.done_writing()
        (response,) = await finish(call)
    assert lead_pb.ImportLeadsResponse.FromString(response).received_count == 1
