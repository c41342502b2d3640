"""Issue 10's "done when", through a real server and Envoy on both backends: a 5,000-recipient
campaign started with `POST /api/email-campaigns/bulk-send` reaches a fake Mailgun (a real HTTP
server on 127.0.0.1, checking auth, form fields, batch size and recipient variables) in calls of
at most 1,000 recipients, each with recipient variables for every `to` and the one-click
unsubscribe headers; every address is mailed exactly once; addresses that complained, bounced
or unsubscribed through Mailgun's webhook, or were suppressed by hand, are never mailed again.

The leads are seeded straight into storage (`tests/support/campaign_leads.py`: one insert per
500 rows), since 5,000 ProcessLead calls would each run the pipeline and take minutes on a
loaded machine; the campaign itself goes through the public API only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from support.campaign_leads import seed_campaign_leads
from support.fake_mailgun import DEFAULT_SIGNING_KEY, FakeMailgun, webhook_bytes
from support.stack import EnvoyProcess, ServerThread, make_settings

pytestmark = pytest.mark.e2e

T = TypeVar("T")
RECIPIENTS = 5_000
STATE = "WY"  # the campaign's audience; no other test lead of this module lives there
TEMPLATE = {
    "name": "Finish your application",
    "subject": "{{ first_name }}, your {{ vehicle }} is waiting",
    "html_body": "<p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>",
    "text_body": "Hi {{ first_name }}, finish here: {{ application_url }}",
}
# A hang guard only: the run itself takes a few seconds.
TIMEOUT_SECONDS = 120.0


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
            email_send_rate=1_000_000.0,
            email_quiet_hours=False,  # the test runs at any hour
            worker_poll_seconds=0.05,
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def admin(admin_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {admin_key}"}


def seed_leads(stack: ServerThread, addresses: list[str], state: str) -> list[str]:
    db = stack.app.db.db
    db.connect(reuse_if_open=True)
    try:
        return seed_campaign_leads(db, addresses, state)
    finally:
        db.close()


def wait_for(check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def campaign_when_sent(http: httpx.Client, admin: dict[str, str], campaign_id: str) -> Any:
    def sent() -> Any:
        r = http.get(f"/api/email-campaigns/{campaign_id}", headers=admin)
        assert r.status_code == 200, r.text
        campaign = r.json()["campaign"]
        assert campaign["state"] in ("CAMPAIGN_STATE_SENDING", "CAMPAIGN_STATE_SENT"), campaign
        return campaign if campaign["state"] == "CAMPAIGN_STATE_SENT" else None

    return wait_for(sent, f"campaign {campaign_id} to be sent")


def bulk_send(
    http: httpx.Client, admin: dict[str, str], key: str, campaign: dict[str, Any]
) -> dict[str, Any]:
    r = http.post(
        "/api/email-campaigns/bulk-send",
        json={"idempotency_key": key, "campaign": campaign},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_5000_recipient_campaign_reaches_mailgun_in_batches_exactly_once(
    http: httpx.Client, admin: dict[str, str], stack: ServerThread, fake: FakeMailgun
) -> None:
    fake.reset()  # one fake for both backends' stacks
    started = time.monotonic()
    r = http.post("/api/email-templates", json=TEMPLATE, headers=admin)
    assert r.status_code == 200, r.text
    template_id = r.json()["template"]["template_id"]
    addresses = [f"person{i}@bulk.example.com" for i in range(RECIPIENTS)]
    lead_ids = seed_leads(stack, addresses, STATE)
    seeded = time.monotonic()

    # Three of them get a first message, then complain, bounce and unsubscribe through
    # Mailgun's webhook; a fourth is suppressed by hand.
    complainer, bouncer, leaver, by_hand = addresses[:4]
    first = bulk_send(
        http,
        admin,
        "bulk-e2e-first",
        {"name": "First", "template_id": template_id, "audience": {"lead_ids": lead_ids[:3]}},
    )
    assert first["queued_count"] == "3", first
    campaign_when_sent(http, admin, first["campaign"]["campaign_id"])
    ours = {a: v["ccl_message"] for call in fake.calls for a, v in call.recipient_variables.items()}
    assert set(ours) == {complainer, bouncer, leaver}
    for event, address, extra in (
        ("complained", complainer, {}),
        ("failed", bouncer, {"severity": "permanent", "reason": "bounce", "delivery_code": 550}),
        ("unsubscribed", leaver, {}),
    ):
        body = webhook_bytes(event, address, user_variables={"ccl_message": ours[address]}, **extra)
        answer = http.post(
            "/api/webhook/mailgun", content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 200 and answer.json() == {"applied": True}, answer.text
    r = http.post("/api/email-suppressions", json={"email": by_hand}, headers=admin)
    assert r.status_code == 200, r.text
    fake.reset()

    # The campaign: everyone in the state, through Envoy.
    campaign = {"name": "Come back", "template_id": template_id, "audience": {"states": [STATE]}}
    sent_at = time.monotonic()
    answer = bulk_send(http, admin, "bulk-e2e-5000", campaign)
    assert answer["queued_count"] == str(RECIPIENTS - 4)
    assert answer["suppressed_count"] == "4"
    campaign_id = answer["campaign"]["campaign_id"]
    again = bulk_send(http, admin, "bulk-e2e-5000", campaign)  # a retry queues nothing twice
    assert again["idempotent_replay"] is True and again["campaign"]["campaign_id"] == campaign_id
    done = campaign_when_sent(http, admin, campaign_id)
    finished = time.monotonic()
    assert done["recipients"] == str(RECIPIENTS - 4)
    assert done["stats"]["sent_count"] == str(RECIPIENTS - 4)

    calls = list(fake.calls)
    assert calls and all(len(call.to) <= 1000 for call in calls)
    assert len(calls) == 5  # 4,996 recipients: five calls of at most 1,000
    for call in calls:
        variables = call.recipient_variables
        assert set(variables) == set(call.to)
        assert call.get("o:tag") == campaign_id
        assert call.get("h:List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
        assert call.get("h:List-Unsubscribe") == "<%recipient.unsubscribe_url%>"
        for address in call.to[::250]:
            link = call.rendered("h:List-Unsubscribe", address)
            assert link is not None
            assert link.startswith("<https://apply.example.test/api/unsubscribe/")
            assert call.rendered("v:ccl_message", address) == variables[address]["ccl_message"]
    counts = fake.recipient_counts()
    assert set(counts.values()) == {1}
    agents = http.get("/api/agents/status", headers=admin).json()["agents"]
    email = next(a for a in agents if a["name"] == "EmailReengagement")
    assert email["state"] == "AGENT_STATE_READY", email
    assert set(counts) == set(addresses) - {complainer, bouncer, leaver, by_hand}
    print(
        json.dumps(
            {
                "seed_seconds": round(seeded - started, 2),
                "send_seconds": round(finished - sent_at, 2),
                "total_seconds": round(finished - started, 2),
            }
        )
    )
