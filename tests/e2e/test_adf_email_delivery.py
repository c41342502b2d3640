"""Issue 10's "a dealer with an email channel receives its ADF lead through the fake Mailgun",
through a real server and Envoy (REST) on both backends: an admin creates a dealer whose channel
is EMAIL; a lead it sends is routed back to it and reaches the fake Mailgun as one plain-text
email to its intake address whose body is exactly the lead's ADF package; the delivery is
ACCEPTED until Mailgun's signed `delivered` webhook makes it DELIVERED; a `failed` permanent
webhook about another lead's email dead-letters that delivery."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from server.domain.principal import Role
from support.data import example_request
from support.fake_mailgun import DEFAULT_SIGNING_KEY, FakeMailgun, webhook_bytes
from support.stack import EnvoyProcess, ServerThread, make_settings

pytestmark = pytest.mark.e2e

T = TypeVar("T")
INTAKE = "leads@crm.adf-email-motors.example.com"
DEALER_NAME = "ADF Email Motors"
TIMEOUT_SECONDS = 60.0  # a hang guard only


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun() as server:
        yield server


@pytest.fixture(scope="module")
def stack(db_url: str, fake: FakeMailgun) -> Iterator[ServerThread]:
    server = ServerThread(
        make_settings(
            db_url,
            mailgun_api_key=fake.api_key,
            mailgun_domain=fake.domain,
            mailgun_base_url=fake.url,
            mailgun_webhook_signing_key=DEFAULT_SIGNING_KEY,
            company_name="Test Lending LLC",
            company_postal_address="1 Test St, Springfield, IL 62701",
            public_base_url="https://apply.example.test",
            worker_poll_seconds=0.05,
        )
    ).start()
    yield server
    server.stop()


def client(envoy: EnvoyProcess, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=envoy.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def wait_for(check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def admin(stack: ServerThread, envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with client(envoy_proxy, stack.create_key(Role.ADMIN)) as http:
        yield http


@pytest.fixture(scope="module")
def email_dealer(
    admin: httpx.Client, stack: ServerThread, envoy_proxy: EnvoyProcess
) -> Iterator[tuple[str, httpx.Client]]:
    r = admin.post(
        "/api/dealers",
        json={
            "name": DEALER_NAME,
            "states": ["TX"],  # serves no lead of its own: only those it sends
            "delivery_format": "DELIVERY_FORMAT_ADF",
            "delivery_channel": "DELIVERY_CHANNEL_EMAIL",
            "intake_email": INTAKE,
            "contact_email": "sales@adf-email-motors.example.com",
            "active": True,
        },
    )
    assert r.status_code == 200, r.text
    created = r.json()["dealer"]
    assert created["delivery_channel"] == "DELIVERY_CHANNEL_EMAIL"
    assert created["intake_email"] == INTAKE
    dealer_id = created["dealer_id"]
    with client(envoy_proxy, stack.create_key(Role.DEALER, dealer_id)) as http:
        yield dealer_id, http


def process_lead(dealer: httpx.Client, n: int) -> str:
    request = example_request(
        last_name="Prequalified",  # the credit simulation's sandbox identity
        email=f"adf-email-{n}@example.com",
        phone=f"(312) 555-02{n:02d}",
    )
    request["idempotency_key"] = f"adf-email-{n}"
    r = dealer.post("/api/leads/process", json=request)
    assert r.status_code == 200, r.text
    return str(r.json()["lead"]["lead_id"])


def delivery_of(http: httpx.Client, lead_id: str) -> dict[str, Any]:
    r = http.get(f"/api/leads/{lead_id}/deliveries")
    assert r.status_code == 200, r.text
    deliveries = r.json()["deliveries"]
    assert len(deliveries) == 1, deliveries
    return dict(deliveries[0])


def accepted(http: httpx.Client, lead_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        d = delivery_of(http, lead_id)
        return d if d["state"] == "DELIVERY_STATE_ACCEPTED" else None

    return wait_for(check, f"the delivery of lead {lead_id} to be accepted by Mailgun")


def post_webhook(admin: httpx.Client, body: bytes) -> httpx.Response:
    # Mailgun authenticates by its signature, not by an API key.
    return httpx.post(
        str(admin.base_url).rstrip("/") + "/api/webhook/mailgun",
        content=body,
        headers={"content-type": "application/json"},
        timeout=30,
    )


def test_an_email_dealer_receives_its_adf_lead_and_mailgun_events_settle_it(
    admin: httpx.Client, email_dealer: tuple[str, httpx.Client], fake: FakeMailgun
) -> None:
    fake.reset()  # one fake for both backends' stacks
    dealer_id, dealer = email_dealer

    # The first lead: mailed to the intake address, ADF XML as the whole body.
    first = process_lead(dealer, 1)
    delivery = accepted(admin, first)
    assert delivery["dealer_id"] == dealer_id
    calls = [c for c in fake.calls if c.get("v:ccl_delivery") == delivery["delivery_id"]]
    assert len(calls) == 1
    call = calls[0]
    assert call.to == [INTAKE]
    assert call.get("subject") == f"New lead for {DEALER_NAME}"
    r = admin.get(f"/api/leads/{first}/packages")
    assert r.status_code == 200, r.text
    (package,) = r.json()["packages"]
    assert package["content_type"] == "application/xml"
    assert call.get("text") == package["body"]
    assert "<adf>" in package["body"] and call.get("html") is None
    assert "adf-email-1@example.com" not in (call.get("subject") or "")

    # Mailgun reports it delivered: so is the lead.
    message_id = call.message_id.strip("<>")
    body = webhook_bytes(
        "delivered",
        INTAKE,
        message_id=message_id,
        user_variables={"ccl_delivery": delivery["delivery_id"]},
        delivery_code=250,
    )
    answer = post_webhook(admin, body)
    assert answer.status_code == 200 and answer.json() == {"applied": True}, answer.text
    assert delivery_of(admin, first)["state"] == "DELIVERY_STATE_DELIVERED"
    lead = admin.get(f"/api/leads/{first}").json()["lead"]
    assert (lead["status"], lead["delivery_state"]) == (
        "LEAD_STATUS_DELIVERED",
        "DELIVERY_STATE_DELIVERED",
    )
    # The dealer's own delivery log says the same.
    log = dealer.get(f"/api/dealers/{dealer_id}/deliveries").json()["deliveries"]
    assert {d["lead_id"]: d["state"] for d in log}[first] == "DELIVERY_STATE_DELIVERED"

    # The second lead's email bounces for good: its delivery is dead-lettered.
    second = process_lead(dealer, 2)
    bounced = accepted(admin, second)
    (bounce_call,) = [c for c in fake.calls if c.get("v:ccl_delivery") == bounced["delivery_id"]]
    body = webhook_bytes(
        "failed",
        INTAKE,
        message_id=bounce_call.message_id.strip("<>"),
        user_variables={"ccl_delivery": bounced["delivery_id"]},
        severity="permanent",
        reason="bounce",
        delivery_code=550,
        delivery_message="5.1.1 mailbox unavailable",
    )
    answer = post_webhook(admin, body)
    assert answer.status_code == 200 and answer.json() == {"applied": True}, answer.text
    settled = delivery_of(admin, second)
    assert settled["state"] == "DELIVERY_STATE_DEAD_LETTERED"
    lead = admin.get(f"/api/leads/{second}").json()["lead"]
    assert (lead["status"], lead["delivery_state"]) == (
        "LEAD_STATUS_DELIVERY_FAILED",
        "DELIVERY_STATE_DEAD_LETTERED",
    )
    activity = admin.get(f"/api/leads/{second}/activity").json()["activities"]
    assert "delivery.dead_lettered" in [a["kind"] for a in activity]

    # An event about an email no delivery of ours sent is acknowledged and changes nothing.
    body = webhook_bytes("delivered", INTAKE, user_variables={"ccl_delivery": "unknown-id"})
    answer = post_webhook(admin, body)
    assert answer.status_code == 200 and answer.json() == {"applied": False}, answer.text
