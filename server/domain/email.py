"""Email as the platform sends it and hears back about it: batches, send results, and Mailgun's
signed event webhooks (signature check and parsing), all pure.

A batch is one call to the mail provider: at most `MAX_BATCH_RECIPIENTS` recipients, each with our
own message id and a personal unsubscribe link, so every recipient gets a message of their own and
no one sees another's address. The provider's answer is a `SendResult` whose `outcome` tells the
outbox what to do: record the message id, try again later (after `retry_after` seconds when the
provider said so), or give up. `may_have_been_sent` marks the failures after which the provider may
still have accepted the batch (a timeout while waiting for the answer, a 5xx): such a batch is
resolved through its events (`user_variables["ccl_batch"]`) before it is sent again.

Webhooks (https://documentation.mailgun.com/docs/mailgun/user-manual/webhooks/securing-webhooks):
the body is `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`; the
signature is the hex HMAC-SHA256 of `timestamp + token` keyed with the webhook signing key.
Nothing here logs, and no reason string carries a recipient's address.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.errors import FieldViolation, InvalidArgumentError

__all__ = [
    "BATCH_VARIABLE",
    "MAX_BATCH_RECIPIENTS",
    "MESSAGE_VARIABLE",
    "WEBHOOK_MAX_AGE_SECONDS",
    "WEBHOOK_MAX_FUTURE_SECONDS",
    "EventSeverity",
    "MailBatch",
    "MailRecipient",
    "MailgunEvent",
    "MailgunEventType",
    "MailgunWebhook",
    "PlainMessage",
    "SendOutcome",
    "SendResult",
    "WebhookSignature",
    "WebhookVerdict",
    "normalize_message_id",
    "parse_event",
    "parse_webhook",
    "scrub_addresses",
    "sign_webhook",
    "verify_webhook_signature",
]

# Mailgun's limit for one batch-sending call.
MAX_BATCH_RECIPIENTS = 1000
# The custom (`v:`) variables every message carries, so that each event names our batch and our
# message: they come back in the event's `user-variables`.
BATCH_VARIABLE = "ccl_batch"
MESSAGE_VARIABLE = "ccl_message"
# A signed webhook older than this is refused (a replay of a captured request).
WEBHOOK_MAX_AGE_SECONDS = 15 * 60
# ...and one this far ahead of our clock too (clock skew is tolerated up to this much).
WEBHOOK_MAX_FUTURE_SECONDS = 5 * 60

_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_REASON_CHARS = 300


@dataclass(frozen=True)
class MailRecipient:
    """One recipient of a batch: the address, our id for their message (back in every event as
    `user_variables["ccl_message"]`), their one-click unsubscribe link (HTTPS, RFC 8058), and any
    further per-recipient values the template refers to as `%recipient.<name>%`."""

    address: str
    message_id: str
    unsubscribe_url: str
    variables: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MailBatch:
    """One marketing send to up to `MAX_BATCH_RECIPIENTS` recipients, rendered once: `text` and
    `html` may refer to `%recipient.<name>%` (per-recipient values, `unsubscribe_url` and
    `ccl_message` included). `tag` names the campaign in Mailgun's reports. `unsubscribe_mailto`,
    when given, is offered next to the link in `List-Unsubscribe` (`mailto:` added if missing).
    `variables` are further custom variables common to the batch."""

    batch_id: str
    sender: str
    subject: str
    recipients: Sequence[MailRecipient]
    text: str = ""
    html: str = ""
    tag: str = ""
    unsubscribe_mailto: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    test_mode: bool = False


@dataclass(frozen=True)
class PlainMessage:
    """One plain-text message to one address, sent as is (no tracking placeholders): an ADF lead
    to a dealer's intake address, whose body is only the ADF XML. `message_id` comes back in the
    events as `user_variables["ccl_message"]`."""

    sender: str
    to: str
    subject: str
    text: str
    message_id: str = ""
    tag: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    test_mode: bool = False
    # An HTML part beside the text (a transactional notice); empty for an ADF email, whose
    # body must stay plain text.
    html: str = ""


class SendOutcome(enum.StrEnum):
    SENT = "sent"  # accepted by the provider; `provider_id` is its message id
    RETRY = "retry"  # worth another attempt (after `retry_after` when given)
    REJECTED = "rejected"  # refused for good: the same request would fail again


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    # 0 when there was no answer (timeout, connection error).
    status_code: int = 0
    # Mailgun's id of the accepted message, without angle brackets ("" unless SENT).
    provider_id: str = ""
    # Seconds the provider asked us to wait (429 with Retry-After); None when it did not say.
    retry_after: float | None = None
    # Why it was not sent, safe to log and show: never an address or a key.
    reason: str = ""
    # True when a failed attempt may nevertheless have been accepted (the request went out and
    # no clear refusal came back): resolve through the events before sending again.
    may_have_been_sent: bool = False
    duration_ms: int = 0


def normalize_message_id(value: str) -> str:
    """Mailgun's message id as events carry it: the send API answers `<id@domain>`, the events
    say `id@domain`; both become the latter."""
    return value.strip().removeprefix("<").removesuffix(">").strip()


def scrub_addresses(text: str, *secrets: str) -> str:
    """`text` with every email address replaced by `[address]` and each secret by `[redacted]`,
    cut to a few hundred characters on one line: fit for logs and stored reasons."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    text = _ADDRESS.sub("[address]", text)
    return " ".join(text.split())[:_REASON_CHARS]


