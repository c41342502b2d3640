"""Mailgun webhooks, pure: the signature (valid, forged, stale, from the future, replayed) and
the parsing of each event type into a `MailgunEvent`."""

from __future__ import annotations

import json

import pytest

from server.domain.email import (
    WEBHOOK_MAX_AGE_SECONDS,
    EventSeverity,
    MailgunEventType,
    WebhookVerdict,
    normalize_message_id,
    parse_webhook,
    sign_webhook,
    verify_webhook_signature,
)
from server.errors import InvalidArgumentError
from support.fake_mailgun import DEFAULT_SIGNING_KEY, webhook_body, webhook_bytes

KEY = DEFAULT_SIGNING_KEY
NOW = 1_800_000_000
TOKEN = "a" * 50


def signed(timestamp: int = NOW, token: str = TOKEN, key: str = KEY) -> tuple[str, str, str]:
    stamp = str(timestamp)
    return stamp, token, sign_webhook(key, stamp, token)


class Seen:
    """A replay record as a caller keeps one: check and record in one step."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.asked = 0

    def __call__(self, token: str) -> bool:
        self.asked += 1
        if token in self.tokens:
            return True
        self.tokens.add(token)
        return False


def test_the_signature_is_the_hex_hmac_sha256_of_timestamp_and_token() -> None:
    # Computed independently: HMAC-SHA256(key="key", msg="1700000000" + "tok").
    import hashlib
    import hmac

    expected = hmac.new(b"key", b"1700000000tok", hashlib.sha256).hexdigest()
    assert sign_webhook("key", "1700000000", "tok") == expected


def test_a_valid_signature_passes_once_and_a_replay_is_refused() -> None:
    seen = Seen()
    stamp, token, signature = signed()
    first = verify_webhook_signature(KEY, stamp, token, signature, now=NOW + 5, seen_token=seen)
    assert first is WebhookVerdict.VALID
    assert first
    again = verify_webhook_signature(KEY, stamp, token, signature, now=NOW + 6, seen_token=seen)
    assert again is WebhookVerdict.REPLAYED
    assert not again


def test_an_uppercase_hex_signature_and_an_int_timestamp_pass() -> None:
    stamp, token, signature = signed()
    verdict = verify_webhook_signature(KEY, int(stamp), token, signature.upper(), now=NOW)
    assert verdict is WebhookVerdict.VALID


@pytest.mark.parametrize(
    "change",
    ["key", "token", "timestamp", "signature"],
)
def test_anything_changed_breaks_the_signature(change: str) -> None:
    seen = Seen()
    stamp, token, signature = signed()
    key = KEY
    if change == "key":
        key = "another-signing-key"
    elif change == "token":
        token = "b" * 50
    elif change == "timestamp":
        stamp = str(NOW - 1)
    else:
        signature = sign_webhook(KEY, stamp, token + "x")
    verdict = verify_webhook_signature(key, stamp, token, signature, now=NOW, seen_token=seen)
    assert verdict is WebhookVerdict.BAD_SIGNATURE
    # A forged request never reaches the replay record.
    assert seen.asked == 0


def test_an_old_timestamp_is_refused_and_a_recent_one_passes() -> None:
    seen = Seen()
    stamp, token, signature = signed()
    late = NOW + WEBHOOK_MAX_AGE_SECONDS + 1
    verdict = verify_webhook_signature(KEY, stamp, token, signature, now=late, seen_token=seen)
    assert verdict is WebhookVerdict.STALE
    assert seen.asked == 0
    edge = NOW + WEBHOOK_MAX_AGE_SECONDS
    assert verify_webhook_signature(KEY, stamp, token, signature, now=edge) is WebhookVerdict.VALID


def test_a_timestamp_far_in_the_future_is_refused() -> None:
    stamp, token, signature = signed(NOW + 3600)
    assert verify_webhook_signature(KEY, stamp, token, signature, now=NOW) is WebhookVerdict.FUTURE
    stamp, token, signature = signed(NOW + 30)  # a little clock skew is fine
    assert verify_webhook_signature(KEY, stamp, token, signature, now=NOW) is WebhookVerdict.VALID


@pytest.mark.parametrize(
    ("timestamp", "token", "signature"),
    [
        ("", TOKEN, "ab"),
        ("12ab", TOKEN, "ab"),
        ("-5", TOKEN, "ab"),
        ("1" * 40, TOKEN, "ab"),
        (str(NOW), "", "ab"),
        (str(NOW), "t" * 1000, "ab"),
        (str(NOW), TOKEN, ""),
        (str(NOW), TOKEN, "é" * 64),
    ],
)
def test_malformed_fields_are_refused(timestamp: str, token: str, signature: str) -> None:
    verdict = verify_webhook_signature(KEY, timestamp, token, signature, now=NOW)
    assert verdict is WebhookVerdict.MALFORMED


def test_without_a_signing_key_nothing_verifies() -> None:
    stamp, token, signature = signed(key="")
    assert verify_webhook_signature("", stamp, token, signature, now=NOW) is (
        WebhookVerdict.BAD_SIGNATURE
    )


def test_a_signed_body_from_the_fake_verifies() -> None:
    hook = parse_webhook(webhook_bytes("delivered", "lead@example.com", timestamp=NOW))
    sig = hook.signature
    verdict = verify_webhook_signature(KEY, sig.timestamp, sig.token, sig.signature, now=NOW)
    assert verdict is WebhookVerdict.VALID
    assert len(sig.token) == 50


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("accepted", MailgunEventType.ACCEPTED),
        ("delivered", MailgunEventType.DELIVERED),
        ("opened", MailgunEventType.OPENED),
        ("clicked", MailgunEventType.CLICKED),
        ("complained", MailgunEventType.COMPLAINED),
        ("unsubscribed", MailgunEventType.UNSUBSCRIBED),
        ("rejected", MailgunEventType.REJECTED),
        ("stored", MailgunEventType.UNKNOWN),
        ("list_member_uploaded", MailgunEventType.UNKNOWN),
        ("", MailgunEventType.UNKNOWN),
    ],
)
def test_each_event_type_parses(name: str, kind: MailgunEventType) -> None:
    body = webhook_body(
        name,
        "lead@example.com",
        message_id="<20261129.1@mg.example.test>",
        user_variables={"ccl_batch": "batch-1", "ccl_message": "msg-7"},
        timestamp=NOW,
        event_timestamp=NOW + 0.25,
        tags=["campaign-42"],
    )
    event = parse_webhook(body).event
    assert event.type is kind
    assert event.name == name
    assert event.recipient == "lead@example.com"
    assert event.timestamp == NOW + 0.25
    assert event.message_id == "20261129.1@mg.example.test"
    assert event.batch_id == "batch-1"
    assert event.ccl_message_id == "msg-7"
    assert event.tags == ("campaign-42",)
    assert event.severity is EventSeverity.NONE
    assert not event.is_hard_bounce


def test_a_permanent_failure_is_a_hard_bounce_with_a_scrubbed_reason() -> None:
    body = webhook_body(
        "failed",
        "lead@example.com",
        severity="permanent",
        reason="bounce",
        delivery_code=550,
        delivery_message="5.1.1 The email account lead@example.com does not exist",
    )
    event = parse_webhook(json.dumps(body)).event
    assert event.type is MailgunEventType.FAILED
    assert event.severity is EventSeverity.PERMANENT
    assert event.is_hard_bounce
    assert event.delivery_code == 550
    assert event.reason.startswith("bounce: 5.1.1")
    assert "lead@example.com" not in event.reason
    assert "[address]" in event.reason


def test_a_temporary_failure_is_not_a_hard_bounce() -> None:
    body = webhook_body(
        "failed", "lead@example.com", severity="temporary", reason="generic", delivery_code=421
    )
    event = parse_webhook(body).event
    assert event.type is MailgunEventType.FAILED
    assert event.severity is EventSeverity.TEMPORARY
    assert not event.is_hard_bounce
    assert event.delivery_code == 421


def test_empty_user_variables_come_as_a_list_and_odd_values_are_kept_as_json() -> None:
    body = webhook_body("delivered", "lead@example.com")
    assert body["event-data"]["user-variables"] == []
    assert parse_webhook(body).event.user_variables == {}
    body["event-data"]["user-variables"] = {"n": 3, "flag": True, "s": "x"}
    assert parse_webhook(body).event.user_variables == {"n": "3", "flag": "true", "s": "x"}


def test_missing_optional_parts_parse_to_empty_values() -> None:
    body = {"signature": {"timestamp": "1", "token": "t", "signature": "s"}, "event-data": {}}
    event = parse_webhook(body).event
    assert event.type is MailgunEventType.UNKNOWN
    assert (event.recipient, event.message_id, event.timestamp) == ("", "", 0.0)
    assert event.user_variables == {}


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({"event-data": {"event": "delivered"}}).encode(),
        json.dumps({"signature": {}, "event-data": "delivered"}).encode(),
    ],
)
def test_malformed_bodies_raise_invalid_argument(payload: bytes) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_webhook(payload)
    assert caught.value.reason == "MAILGUN_WEBHOOK_MALFORMED"


def test_message_ids_are_normalized() -> None:
    assert normalize_message_id("<a.b@mg.example>") == "a.b@mg.example"
    assert normalize_message_id(" a.b@mg.example ") == "a.b@mg.example"
