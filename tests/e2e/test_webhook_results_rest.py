"""Dealer webhook results over REST through Envoy (SQLite and PostgreSQL): a resend is
EVENT_RESULT_STATUS_ALREADY_RECEIVED with the lead id of then, a consumer who is already a lead
is EVENT_RESULT_STATUS_DUPLICATE_CONSUMER, a rejected event corrected and resent with its event
id is accepted; the deprecated EVENT_RESULT_STATUS_DUPLICATE never appears."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from server.domain.principal import Role
from support.data import example_request
from support.stack import EnvoyProcess, ServerThread
from support.webhook_signing import signed_headers, whsec

pytestmark = pytest.mark.e2e
SECRET = whsec("results-rest-dealer-secret-0123")


@pytest.fixture(scope="module")
def dealer_key(envoy_proxy: EnvoyProcess, admin_key: str, stack: ServerThread) -> str:
    r = httpx.post(
        f"{envoy_proxy.base_url}/api/dealers",
        headers={"Authorization": f"Bearer {admin_key}"},
        json={
            "name": "Results REST Motors",
            "states": ["IL"],
            "daily_cap": 1000,
            "endpoint_url": "http://127.0.0.1:9/crm",
            "signing_secret": SECRET,
            "active": True,
        },
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return stack.create_key(Role.DEALER, r.json()["dealer"]["dealer_id"])


@pytest.fixture(scope="module")
def post(envoy_proxy: EnvoyProcess, dealer_key: str) -> Iterator[Any]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=60) as client:

        def send(*events: dict[str, Any]) -> list[dict[str, str]]:
            body = json.dumps({"events": list(events)}).encode()
            headers = {"Authorization": f"Bearer {dealer_key}", **signed_headers(body, SECRET)}
            r = client.post("/api/webhook/dealer-leads", content=body, headers=headers)
            assert r.status_code == 200, r.text
            results: list[dict[str, str]] = r.json()["results"]
            return results

        yield send


def lead(n: int, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = example_request(
        email=f"rest.results.{n}@example.com", phone=f"(312) 555-{n:04d}"
    )["lead"]
    return {**payload, **changes}


def test_a_resend_is_already_received_with_the_lead_id(post: Any) -> None:
    event = {"event_id": "rest-1", "type": "lead", "lead": lead(7101)}
    [first] = post(event)
    assert first["status"] == "EVENT_RESULT_STATUS_ACCEPTED", first
    assert first["lead_id"]
    assert post(event) == [
        {
            "event_id": "rest-1",
            "status": "EVENT_RESULT_STATUS_ALREADY_RECEIVED",
            "reason": "",
            "lead_id": first["lead_id"],
        }
    ]


def test_duplicate_consumer_and_a_corrected_resend(post: Any) -> None:
    consumer = lead(7102)
    [first] = post({"event_id": "rest-2", "type": "lead", "lead": consumer})
    [again] = post({"event_id": "rest-3", "type": "lead", "lead": consumer})
    assert again["status"] == "EVENT_RESULT_STATUS_DUPLICATE_CONSUMER", again
    assert again["lead_id"] not in ("", first["lead_id"])

    bad = {"event_id": "rest-4", "type": "lead", "lead": lead(7103, last_name="Lo\u2067pez")}
    [rejected] = post(bad)
    assert rejected["status"] == "EVENT_RESULT_STATUS_REJECTED", rejected
    assert "lead.last_name: must not contain invisible formatting" in rejected["reason"]
    [accepted] = post({**bad, "lead": lead(7103)})
    assert accepted["status"] == "EVENT_RESULT_STATUS_ACCEPTED", accepted
