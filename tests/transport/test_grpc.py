"""The gRPC surface against a real server (no Envoy): auth, errors, the lead slice, stats."""

from __future__ import annotations

import concurrent.futures
import logging

import grpc
import pytest
from google.protobuf import descriptor_pool

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.agent.v1 import agent_service_pb2_grpc
from ccl.chat.v1 import chat_service_pb2 as chat_pb
from ccl.chat.v1 import chat_service_pb2_grpc
from ccl.lead.v1 import lead_pb2 as lead_types
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.domain.principal import Role
from server.transport import policy
from server.transport.server import SERVICE_NAMES
from support.data import example_message
from support.rpc import auth, rich_error
from support.stack import ServerThread


@pytest.fixture(scope="module")
def channel(stack: ServerThread):  # type: ignore[no-untyped-def]
    with stack.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def leads(channel: grpc.Channel) -> lead_service_pb2_grpc.LeadServiceStub:
    return lead_service_pb2_grpc.LeadServiceStub(channel)


@pytest.fixture(scope="module")
def agents(channel: grpc.Channel) -> agent_service_pb2_grpc.AgentServiceStub:
    return agent_service_pb2_grpc.AgentServiceStub(channel)


def test_process_lead_accepts_the_example(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    response = leads.ProcessLead(example_message("grpc-1"), metadata=auth(admin_key))
    assert response.outcome == lead_types.LEAD_OUTCOME_ACCEPTED
    assert response.lead.lead_id
    assert response.lead.applicant.phone == "+13125550182"
    assert response.lead.status == lead_types.LEAD_STATUS_UNROUTED  # no dealers in this stack
    assert response.lead.credit.decision == lead_types.CREDIT_DECISION_PREQUALIFIED
    assert response.identity.identity_id
    got = leads.GetLead(
        lead_pb.GetLeadRequest(lead_id=response.lead.lead_id), metadata=auth(admin_key)
    )
    assert got.lead == response.lead


def test_idempotent_retry_returns_first_result_and_one_lead(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    first = leads.ProcessLead(example_message("grpc-retry"), metadata=auth(admin_key))
    second = leads.ProcessLead(example_message("grpc-retry"), metadata=auth(admin_key))
    assert second.lead.lead_id == first.lead.lead_id
    assert second.idempotent_replay and not first.idempotent_replay


def test_concurrent_retries_create_one_lead(leads, admin_key: str, stack: ServerThread) -> None:  # type: ignore[no-untyped-def]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(
            pool.map(
                lambda _: leads.ProcessLead(example_message("grpc-race"), metadata=auth(admin_key)),
                range(8),
            )
        )
    assert len({r.lead.lead_id for r in results}) == 1
    assert sum(not r.idempotent_replay for r in results) == 1


def test_key_reused_with_other_request_is_already_exists(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    leads.ProcessLead(example_message("grpc-reuse"), metadata=auth(admin_key))
    with pytest.raises(grpc.RpcError) as e:
        leads.ProcessLead(example_message("grpc-reuse", first_name="Ana"), metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.reason == "IDEMPOTENCY_KEY_REUSED"


def test_bad_input_names_every_bad_field(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    request = example_message(
        "grpc-bad",
        email="not-an-email",
        phone="555",
        first_name=None,
        date_of_birth="2015-01-01",
        address={"street": "1 A St", "city": "X", "state": "ZZ", "zip_code": "123"},
    )
    with pytest.raises(grpc.RpcError) as e:
        leads.ProcessLead(request, metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_LEAD" and err.domain == "ccl"
    assert set(err.violations) == {
        "lead.email",
        "lead.phone",
        "lead.first_name",
        "lead.date_of_birth",
        "lead.address.state",
        "lead.address.zip_code",
    }


def test_rejected_input_writes_nothing(leads, admin_key: str, agents) -> None:  # type: ignore[no-untyped-def]
    before = agents.GetSystemStats(
        agent_pb.GetSystemStatsRequest(), metadata=auth(admin_key)
    ).leads_total
    with pytest.raises(grpc.RpcError):
        leads.ProcessLead(example_message("grpc-nothing", email="x"), metadata=auth(admin_key))
    after = agents.GetSystemStats(
        agent_pb.GetSystemStatsRequest(), metadata=auth(admin_key)
    ).leads_total
    assert after == before


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ([], "API_KEY_MISSING"),
        ([("authorization", "Bearer ccl_0000000000000000_nope")], "API_KEY_INVALID"),
        ([("x-api-key", "garbage")], "API_KEY_INVALID"),
    ],
)
def test_missing_or_wrong_key_is_unauthenticated(agents, metadata, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=metadata)
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.UNAUTHENTICATED
    assert err.reason == reason


def test_x_api_key_header_works(agents, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=[("x-api-key", admin_key)])


def test_revoked_key_is_refused(agents, stack: ServerThread) -> None:  # type: ignore[no-untyped-def]
    key = stack.create_key(Role.OPS)
    agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(key))
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        stack.app.api_keys.revoke_sync(key.split("_")[1])
    finally:
        stack.app.db.db.close()
    with pytest.raises(grpc.RpcError) as e:
        agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(key))
    assert rich_error(e.value).reason == "API_KEY_INVALID"


def test_dealer_key_on_admin_path_is_permission_denied(agents, dealer_keys) -> None:  # type: ignore[no-untyped-def]
    _, key = dealer_keys["A"]
    with pytest.raises(grpc.RpcError) as e:
        agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert err.reason == "ROLE_NOT_ALLOWED"


def test_dealer_cannot_read_another_dealers_lead(leads, dealer_keys) -> None:  # type: ignore[no-untyped-def]
    (a_id, a_key), (_, b_key) = dealer_keys["A"], dealer_keys["B"]
    created = leads.ProcessLead(
        example_message("dealer-a-1", email="dealer.a@example.com", phone="(312) 555-0177"),
        metadata=auth(a_key),
    )
    assert created.lead.source_dealer_id == a_id
    assert leads.GetLead(lead_pb.GetLeadRequest(lead_id=created.lead.lead_id), metadata=auth(a_key))
    with pytest.raises(grpc.RpcError) as e:
        leads.GetLead(lead_pb.GetLeadRequest(lead_id=created.lead.lead_id), metadata=auth(b_key))
    assert rich_error(e.value).reason == "LEAD_NOT_FOUND"
    listed_b = leads.ListLeads(lead_pb.ListLeadsRequest(page_size=500), metadata=auth(b_key))
    assert created.lead.lead_id not in {lead.lead_id for lead in listed_b.leads}
    with pytest.raises(grpc.RpcError) as e:
        leads.ListLeadActivity(
            lead_pb.ListLeadActivityRequest(lead_id=created.lead.lead_id), metadata=auth(b_key)
        )
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_same_idempotency_key_is_per_dealer(leads, dealer_keys) -> None:  # type: ignore[no-untyped-def]
    (_, a_key), (_, b_key) = dealer_keys["A"], dealer_keys["B"]
    a = leads.ProcessLead(example_message("shared-key"), metadata=auth(a_key))
    b = leads.ProcessLead(example_message("shared-key"), metadata=auth(b_key))
    assert a.lead.lead_id != b.lead.lead_id


def test_activity_lists_received_and_validated(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    created = leads.ProcessLead(
        example_message("grpc-activity", email="activity@example.com", phone="(312) 555-0133"),
        metadata=auth(admin_key),
    )
    page = leads.ListLeadActivity(
        lead_pb.ListLeadActivityRequest(lead_id=created.lead.lead_id, page_size=1),
        metadata=auth(admin_key),
    )
    assert [a.kind for a in page.activities] == ["lead.received"]
    rest = leads.ListLeadActivity(
        lead_pb.ListLeadActivityRequest(
            lead_id=created.lead.lead_id, page_token=page.next_page_token
        ),
        metadata=auth(admin_key),
    )
    assert [a.kind for a in rest.activities][:1] == ["lead.validated"]
    assert "credit.checked" in [a.kind for a in rest.activities]
    assert rest.next_page_token == ""


def test_system_stats_are_real_figures(leads, agents, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    before = agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(admin_key))
    leads.ProcessLead(
        example_message("grpc-stats", email="stats@example.com"), metadata=auth(admin_key)
    )
    after = agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(admin_key))
    assert after.leads_total == before.leads_total + 1
    assert after.leads_last_24h == before.leads_last_24h + 1
    by_source = {c.name: c.count for c in after.leads_by_source}
    assert by_source["website"] >= 1
    assert after.database_backend in {"sqlite", "postgresql"}


def test_agent_status_lists_all_five(agents, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    response = agents.ListAgentStatus(agent_pb.ListAgentStatusRequest(), metadata=auth(admin_key))
    assert [a.name for a in response.agents] == [
        "VisitorIdentifier",
        "CreditCheck",
        "LeadPackaging",
        "EmailReengagement",
        "RealtimeChat",
    ]
    for agent in response.agents:
        assert agent.metrics, agent.name


# The unary ones of policy.NOT_BUILT (Converse, a stream, is tested below).
NOT_BUILT = sorted(policy.NOT_BUILT - {"/ccl.chat.v1.ChatService/Converse"})


@pytest.mark.parametrize("method", NOT_BUILT)
def test_unbuilt_unary_rpcs_say_unimplemented(channel, admin_key: str, method: str) -> None:  # type: ignore[no-untyped-def]
    call = channel.unary_unary(
        method, request_serializer=lambda _: b"", response_deserializer=bytes
    )
    with pytest.raises(grpc.RpcError) as e:
        call(b"", metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.UNIMPLEMENTED
    assert err.reason == "NOT_IMPLEMENTED"


def test_chat_stream_says_unimplemented(channel, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    chat = chat_service_pb2_grpc.ChatServiceStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        list(
            chat.Converse(
                iter([chat_pb.ConverseRequest(start=chat_pb.StartChat())]), metadata=auth(admin_key)
            )
        )
    assert rich_error(e.value).reason == "NOT_IMPLEMENTED"


def test_every_rpc_has_an_access_policy() -> None:
    pool = descriptor_pool.Default()
    methods = {
        f"/{name}/{m.name}" for name in SERVICE_NAMES for m in pool.FindServiceByName(name).methods
    }
    covered = set(policy.ROLES) | policy.SIGNATURE_VERIFIED
    assert methods == covered


def test_internal_error_never_leaks_its_text(
    agents, admin_key: str, stack: ServerThread, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    async def boom() -> None:
        raise RuntimeError("secret maria.lopez@example.com")

    monkeypatch.setattr(stack.app.stats, "system_stats", boom)
    with caplog.at_level(logging.ERROR, logger="ccl.rpc"), pytest.raises(grpc.RpcError) as e:
        agents.GetSystemStats(agent_pb.GetSystemStatsRequest(), metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INTERNAL
    assert err.reason == "INTERNAL"
    assert "secret" not in err.message and "maria" not in err.message
    incident = err.metadata["incident_id"]
    assert incident in err.message
    logged = [r for r in caplog.records if getattr(r, "incident_id", None) == incident]
    assert logged and logged[0].exception_type == "RuntimeError"
    assert "maria" not in str(logged[0].__dict__)


def test_rpc_log_lines_carry_no_personal_data(leads, admin_key: str, caplog) -> None:  # type: ignore[no-untyped-def]
    with caplog.at_level(logging.DEBUG):
        leads.ProcessLead(
            example_message(
                "grpc-logs", email="private.person@example.com", phone="(312) 555-0166"
            ),
            metadata=[*auth(admin_key), ("x-request-id", "req-123")],
        )
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    rpc_lines = [r for r in caplog.records if r.name == "ccl.rpc" and r.getMessage() == "rpc"]
    assert any(r.request_id == "req-123" and r.code == "OK" for r in rpc_lines)
    for needle in ("private.person", "5550166", "555-0166", "Maria", "Lopez"):
        assert needle not in text


def test_corrupt_request_bytes_are_invalid_argument(channel, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    garbage = b"\xff\xff\xff\xff\x0f not a protobuf"
    unary = channel.unary_unary(
        "/ccl.lead.v1.LeadService/ProcessLead",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as e:
        unary(garbage, metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "MALFORMED_REQUEST"
    assert "Wire format" not in err.message
    stream = channel.stream_unary(
        "/ccl.lead.v1.LeadService/ImportLeads",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    good = lead_pb.ImportLeadsRequest(record_ref="1").SerializeToString()
    with pytest.raises(grpc.RpcError) as e:
        stream(iter([good, garbage]), metadata=auth(admin_key))
    assert rich_error(e.value).reason == "MALFORMED_REQUEST"


def test_corrupt_request_without_a_key_is_unauthenticated(channel) -> None:  # type: ignore[no-untyped-def]
    unary = channel.unary_unary(
        "/ccl.lead.v1.LeadService/ProcessLead",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.RpcError) as e:
        unary(b"\xff\xff\xff")
    assert rich_error(e.value).reason == "API_KEY_MISSING"


def test_nul_in_any_text_field_is_invalid_argument(leads, admin_key: str) -> None:  # type: ignore[no-untyped-def]
    request = example_message(
        "nul-1", address={"street": "1 A\x00 St", "city": "X", "state": "IL", "zip_code": "62701"}
    )
    with pytest.raises(grpc.RpcError) as e:
        leads.ProcessLead(request, metadata=auth(admin_key))
    err = rich_error(e.value)
    assert err.reason == "INVALID_CHARACTER"
    assert set(err.violations) == {"lead.address.street"}


def test_health_watch_streams_serving(channel) -> None:  # type: ignore[no-untyped-def]
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=2)
    first = next(iter(stream))
    assert first.status == health_pb2.HealthCheckResponse.SERVING
    stream.cancel()