# --- webhooks -------------------------------------------------------------------------------


class WebhookVerdict(enum.StrEnum):
    """Why a signed webhook is accepted or not. Only `VALID` is truthy, so `if verdict:` is safe."""

    VALID = "valid"
    MALFORMED = "malformed"  # a field missing, or not of the expected form
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"  # older than WEBHOOK_MAX_AGE_SECONDS
    FUTURE = "future"  # more than WEBHOOK_MAX_FUTURE_SECONDS ahead of our clock
    REPLAYED = "replayed"  # its token was seen before

    def __bool__(self) -> bool:
        return self is WebhookVerdict.VALID


def sign_webhook(signing_key: str, timestamp: str, token: str) -> str:
    """The hex HMAC-SHA256 of `timestamp + token` keyed with the webhook signing key."""
    mac = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256)
    return mac.hexdigest()


def verify_webhook_signature(
    signing_key: str,
    timestamp: str | int,
    token: str,
    signature: str,
    *,
    now: float,
    seen_token: Callable[[str], bool] | None = None,
    max_age_seconds: float = WEBHOOK_MAX_AGE_SECONDS,
    max_future_seconds: float = WEBHOOK_MAX_FUTURE_SECONDS,
) -> WebhookVerdict:
    """Whether a Mailgun webhook is authentic, fresh and new. `now` is Unix seconds.

    `seen_token(token)` answers whether the token was seen before and remembers it (check and
    record in one step, e.g. an insert into a unique column). It is asked last, only for a
    request that is authentic and fresh, so forged or stale requests never fill the record, and
    a record need only be kept for `max_age_seconds + max_future_seconds`.
    """
    if not signing_key:
        # No key configured: nothing can be verified; refuse rather than accept everything.
        return WebhookVerdict.BAD_SIGNATURE
    stamp = str(timestamp).strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return WebhookVerdict.MALFORMED
    if not token or len(token) > 256 or not token.isascii():
        return WebhookVerdict.MALFORMED
    if not signature or len(signature) > 256 or not signature.isascii():
        return WebhookVerdict.MALFORMED
    expected = sign_webhook(signing_key, stamp, token)
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return WebhookVerdict.BAD_SIGNATURE
    age = now - int(stamp)
    if age > max_age_seconds:
        return WebhookVerdict.STALE
    if -age > max_future_seconds:
        return WebhookVerdict.FUTURE
    if seen_token is not None and seen_token(token):
        return WebhookVerdict.REPLAYED
    return WebhookVerdict.VALID


class MailgunEventType(enum.StrEnum):
    ACCEPTED = "accepted"
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    FAILED = "failed"
    REJECTED = "rejected"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    UNKNOWN = "unknown"  # anything else: acknowledged and ignored


class EventSeverity(enum.StrEnum):
    """For `failed` events: `permanent` (a hard bounce: suppress) or `temporary` (a soft one)."""

    NONE = ""
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class WebhookSignature:
    timestamp: str
    token: str
    signature: str


