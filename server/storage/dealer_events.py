"""Dealer webhook storage: the events recorded (idempotency by dealer and event id), a dealer's
status report applied to its lead, and the dealer's signing secrets.

Only a processed event is recorded (accepted, or a duplicate consumer): a rejected one is not,
so that the dealer can correct it and send it again with the same event id. Rows that recorded
`rejected` (written before that rule) record nothing: `seen` skips them and recording the event
takes their row over.

Events are looked up and recorded one at a time, not as a set: a request may repeat an event
id, and its second copy must find the first one recorded (and not apply a status twice). The
unique (dealer, event id) index decides between two copies that arrive at once: a status event
is recorded in the transaction that applies it, so the copy whose insert loses applies nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import peewee as pw

from server.domain.lead_status import (
    ALLOWED_FROM,
    DEALER_STATUSES,
    StatusTransition,
    TransitionOutcome,
    dealer_status_entry,
)
from server.storage import models as m
from server.storage.db import Database
from server.storage.dealers import signing_secrets
from server.storage.leads import append_activities

# Column bounds of `DealerEvent`.
_MAX_EVENT_TYPE = 16
# The `result` column's values (16 characters at most). "duplicate" is a duplicate consumer (a
# new lead recorded as the duplicate of an earlier one); "rejected" is only found in old rows.
RESULT_ACCEPTED = "accepted"
RESULT_DUPLICATE_CONSUMER = "duplicate"
_RESULT_REJECTED = "rejected"


class _Refused(Exception):
    """Rolls back a status event's transaction (its record included) with the outcome."""

    def __init__(self, transition: StatusTransition) -> None:
        super().__init__(transition.outcome.value)
        self.transition = transition


@dataclass(frozen=True)
class RecordedEvent:
    """A dealer event as recorded: its result (`RESULT_ACCEPTED` | `RESULT_DUPLICATE_CONSUMER`)
    and the lead it created or updated."""

    event_id: str
    event_type: str
    result: str
    reason: str
    lead_id: str


class DealerEventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def signing_secret(dealer_id: str) -> str:
        """The dealer's webhook signing secret; "" if none is set or there is no such dealer."""
        row = m.Dealer.select(m.Dealer.signing_secret).where(m.Dealer.id == dealer_id).first()
        return (row.signing_secret or "") if row else ""

    @staticmethod
    def signing_secrets(dealer_id: str, now: dt.datetime) -> list[str]:
        """The dealer's secrets that verify its webhooks at `now`: the current one, then the
        previous one while a rotation's overlap lasts; empty if none or no such dealer."""
        row = (
            m.Dealer.select(
                m.Dealer.signing_secret,
                m.Dealer.previous_signing_secret,
                m.Dealer.previous_secret_expires_at,
            )
            .where(m.Dealer.id == dealer_id)
            .first()
        )
        return signing_secrets(row, now) if row else []

    @staticmethod
    def seen(dealer_id: str, event_id: str) -> RecordedEvent | None:
        """The dealer's event `event_id` as recorded, or None if it has not been (an old row
        that recorded a rejection counts as not recorded)."""
        row = m.DealerEvent.get_or_none(
            (m.DealerEvent.dealer == dealer_id)
            & (m.DealerEvent.event_id == event_id)
            & (m.DealerEvent.result != _RESULT_REJECTED)
        )
        if row is None:
            return None
        return RecordedEvent(
            event_id=row.event_id,
            event_type=row.event_type,
            result=row.result,
            reason=row.reason,
            lead_id=row.lead_id or "",
        )

    def remember(
        self, dealer_id: str, event_id: str, event_type: str, result: str, lead_id: str
    ) -> bool:
        """Records a processed event (`result`: `RESULT_ACCEPTED` or
        `RESULT_DUPLICATE_CONSUMER`); False if the same event was recorded first (two copies
        arrived at once: the unique (dealer, event id) index refused this one)."""
        try:
            with self._db.transaction():
                _record(dealer_id, event_id, event_type, result, lead_id)
        except pw.IntegrityError:
            return False
        return True

    def apply_status(
        self,
        dealer_id: str,
        lead_id: str,
        event_id: str,
        reported: str,
        reason: str,
        now: dt.datetime | None = None,
    ) -> StatusTransition:
        """Sets the status a dealer reports (`reported`, a key of `DEALER_STATUSES`) on one of its
        leads, with its activity entry and the record of event `event_id`, in one transaction.

        The event is recorded first: of two copies of one event at once, the one whose insert
        the unique index refuses changes nothing and is ALREADY_RECEIVED (with the lead id
        recorded). The change is conditional on the lead's status still being one it may follow
        (`ALLOWED_FROM`), so two concurrent reports cannot both pass a check made before either
        wrote. A refused change rolls back, its record included: nothing is recorded. Another
        dealer's lead is NOT_FOUND, like a missing one."""
        new = DEALER_STATUSES[reported]
        when = now or m.utcnow()
        try:
            with self._db.transaction():
                lead = m.Lead.get_or_none((m.Lead.id == lead_id) & (m.Lead.dealer == dealer_id))
                if lead is None:
                    return StatusTransition(TransitionOutcome.NOT_FOUND)
                _record(dealer_id, event_id, "status", RESULT_ACCEPTED, lead_id, when)
                moved = (
                    m.Lead.update(status=new.value, reason=reason.strip(), updated_at=when)
                    .where((m.Lead.id == lead_id) & m.Lead.status.in_(list(ALLOWED_FROM[new])))
                    .execute()
                )
                if not moved:
                    raise _Refused(StatusTransition(TransitionOutcome.NOT_ALLOWED, lead.status))
                append_activities(
                    lead_id,
                    [dealer_status_entry(reported, lead.status, new, event_id, reason)],
                    at=when,
                )
        except _Refused as refused:
            return refused.transition
        except pw.IntegrityError:
            earlier = self.seen(dealer_id, event_id)
            if earlier is None:  # not the unique index: the lead or dealer went meanwhile
                return StatusTransition(TransitionOutcome.NOT_FOUND)
            return StatusTransition(TransitionOutcome.ALREADY_RECEIVED, lead_id=earlier.lead_id)
        return StatusTransition(TransitionOutcome.MOVED, lead.status, lead_id)


def _record(
    dealer_id: str,
    event_id: str,
    event_type: str,
    result: str,
    lead_id: str,
    now: dt.datetime | None = None,
) -> None:
    """Records a processed event, inside the caller's transaction: takes over an old row that
    recorded a rejection, else inserts one; raises IntegrityError if the event is recorded."""
    values = {
        "event_type": event_type[:_MAX_EVENT_TYPE],
        "result": result,
        "reason": "",
        "lead": lead_id or None,
        "created_at": now or m.utcnow(),
    }
    taken = (
        m.DealerEvent.update(**values)
        .where(
            (m.DealerEvent.dealer == dealer_id)
            & (m.DealerEvent.event_id == event_id)
            & (m.DealerEvent.result == _RESULT_REJECTED)
        )
        .execute()
    )
    if not taken:
        m.DealerEvent.create(dealer=dealer_id, event_id=event_id, **values)
