"""Dealer delivery, the outbox's first kind of work: a package POSTed to a dealer's CRM.

The handler signs (Standard Webhooks; during a secret rotation with the dealer's current and
previous secrets), authenticates with the dealer's endpoint credentials (Basic or a header) if
it has some, POSTs the package through `server.adapters.dealer_crm` and maps its
answer to an `Outcome`: 2xx delivered; a 4xx other than 408/429 (or an endpoint URL that cannot
be used) rejected for good; 408, 429, 5xx, timeouts and connection errors retried. The event id
is the same on every attempt, so a dealer can drop a repeat.

The store adapts `server.storage.deliveries.DeliveryRepository` (the `delivery` table, its lease
and per-dealer cap, the lead's delivery state and activity) to the worker's `OutboxStore`; the
partition is the dealer. A package or dealer secret no configured data key decrypts is
dead-lettered by the claim itself, in storage, where decryption happens: it never reaches the
handler (nor the worker's counters), as before the generic outbox.

A dealer whose channel is `email` gets its package (ADF XML) through the Mailgun client instead:
one plain-text email to its CRM's intake address whose body is only the ADF XML, the subject
"New lead for <dealer name>" (no applicant data), `v:ccl_delivery` = our delivery id (back in
Mailgun's events) and the tag `dealer-adf`. Mailgun's answer maps like an HTTP one: 2xx accepted
(recorded as `accepted`, with Mailgun's message id, until its `delivered` or `failed` event moves
the delivery: `DeliveryRepository.apply_mailgun_event`); 408, 429, 5xx and timeouts retried; any
other 4xx (or an intake address Mailgun cannot take) rejected. A package that is not ADF (made
before the dealer switched channel) is dead-lettered: re-route or redeliver it once repackaged.

Without a Mailgun key (simulation mode, as for campaigns) nothing is sent: the form that would
have gone is handed to `simulated_payloads` if given (the package itself is stored with the
delivery already), and the delivery is `simulated`, never `delivered`: no dealer received it.
The worker's own `delivered` counter counts items handed off (accepted and simulated emails too).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.adapters.dealer_crm import AttemptResult, DealerCrmClient
from server.adapters.dealer_crm import Outcome as HttpOutcome
from server.adapters.mailgun import Form, MailgunClient, message_form
from server.domain.clock import utcnow
from server.domain.dealers import CHANNEL_EMAIL
from server.domain.email import PlainMessage, SendOutcome
from server.outbox.worker import OutboxItem, OutboxWorker, Outcome, Settlement, State
from server.storage.db import Database
from server.storage.deliveries import DELIVERY_VARIABLE, DeliveryRepository, DueDelivery

log = logging.getLogger("ccl.delivery")

# Mailgun's tag of the ADF emails to dealers (its reports group them by it).
ADF_EMAIL_TAG = "dealer-adf"


@dataclass(frozen=True)
class EmailAttempt:
    """What an email delivery's attempt records: Mailgun's HTTP status (0 when there was no
    answer or nothing was sent), how long the call took, and Mailgun's message id once it
    accepted the email; `simulated` when simulation mode sent nothing."""

    status_code: int
    duration_ms: int
    provider_id: str = ""
    simulated: bool = False


def adf_email(due: DueDelivery, sender: str) -> PlainMessage:
    """The email of an ADF package to a dealer's intake address: the body is exactly the ADF
    XML; the subject names the dealer and nothing of the applicant."""
    return PlainMessage(
        sender=sender,
        to=due.intake_email,
        subject=f"New lead for {due.dealer_name}".strip(),
        text=due.body.decode(),
        tag=ADF_EMAIL_TAG,
        variables={DELIVERY_VARIABLE: due.delivery_id},
    )


class DealerDeliveryHandler:
    def __init__(
        self,
        client: DealerCrmClient,
        mailgun: MailgunClient | None = None,
        *,
        from_address: str = "",
        simulated_payloads: Callable[[Form], None] | None = None,
    ) -> None:
        """`mailgun` sends the email channel's deliveries (None: simulation mode) from
        `from_address`; `simulated_payloads` receives, in simulation mode, the form that
        would have been sent."""
        self._client = client
        self._mailgun = mailgun
        self._from = from_address
        self._simulated = simulated_payloads

    async def handle(self, item: OutboxItem[DueDelivery], /) -> Outcome:
        due = item.payload
        if due.channel == CHANNEL_EMAIL:
            return await self._email(due)
        result = await self._client.deliver(
            url=due.url,
            body=due.body,
            content_type=due.content_type,
            secret=due.secret,
            event_id=due.event_id,
            previous_secret=due.previous_secret,
            credentials=due.credentials,
        )
        if result.outcome is HttpOutcome.DELIVERED:
            return Outcome.delivered(result)
        if result.outcome is HttpOutcome.REJECTED:
            return Outcome.reject(result.error, result)
        return Outcome.retry(result.error, result)

    async def _email(self, due: DueDelivery) -> Outcome:
        if "xml" not in due.content_type:
            # Packaged as JSON before the dealer moved to email: no CRM parses that.
            return Outcome.dead("the package is not ADF XML; repackage it for the email channel")
        message = adf_email(due, self._from)
        try:
            form = message_form(message)  # what Mailgun would be sent, checked
        except ValueError as e:
            return Outcome.reject(f"the email cannot be sent: {e}", EmailAttempt(0, 0))
        if self._mailgun is None:
            if self._simulated is not None:
                self._simulated(form)
            return Outcome.delivered(EmailAttempt(0, 0, simulated=True))
        result = await self._mailgun.send_message(message)
        attempt = EmailAttempt(result.status_code, result.duration_ms, result.provider_id)
        if result.outcome is SendOutcome.SENT:
            return Outcome.delivered(attempt)
        if result.outcome is SendOutcome.REJECTED:
            return Outcome.reject(result.reason, attempt)
        return Outcome.retry(result.reason, attempt)


class DealerDeliveryStore:
    """The dealer deliveries as an `OutboxStore`: items are `DueDelivery`s by dealer."""

    def __init__(self, db: Database, repository: DeliveryRepository) -> None:
        self._db = db
        self._repo = repository

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        lease: dt.timedelta,
        per_partition: int,
        busy: Mapping[str, int],
    ) -> list[OutboxItem[DueDelivery]]:
        due = await self._db.run(
            self._repo.claim_due,
            worker_id,
            utcnow(),
            lease,
            limit,
            per_dealer=per_partition,
            busy=dict(busy),
        )
        return [OutboxItem(d.delivery_id, d.dealer_id, d.attempts, d) for d in due]

    async def record(self, item: OutboxItem[Any], worker_id: str, settlement: Settlement) -> bool:
        due: DueDelivery = item.payload
        result = settlement.outcome.detail
        status_code, duration_ms = (
            (result.status_code, result.duration_ms)
            if isinstance(result, AttemptResult | EmailAttempt)
            else (0, 0)
        )
        state = settlement.state.value
        provider_id = ""
        if isinstance(result, EmailAttempt) and settlement.state is State.DELIVERED:
            # Handed to Mailgun (or, simulated, to no one): delivered only on its event.
            state = "simulated" if result.simulated else "accepted"
            provider_id = result.provider_id
        recorded = await self._db.run(
            self._repo.record,
            due,
            worker_id,
            now=utcnow(),
            state=state,
            status_code=status_code,
            error=settlement.outcome.error,
            duration_ms=duration_ms,
            next_attempt_at=settlement.next_attempt_at,
            provider_message_id=provider_id,
        )
        log.info(
            "delivery attempt",
            extra={
                "delivery_id": due.delivery_id,
                "dealer_id": due.dealer_id,
                "attempt": due.attempts + 1,
                "status_code": status_code,
                "state": state,
                "recorded": recorded,
            },
        )
        return recorded


def dealer_delivery_worker(
    db: Database,
    client: DealerCrmClient,
    *,
    max_attempts: int,
    backoff_base_seconds: float,
    backoff_max_seconds: float,
    poll_seconds: float,
    concurrency: int = 16,
    per_dealer: int | None = None,
    lease_seconds: float = 120.0,
    mailgun: MailgunClient | None = None,
    from_address: str = "",
    simulated_payloads: Callable[[Form], None] | None = None,
) -> OutboxWorker[DueDelivery]:
    """The outbox worker for dealer deliveries: at most `per_dealer` (default a quarter of
    `concurrency`, at least one) in flight to one dealer. `mailgun` (None: simulation mode)
    and `from_address` send the email channel's deliveries."""
    return OutboxWorker(
        DealerDeliveryStore(db, DeliveryRepository(db)),
        DealerDeliveryHandler(
            client, mailgun, from_address=from_address, simulated_payloads=simulated_payloads
        ),
        max_attempts=max_attempts,
        backoff_base_seconds=backoff_base_seconds,
        backoff_max_seconds=backoff_max_seconds,
        poll_seconds=poll_seconds,
        concurrency=concurrency,
        per_partition=per_dealer,
        lease_seconds=lease_seconds,
        name="dealer_delivery",
    )
