"""VisitorIdentifier: anonymous visitors, identity stitching, returning visitors, duplicate leads.

An *identity* is one person as far as the platform can tell: the visitors
(browsers) and leads that share a normalised email or E.164 phone. Rules:

- Identifiers are normalised first (email-validator, phonenumbers) and junk values never stitch
  anything (`is_junk_email`, `is_junk_phone`: test@test.com, 000-000-0000, "null", ...).
- One identity collects at most `max_emails` emails and `max_phones` phones. A link or a merge
  that would exceed that is skipped (and logged in the activity), so one shared or fake value
  cannot glue strangers together.
- When a value belongs to another identity, the two identities merge into the older one, within
  the same caps.
- A lead whose email or phone matches a lead from the last `lookback_days` days is a duplicate:
  linked to the original lead, never delivered to a dealer again.
- Events sent with Global Privacy Control or Do-Not-Track are recorded without stitching, with
  the IP address truncated, and their email/phone are not kept.

Every function that takes no `Database` runs inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import peewee as pw

from server.domain.leads import ActivityEntry, AgentName, LeadOutcome, Resolution, ValidLead
from server.domain.validation import normalize_email, normalize_phone
from server.storage import models as m
from server.storage.db import database_proxy

A = AgentName.VISITOR_IDENTIFIER

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


def _savepoint() -> Any:
    """A savepoint in the caller's transaction: a failed insert rolls back only itself."""
    return database_proxy.atomic()


