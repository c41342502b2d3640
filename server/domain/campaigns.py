"""Email campaign rules: unsubscribe tokens, quiet hours, the frequency cap, suppression and
audience eligibility, the campaign state machine and its auto-pause rules, drip sequences.

Pure: no clock (callers pass `now`), no storage. Datetimes follow `server.domain.clock`: naive
values are UTC; aware values are accepted and converted. Templates and the adverse-action
notice live in `server.domain.templates`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from zoneinfo import ZoneInfo

from server.domain.leads import LeadStatus
from server.domain.validation import US_STATES
from server.errors import FailedPreconditionError, FieldViolation, InvalidArgumentError

T = TypeVar("T")

# --- Unsubscribe tokens --------------------------------------------------------------------------

_VERSION_TAG = "u1"
_MIN_KEY_BYTES = 16
_KEY_ID_BYTES = 4
_ADDRESS_DIGEST_BYTES = 12
_MAC_BYTES = 16  # 128 bits: the token is in a URL; forging it still needs 2**128 tries
MAX_RECIPIENT_ID_CHARS = 128


@dataclass(frozen=True)
class UnsubscribeClaim:
    """What a valid unsubscribe token says: the recipient (a lead id), a keyed digest of the
    address it was sent to (`address_matches` compares it; the address itself is not in the
    token), and which key signed it."""

    recipient_id: str
    address_digest: str
    key_id: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_list(keys: bytes | Sequence[bytes]) -> list[bytes]:
    found = [keys] if isinstance(keys, bytes) else list(keys)
    if not found:
        raise ValueError("at least one unsubscribe key is needed")
    for k in found:
        if len(k) < _MIN_KEY_BYTES:
            raise ValueError(f"unsubscribe keys must be at least {_MIN_KEY_BYTES} bytes")
    return found


def _key_id(key: bytes) -> str:
    return _b64(hashlib.sha256(b"ccl-unsubscribe-key-id\0" + key).digest()[:_KEY_ID_BYTES])


def normalize_address(address: str) -> str:
    """The form addresses are compared in (suppression, dedupe, token digests)."""
    return address.strip().lower()


def _address_digest(key: bytes, address: str) -> str:
    # Keyed, so the digest cannot be checked against a list of guessed addresses.
    mac = hmac.new(key, b"address\0" + normalize_address(address).encode(), hashlib.sha256)
    return _b64(mac.digest()[:_ADDRESS_DIGEST_BYTES])


def _mac(key: bytes, payload: str) -> bytes:
    return hmac.new(key, payload.encode(), hashlib.sha256).digest()[:_MAC_BYTES]


def sign_unsubscribe(keys: bytes | Sequence[bytes], recipient_id: str, address: str) -> str:
    """A URL-safe token `u1.<key id>.<recipient id>.<address digest>.<mac>`, signed with the
    first key (HMAC-SHA256). Older keys stay in the list so their tokens keep verifying."""
    key = _key_list(keys)[0]
    if not recipient_id or len(recipient_id) > MAX_RECIPIENT_ID_CHARS:
        raise ValueError("a recipient id of 1 to 128 characters is needed")
    payload = ".".join(
        (
            _VERSION_TAG,
            _key_id(key),
            _b64(recipient_id.encode()),
            _address_digest(key, address),
        )
    )
    return f"{payload}.{_b64(_mac(key, payload))}"


def verify_unsubscribe(keys: bytes | Sequence[bytes], token: str) -> UnsubscribeClaim | None:
    """The claim of a token signed by any of `keys`, or None if it is malformed, of an unknown
    version or key, or tampered with (the MAC is compared in constant time)."""
    if len(token) > 512:
        return None
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != _VERSION_TAG:
        return None
    _, key_id, rid_b64, digest, mac_b64 = parts
    for key in _key_list(keys):
        if not hmac.compare_digest(_key_id(key), key_id):
            continue
        try:
            mac = _unb64(mac_b64)
            recipient_id = _unb64(rid_b64).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(_mac(key, ".".join(parts[:4])), mac):
            return None
        return UnsubscribeClaim(recipient_id=recipient_id, address_digest=digest, key_id=key_id)
    return None


def address_matches(keys: bytes | Sequence[bytes], claim: UnsubscribeClaim, address: str) -> bool:
    """Whether `address` is the one the claim's token was sent to."""
    for key in _key_list(keys):
        if _key_id(key) == claim.key_id:
            return hmac.compare_digest(_address_digest(key, address), claim.address_digest)
    return False


