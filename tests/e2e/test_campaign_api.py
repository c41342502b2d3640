"""CampaignService's built RPCs as REST through a real Envoy (SQLite and PostgreSQL): templates
(create, get, list, update, preview), Mailgun's webhook (200, 401, and 406 for what Mailgun must
not retry), the unsubscribe link (its page, one-click POST, a bad token), suppressions; a bad
BulkSend is refused (400) and the service's health says SERVING (tests/e2e/test_bulk_send.py
sends)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.app import unsubscribe_keys
from server.domain.campaigns import sign_unsubscribe
from server.storage import models as m
from support.fake_mailgun import DEFAULT_SIGNING_KEY, webhook_body, webhook_bytes
from support.stack import EnvoyProcess, ServerThread, make_settings

pytestmark = pytest.mark.e2e

TEMPLATE = {
    "name": "Finish your application",
    "subject": "{{ first_name }}, your {{ vehicle }} is waiting",
    "html_body": "<p>Hi {{ first_name }}</p>",
    "text_body": "Hi {{ first_name }}, finish here: {{ application_url }}",
}


@pytest.fixture(scope="module")
def stack(db_url: str) -> Iterator[ServerThread]:
    server = ServerThread(
        make_settings(
            db_url,
            mailgun_webhook_signing_key=DEFAULT_SIGNING_KEY,
            company_name="Test Lending LLC",
            company_postal_address="1 Test St, Springfield, IL 62701",
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def admin(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


def message(stack: ServerThread, address: str) -> str:
    """A sent message of ours to `address`: its id."""
    message_id = str(uuid.uuid4())
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        m.EmailMessage.insert(id=message_id, to_email=address, state="sent").execute()
    finally:
        stack.app.db.db.close()
    return message_id


def reason(response: httpx.Response) -> str:
    details = response.json()["details"]
    return str(next(d["reason"] for d in details if d["@type"].endswith("ErrorInfo")))


def test_templates(http: httpx.Client, admin: dict[str, str]) -> None:
    created = http.post("/api/email-templates", json=TEMPLATE, headers=admin)
    assert created.status_code == 200, created.text
    template = created.json()["template"]
    assert template["version"] == 1 and template["subject"] == TEMPLATE["subject"]
    tid = template["template_id"]
    got = http.get(f"/api/email-templates/{tid}", headers=admin)
    assert got.status_code == 200 and got.json()["template"]["name"] == TEMPLATE["name"]
    listed = http.get("/api/email-templates", params={"page_size": 50}, headers=admin)
    assert tid in [t["template_id"] for t in listed.json()["templates"]]

    updated = http.patch(
        f"/api/email-templates/{tid}",
        params={"update_mask": "subject"},
        json={"subject": "Still want that {{ vehicle }}?"},
        headers=admin,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["template"]["version"] == 2
    assert updated.json()["template"]["text_body"] == TEMPLATE["text_body"]
    first = http.get(f"/api/email-templates/{tid}", params={"version": 1}, headers=admin)
    assert first.json()["template"]["subject"] == TEMPLATE["subject"]

    preview = http.post("/api/email-templates:preview", json={"template_id": tid}, headers=admin)
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["subject"] == "Still want that 2021 Honda Civic?"
    assert body["template_version"] == 2
    assert "Test Lending LLC" in body["text_body"] and "1 Test St" in body["html_body"]
    assert "/api/unsubscribe/" in body["text_body"]
    inline = http.post(
        "/api/email-templates:preview",
        json={"template": {**TEMPLATE, "html_body": ""}},
        headers=admin,
    )
    assert inline.status_code == 200, inline.text
    assert inline.json()["html_body"] == "" and inline.json()["template_version"] == 0


def test_a_bad_template_is_400_with_one_violation_per_part(
    http: httpx.Client, admin: dict[str, str]
) -> None:
    bad = {"name": "", "subject": "{{ first_name", "text_body": "{{ nope }}"}
    r = http.post("/api/email-templates", json=bad, headers=admin)
    assert r.status_code == 400
    assert reason(r) == "INVALID_TEMPLATE"
    violations = next(d for d in r.json()["details"] if d["@type"].endswith("BadRequest"))
    fields = [v["field"] for v in violations["field_violations"]]
    assert fields == ["template.name", "template.subject", "template.text_body"]
    missing = http.get(f"/api/email-templates/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404 and reason(missing) == "TEMPLATE_NOT_FOUND"


def post_webhook(http: httpx.Client, body: bytes) -> httpx.Response:
    return http.post(
        "/api/webhook/mailgun", content=body, headers={"content-type": "application/json"}
    )


def test_mailgun_webhook_statuses(http: httpx.Client, stack: ServerThread) -> None:
    address = "rest.webhook@example.com"
    mid = message(stack, address)
    ours = {"user_variables": {"ccl_message": mid}}
    body = webhook_bytes("delivered", address, **ours)
    ok = post_webhook(http, body)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"applied": True}
    # Mailgun must not retry these: 406.
    replayed = post_webhook(http, body)
    assert replayed.status_code == 406 and reason(replayed) == "WEBHOOK_REPLAYED"
    stale = post_webhook(
        http, webhook_bytes("opened", address, timestamp=int(time.time()) - 3600, **ours)
    )
    assert stale.status_code == 406 and reason(stale) == "WEBHOOK_STALE"
    malformed = post_webhook(http, b"{not json")
    assert malformed.status_code == 406 and reason(malformed) == "INVALID_WEBHOOK_BODY"
    # A bad signature may be a key not yet configured: 401, which Mailgun retries.
    forged = webhook_body("opened", address, signing_key="wrong-key-0123456789", **ours)
    unauthenticated = post_webhook(http, json.dumps(forged).encode())
    assert unauthenticated.status_code == 401 and reason(unauthenticated) == "SIGNATURE_INVALID"
    # Unknown events are acknowledged.
    unknown = post_webhook(http, webhook_bytes("stored", address, **ours))
    assert unknown.status_code == 200 and unknown.json() == {"applied": False}


def test_other_400s_are_not_turned_into_406(http: httpx.Client, admin: dict[str, str]) -> None:
    r = http.get("/api/email-templates", params={"page_token": "bad"}, headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_PAGE_TOKEN"


def test_unsubscribe_page_and_one_click(
    http: httpx.Client, stack: ServerThread, admin: dict[str, str]
) -> None:
    address = "rest.unsubscribe@example.com"
    mid = message(stack, address)
    keys = unsubscribe_keys(stack.settings, stack.settings.data_key_list())
    token = sign_unsubscribe(keys, mid, address)
    page = http.get(f"/api/unsubscribe/{token}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f'action="/api/unsubscribe/{token}"' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert address not in page.text

    def listed() -> dict[str, Any]:
        r = http.get("/api/email-suppressions", params={"page_size": 500}, headers=admin)
        assert r.status_code == 200, r.text
        return {s["email"]: s for s in r.json()["suppressions"]}

    assert address not in listed()  # opening the page changes nothing
    r = http.post(
        f"/api/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"unsubscribed": True}
    entry = listed()[address]
    assert entry["reason"] == "SUPPRESSION_REASON_UNSUBSCRIBED"
    assert entry["source"] == "unsubscribe" and entry["message_id"] == mid

    bad = http.post(
        f"/api/unsubscribe/{token[:-3]}xyz",
        content=b"List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert bad.status_code == 400 and reason(bad) == "UNSUBSCRIBE_TOKEN_INVALID"
    assert http.get("/api/unsubscribe/nonsense").status_code == 400


def test_suppressions_by_hand(http: httpx.Client, admin: dict[str, str]) -> None:
    added = http.post("/api/email-suppressions", json={"email": "Hand@Example.com"}, headers=admin)
    assert added.status_code == 200, added.text
    suppression = added.json()["suppression"]
    assert suppression["email"] == "hand@example.com" and added.json()["created"] is True
    assert suppression["reason"] == "SUPPRESSION_REASON_MANUAL"
    sid = suppression["suppression_id"]
    no_reason = http.post(f"/api/email-suppressions/{sid}:delete", json={}, headers=admin)
    assert no_reason.status_code == 400 and reason(no_reason) == "INVALID_SUPPRESSION"
    lifted = http.post(
        f"/api/email-suppressions/{sid}:delete", json={"reason": "added by mistake"}, headers=admin
    )
    assert lifted.status_code == 200, lifted.text
    gone = http.post(
        f"/api/email-suppressions/{sid}:delete", json={"reason": "again"}, headers=admin
    )
    assert gone.status_code == 404 and reason(gone) == "SUPPRESSION_NOT_FOUND"


def test_sending_is_built_and_health_says_so(
    http: httpx.Client, admin: dict[str, str], stack: ServerThread
) -> None:
    r = http.post("/api/email-campaigns/bulk-send", json={}, headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_CAMPAIGN"
    with grpc.insecure_channel(stack.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        service = health.Check(
            health_pb2.HealthCheckRequest(service="ccl.campaign.v1.CampaignService")
        )
        overall = health.Check(health_pb2.HealthCheckRequest())
    assert service.status == health_pb2.HealthCheckResponse.SERVING
    assert overall.status == health_pb2.HealthCheckResponse.SERVING


def test_campaign_errors(http: httpx.Client, admin: dict[str, str]) -> None:
    """Each campaign RPC's errors through Envoy: status, ErrorInfo reason, field violations."""
    r = http.post("/api/email-campaigns", json={}, headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_CAMPAIGN"
    fields = {
        v["field"]
        for d in r.json()["details"]
        for v in d.get("fieldViolations", d.get("field_violations", []))
    }
    assert {"campaign.name", "campaign.template_id"} <= fields
    missing = {"name": "x", "kind": "CAMPAIGN_KIND_ONE_OFF", "template_id": str(uuid.uuid4())}
    r = http.post("/api/email-campaigns", json=missing, headers=admin)
    assert r.status_code == 404 and reason(r) == "TEMPLATE_NOT_FOUND"
    for path in ("/api/email-campaigns/nope", "/api/email-campaigns/nope:pause"):
        r = (
            http.get(path, headers=admin)
            if path.endswith("nope")
            else http.post(path, headers=admin)
        )
        assert r.status_code == 404 and reason(r) == "CAMPAIGN_NOT_FOUND", path
    r = http.get("/api/email-campaigns", params={"page_token": "zzz"}, headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_PAGE_TOKEN"

    template = http.post("/api/email-templates", json=TEMPLATE, headers=admin).json()["template"]
    draft = {
        "name": "Errors",
        "kind": "CAMPAIGN_KIND_ONE_OFF",
        "template_id": template["template_id"],
        "audience": {"states": ["WY"]},
    }
    key = f"errors-{uuid.uuid4().hex}"
    sent = http.post(
        "/api/email-campaigns/bulk-send",
        json={"idempotency_key": key, "campaign": draft},
        headers=admin,
    )
    assert sent.status_code == 200, sent.text
    campaign_id = sent.json()["campaign"]["campaign_id"]
    r = http.post(f"/api/email-campaigns/{campaign_id}:resume", headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_CAMPAIGN_TRANSITION"
    again = {"idempotency_key": f"{key}-2", "campaign_id": campaign_id}
    r = http.post("/api/email-campaigns/bulk-send", json=again, headers=admin)
    assert r.status_code == 400 and reason(r) == "CAMPAIGN_ALREADY_SENT"
    reused = {"idempotency_key": key, "campaign": {**draft, "name": "Another"}}
    r = http.post("/api/email-campaigns/bulk-send", json=reused, headers=admin)
    assert r.status_code == 409 and reason(r) == "IDEMPOTENCY_KEY_REUSED"
    r = http.post("/api/email-campaigns/bulk-send", json={})
    assert r.status_code == 401 and reason(r) == "API_KEY_MISSING"


def test_drip_campaigns_through_envoy(http: httpx.Client, admin: dict[str, str]) -> None:
    """A drip's errors through Envoy (one violation per bad step field; an unknown step
    template), and a valid one started: running, each step's template version pinned."""
    bad = {
        "name": "Bad drip",
        "kind": "CAMPAIGN_KIND_DRIP",
        "template_id": "not-for-a-drip",
        "steps": [{"template_id": "", "delay_minutes": -5}],
    }
    r = http.post("/api/email-campaigns", json=bad, headers=admin)
    assert r.status_code == 400 and reason(r) == "INVALID_CAMPAIGN"
    fields = sorted(
        v["field"]
        for d in r.json()["details"]
        for v in d.get("fieldViolations", d.get("field_violations", []))
    )
    assert fields == [
        "campaign.steps[0].delay_minutes",
        "campaign.steps[0].template_id",
        "campaign.template_id",
    ]
    unknown = {
        "name": "Unknown step",
        "kind": "CAMPAIGN_KIND_DRIP",
        "steps": [{"template_id": str(uuid.uuid4()), "delay_minutes": 60}],
    }
    r = http.post("/api/email-campaigns", json=unknown, headers=admin)
    assert r.status_code == 404 and reason(r) == "TEMPLATE_NOT_FOUND"
    template = http.post("/api/email-templates", json=TEMPLATE, headers=admin).json()["template"]
    drip = {
        "name": "Come back",
        "kind": "CAMPAIGN_KIND_DRIP",
        "steps": [
            {"template_id": template["template_id"], "delay_minutes": 60},
            {"template_id": template["template_id"], "delay_minutes": 1380},
        ],
        "audience": {"states": ["WY"]},
    }
    r = http.post(
        "/api/email-campaigns/bulk-send",
        json={"idempotency_key": f"drip-{uuid.uuid4().hex}", "campaign": drip},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    campaign = r.json()["campaign"]
    assert campaign["state"] == "CAMPAIGN_STATE_SENDING"
    assert [s["template_version"] for s in campaign["steps"]] == [1, 1]
    r = http.post(f"/api/email-campaigns/{campaign['campaign_id']}:cancel", headers=admin)
    assert r.status_code == 200 and r.json()["campaign"]["state"] == "CAMPAIGN_STATE_CANCELLED"
