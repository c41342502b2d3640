"""The campaign dispatcher: claims a batch of due messages, renders its template once, and hands
it to Mailgun's batch sending (or records it in simulation mode), exactly once.

One Mailgun call carries one subject, text and HTML for up to 1,000 recipients, personalised only
by `%recipient.<name>%` substitution. So the pinned template version is rendered once per batch
(`CompiledTemplate.render_batch`, cached per template id and version) with placeholders where the
recipient's values go, and each recipient's values (`recipient_variables`: plain and HTML-escaped)
travel in `recipient-variables`. `validate_template` lets a template only print a recipient
variable as it is, which makes this exact: what each recipient gets equals
`CompiledTemplate.render` for them (the preview).

`run_once` is one batch:

1. `claim_batch` leases up to `batch_size` due messages of one running campaign.
2. Per recipient: a message whose lead is gone is failed (the lead may have been erased: its
   address is not mailed again); one in quiet hours on their wall clock (state and ZIP, else
   `default_time_zone`) goes back to the queue due when quiet hours end (`defer_messages`);
   one the template's subject does not fit is failed (`fail_messages`). The others get our
   message id as `ccl_message`, an unsubscribe link with a token signed for that message id,
   and their template values.
3. `mark_batch_sending` must answer True before the call (else the lease was lost: nothing is
   sent).
4. Mailgun's answer is recorded: SENT -> `record_batch_sent`; RETRY not sent -> queued again after
   the larger of `Retry-After` and an exponential back-off on the messages' attempts; RETRY or
   REJECTED that may have been accepted (a 5xx, a lost answer) -> `unknown`, never sent again
   until resolved through Mailgun's events; REJECTED not sent -> `failed`.

Without a client (no Mailgun key) the form `batch_form` would have sent is handed to
`simulated_payloads` (a callable; nothing is stored by default) and the messages become
`simulated`.

`run(stop)` loops `run_once` under a token bucket of `rate_per_second` messages, sweeps
expired `sending` leases each turn, and polls every `poll_seconds` when nothing is due. Its
`hooks` (the campaign lifecycle, `campaigns.CampaignLifecycle`) start scheduled campaigns that
fell due and complete drained ones each turn, and pause a campaign whose statistics call for it
after each batch.

The cross-campaign frequency cap (`frequency_cap`, default one marketing message per address per
24 hours; zero turns it off): each batch's addresses' last marketing sends are looked up in one
statement (`DripRepository.last_marketing_sends`, over the (to_email, sent_at) index), and a
recipient mailed within the cap goes back to the queue due when the cap lets it go
(`next_allowed`), like one in quiet hours. Two workers sending two campaigns' batches to the same
address at the same moment can both pass it: the cap is a rule about days, not a lock.

Personalised copy: with a `copywriter` (an OpenAI key configured) and a template that prints
`{{ opening_line }}`, each batch asks it for one opening line per recipient, sending only their
first name and vehicle, within `copy_deadline_seconds` for the whole batch; a recipient it did
not answer in time (or whose line it refused) gets the template engine's line
(`default_opening_line`). The messages it wrote record `copy_engine` `openai`.

Transactional mail: each turn first sends the adverse-action notices queued for declined
applicants (`storage.notices`), one Mailgun message each (text and HTML, rendered by
`server.domain.templates.adverse_action_notice` with the creditor and credit bureau of
`NoticeDetails`), under the same exactly-once rules as a batch (a batch of one). They ignore
quiet hours, the frequency cap and marketing unsubscribes, but never go to an address that bounced
hard or complained (failed, with the reason). Without `notices` (no details configured) they are
not sent.

Unknown batches (the call may have been accepted: a timeout, a 5xx, a worker that died during it)
are settled by Mailgun's webhook events when they come; without them (no webhook configured, or
a batch no event names), `resolve_unknown` (each `unknown_check_seconds` of the loop) asks
Mailgun's Events API about each batch unknown for `unknown_after`: an `accepted` event of the
batch (by tag, one of its recipients and `v:ccl_batch`) settles it as sent; none after
`unknown_grace` (Mailgun lists an accepted message within seconds, and keeps events for days)
queues it again, the only resend, and only of what Mailgun never took.

The company's details and links come from a `SenderDetails` (the services' `Sender` fits it):
agents do not import services.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from server.adapters.mailgun import Form, MailgunClient, MailgunLookupError, batch_form
from server.adapters.openai_copy import CopySubject
from server.domain.campaigns import (
    MARKETING_CAP,
    in_quiet_hours,
    next_allowed,
    next_send_time,
    sign_unsubscribe,
    time_zone_for,
)
from server.domain.clock import utcnow
from server.domain.email import (
    MAX_BATCH_RECIPIENTS,
    MailBatch,
    MailRecipient,
    PlainMessage,
    SendOutcome,
    SendResult,
    scrub_addresses,
)
from server.errors import FailedPreconditionError, InvalidArgumentError
from server.storage.campaigns import (
    CampaignRepository,
    ClaimedBatch,
    ClaimedMessage,
    TemplateRepository,
)
from server.storage.db import Database
from server.storage.drips import DripRepository
from server.storage.notices import ClaimedNotice, NoticeRepository

if TYPE_CHECKING:  # jinja2 loads with the templates module: on the first batch, not at import
    from server.domain.templates import BatchRendering, RecipientContext

__all__ = [
    "DEFAULT_TIME_ZONE",
    "DispatchReport",
    "EmailDispatcher",
    "NoticeDetails",
    "SenderDetails",
    "TurnHooks",
]

log = logging.getLogger(__name__)

# Where a recipient's state is unknown: the central zone is at most an hour off the contiguous
# states' others during the day, so a send at 08:00 there is 07:00 on the west coast at worst.
DEFAULT_TIME_ZONE = "America/Chicago"
LEAD_GONE = "the lead no longer exists"
# Mailgun's tag of the adverse-action notices (a campaign's batches carry the campaign id).
ADVERSE_ACTION_TAG = "adverse-action"


@dataclass(frozen=True)
class NoticeDetails:
    """Who an adverse-action notice names: the creditor (the company) and the consumer
    reporting agency whose report the decision used."""

    company_name: str
    company_address: str
    bureau_name: str
    bureau_address: str
    bureau_phone: str
    bureau_website: str = ""


class Copywriter(Protocol):
    """Writes personalised opening lines (`server.adapters.openai_copy.OpenAICopywriter`)."""

    async def opening_lines(
        self, subjects: Sequence[CopySubject], *, deadline_seconds: float
    ) -> dict[str, str]: ...


class TurnHooks(Protocol):
    """The campaign lifecycle's part of each turn (`campaigns.CampaignLifecycle`): start
    scheduled campaigns that fell due and complete drained ones before the batch; pause or
    complete the batch's campaign after it."""

    async def tick(self) -> None: ...

    async def after_batch(self, report: DispatchReport) -> None: ...


