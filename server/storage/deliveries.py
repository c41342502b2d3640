"""Dealer delivery outbox: claim due deliveries under a lease, record attempts, redeliver.

The lease rules are the generic outbox's (`server.storage.outbox`): claiming sets
`locked_by`/`locked_until` in a transaction (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers
in several processes take disjoint rows; SQLite serialises writers). A worker that dies leaves a
lease that expires, and the delivery is claimed again: delivery is at least once, with the same
event id on every attempt. Results are only recorded by the lease holder. A claim is capped per
dealer (the table's partition), so one dealer's backlog never takes every slot of a worker; only
active dealers' deliveries are due. What is dealer-specific stays here: the package and secret
read (and decrypted) with a claim, the attempt log, the lead's delivery state and activity.

Package bodies (and the dealer's replies, which may echo them) are encrypted at rest; a claim
decrypts the package only to send it. A package that no configured data key decrypts is
dead-lettered with that reason instead of failing the batch it was claimed in; once the key
is configured again, `RedeliverLead` sends it.

Email deliveries (a dealer whose channel is `email`): the claim also carries the channel, the
intake address and the dealer's name. Once the mail provider takes the email the delivery is
`accepted` (its message id recorded) and waits for the provider's event, which
`apply_mailgun_event` applies (in the webhook token's transaction): `delivered` makes it
`delivered` as an HTTP delivery that the dealer accepted; `failed` with severity `permanent`
dead-letters it with the reason; `failed` `temporary` is recorded (the provider tries again);
anything else is ignored. Without a provider (simulation mode) it is `simulated`: recorded, not
sent, and never counted as delivered.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from server.domain.dealers import CHANNEL_HTTPS, EndpointCredentials
from server.domain.email import EventSeverity, MailgunEvent, MailgunEventType
from server.domain.leads import AgentName, LeadStatus, Page, PageResult
from server.errors import FailedPreconditionError, NotFoundError
from server.storage import models as m
from server.storage.crypto import UndecryptableError
from server.storage.db import Database
from server.storage.dealers import credentials_of
from server.storage.leads import append_activities
from server.storage.outbox import DUE_STATES, OutboxTable, lease_due, settle
from server.storage.pagination import decode_token, encode_token

log = logging.getLogger("ccl.delivery")
A = AgentName.LEAD_PACKAGING
# The custom (`v:`) variable an email delivery carries our delivery id in; it comes back in the
# mail provider's events.
DELIVERY_VARIABLE = "ccl_delivery"
# States of an email delivery the provider's events may still move: accepted, or in flight (an
# event may overtake the worker's record of the provider's answer).
_AWAITING_EVENT = ("accepted", "pending", "retrying")
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
    # The dealer's previous secret while a rotation's overlap lasts (it signs too), else "".
    previous_secret: str = ""
    # The dealer's endpoint credentials (Basic or a header), decrypted; None when it has none.
    credentials: EndpointCredentials | None = None
    # "https" (POST to `url`) or "email" (the body, ADF XML, mailed to `intake_email`).
    channel: str = CHANNEL_HTTPS
    intake_email: str = ""
    dealer_name: str = ""


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


DELIVERIES = OutboxTable(m.Delivery, partition=m.Delivery.dealer)


class DeliveryRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_due(
        self,
        worker_id: str,
        now: dt.datetime,
        lease: dt.timedelta,
        limit: int,
        *,
        per_dealer: int | None = None,
        busy: Mapping[str, int] | None = None,
    ) -> list[DueDelivery]:
        """Leases up to `limit` due deliveries to `worker_id`, oldest due first.

        With `per_dealer`, at most `per_dealer - busy[dealer]` of one dealer's deliveries are
        claimed (`busy`: the dealers' deliveries the worker already has in flight), so a dealer
        whose endpoint hangs never holds more than `per_dealer` of the worker's slots.
        """
        with self._db.transaction():
            # A deactivated dealer receives nothing: its deliveries wait (and go out if it is
            # activated again, or can be redelivered elsewhere by routing anew).
            active_dealers = m.Dealer.select(m.Dealer.id).where(m.Dealer.active == True)  # noqa: E712
            ids = lease_due(
                DELIVERIES,
                backend=self._db.backend,
                worker_id=worker_id,
                now=now,
                lease=lease,
                limit=limit,
                also=m.Delivery.dealer.in_(active_dealers),
                per_partition=per_dealer,
                busy=busy,
            )
            if not ids:
                return []
            # Encrypted columns come raw and are decrypted row by row, so that one package no
            # configured key decrypts is set aside instead of failing the whole batch.
            rows = (
                m.Delivery.select(
                    m.Delivery.id,
                    m.Delivery.event_id,
                    m.Delivery.lead,
                    m.Delivery.dealer,
                    m.Delivery.attempts,
                    m.Dealer.id,  # else the joined dealer, without its id, blanks `dealer_id`
                    m.Dealer.endpoint_url,
                    m.Dealer.signing_secret.coerce(False),
                    m.Dealer.previous_signing_secret.coerce(False),
                    m.Dealer.previous_secret_expires_at,
                    m.Dealer.endpoint_auth.coerce(False),
                    m.Dealer.delivery_channel,
                    m.Dealer.intake_email,
                    m.Dealer.name,
                    m.LeadPackage.body.coerce(False),
                    m.LeadPackage.content_type,
                )
                .join(m.LeadPackage, on=(m.Delivery.package == m.LeadPackage.id))
                .switch(m.Delivery)
                .join(m.Dealer, on=(m.Delivery.dealer == m.Dealer.id))
                .where(m.Delivery.id.in_(ids))
            )
            claimed: list[DueDelivery] = []
            for r in rows:
                try:
                    dealer = r.dealer
                    previous = (
                        m.Dealer.previous_signing_secret.python_value(
                            dealer.previous_signing_secret
                        )
                        if dealer.previous_secret_expires_at is not None
                        and dealer.previous_secret_expires_at > now
                        else None
                    )
                    claimed.append(
                        DueDelivery(
                            delivery_id=r.id,
                            event_id=r.event_id,
                            lead_id=r.lead_id,
                            dealer_id=r.dealer_id,
                            attempts=r.attempts,
                            url=r.dealer.endpoint_url,
                            secret=m.Dealer.signing_secret.python_value(r.dealer.signing_secret)
                            or "",
                            body=m.LeadPackage.body.python_value(r.package.body).encode(),
                            content_type=r.package.content_type,
                            previous_secret=previous or "",
                            credentials=credentials_of(
                                m.Dealer.endpoint_auth.python_value(dealer.endpoint_auth)
                            ),
                            channel=dealer.delivery_channel,
                            intake_email=dealer.intake_email,
                            dealer_name=dealer.name,
                        )
                    )
                except UndecryptableError as e:
                    _dead_letter_unreadable(r.id, r.lead_id, e, now)
            return claimed

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
        provider_message_id: str = "",
    ) -> bool:
        """Records one attempt's result; False when the lease was lost (someone else owns it,
        or the mail provider's event about this very email came first and settled it).

        `state` is the outbox's, or for an email delivery `accepted` (the provider took it:
        `provider_message_id`) or `simulated` (simulation mode: nothing was sent)."""
        extra = {"provider_message_id": provider_message_id} if provider_message_id else {}
        with self._db.transaction():
            if not settle(
                DELIVERIES,
                due.delivery_id,
                worker_id,
                state=state,
                last_status_code=status_code,
                last_error=error,
                next_attempt_at=next_attempt_at or now,
                delivered_at=now if state == "delivered" else None,
                updated_at=now,
                **extra,
            ):
                return False
            m.DeliveryAttempt.create(
                delivery=due.delivery_id,
                attempted_at=now,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
            _lead_follows_delivery(due.lead_id, state, now)
            attempt = due.attempts + 1
            details = {
                "delivery_id": due.delivery_id,
                "attempt": attempt,
                "status_code": status_code,
                "duration_ms": duration_ms,
            }
            # The activity log is stored in clear and shown to the dealer, and a dealer's reply
            # may echo the package: it keeps only the status code (the whole reply is on the
            # delivery, encrypted). Transport errors ("timeout", "ConnectError") name no data.
            shown_error = f"HTTP {status_code}" if status_code else error
            entries = [(A, "delivery.attempted", f"Delivery attempt {attempt}", details)]
            if state == "delivered":
                entries.append((A, "delivery.delivered", "Dealer accepted the package", details))
            elif state == "accepted":
                entries.append(
                    (
                        A,
                        "delivery.accepted",
                        "The mail provider accepted the email to the dealer's lead intake; "
                        "awaiting its delivery",
                        details,
                    )
                )
            elif state == "simulated":
                entries.append(
                    (
                        A,
                        "delivery.simulated",
                        "Simulation mode: the email to the dealer was recorded, not sent",
                        details,
                    )
                )
            elif state == "retrying":
                entries.append(
                    (
                        A,
                        "delivery.retry_scheduled",
                        "Retry scheduled",
                        {**details, "error": shown_error, "next_attempt_at": str(next_attempt_at)},
                    )
                )
            elif state == "rejected":
                entries.append(
                    (
                        A,
                        "delivery.rejected",
                        "Dealer refused the package",
                        {**details, "error": shown_error},
                    )
                )
            else:
                entries.append(
                    (
                        A,
                        "delivery.dead_lettered",
                        "Retries exhausted",
                        {**details, "error": shown_error},
                    )
                )
            append_activities(due.lead_id, entries, at=now)
            return True

    def apply_mailgun_event(self, event: MailgunEvent, now: dt.datetime) -> bool:
        """Applies a verified Mailgun event about an email delivery (our id in its
        `ccl_delivery` variable), in the caller's transaction: run it with the webhook token's
        record in one `run_atomic`. True if it changed the delivery; an event for no delivery of
        ours, about an earlier send of it (another message id), of a kind not acted on, or
        repeated, changes nothing and answers False (and is acknowledged all the same).

        `delivered` → delivered (the lead delivered, as when a dealer's endpoint accepts);
        `failed` permanent → dead-lettered with the reason (the lead's delivery failed);
        `failed` temporary → the reason recorded, the state kept (the provider retries). An event
        that overtakes the worker's record of the send (the row is still leased) settles the
        delivery and ends the lease, so the late record finds it lost and changes nothing."""
        delivery_id = event.user_variables.get(DELIVERY_VARIABLE, "")
        if not delivery_id:
            return False
        if event.type is not MailgunEventType.DELIVERED and not (
            event.type is MailgunEventType.FAILED and event.severity is not EventSeverity.NONE
        ):
            return False
        row = m.Delivery.get_or_none(m.Delivery.id == delivery_id)
        if row is None or row.state not in _AWAITING_EVENT:
            return False
        if row.provider_message_id and event.message_id != row.provider_message_id:
            return False  # about an earlier send of this delivery, since redelivered
        details: dict[str, object] = {
            "delivery_id": row.id,
            "event": event.name,
            "code": event.delivery_code,
        }
        # The reason is the provider's, addresses scrubbed (`parse_event`): fit for the log.
        reason = event.reason or f"{event.name} ({event.severity.value or 'no severity'})"
        if event.type is MailgunEventType.FAILED and event.severity is EventSeverity.TEMPORARY:
            m.Delivery.update(last_error=reason, updated_at=now).where(
                m.Delivery.id == row.id
            ).execute()
            append_activities(
                row.lead_id,
                [
                    (
                        A,
                        "delivery.email_deferred",
                        "The dealer's mail server deferred the email; the provider retries",
                        {**details, "error": reason},
                    )
                ],
                at=now,
            )
            return True
        delivered = event.type is MailgunEventType.DELIVERED
        state = "delivered" if delivered else "dead_lettered"
        m.Delivery.update(
            state=state,
            delivered_at=now if delivered else None,
            last_status_code=event.delivery_code,
            last_error="" if delivered else reason,
            provider_message_id=row.provider_message_id or event.message_id,
            locked_by="",
            locked_until=None,
            updated_at=now,
        ).where(m.Delivery.id == row.id).execute()
        _lead_follows_delivery(row.lead_id, state, now)
        entry = (
            (A, "delivery.delivered", "The dealer's mail server accepted the email", details)
            if delivered
            else (
                A,
                "delivery.dead_lettered",
                "The dealer's mail server refused the email for good",
                {**details, "error": reason},
            )
        )
        append_activities(row.lead_id, [entry], at=now)
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
        return _views(rows)

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
            return _views([m.Delivery.get_by_id(delivery_id)])[0]

    def failed_ids(self) -> list[str]:
        return [
            r.id
            for r in m.Delivery.select(m.Delivery.id).where(
                m.Delivery.state.in_(["rejected", "dead_lettered"])
            )
        ]


def _views(rows: list[m.Delivery]) -> list[DeliveryView]:
    """The deliveries as views, in the order given, with their attempts (oldest first) read in
    one statement for all of them."""
    log_of: dict[str, list[tuple[dt.datetime, int, str, int]]] = {r.id: [] for r in rows}
    if rows:
        for a in (
            m.DeliveryAttempt.select()
            .where(m.DeliveryAttempt.delivery.in_(list(log_of)))
            .order_by(m.DeliveryAttempt.id)
        ):
            log_of[a.delivery_id].append((a.attempted_at, a.status_code, a.error, a.duration_ms))
    return [
        DeliveryView(
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
            attempt_log=log_of[r.id],
        )
        for r in rows
    ]


def _lead_follows_delivery(lead_id: str, state: str, now: dt.datetime) -> None:
    """Moves the lead's delivery state, and its status until the dealer reports on it."""
    m.Lead.update(delivery_state=state, updated_at=now).where(m.Lead.id == lead_id).execute()
    new_status = {
        "delivered": LeadStatus.DELIVERED,
        "rejected": LeadStatus.DELIVERY_FAILED,
        "dead_lettered": LeadStatus.DELIVERY_FAILED,
    }.get(state)
    if new_status is not None:
        m.Lead.update(status=new_status.value).where(
            (m.Lead.id == lead_id) & m.Lead.status.in_(_DELIVERY_STATUSES)
        ).execute()


def _dead_letter_unreadable(
    delivery_id: str, lead_id: str, error: UndecryptableError, now: dt.datetime
) -> None:
    """Sets aside a claimed delivery whose package or dealer secret no configured key decrypts:
    retrying cannot help until an operator configures the key that encrypted it."""
    log.error(
        "delivery cannot be decrypted", extra={"delivery_id": delivery_id, "reason": error.reason}
    )
    m.Delivery.update(
        state="dead_lettered",
        last_error=str(error),
        locked_by="",
        locked_until=None,
        updated_at=now,
    ).where(m.Delivery.id == delivery_id).execute()
    _lead_follows_delivery(lead_id, "dead_lettered", now)
    append_activities(
        lead_id,
        [
            (
                A,
                "delivery.dead_lettered",
                "The package cannot be decrypted with the configured data keys",
                {"delivery_id": delivery_id, "error": str(error)},
            )
        ],
        at=now,
    )


def list_for_dealer(dealer_id: str, state: str, page: Page) -> PageResult[DeliveryView]:
    """One dealer's deliveries, newest first (then by id), `page.size` at a time, in `state`
    when it is not "" (the dealer's delivery log). Attempts come in one more statement, not one
    per delivery. Nothing of the package is read: the log holds ids, states, times and the
    endpoint's own answers."""
    query = m.Delivery.select(
        m.Delivery.id,
        m.Delivery.event_id,
        m.Delivery.lead,
        m.Delivery.dealer,
        m.Delivery.package,
        m.Delivery.state,
        m.Delivery.attempts,
        m.Delivery.next_attempt_at,
        m.Delivery.delivered_at,
        m.Delivery.last_error,
        m.Delivery.created_at,
    ).where(m.Delivery.dealer == dealer_id)
    if state:
        query = query.where(m.Delivery.state == state)
    if page.token:
        cursor = decode_token("dealer_deliveries", page.token)  # or INVALID_PAGE_TOKEN
        after_time, after_id = cursor["t"], cursor["i"]
        query = query.where(
            (m.Delivery.created_at < after_time)
            | ((m.Delivery.created_at == after_time) & (m.Delivery.id < after_id))
        )
    rows = list(
        query.order_by(m.Delivery.created_at.desc(), m.Delivery.id.desc()).limit(page.size + 1)
    )
    more = len(rows) > page.size
    rows = rows[: page.size]
    token = ""
    if more:
        last = rows[-1]
        token = encode_token("dealer_deliveries", {"t": last.created_at.isoformat(), "i": last.id})
    return PageResult(items=_views(rows), next_page_token=token)
