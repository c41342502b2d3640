"""Deliveries carry the dealer's endpoint credentials (SQLite and PostgreSQL), to a fake dealer
CRM over loopback: HTTP Basic as `Authorization: Basic ...`, or the dealer's own header, beside
a valid signature. No credential reaches a log line (httpx's request lines included), the
recorded error, the attempt log or the activity, even when the endpoint echoes what it got;
an attempt keeps the first 1,000 characters of the answer, URLs redacted."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
from collections.abc import Iterator

import pytest

from server.adapters.dealer_crm import EXCERPT_CHARS, DealerCrmClient, Outcome
from server.agents.lead_packaging import LeadPackaging
from server.app import Application
from server.domain.dealers import EndpointCredentials
from server.logs import install_url_redaction
from server.outbox.dealer_delivery import dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.storage import models as m
from server.storage.dealers import credentials_json
from server.storage.deliveries import DeliveryRepository, DueDelivery
from support.builders import credit_checked_lead, dealer
from support.fake_crm import FakeCrm, running

SECRET = "whsec_ZW5kcG9pbnQtYXV0aC10ZXN0LXNlY3JldC0wMTIzNDU2"
USER = "crm-user"
PASSWORD = "Pa55-w0rd-9f8e7d"
TOKEN = "tok_5c4b3a2918f7e6d5"
BASIC = EndpointCredentials(kind="basic", username=USER, password=PASSWORD)
HEADER = EndpointCredentials(kind="header", name="X-Api-Key", value=TOKEN)


def make_worker(application: Application) -> OutboxWorker[DueDelivery]:
    return dealer_delivery_worker(
        application.db,
        DealerCrmClient(timeout_seconds=2.0),
        max_attempts=3,
        backoff_base_seconds=0.01,
        backoff_max_seconds=0.02,
        poll_seconds=0.01,
    )


async def drain(worker: OutboxWorker[DueDelivery], rounds: int) -> None:
    for _ in range(rounds):
        if not await worker.run_once():
            await asyncio.sleep(0.03)


@pytest.fixture()
def crm() -> Iterator[tuple[FakeCrm, str]]:
    fake = FakeCrm(secret=SECRET)
    with running(fake) as url:
        yield fake, url


def routed_delivery(
    application: Application, url: str, credentials: EndpointCredentials | None
) -> tuple[str, str]:
    """A lead routed to a new dealer (the only active one) at `url` with `credentials`."""
    m.Dealer.update(active=False).execute()
    dealer_id = dealer(
        endpoint_url=url, signing_secret=SECRET, endpoint_auth=credentials_json(credentials)
    )
    lead_id = credit_checked_lead(application)
    with application.db.transaction():
        result = LeadPackaging(application.db.backend).route(lead_id, m.utcnow())
    assert result.dealer_id == dealer_id and result.delivery_id
    return lead_id, result.delivery_id


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        (
            BASIC,
            {
                "authorization": "Basic "
                + base64.b64encode(b"crm-user:" + PASSWORD.encode()).decode()
            },
        ),
        (HEADER, {"x-api-key": TOKEN}),
        (None, {}),
    ],
    ids=["basic", "header", "none"],
)
async def test_the_endpoint_gets_the_credentials_and_the_signature(
    application: Application,
    crm: tuple[FakeCrm, str],
    credentials: EndpointCredentials | None,
    expected: dict[str, str],
) -> None:
    fake, url = crm
    _, delivery_id = routed_delivery(application, url, credentials)
    due = DeliveryRepository(application.db).claim_due("probe", m.utcnow(), dt.timedelta(0), 100)
    assert [d.credentials for d in due if d.delivery_id == delivery_id] == [credentials]
    worker = make_worker(application)
    await drain(worker, rounds=10)
    await worker._handler._client.aclose()
    assert len(fake.received) == 1
    got = fake.received[0]
    assert got.signature_ok
    for name, value in expected.items():
        assert got.headers.get(name) == value
    if credentials is not HEADER:
        assert "x-api-key" not in got.headers
    if credentials is None:
        assert "authorization" not in got.headers
    assert m.Delivery.get_by_id(delivery_id).state == "delivered"


async def test_no_credential_in_logs_errors_or_activity_even_when_echoed(
    application: Application, crm: tuple[FakeCrm, str], caplog: pytest.LogCaptureFixture
) -> None:
    install_url_redaction()  # as `configure_logging` does in the server
    fake, url = crm
    fake.script = [401]
    # The endpoint echoes every header it got, and the URL with a token, in its refusal.
    fake.answer = lambda headers: json.dumps(
        {
            "got": [headers.get("authorization", ""), headers.get("x-api-key", "")],
            "see": "https://u:pw@crm.example/x?token=abc",
            "headers": headers,
        }
    ).encode()
    for credentials in (BASIC, HEADER):
        lead_id, delivery_id = routed_delivery(application, url + "?token=abc", credentials)
        worker = make_worker(application)
        with caplog.at_level(logging.DEBUG):
            await drain(worker, rounds=10)
        await worker._handler._client.aclose()
        delivery = m.Delivery.get_by_id(delivery_id)
        assert delivery.state == "rejected" and delivery.last_error.startswith("HTTP 401")
        assert "[redacted]" in delivery.last_error
        attempts = [
            a.error
            for a in m.DeliveryAttempt.select().where(m.DeliveryAttempt.delivery == delivery_id)
        ]
        activity = [a.details_json for a in m.Activity.select().where(m.Activity.lead == lead_id)]
        logged = [r.getMessage() + repr(r.__dict__) for r in caplog.records]
        assert any("HTTP Request: POST" in line for line in logged), "httpx logged the request"
        basic_token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        for text in [delivery.last_error, *attempts, *activity, *logged]:
            for secret in (PASSWORD, TOKEN, basic_token, "token=abc", "u:pw@"):
                assert secret not in text
    assert len(fake.received) == 2


async def test_an_attempt_keeps_the_start_of_the_answer_with_urls_redacted(
    crm: tuple[FakeCrm, str],
) -> None:
    fake, url = crm
    fake.script = [422]
    fake.answer = ("see https://user:s3cret@crm.example.com/docs?key=k1 " + "x" * 2000).encode()
    client = DealerCrmClient(timeout_seconds=5)
    try:
        result = await client.deliver(
            url=url,
            body=b"{}",
            content_type="application/json",
            secret=SECRET,
            event_id="evt_excerpt",
            credentials=HEADER,
        )
    finally:
        await client.aclose()
    assert result.outcome is Outcome.REJECTED and result.status_code == 422
    assert len(result.response_excerpt) == EXCERPT_CHARS
    assert result.response_excerpt.startswith("see https://crm.example.com/docs x")
    assert "s3cret" not in result.response_excerpt and "k1" not in result.response_excerpt
    assert fake.received[0].headers["x-api-key"] == TOKEN


def test_an_echoed_bearer_token_alone_is_redacted_too() -> None:
    from server.adapters.dealer_crm import _scrub

    token = "tok-3f9c0d8e4b1a4c6f"
    credentials = EndpointCredentials(kind="header", name="Authorization", value=f"Bearer {token}")
    echoed = f'{{"error": "bad token {token}", "header": "Bearer {token}"}}'
    assert token not in _scrub(echoed, credentials)
    assert _scrub("nothing secret", credentials) == "nothing secret"
