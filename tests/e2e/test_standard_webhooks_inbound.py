"""A dealer's CRM sends status updates signed with the `standardwebhooks` library only (no
deprecated `x-ccl-*` headers), through Envoy: accepted with its secret, 401 with another."""

from __future__ import annotations

import json

import httpx
import pytest

from server.domain.principal import Role
from support.stack import EnvoyProcess, ServerThread
from support.webhook_signing import standard_headers, whsec

pytestmark = pytest.mark.e2e
SECRET = whsec("inbound-standard-webhooks-dealer")


@pytest.fixture(scope="module")
def dealer_key(envoy_proxy: EnvoyProcess, admin_key: str, stack: ServerThread) -> str:
    r = httpx.post(
        f"{envoy_proxy.base_url}/api/dealers",
        json={"name": "Standard Motors", "states": ["IL"], "signing_secret": SECRET},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert r.status_code == 200, r.text
    return stack.create_key(Role.DEALER, r.json()["dealer"]["dealer_id"])


def post(envoy: EnvoyProcess, key: str, body: bytes, secret: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {key}",
        "content-type": "application/json",
        **standard_headers(body, secret),
    }
    return httpx.post(f"{envoy.base_url}/api/webhook/dealer-leads", content=body, headers=headers)


def test_a_library_signed_webhook_is_accepted_and_another_secret_is_not(
    envoy_proxy: EnvoyProcess, dealer_key: str
) -> None:
    event = {"event_id": "std-1", "type": "status", "lead_id": "x", "status": "sold"}
    body = json.dumps({"events": [event]}).encode()
    ok = post(envoy_proxy, dealer_key, body, SECRET)
    assert ok.status_code == 200, ok.text
    assert ok.json()["results"][0]["event_id"] == "std-1"  # processed (the lead is unknown)
    forged = post(envoy_proxy, dealer_key, body, whsec("somebody-else-entirely-0000"))
    assert forged.status_code == 401 and "SIGNATURE_INVALID" in forged.text
