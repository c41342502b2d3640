"""Identity rules that need no database: junk-value guards, normalisation for stitching, the
merge choice, the identifier caps, privacy truncation and clock-skew correction, and the types
VisitorIdentifier and `storage/identities.py` exchange."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from server.domain.validation import normalize_email, normalize_phone

_JUNK_RAW = frozenset(
    {"", "null", "none", "nil", "undefined", "anonymous", "unknown", "n/a", "na", "test", "-"}
)
_JUNK_EMAIL_LOCAL = frozenset(
    {
        "test",
        "testing",
        "tester",
        "noemail",
        "nomail",
        "none",
        "null",
        "na",
        "nobody",
        "fake",
        "anonymous",
        "unknown",
        "asdf",
        "qwerty",
        "noreply",
        "no-reply",
        "donotreply",
        "do-not-reply",
        "abc",
        "xxx",
        "email",
        "sample",
        "dummy",
    }
)
_JUNK_EMAIL_DOMAINS = frozenset(
    {
        "test.com",
        "fake.com",
        "noemail.com",
        "nomail.com",
        "none.com",
        "invalid",
        "localhost",
        "mailinator.com",
        "asdf.com",
    }
)
_JUNK_PHONES = frozenset(
    {"+11234567890", "+10123456789", "+19876543210", "+15555555555"}
    | {f"+1{d * 10}" for d in "0123456789"}
)

# (kind, value): a normalised identifier, kind "email" or "phone".
Identifier = tuple[str, str]


def is_junk_email(raw: str) -> bool:
    """True for placeholder addresses that must never stitch people together."""
    value = raw.strip().lower()
    if value in _JUNK_RAW or "@" not in value:
        return True
    local, _, domain = value.rpartition("@")
    return local in _JUNK_EMAIL_LOCAL or domain in _JUNK_EMAIL_DOMAINS or len(set(local)) == 1


def is_junk_phone(e164: str) -> bool:
    """True for placeholder numbers (all one digit, 123-456-7890, ...)."""
    digits = re.sub(r"\D", "", e164)
    return e164 in _JUNK_PHONES or len(set(digits[-10:])) <= 1


def clean_email(raw: str) -> str | None:
    """The normalised address if it is real enough to stitch on, else None."""
    if is_junk_email(raw):
        return None
    try:
        normalized = normalize_email(raw)
    except ValueError:
        return None
    return None if is_junk_email(normalized) else normalized


def clean_phone(raw: str, region: str) -> str | None:
    """The E.164 number if it is real enough to stitch on, else None."""
    if raw.strip().lower() in _JUNK_RAW:
        return None
    try:
        e164 = normalize_phone(raw, region)
    except ValueError:
        return None
    return None if is_junk_phone(e164) else e164


def truncate_ip(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network address: enough for fraud checks, not a person."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def corrected_time(
    received_at: dt.datetime, client_time: dt.datetime | None, sent_time: dt.datetime | None
) -> dt.datetime:
    """When the event happened on the server's clock (Segment's rule: received - (sent - event)).

    Without a usable `sent_time` (missing, or more than a day from the event) the skew is
    unknown: a client time within a day of receipt is trusted, anything else (a browser clock
    years off) falls back to the receipt time."""
    if client_time is None:
        return received_at
    day = dt.timedelta(days=1)
    try:
        if sent_time is not None and abs(sent_time - client_time) <= day:
            # The event happened (sent - event) before the send, by the browser's own clock.
            return min(received_at - (sent_time - client_time), received_at)
        if abs(received_at - client_time) <= day:
            return min(client_time, received_at)
    except OverflowError:
        pass
    return received_at


@dataclass(frozen=True)
class VisitorEventInput:
    anonymous_id: str
    event_type: str
    page_url: str = ""
    page_path: str = ""
    referrer: str = ""
    page_title: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    user_agent: str = ""
    ip_address: str = ""
    client_time: dt.datetime | None = None
    sent_time: dt.datetime | None = None
    email: str = ""
    phone: str = ""
    step: str = ""
    event_id: str = ""


@dataclass(frozen=True)
class TrackResult:
    visitor_id: str
    identity_id: str
    returning_visitor: bool
    privacy_opt_out: bool


@dataclass
class Visitor:
    """One browser's anonymous id, as stored: its identity (if stitched) and events so far."""

    id: str
    identity_id: str | None
    event_count: int


@dataclass(frozen=True)
class Identity:
    """One person as far as the platform can tell."""

    id: str
    created_at: dt.datetime


@dataclass(frozen=True)
class IdentityCaps:
    """Most identifiers of each kind one identity may collect."""

    max_emails: int
    max_phones: int

    def cap(self, kind: str) -> int:
        return self.max_emails if kind == "email" else self.max_phones

    def items(self) -> list[tuple[str, int]]:
        return [("email", self.max_emails), ("phone", self.max_phones)]

    def fits(self, counts: Mapping[str, int]) -> bool:
        """True when identifiers counted per kind (two identities together) stay within caps."""
        return all(counts.get(kind, 0) <= cap for kind, cap in self.items())


def merge_order(candidates: Iterable[Identity], current: str | None) -> list[Identity]:
    """Identities that must merge, the one to keep first: the oldest; on a tie, the one the
    visitor already has (`current`); then by id."""
    return sorted(candidates, key=lambda i: (i.created_at, i.id != current, i.id))
