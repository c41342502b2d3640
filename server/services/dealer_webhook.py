"""Inbound dealer CRM webhook: verified, then one result per event.

A request is accepted only when (1) it carries the dealer's API key and (2) it is signed by the
Standard Webhooks scheme with the dealer's signing secret, as the `standardwebhooks` library
signs: `webhook-id`, `webhook-timestamp` (Unix seconds, within the tolerance of now: replays of
old captures fail) and `webhook-signature` holding, among its space-separated `v1,<base64>`
signatures, the HMAC-SHA256 of `{id}.{timestamp}.{raw body}` by the current secret or, during a
rotation's overlap, the previous one (signatures are computed with the library's `sign`, and
compared in constant time).

Deprecated, accepted during a transition window when no `webhook-signature` is sent: the
former scheme, `x-ccl-timestamp` and `x-ccl-signature` = `sha256=` + hex HMAC-SHA256(key,
timestamp + "." + raw body), with the same secrets. Then each event is handled on its own,
idempotent by (dealer, event id), with one result (`EventStatus`) each:

- ACCEPTED: processed now (a status applied, a lead created); recorded, final;
- DUPLICATE_CONSUMER: a new lead whose consumer is already a lead within the duplicate window,
  recorded as a duplicate linked to the earlier lead (its id is the result's) and not
  delivered; recorded, final;
- ALREADY_RECEIVED: the event id was recorded earlier; nothing changes now; the lead id is the
  one recorded then;
- REJECTED: refused, with a reason; nothing is recorded, so the dealer can correct the event
  and send it again with the same event id.

The events:

- `{"event_id", "type": "lead", "lead": {LeadInput JSON}}`: a lead the dealer sourced, run
  through the same pipeline, attributed to the dealer;
- `{"event_id", "type": "status", "lead_id", "status": contacted|appointment_set|sold|lost|
  returned, "reason"}`: a status update on a lead we delivered to this dealer (`returned` needs
  a reason). A dealer can touch only its own leads.

Before anything touches the database, every string of an event is checked: none, at any depth
(keys included), may hold a NUL or a lone surrogate (`"\\ud800"`), which neither database nor a
protobuf response can take, and the fields that are stored or compared are bounded text. A bad
value rejects its event only (`INVALID_EVENT: events[i].<field> ...`) and is not recorded, so a
retry of the batch answers the same.

Two copies of one event at once: a status event is recorded in the transaction that applies it,
and the unique (dealer, event id) index lets one copy through (the other is ALREADY_RECEIVED); a
lead event's lead is created once by the orchestrator's idempotency key (derived from the
dealer and event id), and recorded after it, the copy that loses the insert being
ALREADY_RECEIVED.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

from server.adapters.dealer_crm import sign, standard_signature
from server.agents.orchestrator import Orchestrator, describe
from server.domain.clock import utcnow
from server.domain.lead_status import DEALER_STATUSES, TransitionOutcome
from server.domain.leads import LeadInput, LeadOutcome
from server.domain.principal import Principal, Role
from server.errors import (
    CclError,
    InvalidArgumentError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from server.storage.db import Database
from server.storage.dealer_events import (
    RESULT_ACCEPTED,
    RESULT_DUPLICATE_CONSUMER,
    DealerEventRepository,
)

MAX_EVENTS = 500
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# What no stored or echoed string may hold: NUL (PostgreSQL text cannot) and surrogates (a
# decoded JSON string holds one only alone, and UTF-8, hence protobuf, cannot encode it).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The event's strings that are stored or compared: longest length, and whether it is free text
# (tabs and line breaks allowed).
TEXT_FIELDS: dict[str, tuple[int, bool]] = {
    "event_id": (128, False),
    "type": (16, False),
    "lead_id": (64, False),
    "status": (32, False),
    "reason": (500, True),
}
_MAX_KEY_SHOWN = 64
# A path into a JSON document as (parent path, segment) links: O(1) to extend.
_Trail: TypeAlias = "tuple[_Trail, str] | None"


class EventStatus(enum.StrEnum):
    """The result of one event (the contract's `EventResultStatus`, see the module docstring)."""

    ACCEPTED = "accepted"
    ALREADY_RECEIVED = "already_received"
    DUPLICATE_CONSUMER = "duplicate_consumer"
    REJECTED = "rejected"


_REJECTED = EventStatus.REJECTED


@dataclass(frozen=True)
class EventResult:
    event_id: str
    status: EventStatus
    reason: str = ""
    lead_id: str = ""


class DealerWebhookService:
    def __init__(
        self,
        db: Database,
        orchestrator: Orchestrator,
        parse_lead: Callable[[Any], LeadInput],
        tolerance_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._events_repo = DealerEventRepository(db)
        self._orchestrator = orchestrator
        self._parse_lead = parse_lead
        self._tolerance = tolerance_seconds
        self._clock = clock

    async def receive(
        self,
        principal: Principal,
        body: bytes,
        timestamp: str = "",
        signature: str = "",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> list[EventResult]:
        """`headers`: the request's headers (keys lower-cased), where the Standard Webhooks
        ones are read; `timestamp`/`signature`: the deprecated `x-ccl-*` ones, used when no
        `webhook-signature` is given (also read from `headers`)."""
        if principal.role is not Role.DEALER or not principal.dealer_id:
            raise PermissionDeniedError(
                "the dealer webhook takes a dealer API key", reason="DEALER_KEY_REQUIRED"
            )
        dealer_id = principal.dealer_id
        secrets = await self._db.run(self._events_repo.signing_secrets, dealer_id, utcnow())
        h = headers or {}
        if h.get("webhook-signature"):
            self._verify_standard(
                secrets,
                body,
                h.get("webhook-id", ""),
                h.get("webhook-timestamp", ""),
                h.get("webhook-signature", ""),
            )
        else:
            self._verify(
                secrets,
                body,
                timestamp or h.get("x-ccl-timestamp", ""),
                signature or h.get("x-ccl-signature", ""),
            )
        events = self._events(body)
        return [await self._handle(principal, dealer_id, i, e) for i, e in enumerate(events)]

    def _check_timestamp(self, timestamp: str, header: str) -> int:
        # Unix seconds only: a bounded digit string, so no input can overflow the arithmetic.
        if (
            not _TIMESTAMP.fullmatch(timestamp)
            or abs(self._clock() - int(timestamp)) > self._tolerance
        ):
            raise UnauthenticatedError(
                f"{header} is missing or too far from now", reason="TIMESTAMP_OUT_OF_RANGE"
            )
        return int(timestamp)

    def _verify_standard(
        self, secrets: Sequence[str], body: bytes, msg_id: str, timestamp: str, signatures: str
    ) -> None:
        when = self._check_timestamp(timestamp, "webhook-timestamp")
        given = _v1_signatures(signatures)
        try:
            expected = [
                base64.b64decode(standard_signature(s, msg_id, when, body).split(",", 1)[1])
                for s in secrets
            ]
        except UnicodeDecodeError:
            expected = []  # a body that is not UTF-8 cannot have been signed (nor be JSON)
        if not msg_id or not any(hmac.compare_digest(e, g) for e in expected for g in given):
            raise UnauthenticatedError(
                "webhook-signature does not match the body", reason="SIGNATURE_INVALID"
            )

    def _verify(self, secrets: Sequence[str], body: bytes, timestamp: str, signature: str) -> None:
        """The deprecated `x-ccl-signature` scheme."""
        self._check_timestamp(timestamp, "x-ccl-timestamp")
        given = signature.encode("ascii", errors="replace")  # non-ASCII can never match
        if not any(hmac.compare_digest(sign(s, timestamp, body).encode(), given) for s in secrets):
            raise UnauthenticatedError(
                "x-ccl-signature does not match the body", reason="SIGNATURE_INVALID"
            )

    @staticmethod
    def _events(body: bytes) -> list[Any]:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise _bad_body("the body is not JSON (or nests too deeply)") from e
        events = document.get("events") if isinstance(document, dict) else None
        if not isinstance(events, list):
            raise _bad_body('the body must be {"events": [...]}')
        if len(events) > MAX_EVENTS:
            raise _bad_body(f"at most {MAX_EVENTS} events per request")
        return events

    async def _handle(
        self, principal: Principal, dealer_id: str, index: int, event: Any
    ) -> EventResult:
        if not isinstance(event, dict):
            return EventResult("", _REJECTED, "INVALID_EVENT: an event must be an object")
        invalid = _invalid_event(index, event)
        if invalid is not None:
            return invalid  # nothing recorded: a retry answers the same
        event_id: str = event["event_id"]
        earlier = await self._db.run(self._events_repo.seen, dealer_id, event_id)
        if earlier is not None:
            return EventResult(event_id, EventStatus.ALREADY_RECEIVED, "", earlier.lead_id)
        kind = event.get("type")
        if kind == "lead":
            result = await self._lead_event(principal, dealer_id, event_id, event.get("lead"))
        elif kind == "status":
            result = await self._status_event(dealer_id, event_id, event)
        else:
            result = EventResult(
                event_id, _REJECTED, 'INVALID_EVENT: type must be "lead" or "status"'
            )
        return _echoable(result)

    async def _lead_event(
        self, principal: Principal, dealer_id: str, event_id: str, payload: Any
    ) -> EventResult:
        try:
            lead = self._parse_lead(payload)
        except ValueError:
            return EventResult(
                event_id, _REJECTED, "INVALID_EVENT: lead is not a valid lead object"
            )
        try:
            # A digest keeps the key within 128 printable characters for any event id.
            key = "dealer-event:" + hashlib.sha256(f"{dealer_id}:{event_id}".encode()).hexdigest()
            result = await self._orchestrator.process(
                principal, key, lead, source_dealer_id=dealer_id
            )
        except CclError as e:
            return EventResult(event_id, _REJECTED, describe(e))  # nothing stored: not final
        lead_id = result.lead.lead_id
        if result.outcome is LeadOutcome.DUPLICATE:
            status, recorded_as = EventStatus.DUPLICATE_CONSUMER, RESULT_DUPLICATE_CONSUMER
        else:
            status, recorded_as = EventStatus.ACCEPTED, RESULT_ACCEPTED
        recorded = await self._db.run(
            self._events_repo.remember, dealer_id, event_id, "lead", recorded_as, lead_id
        )
        if not recorded:
            # Another copy of this event was recorded first (the same lead: the idempotency key).
            earlier = await self._db.run(self._events_repo.seen, dealer_id, event_id)
            lead_id = earlier.lead_id if earlier is not None else lead_id
            return EventResult(event_id, EventStatus.ALREADY_RECEIVED, "", lead_id)
        return EventResult(event_id, status, "", lead_id)

    async def _status_event(
        self, dealer_id: str, event_id: str, event: dict[str, Any]
    ) -> EventResult:
        lead_id, status = event.get("lead_id"), event.get("status")
        reason = event.get("reason") or ""
        if not isinstance(status, str) or status not in DEALER_STATUSES:  # a list: unhashable
            return EventResult(
                event_id, _REJECTED, f"INVALID_STATUS: one of {', '.join(DEALER_STATUSES)}"
            )
        if not isinstance(reason, str):  # its length and characters: `_invalid_event`
            return EventResult(event_id, _REJECTED, "INVALID_EVENT: reason must be text (max 500)")
        if status == "returned" and not reason.strip():
            return EventResult(
                event_id, _REJECTED, "REASON_REQUIRED: a returned lead needs a reason"
            )
        if not isinstance(lead_id, str):
            return EventResult(event_id, _REJECTED, "LEAD_NOT_FOUND")
        # Recorded with the change, in its transaction (or not at all if it is refused).
        change = await self._db.run(
            self._events_repo.apply_status, dealer_id, lead_id, event_id, status, reason
        )
        if change.outcome is TransitionOutcome.NOT_FOUND:
            # Also for another dealer's lead: its existence is not disclosed.
            return EventResult(event_id, _REJECTED, "LEAD_NOT_FOUND", "")
        if change.outcome is TransitionOutcome.NOT_ALLOWED:
            return EventResult(
                event_id,
                _REJECTED,
                f"INVALID_TRANSITION: the lead is {change.from_status}, it cannot become {status}",
                lead_id,
            )
        if change.outcome is TransitionOutcome.ALREADY_RECEIVED:
            return EventResult(event_id, EventStatus.ALREADY_RECEIVED, "", change.lead_id)
        return EventResult(event_id, EventStatus.ACCEPTED, "", lead_id)


def _invalid_event(index: int, event: dict[str, Any]) -> EventResult | None:
    """The rejection of an event one of whose strings no database or response can take, or
    that is not bounded text where it is stored or compared; None if every string is fine.

    The result never echoes a bad value: without a usable event id, its event id is empty."""
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return EventResult("", _REJECTED, f"INVALID_EVENT: events[{index}].event_id is required")
    problem = _text_problem(event_id, *TEXT_FIELDS["event_id"])
    if problem:
        return EventResult("", _REJECTED, f"INVALID_EVENT: events[{index}].event_id {problem}")
    problem = _untextual(event)
    if problem:
        return EventResult(event_id, _REJECTED, f"INVALID_EVENT: events[{index}]{problem}")
    for name, (max_len, free_text) in TEXT_FIELDS.items():
        value = event.get(name)
        problem = _text_problem(value, max_len, free_text) if isinstance(value, str) else None
        if problem:
            return EventResult(
                event_id, _REJECTED, f"INVALID_EVENT: events[{index}].{name} {problem}"
            )
    return None


def _text_problem(value: str, max_len: int, free_text: bool) -> str | None:
    """What is wrong with a stored or compared string, or None."""
    if _NOT_TEXT.search(value):
        return "is not valid text (NUL or lone surrogate)"
    if (_CONTROL_BUT_LINES if free_text else _CONTROL).search(value):
        return "must not contain control characters"
    if len(value) > max_len:
        return f"must be at most {max_len} characters"
    return None


def _untextual(document: Any) -> str | None:
    """Where the first string of a decoded JSON document, key or value at any depth, holds a NUL
    or a lone surrogate (`.lead.first_name is ...`, `.lead has a key that is ...`); else None.

    One pass without recursion (json's own limit bounds the depth, not this stack); the path is
    only spelled out once found, never with the bad string in it, and with keys shortened."""
    pending: list[tuple[Any, _Trail]] = [(document, None)]
    while pending:
        value, trail = pending.pop()
        if isinstance(value, str):
            if _NOT_TEXT.search(value):
                return f"{_spell(trail)} is not valid text (NUL or lone surrogate)"
        elif isinstance(value, dict):
            if any(_NOT_TEXT.search(key) for key in value):
                return f"{_spell(trail)} has a key that is not valid text (NUL or lone surrogate)"
            items = reversed(value.items())  # reversed: the first bad string is found first
            pending.extend((item, (trail, f".{key[:_MAX_KEY_SHOWN]}")) for key, item in items)
        elif isinstance(value, list):
            indexed = reversed(list(enumerate(value)))
            pending.extend((item, (trail, f"[{i}]")) for i, item in indexed)
    return None


def _spell(trail: _Trail) -> str:
    """A trail as the path it stands for, root first (`.lead.address`)."""
    segments: list[str] = []
    while trail is not None:
        trail, segment = trail
        segments.append(segment)
    return "".join(reversed(segments))


def _echoable(result: EventResult) -> EventResult:
    """The result with anything a database or protobuf cannot take replaced (U+FFFD): its
    values are checked already, but a reason may quote a message from deeper down."""
    return replace(
        result,
        event_id=_NOT_TEXT.sub("\ufffd", result.event_id),
        reason=_NOT_TEXT.sub("\ufffd", result.reason),
        lead_id=_NOT_TEXT.sub("\ufffd", result.lead_id),
    )


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1` signatures of a `webhook-signature` header; others, and any that is not
    base64, are skipped (bounded: at most 8 are looked at)."""
    found: list[bytes] = []
    for item in header.split(" ")[:8]:
        version, _, value = item.partition(",")
        if version != "v1" or not value:
            continue
        try:
            found.append(base64.b64decode(value.encode("ascii"), validate=True))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            continue
    return found


def _bad_body(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, reason="INVALID_WEBHOOK_BODY")