@dataclass(frozen=True)
class MailgunEvent:
    """The parts of Mailgun's `event-data` the platform uses."""

    type: MailgunEventType
    # The event name as Mailgun sent it (useful for an UNKNOWN one).
    name: str
    # Mailgun's event id (unique per event; the signature token is unique per request).
    event_id: str
    recipient: str
    # Unix seconds, with a fraction.
    timestamp: float
    # Mailgun's message id, normalized (see `normalize_message_id`); "" when absent.
    message_id: str
    # Our custom (`v:`) variables, e.g. `ccl_batch` and `ccl_message`.
    user_variables: Mapping[str, str]
    severity: EventSeverity = EventSeverity.NONE
    # Why it failed/was rejected, addresses scrubbed; "" otherwise.
    reason: str = ""
    # The SMTP status of a delivery attempt (e.g. 550), 0 when there is none.
    delivery_code: int = 0
    tags: tuple[str, ...] = ()

    @property
    def batch_id(self) -> str:
        return self.user_variables.get(BATCH_VARIABLE, "")

    @property
    def ccl_message_id(self) -> str:
        return self.user_variables.get(MESSAGE_VARIABLE, "")

    @property
    def is_hard_bounce(self) -> bool:
        return self.type is MailgunEventType.FAILED and self.severity is EventSeverity.PERMANENT


@dataclass(frozen=True)
class MailgunWebhook:
    signature: WebhookSignature
    event: MailgunEvent


def parse_webhook(payload: bytes | str | Mapping[str, Any]) -> MailgunWebhook:
    """Parse Mailgun's JSON webhook body. Raises `InvalidArgumentError` (reason
    `MAILGUN_WEBHOOK_MALFORMED`) when it is not JSON or lacks the signature or the event; an
    event name we do not know parses as `UNKNOWN`. Verify the signature before acting on it."""
    if isinstance(payload, Mapping):
        body: Any = payload
    else:
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as e:
            raise _malformed("body", "not JSON") from e
    if not isinstance(body, Mapping):
        raise _malformed("body", "not a JSON object")
    sig = body.get("signature")
    if not isinstance(sig, Mapping):
        raise _malformed("signature", "missing")
    signature = WebhookSignature(
        timestamp=_text(sig.get("timestamp")),
        token=_text(sig.get("token")),
        signature=_text(sig.get("signature")),
    )
    data = body.get("event-data")
    if not isinstance(data, Mapping):
        raise _malformed("event-data", "missing")
    return MailgunWebhook(signature, parse_event(data))


def parse_event(data: Mapping[str, Any]) -> MailgunEvent:
    """One `event-data` object (as in the webhook and the events API) as a `MailgunEvent`."""
    name = _text(data.get("event")).lower()
    try:
        kind = MailgunEventType(name)
    except ValueError:
        kind = MailgunEventType.UNKNOWN
    recipient = _text(data.get("recipient")).strip()
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    message_id = ""
    if isinstance(headers, Mapping):
        message_id = normalize_message_id(_text(headers.get("message-id")))
    severity = EventSeverity.NONE
    raw_severity = _text(data.get("severity")).lower()
    if raw_severity in (EventSeverity.PERMANENT.value, EventSeverity.TEMPORARY.value):
        severity = EventSeverity(raw_severity)
    status = data.get("delivery-status")
    code = 0
    detail = ""
    if isinstance(status, Mapping):
        raw_code = status.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and raw_code.isdigit():
            code = int(raw_code)
        detail = _text(status.get("description")) or _text(status.get("message"))
    reason = ""
    if kind in (MailgunEventType.FAILED, MailgunEventType.REJECTED):
        parts = [p for p in (_text(data.get("reason")), detail) if p]
        if isinstance(data.get("reject"), Mapping):
            parts.append(_text(data["reject"].get("reason")))
        reason = scrub_addresses(": ".join(p for p in parts if p))
    raw_tags = data.get("tags")
    tags = tuple(_text(t) for t in raw_tags) if isinstance(raw_tags, list) else ()
    return MailgunEvent(
        type=kind,
        name=name,
        event_id=_text(data.get("id")),
        recipient=recipient,
        timestamp=_timestamp(data.get("timestamp")),
        message_id=message_id,
        user_variables=_user_variables(data.get("user-variables")),
        severity=severity,
        reason=reason,
        delivery_code=code,
        tags=tags,
    )


def _user_variables(value: Any) -> dict[str, str]:
    # Mailgun sends `[]` when there are none; values come back as the strings we sent, but a
    # JSON value is kept as its JSON text rather than trusted to be one.
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            out[str(key)] = item
        else:
            out[str(key)] = json.dumps(item, sort_keys=True)
    return out


def _timestamp(value: Any) -> float:
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return 0.0
    else:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _text(value: Any) -> str:
    if value is None or isinstance(value, Mapping | list):
        return ""
    return str(value)


def _malformed(name: str, what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        "The Mailgun webhook body is malformed.",
        reason="MAILGUN_WEBHOOK_MALFORMED",
        violations=[FieldViolation(name, what)],
    )
