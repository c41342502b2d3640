"""Mailgun's event webhook through the service (SQLite and PostgreSQL): signature (constant-time
HMAC of timestamp + token), age and replay checked, the event applied with the token in one
transaction; permanent failures, complaints and unsubscribes suppress; unknown events are
acknowledged and change nothing. Also the unsubscribe link (one-click and its page) and
suppressions by hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from server.app import Application, build_application, unsubscribe_keys
from server.domain.campaigns import sign_unsubscribe
from server.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
)
from server.services.campaigns import MailgunWebhookService
from server.storage import models as m
from server.storage.migrate import apply_migrations
from support.fake_mailgun import DEFAULT_SIGNING_KEY, webhook_body, webhook_bytes
from support.stack import make_settings


@pytest.fixture(scope="module")
def app(db_url: str) -> Iterator[Application]:
    application = build_application(
        make_settings(db_url, mailgun_webhook_signing_key=DEFAULT_SIGNING_KEY)
    )
    application.db.db.connect(reuse_if_open=True)
    apply_migrations(application.db.db)
    yield application
    application.db.db.close()
    application.close()


def message(address: str) -> str:
    """One sent message of ours to `address` (no campaign): its id."""
    message_id = str(uuid.uuid4())
    m.EmailMessage.insert(
        id=message_id,
        to_email=address,
        state="sent",
        provider_message_id=f"{message_id}@mg.example.test",
    ).execute()
    return message_id


def row(message_id: str) -> Any:
    return m.EmailMessage.get_by_id(message_id)


def suppressed(address: str) -> str | None:
    found = m.Suppression.get_or_none(m.Suppression.email_normalized == address)
    return None if found is None else str(found.reason)


def ours(message_id: str) -> dict[str, str]:
    return {"user_variables": {"ccl_message": message_id}}


async def test_events_update_their_message_once(app: Application) -> None:
    address = "delivered.one@example.com"
    mid = message(address)
    receive = app.mailgun_webhook.receive
    assert await receive(webhook_bytes("delivered", address, **ours(mid))) is True
    assert row(mid).delivered_at is not None
    # The same event again, in a new request (a new token): acknowledged, nothing changes.
    assert await receive(webhook_bytes("delivered", address, **ours(mid))) is False
    assert await receive(webhook_bytes("opened", address, **ours(mid))) is True
    assert await receive(webhook_bytes("clicked", address, **ours(mid))) is True
    assert suppressed(address) is None


@pytest.mark.parametrize(
    ("event", "extra", "reason"),
    [
        ("failed", {"severity": "permanent", "reason": "bounce"}, "hard_bounce"),
        ("complained", {}, "complaint"),
        ("unsubscribed", {}, "unsubscribed"),
    ],
)
async def test_bounces_complaints_and_unsubscribes_suppress(
    app: Application, event: str, extra: dict[str, Any], reason: str
) -> None:
    address = f"{event}.{uuid.uuid4().hex[:8]}@example.com"
    mid = message(address)
    assert await app.mailgun_webhook.receive(webhook_bytes(event, address, **ours(mid), **extra))
    assert suppressed(address) == reason


async def test_a_temporary_failure_is_recorded_not_suppressed(app: Application) -> None:
    address = "soft.bounce@example.com"
    mid = message(address)
    body = webhook_bytes(
        "failed", address, severity="temporary", reason="mailbox full", **ours(mid)
    )
    assert await app.mailgun_webhook.receive(body) is True
    assert suppressed(address) is None
    assert row(mid).last_error


async def test_unknown_events_and_strangers_are_acknowledged(app: Application) -> None:
    address = "unknown.event@example.com"
    mid = message(address)
    assert await app.mailgun_webhook.receive(webhook_bytes("stored", address, **ours(mid))) is False
    stranger = webhook_bytes("delivered", "nobody@example.com", message_id="x@y")
    assert await app.mailgun_webhook.receive(stranger) is False


async def test_a_bad_signature_is_unauthenticated_and_records_nothing(app: Application) -> None:
    body = webhook_body("delivered", "a@example.com", signing_key="not-the-key-0123456789")
    with pytest.raises(UnauthenticatedError) as e:
        await app.mailgun_webhook.receive(json.dumps(body).encode())
    assert e.value.reason == "SIGNATURE_INVALID"
    token = body["signature"]["token"]
    assert not m.MailgunWebhookToken.select().where(m.MailgunWebhookToken.token == token).exists()


async def test_stale_future_and_replayed_requests_are_refused(app: Application) -> None:
    address = "replay@example.com"
    mid = message(address)
    now = int(time.time())
    for stamp in (now - 16 * 60, now + 10 * 60):
        body = webhook_bytes("delivered", address, timestamp=stamp, **ours(mid))
        with pytest.raises(FailedPreconditionError) as e:
            await app.mailgun_webhook.receive(body)
        assert e.value.reason == "WEBHOOK_STALE"
    assert row(mid).delivered_at is None
    body = webhook_bytes("delivered", address, **ours(mid))
    assert await app.mailgun_webhook.receive(body) is True
    with pytest.raises(FailedPreconditionError) as e:
        await app.mailgun_webhook.receive(body)
    assert e.value.reason == "WEBHOOK_REPLAYED"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"signature": {}}',
        b'{"event-data": {}}',
        b'{"signature": {}, "event-data": {"event": "delivered"}}',
    ],
)
async def test_a_malformed_body_is_invalid(app: Application, body: bytes) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        await app.mailgun_webhook.receive(body)
    assert e.value.reason == "INVALID_WEBHOOK_BODY"


async def test_without_a_signing_key_every_webhook_is_refused(app: Application) -> None:
    unconfigured = MailgunWebhookService(app.db, "")
    with pytest.raises(UnauthenticatedError):
        await unconfigured.receive(webhook_bytes("delivered", "a@example.com"))


# --- unsubscribe -------------------------------------------------------------------------------


def token_for(app: Application, message_id: str, address: str) -> str:
    keys = unsubscribe_keys(app.settings, app.settings.data_key_list())
    return sign_unsubscribe(keys, message_id, address)


async def test_one_click_unsubscribe_suppresses_at_once(app: Application) -> None:
    address = "one.click@example.com"
    mid = message(address)
    token = token_for(app, mid, address)
    page = await app.unsubscribe.page(token)
    assert f'action="/api/unsubscribe/{token}"' in page and address not in page
    assert suppressed(address) is None  # opening the page changes nothing
    assert await app.unsubscribe.unsubscribe(token) is True
    assert suppressed(address) == "unsubscribed"
    assert row(mid).unsubscribed_at is not None
    assert await app.unsubscribe.unsubscribe(token) is True  # again: still suppressed
    found = m.Suppression.get(m.Suppression.email_normalized == address)
    assert (found.source, found.message_ref) == ("unsubscribe", mid)


async def test_bad_tokens_all_look_the_same(app: Application) -> None:
    address = "tokens@example.com"
    mid = message(address)
    good = token_for(app, mid, address)
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    unknown_message = token_for(app, str(uuid.uuid4()), address)
    other_address = token_for(app, mid, "someone.else@example.com")
    for token in ("", "x", tampered, unknown_message, other_address, "u1." + "a" * 600):
        for call in (app.unsubscribe.unsubscribe, app.unsubscribe.page):
            with pytest.raises(InvalidArgumentError) as e:
                await call(token)
            assert (e.value.reason, e.value.message) == (
                "UNSUBSCRIBE_TOKEN_INVALID",
                "the unsubscribe link is not valid",
            )
    assert suppressed(address) is None


# --- suppressions by hand ----------------------------------------------------------------------


async def test_add_list_and_delete_suppressions(app: Application) -> None:
    service = app.suppressions
    record, created = await service.add("  Manual.One@Example.com ")
    assert created and record.address == "manual.one@example.com" and record.reason == "manual"
    again, created = await service.add("manual.one@example.com")
    assert not created and again.suppression_id == record.suppression_id
    with pytest.raises(InvalidArgumentError) as e:
        await service.add("not an address")
    assert e.value.reason == "INVALID_SUPPRESSION"
    page = await service.list_suppressions(1, "")
    assert len(page.items) == 1 and page.next_page_token
    with pytest.raises(InvalidArgumentError):
        await service.delete(record.suppression_id, "  ")
    lifted = await service.delete(record.suppression_id, "asked by phone to be mailed again")
    assert lifted.suppression_id == record.suppression_id
    assert suppressed("manual.one@example.com") is None
    with pytest.raises(NotFoundError) as e:
        await service.delete(record.suppression_id, "again")
    assert e.value.reason == "SUPPRESSION_NOT_FOUND"
    for bad_id in ("abc", "-1", "9" * 40, "١٢"):
        with pytest.raises(NotFoundError):
            await service.delete(bad_id, "not an id")


async def test_a_complaint_cannot_be_lifted(app: Application) -> None:
    address = "complainer@example.com"
    mid = message(address)
    assert await app.mailgun_webhook.receive(webhook_bytes("complained", address, **ours(mid)))
    found = m.Suppression.get(m.Suppression.email_normalized == address)
    with pytest.raises(FailedPreconditionError) as e:
        await app.suppressions.delete(found.id, "they said it was a mistake")
    assert e.value.reason == "SUPPRESSION_NOT_REMOVABLE"
    assert suppressed(address) == "complaint"


async def test_old_tokens_are_pruned(app: Application) -> None:
    old, fresh = f"old-{uuid.uuid4().hex}", f"fresh-{uuid.uuid4().hex}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    t = m.MailgunWebhookToken
    t.insert_many(
        [
            {"token": old, "received_at": now - dt.timedelta(hours=1)},
            {"token": fresh, "received_at": now},
        ]
    ).execute()
    stop = asyncio.Event()
    task = asyncio.create_task(app.mailgun_webhook.run_pruner(stop, interval=0.05))
    for _ in range(100):
        if not t.select().where(t.token == old).exists():
            break
        await asyncio.sleep(0.05)
    stop.set()
    await task
    assert not t.select().where(t.token == old).exists()
    assert t.select().where(t.token == fresh).exists()