class SenderDetails(Protocol):
    """Who the footer names and where the links point (`server.services.campaigns.Sender`)."""

    @property
    def company_name(self) -> str: ...

    @property
    def company_address(self) -> str: ...

    def unsubscribe_url(self, token: str) -> str: ...

    def application_url(self, lead_id: str) -> str: ...


def recipient_context(
    sender: SenderDetails, message: ClaimedMessage, unsubscribe_token: str, opening_line: str = ""
) -> RecipientContext:
    """What a template renders for one recipient: their lead's fields, the sender's details,
    the links (the unsubscribe link signed for this message)."""
    from server.domain.templates import RecipientContext  # jinja2 loads with the templates

    return RecipientContext(
        first_name=message.first_name,
        vehicle_year=message.vehicle_year,
        vehicle_make=message.vehicle_make,
        vehicle_model=message.vehicle_model,
        dealer_name=message.dealer_name,
        application_url=sender.application_url(message.lead_id or ""),
        unsubscribe_url=sender.unsubscribe_url(unsubscribe_token),
        company_name=sender.company_name,
        company_address=sender.company_address,
        opening_line=opening_line,
    )


@dataclass(frozen=True)
class DispatchReport:
    """What one `run_once` did with the batch it claimed. `outcome` is `sent`, `simulated`,
    `retry`, `unknown`, `failed`, `lost` (the lease was gone before the call) or `none` (every
    recipient was deferred or failed before the call)."""

    batch_id: str
    campaign_id: str
    outcome: str
    recipients: int
    deferred: int = 0
    failed: int = 0
    reason: str = ""


