"""End to end through real Envoy (REST/JSON transcoding and gRPC passthrough) and real grpcurl."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from server.ops import envoy
from support.data import example_request
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=10) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def details(body: dict) -> tuple[str, dict[str, str]]:  # type: ignore[type-arg]
    reason, violations = "", {}
    for d in body.get("details", []):
        if d["@type"].endswith("google.rpc.ErrorInfo"):
            reason = d["reason"]
        if d["@type"].endswith("google.rpc.BadRequest"):
            violations = {v["field"]: v["description"] for v in d["field_violations"]}
    return reason, violations


# --- the five documented paths ----------------------------------------------------------


def test_example_request_is_accepted_as_written(http: httpx.Client, admin_key: str) -> None:
    r = http.post("/api/leads/process", json=example_request(), headers=bearer(admin_key))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "LEAD_OUTCOME_ACCEPTED"
    lead = body["lead"]
    # Credit checked (simulated: no FlexPath key) and waiting for a dealer (none exist here).
    assert lead["status"] == "LEAD_STATUS_UNROUTED"
    assert lead["credit"]["decision"] == "CREDIT_DECISION_PREQUALIFIED"
    assert lead["credit"]["source"] == "CREDIT_SOURCE_SIMULATED"
    assert lead["applicant"]["phone"] == "+13125550182"
    assert lead["applicant"]["email"] == "maria.lopez@example.com"
    assert lead["applicant"]["monthly_income_cents"] == "420000"

    again = http.post("/api/leads/process", json=example_request(), headers=bearer(admin_key))
    assert again.status_code == 200
    assert again.json()["lead"]["lead_id"] == lead["lead_id"]
    assert again.json()["idempotent_replay"] is True

    got = http.get(f"/api/leads/{lead['lead_id']}", headers=bearer(admin_key))
    assert got.status_code == 200 and got.json()["lead"]["lead_id"] == lead["lead_id"]
    activity = http.get(f"/api/leads/{lead['lead_id']}/activity", headers=bearer(admin_key))
    assert [a["kind"] for a in activity.json()["activities"]] == [
        "lead.received",
        "lead.validated",
        "identity.created",
        "credit.checked",
        "lead.scored",
        "routing.unrouted",
    ]


def test_camel_case_input_is_accepted(http: httpx.Client, admin_key: str) -> None:
    request = example_request()
    request["idempotencyKey"] = "camel-1"
    del request["idempotency_key"]
    request["lead"]["firstName"] = request["lead"].pop("first_name")
    request["lead"]["email"] = "camel@example.com"
    r = http.post("/api/leads/process", json=request, headers=bearer(admin_key))
    assert r.status_code == 200, r.text
    assert r.json()["lead"]["applicant"]["first_name"] == "Maria"


def test_system_stats(http: httpx.Client, admin_key: str) -> None:
    r = http.get("/api/system/stats", headers=bearer(admin_key))
    assert r.status_code == 200
    body = r.json()
    assert int(body["leads_total"]) >= 1
    assert body["database_backend"] in {"sqlite", "postgresql"}


def test_agents_status(http: httpx.Client, admin_key: str) -> None:
    r = http.get("/api/agents/status", headers=bearer(admin_key))
    assert r.status_code == 200
    assert len(r.json()["agents"]) == 5


def test_bulk_send_without_a_campaign_is_400(http: httpx.Client, admin_key: str) -> None:
    r = http.post("/api/email-campaigns/bulk-send", json={}, headers=bearer(admin_key))
    assert r.status_code == 400
    assert details(r.json())[0] == "INVALID_CAMPAIGN"


def test_dealer_webhook_needs_a_dealer_key(http: httpx.Client, admin_key: str) -> None:
    r = http.post("/api/webhook/dealer-leads", json={"events": []}, headers=bearer(admin_key))
    assert r.status_code == 403
    assert details(r.json())[0] == "ROLE_NOT_ALLOWED"


def test_list_leads_paginates(http: httpx.Client, admin_key: str) -> None:
    r = http.get("/api/leads", params={"page_size": 1}, headers=bearer(admin_key))
    assert r.status_code == 200
    assert len(r.json()["leads"]) == 1 and r.json()["next_page_token"]


# --- errors ------------------------------------------------------------------------------


def test_bad_fields_are_400_with_one_violation_each(http: httpx.Client, admin_key: str) -> None:
    request = example_request(email="maria@", phone="123", last_name=None)
    request["idempotency_key"] = "bad-1"
    r = http.post("/api/leads/process", json=request, headers=bearer(admin_key))
    assert r.status_code == 400
    reason, violations = details(r.json())
    assert reason == "INVALID_LEAD"
    assert set(violations) == {"lead.email", "lead.phone", "lead.last_name"}


def test_missing_lead_is_400(http: httpx.Client, admin_key: str) -> None:
    r = http.post("/api/leads/process", json={"idempotency_key": "x"}, headers=bearer(admin_key))
    assert r.status_code == 400
    assert details(r.json()) == ("INVALID_LEAD", {"lead": "is required"})


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}])
def test_no_or_wrong_key_is_401(http: httpx.Client, headers: dict[str, str]) -> None:
    r = http.get("/api/system/stats", headers=headers)
    assert r.status_code == 401
    assert details(r.json())[0] in {"API_KEY_MISSING", "API_KEY_INVALID"}


def test_dealer_key_on_admin_path_is_403(http: httpx.Client, dealer_keys) -> None:  # type: ignore[no-untyped-def]
    r = http.get("/api/system/stats", headers=bearer(dealer_keys["A"][1]))
    assert r.status_code == 403
    assert details(r.json())[0] == "ROLE_NOT_ALLOWED"


def test_unknown_path_is_404(http: httpx.Client, admin_key: str) -> None:
    assert http.get("/api/nope", headers=bearer(admin_key)).status_code == 404
    assert (
        http.post("/api/leads/process/extra", json={}, headers=bearer(admin_key)).status_code == 404
    )


def test_unknown_lead_is_404(http: httpx.Client, admin_key: str) -> None:
    r = http.get("/api/leads/00000000-0000-0000-0000-000000000000", headers=bearer(admin_key))
    assert r.status_code == 404
    assert details(r.json())[0] == "LEAD_NOT_FOUND"


def test_unknown_query_parameter_and_bad_json_are_400(http: httpx.Client, admin_key: str) -> None:
    assert (
        http.get("/api/leads", params={"colour": "red"}, headers=bearer(admin_key)).status_code
        == 400
    )
    r = http.post(
        "/api/leads/process",
        content=b"{not json",
        headers={**bearer(admin_key), "content-type": "application/json"},
    )
    assert r.status_code == 400


def test_oversized_body_is_rejected(http: httpx.Client, admin_key: str) -> None:
    request = example_request()
    request["lead"]["consent"]["consent_text"] = "x" * 1_100_000
    r = http.post("/api/leads/process", json=request, headers=bearer(admin_key))
    assert r.status_code == 413


def test_internal_failure_is_500_without_its_text(
    http: httpx.Client,
    admin_key: str,
    stack: ServerThread,
    monkeypatch,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    async def boom() -> None:
        raise RuntimeError("db password hunter2 for maria.lopez@example.com")

    monkeypatch.setattr(stack.app.stats, "system_stats", boom)
    with caplog.at_level(logging.ERROR):
        r = http.get("/api/system/stats", headers=bearer(admin_key))
    assert r.status_code == 500
    assert "hunter2" not in r.text and "maria" not in r.text and "RuntimeError" not in r.text
    assert details(r.json())[0] == "INTERNAL"


def test_request_id_from_envoy_reaches_the_error_details(http: httpx.Client) -> None:
    r = http.get("/api/system/stats", headers={"x-request-id": "trace-abc"})
    assert r.status_code == 401
    info = next(d for d in r.json()["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["metadata"]["request_id"] == "trace-abc"


# --- CORS ---------------------------------------------------------------------------------


def test_cors_preflight_for_the_website(http: httpx.Client) -> None:
    r = http.options(
        "/api/leads/process",
        headers={
            "Origin": "https://completecarloans.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://completecarloans.com"
    assert "POST" in r.headers["access-control-allow-methods"]


def test_cors_refuses_other_origins(http: httpx.Client) -> None:
    r = http.options(
        "/api/leads/process",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers


# --- grpcurl, reflection and health on both ports -------------------------------------------


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "10", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture(params=["server", "envoy"])
def target(request, stack: ServerThread, envoy_proxy: EnvoyProcess) -> str:  # type: ignore[no-untyped-def]
    return stack.address if request.param == "server" else f"127.0.0.1:{envoy_proxy.http_port}"


def test_grpcurl_health_is_serving(target: str) -> None:
    result = grpcurl(target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "SERVING"
    per_service = grpcurl(
        "-d", '{"service":"ccl.lead.v1.LeadService"}', target, "grpc.health.v1.Health/Check"
    )
    assert json.loads(per_service.stdout)["status"] == "SERVING"


def test_grpcurl_lists_and_describes_via_reflection(target: str) -> None:
    listed = grpcurl(target, "list")
    assert listed.returncode == 0, listed.stderr
    for name in (
        "ccl.lead.v1.LeadService",
        "ccl.campaign.v1.CampaignService",
        "ccl.agent.v1.AgentService",
        "ccl.chat.v1.ChatService",
        "grpc.health.v1.Health",
    ):
        assert name in listed.stdout.split()
    described = grpcurl(target, "describe", "ccl.lead.v1.LeadService")
    assert "rpc ProcessLead" in described.stdout


def test_grpcurl_authenticated_call_and_error_code(target: str, admin_key: str) -> None:
    ok = grpcurl(
        "-H",
        f"authorization: Bearer {admin_key}",
        target,
        "ccl.agent.v1.AgentService/ListAgentStatus",
    )
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(ok.stdout)["agents"]) == 5
    denied = grpcurl(target, "ccl.agent.v1.AgentService/ListAgentStatus")
    assert denied.returncode == 64 + 16  # grpcurl exits 64 + the gRPC code (UNAUTHENTICATED)


def test_rendered_config_passes_envoy_validation(envoy_proxy: EnvoyProcess) -> None:
    result = envoy.validate(envoy_proxy.config_path)
    assert result.returncode == 0, result.stdout + result.stderr