def truncate_ip(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network address: enough for fraud checks, not a person."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


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


class VisitorIdentifier:
    def __init__(
        self, *, region: str, lookback_days: int, max_emails: int, max_phones: int
    ) -> None:
        self._region = region
        self._lookback = dt.timedelta(days=lookback_days)
        self._max = {"email": max_emails, "phone": max_phones}

    # --- leads ------------------------------------------------------------------------------

    def resolve_lead(self, lead: ValidLead, now: dt.datetime) -> Resolution:
        """Finds or creates the identity of a lead's applicant, links its visitor, and decides
        whether the lead duplicates a recent one. Runs inside the intake transaction."""
        activities: list[ActivityEntry] = []
        email = None if is_junk_email(lead.email_normalized) else lead.email_normalized
        phone = None if is_junk_phone(lead.phone_e164) else lead.phone_e164
        values = [("email", v) for v in [email] if v] + [("phone", v) for v in [phone] if v]

        visitor = self._visitor(lead.visitor_id, now) if lead.visitor_id else None
        identity, new_identity, matched_by = self._stitch(values, visitor, now, activities)

        duplicate_of = self._recent_original(email, phone, now)
        returning = not new_identity
        activities.append(
            (
                A,
                "identity.created" if new_identity else "identity.matched",
                "New applicant identity"
                if new_identity
                else f"Returning applicant matched by {matched_by}",
                {
                    "identity_id": identity.id,
                    "matched_by": matched_by,
                    "visitor_linked": visitor is not None,
                    "junk_values_ignored": 2 - len(values),
                },
            )
        )
        if duplicate_of:
            activities.append(
                (
                    A,
                    "lead.duplicate",
                    "Duplicate of a recent lead; linked to it and not delivered again",
                    {"duplicate_of_lead_id": duplicate_of},
                )
            )
        return Resolution(
            identity_id=identity.id,
            new_identity=new_identity,
            matched_by=matched_by,
            visitor_id=visitor.id if visitor else None,
            returning=returning,
            duplicate_of_lead_id=duplicate_of,
            activities=activities,
        )

    def _recent_original(
        self, email: str | None, phone: str | None, now: dt.datetime
    ) -> str | None:
        if not (email or phone) or self._lookback <= dt.timedelta(0):
            return None
        match: Any = pw.Value(False)
        if email:
            match = match | (m.Lead.email_normalized == email)
        if phone:
            match = match | (m.Lead.phone_e164 == phone)
        earlier = (
            m.Lead.select(m.Lead.id, m.Lead.duplicate_of)
            .where(
                match
                & (m.Lead.created_at >= now - self._lookback)
                & (m.Lead.outcome != LeadOutcome.REJECTED.value)
            )
            .order_by(m.Lead.created_at)
            .first()
        )
        if earlier is None:
            return None
        return str(earlier.duplicate_of_id or earlier.id)

    # --- website events -----------------------------------------------------------------

    def track(
        self, event: VisitorEventInput, privacy_opt_out: bool, now: dt.datetime
    ) -> TrackResult:
        """Records one website event; stitches the visitor when it carries an identifier and the
        visitor did not opt out. Runs inside a transaction."""
        visitor = self._visitor(event.anonymous_id, now)
        returning = visitor.event_count > 0
        try:
            with _savepoint():
                m.VisitorEvent.create(
                    visitor=visitor.id,
                    event_id=event.event_id or None,
                    event_type=event.event_type,
                    page_url=event.page_url,
                    page_path=event.page_path,
                    referrer=event.referrer,
                    page_title=event.page_title,
                    utm_source=event.utm_source,
                    utm_medium=event.utm_medium,
                    utm_campaign=event.utm_campaign,
                    utm_term=event.utm_term,
                    utm_content=event.utm_content,
                    user_agent=event.user_agent,
                    ip_address=truncate_ip(event.ip_address)
                    if privacy_opt_out
                    else event.ip_address,
                    step=event.step,
                    client_time=event.client_time,
                    occurred_at=corrected_time(now, event.client_time, event.sent_time),
                    received_at=now,
                    privacy_opt_out=privacy_opt_out,
                )
        except pw.IntegrityError:
            # The same event id again (a retry): recorded once, answered the same way.
            return TrackResult(visitor.id, visitor.identity_id or "", returning, privacy_opt_out)
        m.Visitor.update(last_seen_at=now, event_count=m.Visitor.event_count + 1).where(
            m.Visitor.id == visitor.id
        ).execute()
        identity_id = visitor.identity_id or ""
        if not privacy_opt_out:
            values: list[tuple[str, str]] = []
            email = clean_email(event.email) if event.email else None
            phone = clean_phone(event.phone, self._region) if event.phone else None
            values += [("email", email)] if email else []
            values += [("phone", phone)] if phone else []
            if values:
                identity, _, _ = self._stitch(values, visitor, now, [])
                identity_id = identity.id
        return TrackResult(visitor.id, identity_id, returning, privacy_opt_out)

    # --- stitching ------------------------------------------------------------------------

    @staticmethod
    def _visitor(anonymous_id: str, now: dt.datetime) -> m.Visitor:
        """The visitor with this anonymous id, created if new. Safe against a concurrent
        first event of the same browser: the loser's insert rolls back to a savepoint and it
        reads the winner's row."""
        visitor = m.Visitor.get_or_none(m.Visitor.anonymous_id == anonymous_id)
        if visitor is not None:
            return visitor
        try:
            with _savepoint():
                return m.Visitor.create(
                    anonymous_id=anonymous_id, first_seen_at=now, last_seen_at=now
                )
        except pw.IntegrityError:
            return m.Visitor.get(m.Visitor.anonymous_id == anonymous_id)

    def _stitch(
        self,
        values: list[tuple[str, str]],
        visitor: m.Visitor | None,
        now: dt.datetime,
        activities: list[ActivityEntry],
        *,
        retried: bool = False,
    ) -> tuple[m.Identity, bool, str]:
        """Returns (identity, created, matched_by) after linking `values` and `visitor` to it."""
        owners: dict[str, str] = {}  # identity id -> what matched it
        for kind, value in values:
            row = m.IdentityIdentifier.get_or_none(
                (m.IdentityIdentifier.kind == kind) & (m.IdentityIdentifier.value == value)
            )
            if row is not None:
                owners.setdefault(row.identity_id, kind)
        if visitor is not None and visitor.identity_id:
            owners.setdefault(visitor.identity_id, "visitor")

        if not owners:
            identity = m.Identity.create(created_at=now, updated_at=now)
            created, matched_by = True, ""
        else:
            current = visitor.identity_id if visitor is not None else None
            # Keep the oldest; on a tie, the one this visitor already has; then by id.
            candidates = sorted(
                m.Identity.select().where(m.Identity.id.in_(list(owners))),
                key=lambda i: (i.created_at, i.id != current, i.id),
            )
            identity = candidates[0]
            matched_by = owners[identity.id]
            created = False
            for other in candidates[1:]:
                if self._fits(identity.id, other.id):
                    self._merge(identity.id, other.id)
                    activities.append(
                        (
                            A,
                            "identity.merged",
                            "Two identities of the same person merged",
                            {"kept": identity.id, "merged": other.id},
                        )
                    )
                else:
                    activities.append(
                        (
                            A,
                            "identity.merge_skipped",
                            "Merge skipped: identifier cap reached",
                            {"kept": identity.id, "other": other.id},
                        )
                    )

        raced = [v for v in values if not self._link(identity.id, v[0], v[1], activities)]
        if raced and not retried:
            # A concurrent request linked one of these values first; stitching again now finds
            # its identity and merges into it, so both requests end on the same person. An
            # identity made here that got nothing linked is dropped rather than left empty.
            if created and not (
                m.IdentityIdentifier.select()
                .where(m.IdentityIdentifier.identity == identity.id)
                .exists()
            ):
                m.Identity.delete().where(m.Identity.id == identity.id).execute()
            return self._stitch(values, visitor, now, activities, retried=True)
        if visitor is not None and visitor.identity_id != identity.id:
            m.Visitor.update(identity=identity.id).where(m.Visitor.id == visitor.id).execute()
            visitor.identity_id = identity.id
        m.Identity.update(updated_at=now).where(m.Identity.id == identity.id).execute()
        return identity, created, matched_by

    def _counts(self, *identity_ids: str) -> dict[str, int]:
        rows: Any = (
            m.IdentityIdentifier.select(m.IdentityIdentifier.kind, pw.fn.COUNT(pw.SQL("*")))
            .where(m.IdentityIdentifier.identity.in_(list(identity_ids)))
            .group_by(m.IdentityIdentifier.kind)
            .tuples()
        )
        return {str(kind): int(n) for kind, n in rows}

    def _fits(self, keep: str, other: str) -> bool:
        counts = self._counts(keep, other)
        return all(counts.get(kind, 0) <= cap for kind, cap in self._max.items())

    def _link(
        self, identity_id: str, kind: str, value: str, activities: list[ActivityEntry]
    ) -> bool:
        """Links a value to the identity; False when it belongs to another identity (linked
        concurrently, or one that could not be merged in)."""
        existing = m.IdentityIdentifier.get_or_none(
            (m.IdentityIdentifier.kind == kind) & (m.IdentityIdentifier.value == value)
        )
        if existing is not None:
            # Another identity's value here means it was linked after this request looked
            # for owners (a concurrent request): report the race so the caller stitches again.
            return bool(existing.identity_id == identity_id)
        if self._counts(identity_id).get(kind, 0) >= self._max[kind]:
            activities.append(
                (
                    A,
                    "identity.cap_reached",
                    f"Identity already has {self._max[kind]} {kind}s; the new one was not linked",
                    {"identity_id": identity_id, "kind": kind},
                )
            )
            return True
        try:
            with _savepoint():
                m.IdentityIdentifier.create(identity=identity_id, kind=kind, value=value)
        except pw.IntegrityError:
            return False  # linked at this moment by a concurrent request (now committed)
        return True

    @staticmethod
    def _merge(keep: str, drop: str) -> None:
        m.IdentityIdentifier.update(identity=keep).where(
            m.IdentityIdentifier.identity == drop
        ).execute()
        m.Visitor.update(identity=keep).where(m.Visitor.identity == drop).execute()
        m.Lead.update(identity=keep).where(m.Lead.identity == drop).execute()
        m.Identity.delete().where(m.Identity.id == drop).execute()