# --- Quiet hours -------------------------------------------------------------------------------

# The zone most of each state's people live in. Where a state spans zones, `_ZIP_ZONES` below
# moves the ZIP3 areas on the other side. Known gaps, left on the state's main zone: the western
# Upper Peninsula of Michigan (Central), western Kansas (Mountain), the Aleutians west of 169.5°W
# (Hawaii-Aleutian), the Navajo Nation in Arizona (observes DST), and single counties split by a
# ZIP3 line. A few hours' error at a zone edge only moves a send within the allowed window.
STATE_TIME_ZONES: dict[str, str] = {
    **dict.fromkeys(
        "CT DE DC GA ME MD MA NH NJ NY NC OH PA RI SC VT VA WV FL KY MI".split(),
        "America/New_York",
    ),
    "IN": "America/Indiana/Indianapolis",
    **dict.fromkeys("AL AR IL IA LA MN MS MO OK WI TN TX KS NE SD ND".split(), "America/Chicago"),
    **dict.fromkeys("CO MT NM UT WY".split(), "America/Denver"),
    "ID": "America/Boise",
    "AZ": "America/Phoenix",
    **dict.fromkeys("CA NV OR WA".split(), "America/Los_Angeles"),
    "AK": "America/Anchorage",
    "HI": "Pacific/Honolulu",
}
# ZIP3 prefixes in another zone than their state's main one.
_ZIP_ZONES: dict[str, dict[str, str]] = {
    # The Panhandle west of the Apalachicola River (Pensacola, Panama City).
    "FL": dict.fromkeys(("324", "325"), "America/Chicago"),
    # El Paso and Hudspeth counties.
    "TX": dict.fromkeys(("798", "799"), "America/Denver"),
    # East Tennessee (Chattanooga, Knoxville, the Tri-Cities).
    "TN": dict.fromkeys(("373", "374", "376", "377", "378", "379"), "America/New_York"),
    # Western Kentucky (Paducah, Bowling Green, Owensboro, Henderson).
    "KY": dict.fromkeys(("420", "421", "422", "423", "424"), "America/Chicago"),
    # The Chicago suburbs of the northwest and the Evansville corner of the southwest.
    "IN": dict.fromkeys(("463", "464", "476", "477"), "America/Chicago"),
    # Southwestern North Dakota (Dickinson, Williston's south).
    "ND": dict.fromkeys(("586",), "America/Denver"),
    # Western South Dakota (Rapid City, Black Hills).
    "SD": dict.fromkeys(("577",), "America/Denver"),
    # The Panhandle and west (Scottsbluff, North Platte, Alliance).
    "NE": dict.fromkeys(("690", "691", "692", "693"), "America/Denver"),
    # The northern panhandle (Coeur d'Alene, Lewiston, Moscow).
    "ID": dict.fromkeys(("838",), "America/Los_Angeles"),
    # Malheur County (Ontario).
    "OR": dict.fromkeys(("979",), "America/Boise"),
}
QUIET_START = dt.time(21, 0)
QUIET_END = dt.time(8, 0)


def time_zone_for(state: str, zip_code: str = "") -> str | None:
    """The IANA zone of a US address (`STATE_TIME_ZONES`, refined by ZIP3), or None for an
    unknown state: the caller picks its default."""
    state = state.strip().upper()
    zone = STATE_TIME_ZONES.get(state)
    if zone is None:
        return None
    return _ZIP_ZONES.get(state, {}).get(zip_code.strip()[:3], zone)


