"""Identity repository: the SQL of VisitorIdentifier (visitors, their events, identities, their
identifiers, merges, and the recent-lead lookup behind duplicate detection).

Every method runs inside the caller's transaction (the intake transaction of
`LeadRepository.create`, or the transaction the lead service opens around one tracked event),
so identity decisions commit or roll back with the work they belong to. Inserts that may race
with a concurrent request of another process use a savepoint or `ON CONFLICT DO NOTHING`, and
report the lost race as a value (False / the winner's row) rather than a driver error.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import peewee as pw

from server.domain.identity import Identifier, Identity, Visitor, VisitorEventInput
from server.domain.leads import LeadOutcome
from server.storage import models as m
from server.storage.compiled import CompiledInsert, CompiledQuery, CompiledSelect
from server.storage.db import database_proxy

_IDENTITIES = CompiledInsert(m.Identity, ["id", "created_at", "updated_at"])
_IDENTIFIERS = CompiledInsert(m.IdentityIdentifier, ["identity", "kind", "value", "created_at"])
_VISITORS = CompiledInsert(
    m.Visitor, ["id", "anonymous_id", "identity", "first_seen_at", "last_seen_at", "event_count"]
)
# The batch lookup's reads, compiled once too (issue 9).
_VISITORS_BY_ANONYMOUS_ID = CompiledSelect(
    m.Visitor,
    lambda anonymous: m.Visitor.select(
        m.Visitor.id, m.Visitor.anonymous_id, m.Visitor.identity, m.Visitor.event_count
    ).where(m.Visitor.anonymous_id.in_(anonymous)),
)


@dataclass(frozen=True)
class IntakeLookup:
    """What the identity decisions of a batch of leads read, one statement each: the owner of
    each of their identifiers, their visitors (known ones, by anonymous id), and for each
    identifier the earliest recent lead that has it, as (created_at, that lead's original)."""

    owners: dict[Identifier, str]
    visitors: dict[str, Visitor]
    recent: dict[Identifier, tuple[dt.datetime, str]]


@dataclass
class NewPeople:
    """The writes of a batch's new identities, planned in memory and inserted at once: the
    identities, their identifiers, new visitors (id, anonymous id, identity) and known visitors
    given an identity (visitor id -> identity id)."""

    identities: list[str] = field(default_factory=list)
    links: list[tuple[str, Identifier]] = field(default_factory=list)
    new_visitors: list[tuple[str, str, str]] = field(default_factory=list)
    visitor_links: dict[str, str] = field(default_factory=dict)


def _savepoint() -> Any:
    """A savepoint in the caller's transaction: a failed insert rolls back only itself."""
    return database_proxy.atomic()


def _visitor(row: m.Visitor) -> Visitor:
    return Visitor(id=row.id, identity_id=row.identity_id, event_count=row.event_count)


class IdentityRepository:
    # --- visitors and their events ----------------------------------------------------------

    def visitor(self, anonymous_id: str, now: dt.datetime) -> Visitor:
        """The visitor with this anonymous id, created if new. Safe against a concurrent first
        event of the same browser: the loser's insert does nothing and it reads the winner's
        row (the only constraint a new visitor row can break is the unique anonymous id)."""
        row = m.Visitor.get_or_none(m.Visitor.anonymous_id == anonymous_id)
        if row is not None:
            return _visitor(row)
        new_id = m.new_id()
        inserted = (
            m.Visitor.insert(
                id=new_id, anonymous_id=anonymous_id, first_seen_at=now, last_seen_at=now
            )
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        if inserted:
            return Visitor(id=new_id, identity_id=None, event_count=0)
        return _visitor(m.Visitor.get(m.Visitor.anonymous_id == anonymous_id))

    def record_event(
        self,
        visitor_id: str,
        event: VisitorEventInput,
        *,
        ip_address: str,
        occurred_at: dt.datetime,
        received_at: dt.datetime,
        privacy_opt_out: bool,
    ) -> bool:
        """Stores one website event and counts it on its visitor; False (and nothing written)
        when an event with the same event id was already recorded (a retry)."""
        try:
            with _savepoint():
                m.VisitorEvent.create(
                    visitor=visitor_id,
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
                    ip_address=ip_address,
                    step=event.step,
                    client_time=event.client_time,
                    occurred_at=occurred_at,
                    received_at=received_at,
                    privacy_opt_out=privacy_opt_out,
                )
        except pw.IntegrityError:
            return False
        m.Visitor.update(last_seen_at=received_at, event_count=m.Visitor.event_count + 1).where(
            m.Visitor.id == visitor_id
        ).execute()
        return True

    def set_visitor_identity(self, visitor_id: str, identity_id: str) -> None:
        m.Visitor.update(identity=identity_id).where(m.Visitor.id == visitor_id).execute()

    # --- identities -------------------------------------------------------------------------

    def owners(self, identifiers: Iterable[Identifier]) -> dict[Identifier, str]:
        """The identity id each of these identifiers belongs to (unknown ones are left out), in
        one statement."""
        wanted = list(dict.fromkeys(identifiers))
        if not wanted:
            return {}
        # One indexable term per kind, `kind = ? AND value IN (...)`, so that SQLite and
        # PostgreSQL look the values up in the (kind, value) index instead of scanning (no
        # constant seed such as FALSE in the OR), and a batch's hundreds of values do not nest
        # one OR per value (SQLite's parser overflows).
        by_kind: dict[str, list[str]] = {}
        for kind, value in wanted:
            by_kind.setdefault(kind, []).append(value)
        params: dict[str, Any] = {}
        for i, (kind, values) in enumerate(by_kind.items()):
            params[f"kind{i}"], params[f"values{i}"] = kind, values
        rows = _owners_query(len(by_kind)).rows(**params)
        return {(kind, value): identity_id for kind, value, identity_id in rows}

    def link_state(
        self, identity_id: str, identifiers: Iterable[Identifier]
    ) -> tuple[dict[Identifier, str], dict[str, int]]:
        """In one statement, read at this moment: the owner of each of these identifiers (unknown
        ones left out), and how many identifiers of each kind the identity has."""
        wanted = list(dict.fromkeys(identifiers))
        match: Any = m.IdentityIdentifier.identity == identity_id
        for kind, value in wanted:
            match = match | (
                (m.IdentityIdentifier.kind == kind) & (m.IdentityIdentifier.value == value)
            )
        owners: dict[Identifier, str] = {}
        counts: dict[str, int] = {}
        rows = m.IdentityIdentifier.select(
            m.IdentityIdentifier.kind,
            m.IdentityIdentifier.value,
            m.IdentityIdentifier.identity,
        ).where(match)
        for r in rows:
            if (r.kind, r.value) in wanted:
                owners[(r.kind, r.value)] = r.identity_id
            if r.identity_id == identity_id:
                counts[r.kind] = counts.get(r.kind, 0) + 1
        return owners, counts

    def create_identity(self, now: dt.datetime) -> Identity:
        row = m.Identity.create(created_at=now, updated_at=now)
        return Identity(id=row.id, created_at=row.created_at)

    def identities(self, identity_ids: Iterable[str]) -> list[Identity]:
        rows = m.Identity.select(m.Identity.id, m.Identity.created_at).where(
            m.Identity.id.in_(list(identity_ids))
        )
        return [Identity(id=r.id, created_at=r.created_at) for r in rows]

    def touch_identity(self, identity_id: str, now: dt.datetime) -> None:
        m.Identity.update(updated_at=now).where(m.Identity.id == identity_id).execute()

    def has_identifiers(self, identity_id: str) -> bool:
        return bool(
            m.IdentityIdentifier.select()
            .where(m.IdentityIdentifier.identity == identity_id)
            .exists()
        )

    def delete_identity(self, identity_id: str) -> None:
        m.Identity.delete().where(m.Identity.id == identity_id).execute()

    def identifier_counts(self, identity_ids: Iterable[str]) -> dict[str, int]:
        """Identifiers per kind, the given identities together."""
        rows: Any = (
            m.IdentityIdentifier.select(m.IdentityIdentifier.kind, pw.fn.COUNT(pw.SQL("*")))
            .where(m.IdentityIdentifier.identity.in_(list(identity_ids)))
            .group_by(m.IdentityIdentifier.kind)
            .tuples()
        )
        return {str(kind): int(n) for kind, n in rows}

    def link(self, identity_id: str, identifier: Identifier) -> bool:
        """Links an identifier to an identity; False when it was linked meanwhile (by a
        concurrent request, now committed) or the identity is gone. A savepoint keeps the
        caller's transaction usable after the failed insert."""
        kind, value = identifier
        try:
            with _savepoint():
                m.IdentityIdentifier.create(identity=identity_id, kind=kind, value=value)
        except pw.IntegrityError:
            return False
        return True

    def link_to_new(self, identity_id: str, identifier: Identifier) -> bool:
        """`link` for an identity created in this transaction: no other transaction can see it
        (so it cannot be merged away or deleted), and the only constraint the insert can break
        is the unique identifier, so one `ON CONFLICT DO NOTHING` statement replaces the
        savepoint. False when the identifier belongs to someone else."""
        kind, value = identifier
        inserted = (
            m.IdentityIdentifier.insert(identity=identity_id, kind=kind, value=value)
            .on_conflict_ignore()
            .as_rowcount()
            .execute()
        )
        return bool(inserted)

    def merge(self, keep: str, drop: str) -> None:
        """Moves everything of identity `drop` (identifiers, visitors, leads) to `keep`, then
        deletes `drop`."""
        m.IdentityIdentifier.update(identity=keep).where(
            m.IdentityIdentifier.identity == drop
        ).execute()
        m.Visitor.update(identity=keep).where(m.Visitor.identity == drop).execute()
        m.Lead.update(identity=keep).where(m.Lead.identity == drop).execute()
        m.Identity.delete().where(m.Identity.id == drop).execute()

    # --- a batch of new people --------------------------------------------------------------

    def lookup(
        self, identifiers: Iterable[Identifier], anonymous_ids: Iterable[str], since: dt.datetime
    ) -> IntakeLookup:
        """`owners`, the visitors and `earliest_recent_lead` of a whole batch, in three
        statements (two when no lead has a visitor)."""
        wanted = list(dict.fromkeys(identifiers))
        anonymous = list(dict.fromkeys(anonymous_ids))
        visitors: dict[str, Visitor] = {}
        if anonymous:
            visitors = {
                anonymous_id: Visitor(id=i, identity_id=identity_id, event_count=events)
                for i, anonymous_id, identity_id, events in _VISITORS_BY_ANONYMOUS_ID.rows(
                    anonymous=anonymous
                )
            }
        return IntakeLookup(self.owners(wanted), visitors, self._recent(wanted, since))

    def _recent(
        self, identifiers: list[Identifier], since: dt.datetime
    ) -> dict[Identifier, tuple[dt.datetime, str]]:
        emails = [v for kind, v in identifiers if kind == "email"]
        phones = [v for kind, v in identifiers if kind == "phone"]
        if not (emails or phones):
            return {}
        lists = {"emails": emails, "phones": phones}
        rows = _recent_query(bool(emails), bool(phones)).rows(
            **{name: values for name, values in lists.items() if values}, since=since
        )
        wanted = set(identifiers)
        earliest: dict[Identifier, tuple[dt.datetime, str]] = {}
        for lead_id, duplicate_of_id, email, phone, created_at in rows:
            original = str(duplicate_of_id or lead_id)
            for value in (("email", email), ("phone", phone)):
                if value in wanted and (value not in earliest or created_at < earliest[value][0]):
                    earliest[value] = (created_at, original)
        return earliest

    def new_id(self) -> str:
        """An id for an identity or a visitor planned before it is inserted."""
        return m.new_id()

    def create_people(self, people: NewPeople, now: dt.datetime) -> None:
        """Inserts a batch's planned identities, identifiers and visitors (a statement per
        table) and gives known visitors their identity (one statement). A value or visitor
        that another transaction created meanwhile raises `IntegrityError`: the caller undoes
        the batch and decides its leads one by one."""
        if people.identities:
            _IDENTITIES.execute(
                [{"id": i, "created_at": now, "updated_at": now} for i in people.identities]
            )
        if people.links:
            _IDENTIFIERS.execute(
                [
                    {"identity": i, "kind": kind, "value": value, "created_at": now}
                    for i, (kind, value) in people.links
                ]
            )
        if people.new_visitors:
            _VISITORS.execute(
                [
                    {
                        "id": visitor_id,
                        "anonymous_id": anonymous_id,
                        "identity": identity_id,
                        "first_seen_at": now,
                        "last_seen_at": now,
                        "event_count": 0,
                    }
                    for visitor_id, anonymous_id, identity_id in people.new_visitors
                ]
            )
        if people.visitor_links:
            target = pw.Case(
                m.Visitor.id, [(v, i) for v, i in people.visitor_links.items()], m.Visitor.identity
            )
            m.Visitor.update(identity=target).where(
                m.Visitor.id.in_(list(people.visitor_links))
            ).execute()

    # --- duplicate detection ----------------------------------------------------------------

    def earliest_recent_lead(
        self, email: str | None, phone: str | None, since: dt.datetime
    ) -> str | None:
        """The original of the earliest lead since `since` (not rejected) with this email or
        phone: that lead's own original if it is a duplicate itself, else the lead."""
        if not (email or phone):
            return None
        # Indexable terms only (see `owners`): the email and phone indexes, not a scan.
        match = _any(
            term
            for term in (
                (m.Lead.email_normalized == email) if email else None,
                (m.Lead.phone_e164 == phone) if phone else None,
            )
            if term is not None
        )
        earlier = (
            m.Lead.select(m.Lead.id, m.Lead.duplicate_of)
            .where(
                match
                & (m.Lead.created_at >= since)
                & (m.Lead.outcome != LeadOutcome.REJECTED.value)
            )
            .order_by(m.Lead.created_at)
            .first()
        )
        if earlier is None:
            return None
        return str(earlier.duplicate_of_id or earlier.id)


@functools.cache
def _owners_query(kinds: int) -> CompiledQuery:
    """`owners`' SELECT for identifiers of `kinds` kinds (params kind0, values0, ...)."""

    def build(**p: Any) -> Any:
        return m.IdentityIdentifier.select(
            m.IdentityIdentifier.kind,
            m.IdentityIdentifier.value,
            m.IdentityIdentifier.identity,
        ).where(
            _any(
                (m.IdentityIdentifier.kind == p[f"kind{i}"])
                & m.IdentityIdentifier.value.in_(p[f"values{i}"])
                for i in range(kinds)
            )
        )

    return CompiledQuery(m.IdentityIdentifier, build)


@functools.cache
def _recent_query(emails: bool, phones: bool) -> CompiledQuery:
    """`_recent`'s SELECT, by emails, phones or both (params emails, phones, since)."""

    def build(since: Any, emails: Any = None, phones: Any = None) -> Any:
        match = _any(
            term
            for term in (
                m.Lead.email_normalized.in_(emails) if emails is not None else None,
                m.Lead.phone_e164.in_(phones) if phones is not None else None,
            )
            if term is not None
        )
        return m.Lead.select(
            m.Lead.id,
            m.Lead.duplicate_of,
            m.Lead.email_normalized,
            m.Lead.phone_e164,
            m.Lead.created_at,
        ).where(
            match & (m.Lead.created_at >= since) & (m.Lead.outcome != LeadOutcome.REJECTED.value)
        )

    return CompiledQuery(m.Lead, build)


def _any(terms: Iterable[Any]) -> Any:
    """The OR of one or more query terms (at least one)."""
    return functools.reduce(operator.or_, terms)