class _TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `take(n)` waits until n are there (a
    batch larger than the burst waits for it and runs the bucket into debt)."""

    def __init__(self, rate: float, burst: float, monotonic: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = burst
        self._monotonic = monotonic
        self._tokens = burst
        self._at = monotonic()

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def wait_seconds(self, n: int) -> float:
        self._refill()
        need = min(float(n), self._burst) - self._tokens
        return max(0.0, need / self._rate)

    def spend(self, n: int) -> None:
        self._refill()
        self._tokens -= n


class EmailDispatcher:
    """Sends campaigns' queued messages in Mailgun batches (see the module docstring).
    `lease` must be longer than the client's timeout: a `sending` batch whose lease runs out
    becomes `unknown`."""

    def __init__(
        self,
        campaigns: CampaignRepository,
        templates: TemplateRepository,
        client: MailgunClient | None,
        sender: SenderDetails,
        unsubscribe_keys: Sequence[bytes],
        db: Database,
        *,
        from_address: str,
        clock: Callable[[], dt.datetime] = utcnow,
        worker_id: str = "email-dispatcher",
        lease: dt.timedelta = dt.timedelta(minutes=2),
        batch_size: int = MAX_BATCH_RECIPIENTS,
        rate_per_second: float = 100.0,
        poll_seconds: float = 1.0,
        retry_base_seconds: float = 30.0,
        retry_max_seconds: float = 3600.0,
        default_time_zone: str = DEFAULT_TIME_ZONE,
        quiet_hours: bool = True,
        unsubscribe_mailto: str = "",
        test_mode: bool = False,
        simulated_payloads: Callable[[Form], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        hooks: TurnHooks | None = None,
        frequency_cap: dt.timedelta = MARKETING_CAP,
        notices: NoticeDetails | None = None,
        copywriter: Copywriter | None = None,
        copy_deadline_seconds: float = 10.0,
        unknown_after: dt.timedelta = dt.timedelta(minutes=2),
        unknown_grace: dt.timedelta = dt.timedelta(hours=1),
        unknown_check_seconds: float = 60.0,
    ) -> None:
        if not unsubscribe_keys:
            raise ValueError("at least one unsubscribe key is needed")
        if not 1 <= batch_size <= MAX_BATCH_RECIPIENTS:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_RECIPIENTS}")
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self._campaigns = campaigns
        self._templates = templates
        self._client = client
        self._sender = sender
        self._keys = list(unsubscribe_keys)
        self._db = db
        self._from = from_address
        self._clock = clock
        self._worker_id = worker_id
        self._lease = lease
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._default_zone = default_time_zone
        self._quiet_hours = quiet_hours
        self._mailto = unsubscribe_mailto
        self._test_mode = test_mode
        self._simulated = simulated_payloads
        self.hooks = hooks
        self._cap = frequency_cap
        self._drips = DripRepository(db)
        self._notices = NoticeRepository(db)
        self._notice_details = notices
        self._copywriter = copywriter
        self._copy_deadline = copy_deadline_seconds
        self._unknown_after = unknown_after
        self._unknown_grace = unknown_grace
        self._unknown_check_seconds = unknown_check_seconds
        self._unknown_checked: float | None = None
        self._monotonic = monotonic
        self._bucket = _TokenBucket(
            rate_per_second, max(rate_per_second, float(batch_size)), monotonic
        )
        # (template id, version) -> its batch rendering; a version never changes once stored.
        self._renderings: dict[tuple[str, int], BatchRendering] = {}

    @property
    def simulating(self) -> bool:
        return self._client is None

    # --- one batch --------------------------------------------------------------------------

    async def run_once(self) -> DispatchReport | None:
        """Claims, prepares, sends and records one batch; None when nothing is due."""
        now = self._clock()
        batch = await self._db.run(
            self._campaigns.claim_batch, self._worker_id, now, self._lease, self._batch_size
        )
        if batch is None:
            return None
        try:
            rendering = await self._rendering(batch)
        except FailedPreconditionError as e:
            return await self._fail_all(batch, e.message)
        last_sends: dict[str, dt.datetime] = {}
        if self._cap > dt.timedelta(0):
            last_sends = await self._db.run(
                self._drips.last_marketing_sends,
                [m.address for m in batch.messages],
                now - self._cap,
            )
        lines = await self._opening_lines(batch, rendering)
        # Two HMACs and an escape per recipient: a thousand of them off the loop.
        recipients, deferred, failed = await asyncio.to_thread(
            self._recipients, batch, rendering, now, last_sends, lines
        )
        if deferred:
            await self._db.run(self._campaigns.defer_messages, batch.batch_id, deferred, now)
        for reason, ids in failed.items():
            await self._db.run(self._campaigns.fail_messages, batch.batch_id, ids, reason, now)
        n_failed = sum(len(ids) for ids in failed.values())

        def report(outcome: str, reason: str = "") -> DispatchReport:
            return DispatchReport(
                batch.batch_id,
                batch.campaign_id,
                outcome,
                len(recipients),
                len(deferred),
                n_failed,
                reason,
            )

        if not recipients:
            return report("none")
        mail = MailBatch(
            batch_id=batch.batch_id,
            sender=self._from,
            subject=rendering.subject,
            recipients=recipients,
            text=rendering.text,
            html=rendering.html,
            tag=batch.campaign_id,
            unsubscribe_mailto=self._mailto,
            test_mode=self._test_mode,
        )
        try:
            form = batch_form(mail)  # what would be sent; refused before anything is marked
        except ValueError as e:
            reason = scrub_addresses(str(e))
            ids = [r.message_id for r in recipients]
            await self._db.run(self._campaigns.fail_messages, batch.batch_id, ids, reason, now)
            return DispatchReport(
                batch.batch_id, batch.campaign_id, "failed", 0, len(deferred), n_failed + len(ids)
            )
        marked = await self._db.run(
            lambda: self._campaigns.mark_batch_sending(
                batch.batch_id,
                self._clock(),
                self._lease,
                len(recipients),
                written_by_openai=[r.message_id for r in recipients if r.message_id in lines],
            )
        )
        if not marked:
            log.warning("email batch %s lost its lease before sending", batch.batch_id)
            return report("lost")
        if self._client is None:
            if self._simulated is not None:
                self._simulated(form)
            await self._db.run(
                self._campaigns.record_batch_simulated, batch.batch_id, self._clock()
            )
            return report("simulated")
        try:
            result = await self._client.send_batch(mail)
        except Exception as e:  # an unexpected failure mid-call: it may have gone out
            log.exception("email batch %s: the send failed unexpectedly", batch.batch_id)
            result = SendResult(SendOutcome.RETRY, reason=type(e).__name__, may_have_been_sent=True)
        return await self._record(batch, result, report)

    async def _record(
        self,
        batch: ClaimedBatch,
        result: SendResult,
        report: Callable[[str, str], DispatchReport],
    ) -> DispatchReport:
        attempts = max((m.attempts for m in batch.messages), default=0)
        return report(*await self._settle(batch.batch_id, attempts, result))

    async def _settle(self, batch_id: str, attempts: int, result: SendResult) -> tuple[str, str]:
        """Records Mailgun's answer for a batch (its messages tried `attempts` times before):
        (outcome, reason) with outcome `sent`, `unknown`, `retry` (queued again after the larger
        of `Retry-After` and an exponential back-off) or `failed`."""
        now = self._clock()
        campaigns = self._campaigns
        if result.outcome is SendOutcome.SENT:
            await self._db.run(campaigns.record_batch_sent, batch_id, result.provider_id, now)
            return "sent", ""
        reason = result.reason or f"HTTP {result.status_code}"
        if result.may_have_been_sent:
            await self._db.run(campaigns.record_batch_unknown, batch_id, reason, now)
            return "unknown", reason
        if result.outcome is SendOutcome.RETRY:
            delay = min(self._retry_max, self._retry_base * 2 ** min(attempts, 30))
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, self._retry_max))
            due = now + dt.timedelta(seconds=delay)
            await self._db.run(campaigns.release_batch_for_retry, batch_id, due, reason, now)
            return "retry", reason
        await self._db.run(campaigns.record_batch_failed, batch_id, reason, now)
        return "failed", reason

    async def _fail_all(self, batch: ClaimedBatch, reason: str) -> DispatchReport:
        ids = [m.message_id for m in batch.messages]
        await self._db.run(
            self._campaigns.fail_messages, batch.batch_id, ids, reason, self._clock()
        )
        return DispatchReport(batch.batch_id, batch.campaign_id, "failed", 0, 0, len(ids), reason)

    async def _rendering(self, batch: ClaimedBatch) -> BatchRendering:
        if batch.template_id is None:
            raise FailedPreconditionError(
                "the campaign has no template", reason="TEMPLATE_RENDER_FAILED"
            )
        key = (batch.template_id, batch.template_version)
        found = self._renderings.get(key)
        if found is None:
            record = await self._db.run(self._templates.get, *key)
            company, address = self._sender.company_name, self._sender.company_address

            def render() -> BatchRendering:
                from server.domain.templates import validate_template

                # Checked again, not only compiled: a version saved before the batch-send rules
                # (recipient variables only printed) would render wrong placeholders.
                try:
                    compiled = validate_template(record.spec)
                except InvalidArgumentError as e:
                    problems = "; ".join(f"{v.field} {v.description}" for v in e.violations)
                    raise FailedPreconditionError(
                        f"the template is not valid for batch sending: {problems}",
                        reason="TEMPLATE_RENDER_FAILED",
                    ) from e
                return compiled.render_batch(company, address)

            found = await asyncio.to_thread(render)  # up to a second of CPU: off the loop
            self._renderings[key] = found
        return found

    def _recipients(
        self,
        batch: ClaimedBatch,
        rendering: BatchRendering,
        now: dt.datetime,
        last_sends: dict[str, dt.datetime],
        lines: dict[str, str],
    ) -> tuple[list[MailRecipient], list[tuple[str, dt.datetime]], dict[str, list[str]]]:
        from server.domain.templates import recipient_variables

        recipients: list[MailRecipient] = []
        deferred: list[tuple[str, dt.datetime]] = []
        failed: dict[str, list[str]] = {}
        capped = self._cap > dt.timedelta(0)
        for message in batch.messages:
            if message.lead_id is None:
                failed.setdefault(LEAD_GONE, []).append(message.message_id)
                continue
            if capped:
                allowed = next_allowed(last_sends.get(message.address), now, self._cap)
                if allowed > now:
                    deferred.append((message.message_id, allowed))
                    continue
            if self._quiet_hours:
                zone = time_zone_for(message.state, message.zip_code) or self._default_zone
                if in_quiet_hours(now, zone):
                    deferred.append((message.message_id, next_send_time(now, zone)))
                    continue
            variables = recipient_variables(
                self._context(message, lines.get(message.message_id, ""))
            )
            try:
                rendering.subject_for(variables)
            except FailedPreconditionError as e:
                failed.setdefault(e.message, []).append(message.message_id)
                continue
            recipients.append(
                MailRecipient(
                    address=message.address,
                    message_id=message.message_id,
                    unsubscribe_url=variables["unsubscribe_url"],
                    variables=rendering.used(variables),
                )
            )
            if capped:
                last_sends[message.address] = now  # a second one in this batch waits its turn
        return recipients, deferred, failed

    def _context(self, message: ClaimedMessage, opening_line: str = "") -> RecipientContext:
        token = sign_unsubscribe(self._keys, message.message_id, message.address)
        return recipient_context(self._sender, message, token, opening_line)

    async def _opening_lines(
        self, batch: ClaimedBatch, rendering: BatchRendering
    ) -> dict[str, str]:
        """The copywriter's lines for the batch (message id -> line), when there is one and the
        template prints the opening line; {} otherwise, or when it fails."""
        if self._copywriter is None:
            return {}
        from server.domain.templates import HTML_SUFFIX

        if not {"opening_line", "opening_line" + HTML_SUFFIX} & rendering.placeholders:
            return {}
        subjects = [
            CopySubject(
                m.message_id,
                m.first_name,
                " ".join(
                    p for p in (str(m.vehicle_year or ""), m.vehicle_make, m.vehicle_model) if p
                ),
            )
            for m in batch.messages
            if m.lead_id is not None
        ]
        try:
            return await self._copywriter.opening_lines(
                subjects, deadline_seconds=self._copy_deadline
            )
        except Exception as e:  # the template's line is the fallback, whatever went wrong
            log.warning("opening lines failed (%s): the template's are used", type(e).__name__)
            return {}

    # --- transactional notices ----------------------------------------------------------------

    async def send_notices(self, limit: int = 50) -> list[str]:
        """Sends up to `limit` due adverse-action notices, one at a time; each one's outcome
        (`sent`, `simulated`, `retry`, `unknown`, `failed`, `lost`)."""
        if self._notice_details is None:
            return []
        outcomes = []
        for _ in range(limit):
            notice = await self._db.run(
                self._notices.claim_notice, self._worker_id, self._clock(), self._lease
            )
            if notice is None:
                break
            outcomes.append(await self._send_notice(notice, self._notice_details))
        return outcomes

    async def _send_notice(self, notice: ClaimedNotice, details: NoticeDetails) -> str:
        now = self._clock()
        campaigns, batch_id = self._campaigns, notice.batch_id
        refusal = ""
        if notice.blocked_by:
            refusal = f"the address is suppressed ({notice.blocked_by})"
        elif notice.lead_id is None:
            refusal = LEAD_GONE
        elif notice.decision != "declined" or notice.decided_at is None:
            refusal = "the lead's credit decision is no longer a decline"
        if refusal:
            await self._db.run(campaigns.fail_messages, batch_id, [notice.message_id], refusal, now)
            return "failed"

        def render() -> PlainMessage:
            from server.domain.templates import (
                CreditBureau,
                Creditor,
                adverse_action_notice,
                decline_reasons,
            )

            assert notice.decided_at is not None
            email = adverse_action_notice(
                first_name=notice.first_name,
                creditor=Creditor(details.company_name, details.company_address),
                bureau=CreditBureau(
                    details.bureau_name,
                    details.bureau_address,
                    details.bureau_phone,
                    details.bureau_website,
                ),
                reasons=decline_reasons(notice.score_band),
                decided_on=notice.decided_at.date(),
            )
            return PlainMessage(
                sender=self._from,
                to=notice.address,
                subject=email.subject,
                text=email.text,
                html=email.html,
                message_id=notice.message_id,
                tag=ADVERSE_ACTION_TAG,
                test_mode=self._test_mode,
            )

        message = await asyncio.to_thread(render)
        if not await self._db.run(campaigns.mark_batch_sending, batch_id, now, self._lease, 1):
            return "lost"
        if self._client is None:
            if self._simulated is not None:
                from server.adapters.mailgun import message_form

                self._simulated(message_form(message))
            await self._db.run(campaigns.record_batch_simulated, batch_id, self._clock())
            return "simulated"
        try:
            result = await self._client.send_message(message)
        except Exception as e:  # an unexpected failure mid-call: it may have gone out
            log.exception("adverse-action notice %s: the send failed", notice.message_id)
            result = SendResult(SendOutcome.RETRY, reason=type(e).__name__, may_have_been_sent=True)
        outcome, _ = await self._settle(batch_id, notice.attempts, result)
        return outcome

    # --- unknown batches ------------------------------------------------------------------

    async def resolve_unknown(self, limit: int = 20) -> dict[str, str]:
        """Looks up Mailgun's events for up to `limit` batches unknown for `unknown_after` (see
        the module docstring): batch id -> `sent`, `requeued` or `waiting` (no event yet, or
        the events could not be read)."""
        if self._client is None:
            return {}
        now = self._clock()
        batches = await self._db.run(
            self._campaigns.unknown_to_resolve, now - self._unknown_after, limit
        )
        out: dict[str, str] = {}
        for batch in batches:
            since = batch.since.replace(tzinfo=dt.UTC).timestamp()
            try:
                provider_id = await self._client.accepted_id(
                    batch_id=batch.batch_id,
                    recipient=batch.address,
                    tag=batch.campaign_id or ADVERSE_ACTION_TAG,
                    # The call started at most a lease before it was recorded unknown.
                    begin=since - self._lease.total_seconds() - 60,
                    end=now.replace(tzinfo=dt.UTC).timestamp() + 60,
                )
            except MailgunLookupError as e:
                log.warning("unknown batch %s: Mailgun's events unreadable (%s)", batch.batch_id, e)
                out[batch.batch_id] = "waiting"
                continue
            if provider_id is not None:
                await self._db.run(
                    self._campaigns.resolve_unknown_batch, batch.batch_id, True, provider_id, now
                )
                out[batch.batch_id] = "sent"
            elif batch.since <= now - self._unknown_grace:
                await self._db.run(
                    self._campaigns.resolve_unknown_batch, batch.batch_id, False, "", now
                )
                out[batch.batch_id] = "requeued"
            else:
                out[batch.batch_id] = "waiting"
        return out

    # --- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Sends until `stop` is set: at most `rate_per_second` messages a second on average,
        a poll every `poll_seconds` while nothing is due. A failing turn is logged and retried
        after a poll interval."""
        while not stop.is_set():
            wait = self._bucket.wait_seconds(self._batch_size)
            if wait > 0 and await _stopped(stop, wait):
                return
            try:
                await self._db.run(self._campaigns.expire_sending, self._clock())
                at = self._monotonic()
                if (
                    self._unknown_checked is None
                    or at - self._unknown_checked >= self._unknown_check_seconds
                ):
                    self._unknown_checked = at
                    await self.resolve_unknown()
                await self.send_notices()
                if self.hooks is not None:
                    await self.hooks.tick()
                report = await self.run_once()
                if report is not None and self.hooks is not None:
                    await self.hooks.after_batch(report)
            except Exception:
                log.exception("the email dispatcher's turn failed")
                report = None
                if await _stopped(stop, self._poll_seconds):
                    return
                continue
            if report is None:
                if await _stopped(stop, self._poll_seconds):
                    return
                continue
            self._bucket.spend(report.recipients)


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    """Waits `seconds` or until `stop` is set; True if it was set."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