def _as_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _like(result_utc: dt.datetime, template: dt.datetime) -> dt.datetime:
    """`result_utc` in the same convention as `template` (naive UTC or aware UTC)."""
    return result_utc.replace(tzinfo=None) if template.tzinfo is None else result_utc


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _quiet_at(local: dt.time, start: dt.time, end: dt.time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def in_quiet_hours(
    now_utc: dt.datetime,
    tz: str | ZoneInfo,
    start: dt.time = QUIET_START,
    end: dt.time = QUIET_END,
) -> bool:
    """Whether it is between `start` (inclusive) and `end` (exclusive) on the recipient's wall
    clock. The window may wrap midnight (21:00 to 08:00); `start == end` means no quiet hours."""
    local = _as_utc(now_utc).astimezone(_zone(tz))
    return _quiet_at(local.time().replace(tzinfo=None), start, end)


def next_send_time(
    now_utc: dt.datetime,
    tz: str | ZoneInfo,
    start: dt.time = QUIET_START,
    end: dt.time = QUIET_END,
) -> dt.datetime:
    """`now_utc` if it is outside quiet hours, else the UTC moment quiet hours end on the
    recipient's wall clock (a wall time skipped by a DST change resolves forward)."""
    if not in_quiet_hours(now_utc, tz, start, end):
        return now_utc
    zone = _zone(tz)
    local = _as_utc(now_utc).astimezone(zone)
    day = local.date()
    if start > end and local.time().replace(tzinfo=None) >= start:
        day += dt.timedelta(days=1)  # evening: quiet hours end tomorrow morning
    now_u = _as_utc(now_utc)
    # fold=0 and fold=1 read the wall time with the offsets before and after a DST change: the
    # same instant usually; the earlier of two in a repeated hour; around a skipped hour, the
    # two ends of the gap, the end of quiet hours being the change itself (found by the minute).
    first, last = sorted(
        dt.datetime.combine(day, end, tzinfo=zone).replace(fold=f).astimezone(dt.UTC)
        for f in (0, 1)
    )
    result = first
    while result < last and in_quiet_hours(result, zone, start, end):
        result += dt.timedelta(minutes=1)
    # Never reached with US zones; a guard for odd windows and zones.
    for _ in range(2 * 24 * 60):
        if result > now_u and not in_quiet_hours(result, zone, start, end):
            break
        result += dt.timedelta(minutes=1)
    return _like(result, now_utc)


# --- Frequency cap -----------------------------------------------------------------------------

MARKETING_CAP = dt.timedelta(hours=24)


class MessageKind(enum.StrEnum):
    """Marketing mail is capped, quiet-houred and suppressible; transactional mail (an
    adverse-action notice, a receipt the applicant asked for) is not capped."""

    MARKETING = "marketing"
    TRANSACTIONAL = "transactional"


def may_send(
    last_marketing_sent_at: dt.datetime | None,
    now: dt.datetime,
    cap: dt.timedelta = MARKETING_CAP,
    kind: MessageKind = MessageKind.MARKETING,
) -> bool:
    """Whether a message of `kind` may go now: at most one marketing message per `cap`."""
    return next_allowed(last_marketing_sent_at, now, cap, kind) <= now


def next_allowed(
    last_marketing_sent_at: dt.datetime | None,
    now: dt.datetime,
    cap: dt.timedelta = MARKETING_CAP,
    kind: MessageKind = MessageKind.MARKETING,
) -> dt.datetime:
    """The earliest time at or after `now` the frequency cap lets a message of `kind` go."""
    if kind is MessageKind.TRANSACTIONAL or last_marketing_sent_at is None:
        return now
    earliest = _as_utc(last_marketing_sent_at) + cap
    return now if earliest <= _as_utc(now) else _like(earliest, now)


# --- Suppression and audience ------------------------------------------------------------------


class SuppressionReason(enum.StrEnum):
    """Why an address gets no marketing mail. Hard bounces and complaints come from Mailgun's
    events; `manual` is an operator's (or a do-not-contact request by phone)."""

    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class Exclusion(enum.StrEnum):
    """Why a lead of the audience's pool gets no message (first rule that applies)."""

    NO_ADDRESS = "no_address"
    SUPPRESSED = "suppressed"
    NO_EMAIL_CONSENT = "no_email_consent"
    CONVERTED = "converted"
    STATUS = "status"
    CREDIT_TIER = "credit_tier"
    STATE = "state"
    SOURCE = "source"
    CREATED_OUT_OF_RANGE = "created_out_of_range"
    ABANDONED_OUT_OF_RANGE = "abandoned_out_of_range"
    DUPLICATE_ADDRESS = "duplicate_address"


CREDIT_TIERS = frozenset("ABCDE")
_SOURCE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_STATUS_PREFIX = "LEAD_STATUS_"


@dataclass(frozen=True)
class Audience:
    """Who a campaign goes to. An empty set means any; date bounds are half-open,
    `[after, before)`, and None means unbounded. Leads are matched on every filter given."""

    statuses: frozenset[str] = frozenset()
    credit_tiers: frozenset[str] = frozenset()
    states: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    abandoned_after: dt.datetime | None = None
    abandoned_before: dt.datetime | None = None
    exclude_converted: bool = True


def _status(value: str) -> str | None:
    v = value.strip()
    if v.upper().startswith(_STATUS_PREFIX):
        v = v[len(_STATUS_PREFIX) :]
    try:
        return LeadStatus(v.lower()).value
    except ValueError:
        return None


def validate_audience(audience: Audience, prefix: str = "campaign.audience.") -> Audience:
    """The audience normalised (statuses as `LeadStatus` values, which may be given as proto
    names such as `LEAD_STATUS_DECLINED`; tiers and states upper case; sources lower case), or
    InvalidArgumentError (INVALID_AUDIENCE) with one violation per bad field."""
    violations: list[FieldViolation] = []

    def check(
        name: str, values: Iterable[str], norm: Callable[[str], str | None]
    ) -> frozenset[str]:
        good, bad = set(), []
        for v in values:
            n = norm(v)
            if n is None:
                bad.append(v)
            else:
                good.add(n)
        if bad:
            shown = ", ".join(repr(b[:40]) for b in sorted(bad)[:5])
            violations.append(FieldViolation(f"{prefix}{name}", f"unknown values: {shown}"))
        return frozenset(good)

    statuses = check("statuses", audience.statuses, _status)
    tiers = check("credit_tiers", audience.credit_tiers, _member(CREDIT_TIERS, str.upper))
    states = check("states", audience.states, _member(US_STATES, str.upper))
    sources = check("sources", audience.sources, _slug)
    for lo, hi in (("created_after", "created_before"), ("abandoned_after", "abandoned_before")):
        after, before = getattr(audience, lo), getattr(audience, hi)
        if after is not None and before is not None and _as_utc(after) >= _as_utc(before):
            violations.append(FieldViolation(f"{prefix}{hi}", f"must be later than {lo}"))
    if violations:
        raise InvalidArgumentError(
            "the audience is not valid", reason="INVALID_AUDIENCE", violations=violations
        )
    return Audience(
        statuses=statuses,
        credit_tiers=tiers,
        states=states,
        sources=sources,
        created_after=audience.created_after,
        created_before=audience.created_before,
        abandoned_after=audience.abandoned_after,
        abandoned_before=audience.abandoned_before,
        exclude_converted=audience.exclude_converted,
    )


def _member(allowed: frozenset[str], case: Callable[[str], str]) -> Callable[[str], str | None]:
    def norm(value: str) -> str | None:
        v = case(value.strip())
        return v if v in allowed else None

    return norm


def _slug(value: str) -> str | None:
    v = value.strip().lower()
    return v if _SOURCE.fullmatch(v) else None


@dataclass(frozen=True)
class RecipientFacts:
    """What the audience rules look at in one lead. `converted` is the caller's call (the lead
    finished its application, or was sold); `abandoned_at` is None for a lead that did not
    abandon an application."""

    lead_id: str
    email_normalized: str = field(repr=False)
    status: str
    credit_tier: str
    state: str
    source: str
    created_at: dt.datetime
    abandoned_at: dt.datetime | None = None
    converted: bool = False


def _within(
    moment: dt.datetime | None, after: dt.datetime | None, before: dt.datetime | None
) -> bool:
    if after is None and before is None:
        return True
    if moment is None:
        return False
    m = _as_utc(moment)
    return (after is None or m >= _as_utc(after)) and (before is None or m < _as_utc(before))


def eligible(
    facts: RecipientFacts, audience: Audience, suppressed: bool, has_email_consent: bool
) -> Exclusion | None:
    """None if the lead gets the campaign, else the first reason it does not. Suppressed
    addresses and leads without email consent are always excluded, whatever the audience."""
    if not facts.email_normalized.strip():
        return Exclusion.NO_ADDRESS
    if suppressed:
        return Exclusion.SUPPRESSED
    if not has_email_consent:
        return Exclusion.NO_EMAIL_CONSENT
    if audience.exclude_converted and facts.converted:
        return Exclusion.CONVERTED
    if audience.statuses and facts.status not in audience.statuses:
        return Exclusion.STATUS
    if audience.credit_tiers and facts.credit_tier.upper() not in audience.credit_tiers:
        return Exclusion.CREDIT_TIER
    if audience.states and facts.state.upper() not in audience.states:
        return Exclusion.STATE
    if audience.sources and facts.source.lower() not in audience.sources:
        return Exclusion.SOURCE
    if not _within(facts.created_at, audience.created_after, audience.created_before):
        return Exclusion.CREATED_OUT_OF_RANGE
    if not _within(facts.abandoned_at, audience.abandoned_after, audience.abandoned_before):
        return Exclusion.ABANDONED_OUT_OF_RANGE
    return None


def dedupe_by_address(
    recipients: Iterable[T],
    address: Callable[[T], str] = lambda r: r.email_normalized,  # type: ignore[attr-defined]
) -> list[T]:
    """The recipients in order, keeping the first one per normalised address (one person with
    three leads gets one message); recipients without an address are dropped."""
    seen: set[str] = set()
    kept: list[T] = []
    for r in recipients:
        key = normalize_address(address(r))
        if key and key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


# --- Campaign state machine and auto-pause ------------------------------------------------------


class CampaignState(enum.StrEnum):
    """A campaign's life. The proto's `CampaignState` has DRAFT, SENDING (= running), SENT
    (= completed) and CANCELLED; scheduled and paused need new proto values."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CampaignAction(enum.StrEnum):
    SCHEDULE = "schedule"
    UNSCHEDULE = "unschedule"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    COMPLETE = "complete"
    CANCEL = "cancel"


_S = CampaignState
# action -> {from state: to state}. Completed and cancelled are final.
ACTIONS: dict[CampaignAction, dict[CampaignState, CampaignState]] = {
    CampaignAction.SCHEDULE: {_S.DRAFT: _S.SCHEDULED},
    CampaignAction.UNSCHEDULE: {_S.SCHEDULED: _S.DRAFT},
    CampaignAction.START: {_S.DRAFT: _S.RUNNING, _S.SCHEDULED: _S.RUNNING},
    CampaignAction.PAUSE: {_S.RUNNING: _S.PAUSED, _S.SCHEDULED: _S.PAUSED},
    CampaignAction.RESUME: {_S.PAUSED: _S.RUNNING},
    CampaignAction.COMPLETE: {_S.RUNNING: _S.COMPLETED},
    CampaignAction.CANCEL: {
        _S.DRAFT: _S.CANCELLED,
        _S.SCHEDULED: _S.CANCELLED,
        _S.RUNNING: _S.CANCELLED,
        _S.PAUSED: _S.CANCELLED,
    },
}
TRANSITIONS: dict[CampaignState, frozenset[CampaignState]] = {
    s: frozenset(t[s] for t in ACTIONS.values() if s in t) for s in CampaignState
}
FINAL_STATES = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: CampaignState, target: CampaignState) -> bool:
    return target in TRANSITIONS[current]


def apply_action(current: CampaignState, action: CampaignAction) -> CampaignState:
    """The state `action` leads to, or FailedPreconditionError (INVALID_CAMPAIGN_TRANSITION)."""
    target = ACTIONS[action].get(current)
    if target is None:
        raise FailedPreconditionError(
            f"a {current.value} campaign cannot {action.value}",
            reason="INVALID_CAMPAIGN_TRANSITION",
            metadata={"state": current.value, "action": action.value},
        )
    return target


@dataclass(frozen=True)
class CampaignStats:
    """The proto's `CampaignStats` (`bounced` counts hard bounces only: Mailgun's permanent
    failures), plus the current run of sends that failed for good in a row."""

    queued: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    suppressed: int = 0
    failed: int = 0
    consecutive_failures: int = 0


class PauseReason(enum.StrEnum):
    COMPLAINT_RATE = "COMPLAINT_RATE"
    HARD_BOUNCE_RATE = "HARD_BOUNCE_RATE"
    CONSECUTIVE_FAILURES = "CONSECUTIVE_FAILURES"


# Complaints over 0.3% of delivered mail is where Gmail and Yahoo start refusing a bulk
# sender; 5% hard bounces means a stale or bought list. Rates are judged only over at least
# MIN_SAMPLE messages: at 0.3%, one complaint in 3 sends (33%) says nothing, while one in 500
# is already 0.2%. 500 keeps small test sends from tripping it and still pauses a bad campaign
# after a few hundred messages; a campaign below the sample is not rate-paused at all (its
# damage is bounded by its size), but runs of hard failures still pause it.
COMPLAINT_THRESHOLD = 0.003
HARD_BOUNCE_THRESHOLD = 0.05
MIN_SAMPLE = 500
MAX_CONSECUTIVE_FAILURES = 20


def should_pause(
    stats: CampaignStats,
    complaint_threshold: float = COMPLAINT_THRESHOLD,
    hard_bounce_threshold: float = HARD_BOUNCE_THRESHOLD,
    consecutive_failures: int = MAX_CONSECUTIVE_FAILURES,
    min_sample: int = MIN_SAMPLE,
) -> PauseReason | None:
    """Why a running campaign should pause itself now, or None. Complaints are measured over
    delivered messages and hard bounces over sent ones, each once its denominator reaches
    `min_sample`; `consecutive_failures` sends failing in a row pause it at any size."""
    if stats.consecutive_failures >= consecutive_failures:
        return PauseReason.CONSECUTIVE_FAILURES
    if stats.delivered >= min_sample and stats.complained > complaint_threshold * stats.delivered:
        return PauseReason.COMPLAINT_RATE
    if stats.sent >= min_sample and stats.bounced > hard_bounce_threshold * stats.sent:
        return PauseReason.HARD_BOUNCE_RATE
    return None


# --- Drip sequences ----------------------------------------------------------------------------

MAX_DRIP_STEPS = 20
MAX_STEP_DELAY = dt.timedelta(days=90)


@dataclass(frozen=True)
class DripStep:
    """One step: sent `delay` after the previous step (after enrolment, for the first), as the
    proto's `DripStep.delay_minutes` says."""

    delay: dt.timedelta
    template_id: str


