"""Every request example of docs/openapi.yaml, sent through a real Envoy to a real server (SQLite
and PostgreSQL): the answer has the status the example names, a status the operation documents,
and a body valid against the documented schema (OpenAPI 3.1 schema validation), error bodies
included, with an ErrorInfo reason the operation lists."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
import yaml
from openapi_schema_validator import OAS31Validator

from server.app import unsubscribe_keys
from server.domain.campaigns import sign_unsubscribe
from server.domain.email import sign_webhook
from server.domain.principal import Role
from server.storage import models as m
from support.fake_mailgun import DEFAULT_SIGNING_KEY
from support.stack import EnvoyProcess, ServerThread, free_port, make_settings
from support.webhook_signing import standard_headers, whsec

pytestmark = pytest.mark.e2e

DOCUMENT: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()
)
SECRET = whsec("openapi-examples-dealer")


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    return {
        op["operationId"]: (path, method, op)
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
    }


def example_names(op: dict[str, Any]) -> list[str]:
    names = {k for p in op.get("parameters", []) for k in p.get("examples", {})}
    for content in op.get("requestBody", {}).get("content", {}).values():
        names |= set(content.get("examples", {}))
    return sorted(names)


def cases() -> list[tuple[str, str]]:
    out = []
    for name, (_, _, op) in sorted(operations().items()):
        examples = example_names(op)
        if not examples and not op.get("parameters") and "requestBody" not in op:
            examples = ["no_input"]  # a GET without parameters: its one request is the example
        out += [(name, e) for e in examples]
    return out


def fill(value: Any, data: dict[str, str]) -> Any:
    """The example's value with its `{placeholder}` strings replaced by the test's data."""
    if isinstance(value, str):
        for key, replacement in data.items():
            value = value.replace("{" + key + "}", replacement)
        return value
    if isinstance(value, list):
        return [fill(v, data) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, data) for k, v in value.items()}
    return value


def with_components(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "components": DOCUMENT["components"]}


@pytest.fixture(scope="module")
def stack(db_url: str) -> Iterator[ServerThread]:
    """The shared stack's, with a Mailgun webhook signing key (the webhook's examples)."""
    server = ServerThread(
        make_settings(db_url, mailgun_webhook_signing_key=DEFAULT_SIGNING_KEY)
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=20) as client:
        yield client


def wait_for(check: Any, what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def lead(http: httpx.Client, key: str, email: str, phone: str, state: str, zip_code: str) -> str:
    body = {
        "lead": {
            "first_name": "Ana",
            "last_name": "Prequalified",  # the simulation's sandbox identity: always prequalified
            "email": email,
            "phone": phone,
            "date_of_birth": "1988-02-01",
            "address": {"street": "1 Oak St", "city": "Town", "state": state, "zip_code": zip_code},
            "monthly_income_cents": "600000",
            "consent": {"tcpa": True, "fcra_soft_pull": True, "consent_text": "I agree"},
        }
    }
    r = http.post("/api/leads/process", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return str(r.json()["lead"]["lead_id"])


@pytest.fixture(scope="module")
def data(http: httpx.Client, admin_key: str, stack: ServerThread) -> dict[str, str]:
    """What the examples' placeholders stand for: a dealer with an endpoint that refuses
    connections (so its delivery stays retrying) and a signing secret, a lead delivered to it
    with its delivery, and a lead no dealer serves."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    dealer = {
        "name": "OpenAPI Motors",
        "states": ["IL"],
        "priority": 1,
        "endpoint_url": f"http://127.0.0.1:{free_port()}/leads",
        "delivery_format": "DELIVERY_FORMAT_JSON",
        "signing_secret": SECRET,
    }
    r = http.post("/api/dealers", json=dealer, headers=admin)
    assert r.status_code == 200, r.text
    dealer_id = r.json()["dealer"]["dealer_id"]
    lead_id = lead(http, admin_key, "ana.openapi@example.com", "(312) 555-0144", "IL", "62701")

    def delivery() -> str:
        found = http.get(f"/api/leads/{lead_id}/deliveries", headers=admin).json()["deliveries"]
        return str(found[0]["delivery_id"]) if found else ""

    delivery_id = wait_for(delivery, "the lead's delivery")
    unrouted = lead(http, admin_key, "bo.openapi@example.com", "(307) 555-0199", "WY", "82001")

    def is_unrouted() -> bool:
        r = http.get(f"/api/leads/{unrouted}", headers=admin).json()
        return bool(r["lead"]["status"] == "LEAD_STATUS_UNROUTED")

    wait_for(is_unrouted, "the unrouted lead")
    template = {"name": "Examples", "subject": "Hi {{ first_name }}", "text_body": "Hello"}
    r = http.post("/api/email-templates", json=template, headers=admin)
    assert r.status_code == 200, r.text
    template_id = str(r.json()["template"]["template_id"])
    r = http.post("/api/email-suppressions", json={"email": "lift.me@example.com"}, headers=admin)
    assert r.status_code == 200, r.text
    suppression_id = str(r.json()["suppression"]["suppression_id"])
    campaigns: dict[str, str] = {}
    for name in ("campaign_id", "draft_campaign_id"):
        body = {"name": name, "template_id": template_id, "audience": {"states": ["IL"]}}
        r = http.post("/api/email-campaigns", json=body, headers=admin)
        assert r.status_code == 200, r.text
        campaigns[name] = str(r.json()["campaign"]["campaign_id"])
    for name in ("pausable_campaign_id", "paused_campaign_id", "cancellable_campaign_id"):
        later = {"name": name, "template_id": template_id, "send_at": "2099-01-01T00:00:00Z"}
        r = http.post(
            "/api/email-campaigns/bulk-send",
            json={"idempotency_key": f"examples-{name}", "campaign": later},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        campaigns[name] = str(r.json()["campaign"]["campaign_id"])
    paused = http.post(
        f"/api/email-campaigns/{campaigns['paused_campaign_id']}:pause", json={}, headers=admin
    )
    assert paused.status_code == 200, paused.text
    message_id, address = str(m.new_id()), "unsubscribe.example@example.com"
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        m.EmailMessage.insert(id=message_id, to_email=address, state="sent").execute()
    finally:
        stack.app.db.db.close()
    keys = unsubscribe_keys(stack.settings, stack.settings.data_key_list())
    stamp, token = str(int(time.time())), str(m.new_id()).replace("-", "")
    return {
        "dealer_id": dealer_id,
        "dealer_key": stack.create_key(Role.DEALER, dealer_id),
        "lead_id": lead_id,
        "delivery_id": delivery_id,
        "unrouted_lead_id": unrouted,
        "template_id": template_id,
        "suppression_id": suppression_id,
        "unsubscribe_token": sign_unsubscribe(keys, message_id, address),
        "mailgun_timestamp": stamp,
        "mailgun_token": token,
        "mailgun_signature": sign_webhook(DEFAULT_SIGNING_KEY, stamp, token),
        **campaigns,
    }


def request_of(
    http: httpx.Client, operation: str, example: str, data: dict[str, str], admin_key: str
) -> tuple[httpx.Request, int]:
    """The HTTP request an example describes, and the status it names."""
    path, method, op = operations()[operation]
    query: dict[str, Any] = {}
    headers: dict[str, str] = {}
    expected = 200
    for param in op.get("parameters", []):
        found = param.get("examples", {}).get(example)
        if found is None:
            continue
        expected = found["x-expected-status"]
        value = fill(found["value"], data)
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", quote(str(value), safe=""))
        elif param["in"] == "query":
            query[param["name"]] = value
        else:
            headers[param["name"]] = str(value)
    content: bytes | None = None
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        found = body.get("examples", {}).get(example)
        if found is None:
            continue
        expected = found["x-expected-status"]
        value = fill(found["value"], data)
        if media == "application/x-www-form-urlencoded":
            content = urlencode(value).encode()
        else:
            content = json.dumps(value).encode()
        headers["content-type"] = media
    if "admin" in op.get("x-ccl-roles", []):
        headers["authorization"] = f"Bearer {admin_key}"
    elif op.get("x-ccl-roles"):
        headers["authorization"] = f"Bearer {data['dealer_key']}"
    if operation == "ReceiveDealerWebhook":  # the example's signature headers are placeholders
        headers.update(standard_headers(content or b"", SECRET))
    params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
    request = http.build_request(
        method.upper(), path, params=params, headers=headers, content=content
    )
    return request, expected


def check_answer(op: dict[str, Any], response: httpx.Response) -> None:
    """The status is documented and the body is valid against its documented schema; an error
    body's ErrorInfo reason is one the operation lists under that status."""
    status = str(response.status_code)
    assert status in op["responses"], f"undocumented status {status}: {response.text[:300]}"
    media = response.headers.get("content-type", "").split(";")[0]
    content = op["responses"][status]["content"]
    assert media in content, f"undocumented media type {media!r} for {status}"
    if media != "application/json":
        return
    body = response.json()
    OAS31Validator(with_components(content[media]["schema"])).validate(body)
    if status != "200":
        reasons = [d["reason"] for d in body["details"] if d["@type"].endswith("ErrorInfo")]
        assert len(reasons) == 1
        assert reasons[0] in op["responses"][status]["x-ccl-error-reasons"], reasons


@pytest.mark.parametrize(("operation", "example"), cases(), ids=lambda v: str(v))
def test_example(
    http: httpx.Client, data: dict[str, str], admin_key: str, operation: str, example: str
) -> None:
    _, _, op = operations()[operation]
    request, expected = request_of(http, operation, example, data, admin_key)
    response = http.send(request)
    assert response.status_code == expected, response.text[:500]
    check_answer(op, response)


def test_every_operation_has_examples_and_only_unbuilt_ones_expect_501() -> None:
    for name, (_, _, op) in operations().items():
        names = example_names(op)
        assert names or ("parameters" not in op and "requestBody" not in op), name
        statuses = {
            ex["x-expected-status"]
            for p in [
                *op.get("parameters", []),
                *op.get("requestBody", {}).get("content", {}).values(),
            ]
            for ex in p.get("examples", {}).values()
        }
        if op.get("x-ccl-not-built"):
            assert statuses == {501}, name
        else:
            assert 501 not in statuses, name
            assert 200 in statuses or not names, name


def test_an_x_api_key_header_works_and_no_key_is_a_documented_401(
    http: httpx.Client, admin_key: str
) -> None:
    _, _, op = operations()["GetSystemStats"]
    ok = http.get("/api/system/stats", headers={"x-api-key": admin_key})
    assert ok.status_code == 200
    check_answer(op, ok)
    missing = http.get("/api/system/stats")
    assert missing.status_code == 401
    check_answer(op, missing)
    assert "API_KEY_MISSING" in missing.text


def test_a_query_the_transcoder_cannot_read_is_a_documented_plain_text_400(
    http: httpx.Client, admin_key: str
) -> None:
    _, _, op = operations()["ListLeads"]
    auth = {"Authorization": f"Bearer {admin_key}"}
    for params in ({"no_such_parameter": "1"}, {"status": "LEAD_STATUS_NO_SUCH"}):
        r = http.get("/api/leads", params=params, headers=auth)
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("text/plain")
        check_answer(op, r)


def test_bad_input_names_each_bad_field_as_documented(
    http: httpx.Client, data: dict[str, str], admin_key: str
) -> None:
    request, expected = request_of(http, "ProcessLead", "invalid_lead", data, admin_key)
    r = http.send(request)
    assert r.status_code == expected == 400
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in r.json()["details"]}
    fields = {v["field"] for v in details["BadRequest"]["field_violations"]}
    assert {"lead.email", "lead.address.zip_code", "lead.last_name"} <= fields
    assert details["ErrorInfo"]["reason"] == "INVALID_LEAD"


def test_a_body_over_the_limit_is_a_documented_413(http: httpx.Client, admin_key: str) -> None:
    _, _, op = operations()["ProcessLead"]
    big = json.dumps({"idempotency_key": "x" * 1_200_000}).encode()
    r = http.post(
        "/api/leads/process",
        content=big,
        headers={"Authorization": f"Bearer {admin_key}", "content-type": "application/json"},
    )
    assert r.status_code == 413
    check_answer(op, r)
