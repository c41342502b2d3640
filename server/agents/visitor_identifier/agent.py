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

The pure rules live in `server/domain/identity.py`, every SQL statement in
`server/storage/identities.py`; this module applies the rules over repository calls. It opens
no transaction: `resolve_lead` runs inside the intake transaction of `LeadRepository.create`
(which calls it back as its `resolve` strategy, so the identity decision commits or rolls back
with the lead), and `track` inside the transaction its caller opens around one event.
"""

from __future__ import annotations

import datetime as dt

from server.domain.identity import (
    Identifier,
    IdentityCaps,
    TrackResult,
    Visitor,
    VisitorEventInput,
    clean_email,
    clean_phone,
    corrected_time,
    is_junk_email,
    is_junk_phone,
    merge_order,
    truncate_ip,
)
from server.domain.leads import ActivityEntry, AgentName, Resolution, ValidLead
from server.storage.identities import IdentityRepository, NewPeople

__all__ = [
    "TrackResult",
    "VisitorEventInput",
    "VisitorIdentifier",
    "clean_email",
    "clean_phone",
    "corrected_time",
    "is_junk_email",
    "is_junk_phone",
    "truncate_ip",
]

A = AgentName.VISITOR_IDENTIFIER


class VisitorIdentifier:
    def __init__(
        self,
        *,
        region: str,
        lookback_days: int,
        max_emails: int,
        max_phones: int,
        identities: IdentityRepository | None = None,
    ) -> None:
        self._region = region
        self._lookback = dt.timedelta(days=lookback_days)
        self._caps = IdentityCaps(max_emails=max_emails, max_phones=max_phones)
        self._store = identities if identities is not None else IdentityRepository()

    # --- leads ------------------------------------------------------------------------------

    def resolve_lead(self, lead: ValidLead, now: dt.datetime) -> Resolution:
        """Finds or creates the identity of a lead's applicant, links its visitor, and decides
        whether the lead duplicates a recent one. Runs inside the intake transaction."""
        activities: list[ActivityEntry] = []
        values = self._values(lead)
        visitor = self._store.visitor(lead.visitor_id, now) if lead.visitor_id else None
        identity_id, new_identity, matched_by = self._stitch(values, visitor, now, activities)
        email = next((v for kind, v in values if kind == "email"), None)
        phone = next((v for kind, v in values if kind == "phone"), None)
        return self._resolution(
            identity_id,
            new_identity,
            matched_by,
            visitor.id if visitor else None,
            len(values),
            self._recent_original(email, phone, now),
            activities,
        )

    def resolve_leads(self, leads: list[ValidLead], now: dt.datetime) -> list[Resolution | None]:
        """`resolve_lead` for a batch, inside its intake transaction: the leads of people seen
        for the first time are decided in memory from one lookup of the whole batch, and their
        identities, identifiers and visitors inserted a statement per table. None for a lead
        to resolve alone with `resolve_lead`, after the others are stored: a returning
        applicant (an identifier with an owner, or a visitor with an identity), or one sharing
        an identifier or visitor with an earlier lead of the batch. Such a lead's decision
        could change what a later lead of the batch finds; its own identifiers are not
        shared with any later lead decided here (those would go alone too), so deciding
        these in memory gives what one by one would."""
        values = [self._values(lead) for lead in leads]
        found = self._store.lookup(
            [v for vs in values for v in vs],
            [lead.visitor_id for lead in leads if lead.visitor_id],
            now - self._lookback,
        )
        seen: set[Identifier | str] = set()  # identifiers and visitors of earlier leads
        people = NewPeople()
        out: list[Resolution | None] = []
        for lead, vs in zip(leads, values, strict=True):
            mine: list[Identifier | str] = [*vs, *([lead.visitor_id] if lead.visitor_id else [])]
            visitor = found.visitors.get(lead.visitor_id) if lead.visitor_id else None
            alone = any(v in seen or v in found.owners for v in mine) or (
                visitor is not None and visitor.identity_id is not None
            )
            seen.update(mine)
            if alone:
                out.append(None)
                continue
            activities: list[ActivityEntry] = []
            identity_id = self._store.new_id()
            people.identities.append(identity_id)
            linked: dict[str, int] = {}
            for value in vs:
                kind = value[0]
                if linked.get(kind, 0) >= self._caps.cap(kind):
                    self._cap_reached(identity_id, kind, activities)
                else:
                    people.links.append((identity_id, value))
                    linked[kind] = linked.get(kind, 0) + 1
            visitor_id = None
            if lead.visitor_id:
                if visitor is None:
                    visitor_id = self._store.new_id()
                    people.new_visitors.append((visitor_id, lead.visitor_id, identity_id))
                else:
                    visitor_id = visitor.id
                    people.visitor_links[visitor.id] = identity_id
            recent = [found.recent[v] for v in vs if v in found.recent]
            duplicate_of = min(recent)[1] if recent and self._lookback > dt.timedelta(0) else None
            out.append(
                self._resolution(
                    identity_id, True, "", visitor_id, len(vs), duplicate_of, activities
                )
            )
        self._store.create_people(people, now)
        return out

    def _values(self, lead: ValidLead) -> list[Identifier]:
        """The identifiers of a lead that may stitch (junk ones left out)."""
        email = None if is_junk_email(lead.email_normalized) else lead.email_normalized
        phone = None if is_junk_phone(lead.phone_e164) else lead.phone_e164
        return [("email", v) for v in [email] if v] + [("phone", v) for v in [phone] if v]

    def _resolution(
        self,
        identity_id: str,
        new_identity: bool,
        matched_by: str,
        visitor_id: str | None,
        stitched_values: int,
        duplicate_of: str | None,
        activities: list[ActivityEntry],
    ) -> Resolution:
        activities.append(
            (
                A,
                "identity.created" if new_identity else "identity.matched",
                "New applicant identity"
                if new_identity
                else f"Returning applicant matched by {matched_by}",
                {
                    "identity_id": identity_id,
                    "matched_by": matched_by,
                    "visitor_linked": visitor_id is not None,
                    "junk_values_ignored": 2 - stitched_values,
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
            identity_id=identity_id,
            new_identity=new_identity,
            matched_by=matched_by,
            visitor_id=visitor_id,
            returning=not new_identity,
            duplicate_of_lead_id=duplicate_of,
            activities=activities,
        )

    def _recent_original(
        self, email: str | None, phone: str | None, now: dt.datetime
    ) -> str | None:
        if not (email or phone) or self._lookback <= dt.timedelta(0):
            return None
        return self._store.earliest_recent_lead(email, phone, now - self._lookback)

    # --- website events -----------------------------------------------------------------

    def track(
        self, event: VisitorEventInput, privacy_opt_out: bool, now: dt.datetime
    ) -> TrackResult:
        """Records one website event; stitches the visitor when it carries an identifier and the
        visitor did not opt out. Runs inside a transaction."""
        visitor = self._store.visitor(event.anonymous_id, now)
        returning = visitor.event_count > 0
        recorded = self._store.record_event(
            visitor.id,
            event,
            ip_address=truncate_ip(event.ip_address) if privacy_opt_out else event.ip_address,
            occurred_at=corrected_time(now, event.client_time, event.sent_time),
            received_at=now,
            privacy_opt_out=privacy_opt_out,
        )
        if not recorded:
            # The same event id again (a retry): recorded once, answered the same way.
            return TrackResult(visitor.id, visitor.identity_id or "", returning, privacy_opt_out)
        identity_id = visitor.identity_id or ""
        if not privacy_opt_out:
            values: list[Identifier] = []
            email = clean_email(event.email) if event.email else None
            phone = clean_phone(event.phone, self._region) if event.phone else None
            values += [("email", email)] if email else []
            values += [("phone", phone)] if phone else []
            if values:
                identity_id, _, _ = self._stitch(values, visitor, now, [])
        return TrackResult(visitor.id, identity_id, returning, privacy_opt_out)

    # --- stitching ------------------------------------------------------------------------

    def _stitch(
        self,
        values: list[Identifier],
        visitor: Visitor | None,
        now: dt.datetime,
        activities: list[ActivityEntry],
        *,
        retried: bool = False,
    ) -> tuple[str, bool, str]:
        """Returns (identity id, created, matched_by) after linking `values` and `visitor`."""
        owned = self._store.owners(values)
        owners: dict[str, str] = {}  # identity id -> what matched it
        for kind, value in values:
            owner = owned.get((kind, value))
            if owner is not None:
                owners.setdefault(owner, kind)
        if visitor is not None and visitor.identity_id:
            owners.setdefault(visitor.identity_id, "visitor")

        linked: dict[str, int] = {}  # what this call linked to a new identity, per kind
        if not owners:
            identity = self._store.create_identity(now)
            created, matched_by = True, ""
            raced = [v for v in values if not self._link_new(identity.id, v, linked, activities)]
        else:
            current = visitor.identity_id if visitor is not None else None
            candidates = merge_order(self._store.identities(owners), current)
            identity = candidates[0]
            matched_by = owners[identity.id]
            created = False
            for other in candidates[1:]:
                if self._caps.fits(self._store.identifier_counts([identity.id, other.id])):
                    self._store.merge(identity.id, other.id)
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
            raced = self._link(identity.id, values, activities)

        if raced and not retried:
            # A concurrent request linked one of these values first; stitching again now finds
            # its identity and merges into it, so both requests end on the same person. An
            # identity made here that got nothing linked is dropped rather than left empty.
            if created and not any(linked.values()):
                self._store.delete_identity(identity.id)
            return self._stitch(values, visitor, now, activities, retried=True)
        if visitor is not None and visitor.identity_id != identity.id:
            self._store.set_visitor_identity(visitor.id, identity.id)
            visitor.identity_id = identity.id
        if not created:  # a new identity was written with updated_at = now already
            self._store.touch_identity(identity.id, now)
        return identity.id, created, matched_by

    def _cap_reached(self, identity_id: str, kind: str, activities: list[ActivityEntry]) -> None:
        activities.append(
            (
                A,
                "identity.cap_reached",
                f"Identity already has {self._caps.cap(kind)} {kind}s; the new one was not linked",
                {"identity_id": identity_id, "kind": kind},
            )
        )

    def _link(
        self, identity_id: str, values: list[Identifier], activities: list[ActivityEntry]
    ) -> list[Identifier]:
        """Links values to an existing identity; returns those that belong to another identity
        (linked concurrently, or one that could not be merged in)."""
        owned, counts = self._store.link_state(identity_id, values)
        raced: list[Identifier] = []
        for value in values:
            owner = owned.get(value)
            if owner is not None:
                # Another identity's value here means it was linked after this request looked
                # for owners (a concurrent request): report the race so the caller stitches
                # again.
                if owner != identity_id:
                    raced.append(value)
                continue
            kind = value[0]
            if counts.get(kind, 0) >= self._caps.cap(kind):
                self._cap_reached(identity_id, kind, activities)
            elif self._store.link(identity_id, value):
                counts[kind] = counts.get(kind, 0) + 1
            else:
                raced.append(value)
        return raced

    def _link_new(
        self,
        identity_id: str,
        value: Identifier,
        linked: dict[str, int],
        activities: list[ActivityEntry],
    ) -> bool:
        """`_link` for an identity created by this transaction: no one else can see it yet, so
        its identifiers are the ones counted in `linked`, and a value that had no owner a moment
        ago and fails to link now was linked by a concurrent request (False)."""
        kind = value[0]
        if linked.get(kind, 0) >= self._caps.cap(kind):
            self._cap_reached(identity_id, kind, activities)
            return True
        if not self._store.link_to_new(identity_id, value):
            return False
        linked[kind] = linked.get(kind, 0) + 1
        return True