# Sent 1 hour, 1 day and 3 days after the lead enters the sequence (delays are step to step).
DEFAULT_DRIP_OFFSETS = (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=3))


def default_sequence(template_ids: Sequence[str]) -> tuple[DripStep, ...]:
    """The default three steps (+1 h, +1 day, +3 days from entry) with these templates."""
    if len(template_ids) != len(DEFAULT_DRIP_OFFSETS):
        raise ValueError(f"the default sequence has {len(DEFAULT_DRIP_OFFSETS)} steps")
    previous = dt.timedelta(0)
    steps = []
    for offset, template_id in zip(DEFAULT_DRIP_OFFSETS, template_ids, strict=True):
        steps.append(DripStep(delay=offset - previous, template_id=template_id))
        previous = offset
    return tuple(steps)


def validate_steps(steps: Sequence[DripStep], prefix: str = "campaign.steps") -> None:
    """InvalidArgumentError (INVALID_DRIP_STEPS), one violation per bad step field."""
    violations: list[FieldViolation] = []
    if not steps:
        violations.append(FieldViolation(prefix, "a drip campaign needs at least one step"))
    elif len(steps) > MAX_DRIP_STEPS:
        violations.append(FieldViolation(prefix, f"must have at most {MAX_DRIP_STEPS} steps"))
    for i, step in enumerate(steps[:MAX_DRIP_STEPS]):
        if not step.template_id.strip():
            violations.append(FieldViolation(f"{prefix}[{i}].template_id", "is required"))
        if not dt.timedelta(0) <= step.delay <= MAX_STEP_DELAY:
            violations.append(
                FieldViolation(
                    f"{prefix}[{i}].delay_minutes",
                    f"must be between 0 and {MAX_STEP_DELAY.days} days",
                )
            )
    if violations:
        raise InvalidArgumentError(
            "the drip steps are not valid", reason="INVALID_DRIP_STEPS", violations=violations
        )


