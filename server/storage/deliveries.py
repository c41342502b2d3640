"""Dealer delivery outbox: claim due deliveries under a lease, record attempts, redeliver.

Claiming sets `locked_by`/`locked_until` in a transaction (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so workers in several processes take disjoint rows; SQLite serialises writers).
A worker that dies leaves a lease that expires, and the delivery is claimed again: delivery is
at least once, with the same event id on every attempt. Results are only recorded by the
lease holder.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from server.domain.leads import AgentName, LeadStatus
from server.errors import FailedPreconditionError, NotFoundError
from server.storage import models as m
from server.storage.db import Database
from server.storage.leads import append_activities

A = AgentName.LEAD_PACKAGING
DUE_STATES = ("pending", "retrying")
# Lead statuses that delivery moves; a dealer-reported status (sold, ...) is never overwritten.
_DELIVERY_STATUSES = [
    LeadStatus.PACKAGED.value,
    LeadStatus.DELIVERED.value,
    LeadStatus.DELIVERY_FAILED.value,
]


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: str
    event_id: str
    lead_id: str
    dealer_id: str
    attempts: int
    url: str
    secret: str
    body: bytes
    content_type: str


@dataclass(frozen=True)
class DeliveryView:
    delivery_id: str
    event_id: str
    lead_id: str
    dealer_id: str
    package_id: str
    state: str
    attempts: int
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    last_error: str
    attempt_log: list[tuple[dt.datetime, int, str, int]]


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_due(
        self, worker_id: str, now: dt.datetime, lease: dt.timedelta, limit: int
    ) -> list[DueDelivery]:
        with self._db.transaction():
            # A deactivated dealer receives nothing: its deliveries wait (and go out if it is
            # activated again, or can be redelivered elsewhere by routing anew).
            active_dealers = m.Dealer.select(m.Dealer.id).where(m.Dealer.active == True)  # noqa: E712
            query = (
                m.Delivery.select(m.Delivery.id)
                .where(
                    m.Delivery.state.in_(DUE_STATES)
                    & (m.Delivery.next_attempt_at <= now)
                    & (m.Delivery.locked_until.is_null() | (m.Delivery.locked_until < now))
                    & m.Delivery.dealer.in_(active_dealers)
                )
                .order_by(m.Delivery.next_attempt_at)
                .limit(limit)
            )
            if self._db.backend == "postgresql":
                query = query.for_update(skip_locked=True)
            ids = [row.id for row in query]
            if not ids:
                return []
            m.Delivery.update(locked_by=worker_id, locked_until=now + lease).where(
                m.Delivery.id.in_(ids)
            ).execute()
            rows = (
                m.Delivery.select(m.Delivery, m.LeadPackage, m.Dealer)
                .join(m.LeadPackage, on=(m.Delivery.package == m.LeadPackage.id))
                .switch(m.Delivery)
                .join(m.Dealer, on=(m.Delivery.dealer == m.Dealer.id))
                .where(m.Delivery.id.in_(ids))
            )
            return [
                DueDelivery(
                    delivery_id=r.id,
                    event_id=r.event_id,
                    lead_id=r.lead_id,
                    dealer_id=r.dealer_id,
                    attempts=r.attempts,
                    url=r.dealer.endpoint_url,
                    secret=r.dealer.signing_secret or "",
                    body=r.package.body.encode(),
                    content_type=r.package.content_type,
                )
                for r in rows
            ]

    def record(
        self,
        due: DueDelivery,
        worker_id: str,
        *,
        now: dt.datetime,
        state: str,
        status_code: int,
        error: str,
        duration_ms: int,
        next_attempt_at: dt.datetime | None,
    ) -> bool:
        """Records one attempt's result; False when the lease was lost (someone else owns it)."""
        with self._db.transaction():
            updated = (
                m.Delivery.update(
                    state=state,
                    attempts=m.Delivery.attempts + 1,
                    last_status_code=status_code,
                    last_error=error,
                    next_attempt_at=next_attempt_at or now,
                    delivered_at=now if state == "delivered" else None,
                    locked_by="",
                    locked_until=None,
                    updated_at=now,
                )
                .where((m.Delivery.id == due.delivery_id) & (m.Delivery.locked_by == worker_id))
                .execute()
            )
            if not updated:
                return False
            m.DeliveryAttempt.create(
                delivery=due.delivery_id,
                attempted_at=now,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
            m.Lead.update(delivery_state=state, updated_at=now).where(
                m.Lead.id == due.lead_id
            ).execute()
            # The lead's status follows delivery only until the dealer reports on it.
            new_status = {
                "delivered": LeadStatus.DELIVERED,
                "rejected": LeadStatus.DELIVERY_FAILED,
                "dead_lettered": LeadStatus.DELIVERY_FAILED,
            }.get(state)
            if new_status is not None:
                m.Lead.update(status=new_status.value).where(
                    (m.Lead.id == due.lead_id) & m.Lead.status.in_(_DELIVERY_STATUSES)
                ).execute()
            attempt = due.attempts + 1
            details = {
                "delivery_id": due.delivery_id,
                "attempt": attempt,
                "status_code": status_code,
                "duration_ms": duration_ms,
            }
            entries = [(A, "delivery.attempted", f"Delivery attempt {attempt}", details)]
            if state == "delivered":
                entries.append((A, "delivery.delivered", "Dealer accepted the package", details))
            elif state == "retrying":
                entries.append(
                    (
                        A,
                        "delivery.retry_scheduled",
                        "Retry scheduled",
                        {**details, "error": error, "next_attempt_at": str(next_attempt_at)},
                    )
                )
            elif state == "rejected":
                entries.append(
                    (
                        A,
                        "delivery.rejected",
                        "Dealer refused the package",
                        {**details, "error": error},
                    )
                )
            else:
                entries.append(
                    (
                        A,
                        "delivery.dead_lettered",
                        "Retries exhausted",
                        {**details, "error": error},
                    )
                )
            append_activities(due.lead_id, entries, at=now)
            return True

    def next_due_at(self) -> dt.datetime | None:
        row = (
            m.Delivery.select(m.Delivery.next_attempt_at)
            .where(m.Delivery.state.in_(DUE_STATES))
            .order_by(m.Delivery.next_attempt_at)
            .first()
        )
        return row.next_attempt_at if row else None

    def for_lead(self, lead_id: str) -> list[DeliveryView]:
        rows = list(
            m.Delivery.select()
            .where(m.Delivery.lead == lead_id)
            .order_by(m.Delivery.created_at.desc())
        )
        return [self._view(r) for r in rows]

    def redeliver(self, delivery_id: str, now: dt.datetime, dealer_id: str | None) -> DeliveryView:
        """Puts a rejected or dead-lettered delivery back in the queue (fresh attempt budget)."""
        with self._db.transaction():
            query = m.Delivery.select().where(m.Delivery.id == delivery_id)
            if dealer_id:
                query = query.where(m.Delivery.dealer == dealer_id)
            row = query.first()
            if row is None:
                raise NotFoundError("delivery not found", reason="DELIVERY_NOT_FOUND")
            if (
                not m.Dealer.select()
                .where(
                    (m.Dealer.id == row.dealer_id) & (m.Dealer.active == True)  # noqa: E712
                )
                .exists()
            ):
                raise FailedPreconditionError(
                    "the dealer is inactive; nothing is sent to it", reason="DEALER_INACTIVE"
                )
            if row.state in ("rejected", "dead_lettered"):
                m.Delivery.update(
                    state="pending",
                    attempts=0,
                    next_attempt_at=now,
                    locked_by="",
                    locked_until=None,
                    updated_at=now,
                ).where(m.Delivery.id == delivery_id).execute()
                m.Lead.update(delivery_state="pending", updated_at=now).where(
                    m.Lead.id == row.lead_id
                ).execute()
                m.Lead.update(status=LeadStatus.PACKAGED.value).where(
                    (m.Lead.id == row.lead_id) & m.Lead.status.in_(_DELIVERY_STATUSES)
                ).execute()
                append_activities(
                    row.lead_id,
                    [(A, "delivery.requeued", "Delivery queued again", {"delivery_id": row.id})],
                    at=now,
                )
            return self._view(m.Delivery.get_by_id(delivery_id))

    def failed_ids(self) -> list[str]:
        return [
            r.id
            for r in m.Delivery.select(m.Delivery.id).where(
                m.Delivery.state.in_(["rejected", "dead_lettered"])
            )
        ]

    @staticmethod
    def _view(r: m.Delivery) -> DeliveryView:
        attempts = [
            (a.attempted_at, a.status_code, a.error, a.duration_ms)
            for a in m.DeliveryAttempt.select()
            .where(m.DeliveryAttempt.delivery == r.id)
            .order_by(m.DeliveryAttempt.id)
        ]
        return DeliveryView(
            delivery_id=r.id,
            event_id=r.event_id,
            lead_id=r.lead_id,
            dealer_id=r.dealer_id,
            package_id=r.package_id,
            state=r.state,
            attempts=r.attempts,
            next_attempt_at=r.next_attempt_at if r.state in DUE_STATES else None,
            delivered_at=r.delivered_at,
            last_error=r.last_error,
            attempt_log=attempts,
        )