def due_times(entered_at: dt.datetime, steps: Sequence[DripStep]) -> list[dt.datetime]:
    """When each step falls due (before quiet hours and the frequency cap move it)."""
    times = []
    at = entered_at
    for step in steps:
        at += step.delay
        times.append(at)
    return times


class DripExit(enum.StrEnum):
    CONVERTED = "converted"  # the applicant bought (the lead was sold)
    FINISHED = "finished"  # the application moved on: it reached a dealer, or was decided
    UNSUBSCRIBED = "unsubscribed"  # the address is suppressed (unsubscribe, bounce, complaint)
    COMPLETED = "completed"  # every step was queued
    LEAD_GONE = "lead_gone"  # the lead was erased


def drip_exit(
    *,
    converted: bool,
    suppressed: bool,
    steps_sent: int,
    total_steps: int,
    finished: bool = False,
    lead_gone: bool = False,
) -> DripExit | None:
    """Why a lead leaves its sequence before the next step, or None to carry on. Suppression
    of any kind (unsubscribe, bounce, complaint) ends it as `unsubscribed`; a lead whose
    application is no longer abandoned (`finished`) leaves it too."""
    if lead_gone:
        return DripExit.LEAD_GONE
    if suppressed:
        return DripExit.UNSUBSCRIBED
    if converted:
        return DripExit.CONVERTED
    if finished:
        return DripExit.FINISHED
    if steps_sent >= total_steps:
        return DripExit.COMPLETED
    return None
