"""Email campaigns' storage: versioned templates, suppressions, Mailgun webhook tokens, campaigns,
their recipient snapshot, the exactly-once batch dispatch of their messages, and Mailgun events.

Set-based throughout: materialising a campaign's recipients is one INSERT ... SELECT whatever
the audience's size; claiming a batch of up to 1,000 messages, recording its result and counting
many campaigns' messages take a handful of statements each.

Messages are an outbox table with the generic lease columns (`server.storage.outbox`; why
the claim is not `outbox.lease_due` is in `claim_batch`). A message's life:

    queued ──claim──▶ (leased, batch_id) ──mark_batch_sending──▶ sending
    sending ──▶ sent (Mailgun's id) | unknown (may have been accepted) | queued again | failed
    unknown ──events or resolve_unknown_batch──▶ sent | queued again
    sent ──Mailgun's permanent failure──▶ bounced
    (leased, batch_id) ──defer_messages──▶ queued, due later | ──fail_messages──▶ failed

`suppressed` messages (the address was suppressed when the campaign started) and `simulated`
ones (no Mailgun key) are final too. A message queued again keeps its `attempts` and
`last_error`.

A claimed batch whose lease expires before it is marked `sending` was never handed to Mailgun
and is claimed again (under a new batch id). A `sending` batch whose lease expires (the worker
died during or after the call) becomes `unknown`, never queued again by itself: Mailgun may have
accepted it, and it is resolved (its events name our batch and message ids) before any resend.
Results are recorded only for the batch id the rows still carry, so a worker that lost its lease
(the rows were claimed again into another batch) changes nothing.

Abandoned applications, for the audience's `abandoned_after`/`abandoned_before`: a lead whose
application stopped before it reached a dealer, i.e. whose status is `received` (the pipeline
never finished), `prequalified` (approved, not yet routed), `needs_review` or `unrouted`;
`abandoned_at` is the lead's `updated_at` (its last move). Converted leads (excluded unless the
audience says otherwise): status `sold`, the only status `server.domain.lead_status` says
means the applicant bought.

Email consent: a lead may be mailed when its `tcpa` consent row is granted. The form's TCPA
consent covers calls, texts and email alike; there is no separate email consent kind.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import peewee as pw

from server.domain.campaigns import (
    Audience,
    CampaignState,
    CampaignStats,
    SuppressionReason,
    normalize_address,
)
from server.domain.email import MAX_BATCH_RECIPIENTS, MailgunEvent, MailgunEventType
from server.domain.leads import LeadStatus, Page, PageResult

if TYPE_CHECKING:  # jinja2 loads with the templates module: only when a template is used
    from server.domain.templates import TemplateSpec
from server.errors import AlreadyExistsError, NotFoundError
from server.storage import models as m
from server.storage.db import Database
from server.storage.pagination import decode_token, encode_token, page_size

DEFAULT_PAGE_SIZE = 50
R = TypeVar("R")

# --- message states ------------------------------------------------------------------------------

QUEUED = "queued"
SENDING = "sending"
SENT = "sent"
UNKNOWN = "unknown"
FAILED = "failed"
BOUNCED = "bounced"
SUPPRESSED = "suppressed"
SIMULATED = "simulated"
QUEUED_STATES = (QUEUED,)
MESSAGE_STATES = (QUEUED, SENDING, SENT, UNKNOWN, FAILED, BOUNCED, SUPPRESSED, SIMULATED)

# Campaign states in which its messages are claimed.
DISPATCH_STATES = (CampaignState.RUNNING.value,)
# See the module docstring.
ABANDONED_STATUSES = (
    LeadStatus.RECEIVED.value,
    LeadStatus.PREQUALIFIED.value,
    LeadStatus.NEEDS_REVIEW.value,
    LeadStatus.UNROUTED.value,
)
CONVERTED_STATUSES = (LeadStatus.SOLD.value,)
EMAIL_CONSENT_KIND = "tcpa"


def _not_found(what: str) -> NotFoundError:
    return NotFoundError(f"{what.lower()} not found", reason=f"{what.upper()}_NOT_FOUND")


def _new_id() -> str:
    return str(uuid.uuid4())


# --- templates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRecord:
    """One version of a template (`version`), and which version is current."""

    template_id: str
    name: str
    version: int
    current_version: int
    subject: str
    html_body: str
    text_body: str
    created_at: dt.datetime  # the template's
    version_created_at: dt.datetime

    @property
    def spec(self) -> TemplateSpec:
        from server.domain.templates import TemplateSpec

        return TemplateSpec(
            name=self.name, subject=self.subject, html=self.html_body, text=self.text_body
        )


class TemplateRepository:
    """Templates and their versions. A version is never changed; `add_version` makes a new one
    current. Validate specs (`server.domain.templates.validate_template`) before storing them."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, spec: TemplateSpec, now: dt.datetime) -> TemplateRecord:
        """Stores a new template as version 1."""
        template_id = _new_id()
        with self._db.transaction():
            m.EmailTemplate.insert(
                id=template_id,
                name=spec.name,
                subject=spec.subject,
                html_body=spec.html,
                text_body=spec.text,
                current_version=1,
                created_at=now,
                updated_at=now,
            ).execute()
            self._insert_version(template_id, 1, spec, now)
        return self.get(template_id)

    def add_version(self, template_id: str, spec: TemplateSpec, now: dt.datetime) -> TemplateRecord:
        """Stores `spec` as the template's next version and makes it current (the name may
        change with it). TEMPLATE_NOT_FOUND if there is no such template."""
        with self._db.transaction():
            t = m.EmailTemplate
            updated = (
                t.update(
                    current_version=t.current_version + 1,
                    name=spec.name,
                    subject=spec.subject,
                    html_body=spec.html,
                    text_body=spec.text,
                    updated_at=now,
                )
                .where(t.id == template_id)
                .execute()
            )
            if not updated:
                raise _not_found("template")
            # The row is write-locked by the update: the version read here is ours.
            version = t.select(t.current_version).where(t.id == template_id).scalar()
            self._insert_version(template_id, int(version), spec, now)
        return self.get(template_id, version)

    @staticmethod
    def _insert_version(
        template_id: str, version: int, spec: TemplateSpec, now: dt.datetime
    ) -> None:
        m.EmailTemplateVersion.insert(
            template=template_id,
            version=version,
            subject=spec.subject,
            html_body=spec.html,
            text_body=spec.text,
            created_at=now,
        ).execute()

    @staticmethod
    def get(template_id: str, version: int | None = None) -> TemplateRecord:
        """A version of a template (None: the current one); TEMPLATE_NOT_FOUND otherwise."""
        t, v = m.EmailTemplate, m.EmailTemplateVersion
        version_of = v.version == (t.current_version if version is None else version)
        row: Any = (
            v.select(
                t.id,
                t.name,
                t.current_version,
                t.created_at.alias("template_created_at"),
                v.version,
                v.subject,
                v.html_body,
                v.text_body,
                v.created_at,
            )
            .join(t, on=(v.template == t.id))
            .where((t.id == template_id) & version_of)
            .dicts()
            .first()
        )
        if row is None:
            raise _not_found("template")
        return _template(row)

    @staticmethod
    def list(page: Page) -> PageResult[TemplateRecord]:
        """Templates (their current versions), newest first, a page at a time."""
        t, v = m.EmailTemplate, m.EmailTemplateVersion
        query = v.select(
            t.id,
            t.name,
            t.current_version,
            t.created_at.alias("template_created_at"),
            v.version,
            v.subject,
            v.html_body,
            v.text_body,
            v.created_at,
        ).join(t, on=((v.template == t.id) & (v.version == t.current_version)))
        return _newest_first(
            query,
            t,
            "email_templates",
            page,
            _template,
            lambda r: (r.created_at, r.template_id),
            dicts=True,
        )


def _template(row: Mapping[str, Any]) -> TemplateRecord:
    return TemplateRecord(
        template_id=row["id"],
        name=row["name"],
        version=row["version"],
        current_version=row["current_version"],
        subject=row["subject"],
        html_body=row["html_body"],
        text_body=row["text_body"],
        created_at=row["template_created_at"],
        version_created_at=row["created_at"],
    )


def _newest_first(
    query: Any,
    model: Any,
    kind: str,
    page: Page,
    record: Callable[[Any], R],
    position: Callable[[R], tuple[dt.datetime, str | int]],
    *,
    dicts: bool = False,
) -> PageResult[R]:
    """A page of `query`'s rows, newest `model.created_at` first (ties by id), as records;
    keyset-paginated with page tokens of `kind` holding the last record's `position`."""
    size = page_size(page.size, DEFAULT_PAGE_SIZE)
    created, key = model.created_at, model.id
    if page.token:
        c = decode_token(kind, page.token)
        query = query.where((created < c["t"]) | ((created == c["t"]) & (key < c["i"])))
    query = query.order_by(created.desc(), key.desc()).limit(size + 1)
    rows = builtins.list(query.dicts() if dicts else query)
    items = [record(r) for r in rows[:size]]
    token = ""
    if len(rows) > size:
        created_at, last_id = position(items[-1])
        token = encode_token(kind, {"t": created_at.isoformat(), "i": last_id})
    return PageResult(items=items, next_page_token=token)


# --- suppressions and webhook tokens ------------------------------------------------------------


@dataclass(frozen=True)
class SuppressionRecord:
    suppression_id: int
    address: str  # normalised
    reason: str
    source: str  # webhook, unsubscribe or admin
    created_at: dt.datetime
    campaign_id: str = ""
    message_id: str = ""


@dataclass(frozen=True)
class NewSuppression:
    address: str
    reason: SuppressionReason
    source: str  # webhook, unsubscribe or admin
    campaign_id: str = ""
    message_id: str = ""


def suppress(
    db: Database,
    entries: Iterable[NewSuppression | tuple[str, SuppressionReason, str]],
    now: dt.datetime,
) -> int:
    """Suppresses addresses (normalised here) in one statement; an address already suppressed
    keeps its first reason. The number newly suppressed. In the caller's transaction, if any."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in entries:
        e = entry if isinstance(entry, NewSuppression) else NewSuppression(*entry)
        address = normalize_address(e.address)
        if address and address not in rows:
            rows[address] = {
                "email_normalized": address,
                "reason": SuppressionReason(e.reason).value,
                "source": e.source,
                "campaign_ref": e.campaign_id,
                "message_ref": e.message_id,
                "created_at": now,
            }
    if not rows:
        return 0
    query = m.Suppression.insert_many(list(rows.values())).on_conflict_ignore()
    if db.backend == "postgresql":
        query = query.returning(m.Suppression.id)
        return len(list(query.execute()))
    return int(cast(Any, db.db).execute(query).rowcount)


class SuppressionRepository:
    """Addresses that get no marketing mail (and no mail at all when hard-bounced or complained
    about: see `server.domain.campaigns`). Addresses are normalised here."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def suppress(
        self,
        entries: Iterable[NewSuppression | tuple[str, SuppressionReason, str]],
        now: dt.datetime,
    ) -> int:
        """`suppress` in a transaction of its own: the number of addresses newly suppressed."""
        with self._db.transaction():
            return suppress(self._db, entries, now)

    @staticmethod
    def suppressed_among(addresses: Iterable[str]) -> dict[str, str]:
        """{normalised address: reason} for those of `addresses` that are suppressed: one
        statement."""
        wanted = sorted({normalize_address(a) for a in addresses} - {""})
        if not wanted:
            return {}
        s = m.Suppression
        rows = s.select(s.email_normalized, s.reason).where(s.email_normalized.in_(wanted))
        return {r.email_normalized: r.reason for r in rows}

    @staticmethod
    def list(page: Page) -> PageResult[SuppressionRecord]:
        """Suppressions, newest first, a page at a time."""
        return _newest_first(
            m.Suppression.select(),
            m.Suppression,
            "suppressions",
            page,
            _suppression,
            lambda r: (r.created_at, r.suppression_id),
        )

    def remove(self, address: str) -> bool:
        """Lifts an address's suppression (an operator's decision); False if it had none."""
        with self._db.transaction():
            s = m.Suppression
            return bool(
                s.delete().where(s.email_normalized == normalize_address(address)).execute()
            )


def _suppression(r: m.Suppression) -> SuppressionRecord:
    return SuppressionRecord(
        suppression_id=r.id,
        address=r.email_normalized,
        reason=r.reason,
        source=r.source,
        created_at=r.created_at,
        campaign_id=r.campaign_ref,
        message_id=r.message_ref,
    )


def get_suppression(suppression_id: int) -> SuppressionRecord:
    """One suppression by id; SUPPRESSION_NOT_FOUND otherwise."""
    row = m.Suppression.get_or_none(m.Suppression.id == suppression_id)
    if row is None:
        raise _not_found("suppression")
    return _suppression(row)


def suppression_of(address: str) -> SuppressionRecord | None:
    """The suppression of an address (normalised here), if it has one."""
    s = m.Suppression
    row = s.get_or_none(s.email_normalized == normalize_address(address))
    return None if row is None else _suppression(row)


def delete_suppression(suppression_id: int) -> bool:
    """Deletes one suppression; False if there was none. In the caller's transaction."""
    s = m.Suppression
    return bool(s.delete().where(s.id == suppression_id).execute())


def message_recipient(message_id: str) -> tuple[str, str] | None:
    """(normalised address, campaign id or "") of one of our messages, or None: what an
    unsubscribe token's recipient id (a message id) is checked against."""
    e = m.EmailMessage
    row = e.select(e.to_email, e.campaign).where(e.id == message_id[:36]).first()
    if row is None:
        return None
    return row.to_email, row.campaign_id or ""


def record_unsubscribe(
    db: Database, message_id: str, address: str, campaign_id: str, now: dt.datetime
) -> bool:
    """Suppresses `address` (reason unsubscribed, source unsubscribe) and marks the message
    unsubscribed (once, so the campaign counts it). True if the address was newly suppressed.
    In the caller's transaction, if any."""
    e = m.EmailMessage
    e.update(unsubscribed_at=now, updated_at=now).where(
        (e.id == message_id[:36]) & e.unsubscribed_at.is_null()
    ).execute()
    entry = NewSuppression(
        address, SuppressionReason.UNSUBSCRIBED, "unsubscribe", campaign_id, message_id[:36]
    )
    return bool(suppress(db, [entry], now))


def remember_webhook_token(db: Database, token: str, now: dt.datetime) -> bool:
    """True the first time `token` is seen (it is recorded), False for a replay: one unique
    insert, so two requests racing with the same token see one True. In the caller's
    transaction, if any (commit it before acknowledging the webhook)."""
    t = m.MailgunWebhookToken
    query = t.insert(token=token, received_at=now).on_conflict_ignore()
    if db.backend == "postgresql":
        return bool(list(query.returning(t.token).execute()))
    return bool(cast(Any, db.db).execute(query).rowcount)


def prune_webhook_tokens(older_than: dt.datetime) -> int:
    """Forgets tokens received before `older_than` (keep at least the webhook's max age and
    future skew: older requests are refused as stale anyway). The number forgotten."""
    t = m.MailgunWebhookToken
    return int(t.delete().where(t.received_at < older_than).execute())


# --- campaigns -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: str
    name: str
    kind: str
    template_id: str | None
    template_version: int
    audience_json: str
    steps_json: str
    state: str
    paused_reason: str
    send_at: dt.datetime | None
    recipients: int
    suppressed: int
    consecutive_failures: int
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None
    # True when `create` answered a retried request with the campaign its first one created.
    replay: bool = False


@dataclass(frozen=True)
class MessageCounts:
    """A campaign's messages by state, and how many had each event."""

    by_state: Mapping[str, int] = field(default_factory=dict)
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0

    def count(self, *states: str) -> int:
        return sum(self.by_state.get(s, 0) for s in states)

    @property
    def recipients(self) -> int:
        """Every message but those suppressed when the campaign was materialised."""
        return sum(self.by_state.values()) - self.count(SUPPRESSED)

    def as_stats(self, consecutive_failures: int = 0) -> CampaignStats:
        """The domain's stats (its auto-pause rules read them). `sent` counts every message
        Mailgun accepted (delivered, bounced ones included); simulated ones were not sent (the
        contract's `sent_count` and `simulated_count`)."""
        return CampaignStats(
            queued=self.count(*QUEUED_STATES),
            sent=self.count(SENT, BOUNCED),
            delivered=self.delivered,
            opened=self.opened,
            clicked=self.clicked,
            bounced=self.bounced,
            complained=self.complained,
            unsubscribed=self.unsubscribed,
            suppressed=self.count(SUPPRESSED),
            failed=self.count(FAILED),
            consecutive_failures=consecutive_failures,
        )


def _campaign(r: m.Campaign, replay: bool = False) -> CampaignRecord:
    return CampaignRecord(
        campaign_id=r.id,
        name=r.name,
        kind=r.kind,
        template_id=r.template_id,
        template_version=r.template_version,
        audience_json=r.audience_json,
        steps_json=r.steps_json,
        state=r.state,
        paused_reason=r.paused_reason,
        send_at=r.send_at,
        recipients=r.recipients,
        suppressed=r.suppressed_count,
        consecutive_failures=r.consecutive_failures,
        created_at=r.created_at,
        updated_at=r.updated_at,
        sent_at=r.sent_at,
        replay=replay,
    )


def _replayed(row: m.Campaign, request_hash: str) -> CampaignRecord:
    if row.request_hash != request_hash:
        raise AlreadyExistsError(
            "this idempotency key was already used with a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
        )
    return _campaign(row, replay=True)


class CampaignRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- campaigns ------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        kind: str,
        template_id: str | None,
        template_version: int,
        audience_json: str,
        steps_json: str,
        state: CampaignState | str,
        now: dt.datetime,
        send_at: dt.datetime | None = None,
        idempotency_scope: str = "",
        idempotency_key: str = "",
        request_hash: str = "",
    ) -> CampaignRecord:
        """Stores a campaign. With an idempotency key, a key seen before in `scope` returns the
        campaign it created (`replay=True`), or IDEMPOTENCY_KEY_REUSED (ALREADY_EXISTS) when the
        request differs (`request_hash`). TEMPLATE_NOT_FOUND when the template version is not
        stored."""
        keyed = bool(idempotency_key)
        c = m.Campaign
        if keyed:
            earlier = c.get_or_none(
                (c.idempotency_scope == idempotency_scope) & (c.idempotency_key == idempotency_key)
            )
            if earlier is not None:
                return _replayed(earlier, request_hash)
        campaign_id = _new_id()
        try:
            with self._db.transaction():
                if template_id is not None:
                    v = m.EmailTemplateVersion
                    found = (
                        v.select(v.id)
                        .where((v.template == template_id) & (v.version == template_version))
                        .exists()
                    )
                    if not found:
                        raise _not_found("template")
                c.insert(
                    id=campaign_id,
                    name=name,
                    kind=kind,
                    template=template_id,
                    template_version=template_version,
                    audience_json=audience_json,
                    steps_json=steps_json,
                    state=CampaignState(state).value,
                    send_at=send_at,
                    idempotency_scope=idempotency_scope if keyed else None,
                    idempotency_key=idempotency_key if keyed else None,
                    request_hash=request_hash,
                    created_at=now,
                    updated_at=now,
                ).execute()
        except pw.IntegrityError:
            # A concurrent request with the same key won the race: answer with its campaign.
            if keyed:
                earlier = c.get_or_none(
                    (c.idempotency_scope == idempotency_scope)
                    & (c.idempotency_key == idempotency_key)
                )
                if earlier is not None:
                    return _replayed(earlier, request_hash)
            raise
        return self.get(campaign_id)

    @staticmethod
    def get(campaign_id: str) -> CampaignRecord:
        row = m.Campaign.get_or_none(m.Campaign.id == campaign_id)
        if row is None:
            raise _not_found("campaign")
        return _campaign(row)

    @staticmethod
    def list(page: Page) -> PageResult[CampaignRecord]:
        """Campaigns, newest first, a page at a time."""
        return _newest_first(
            m.Campaign.select(),
            m.Campaign,
            "campaigns",
            page,
            _campaign,
            lambda r: (r.created_at, r.campaign_id),
        )

    def transition(
        self,
        campaign_id: str,
        allowed_from: Iterable[CampaignState | str],
        to_state: CampaignState | str,
        now: dt.datetime,
        reason: str = "",
    ) -> bool:
        """Moves a campaign to `to_state` if it is in one of `allowed_from` (one conditional
        UPDATE; the domain's `ACTIONS` say which): False when it was not (or does not exist).
        `reason` is kept as the paused reason (cleared by any other move); completing sets
        `sent_at`."""
        target = CampaignState(to_state)
        c = m.Campaign
        values: dict[Any, Any] = {
            c.state: target.value,
            c.updated_at: now,
            c.paused_reason: reason if target is CampaignState.PAUSED else "",
        }
        if target is CampaignState.COMPLETED:
            values[c.sent_at] = now
        if target is CampaignState.RUNNING:
            values[c.consecutive_failures] = 0
            values[c.started_at] = pw.fn.COALESCE(c.started_at, now)
        states = [CampaignState(s).value for s in allowed_from]
        with self._db.transaction():
            return bool(
                c.update(values).where((c.id == campaign_id) & c.state.in_(states)).execute()
            )

    def start_draft(
        self,
        campaign_id: str,
        to_state: CampaignState | str,
        now: dt.datetime,
        *,
        idempotency_scope: str = "",
        idempotency_key: str = "",
        request_hash: str = "",
    ) -> tuple[CampaignRecord | None, bool]:
        """BulkSend of an existing campaign: a draft moves to `to_state` (draft or scheduled)
        and takes the idempotency key, in one conditional UPDATE. Returns (campaign, replay):
        a key seen before in `scope` answers with its campaign (`replay`, or
        IDEMPOTENCY_KEY_REUSED when the request differs); (None, False) when the campaign is
        not a draft any more (sent already)."""
        c = m.Campaign
        keyed = bool(idempotency_key)
        if keyed:
            earlier = c.get_or_none(
                (c.idempotency_scope == idempotency_scope) & (c.idempotency_key == idempotency_key)
            )
            if earlier is not None:
                return _replayed(earlier, request_hash), True
        values: dict[Any, Any] = {c.state: CampaignState(to_state).value, c.updated_at: now}
        if keyed:
            values.update(
                {
                    c.idempotency_scope: idempotency_scope,
                    c.idempotency_key: idempotency_key,
                    c.request_hash: request_hash,
                }
            )
        try:
            with self._db.transaction():
                moved = (
                    c.update(values)
                    .where(
                        (c.id == campaign_id)
                        & (c.state == CampaignState.DRAFT.value)
                        & c.idempotency_key.is_null()
                    )
                    .execute()
                )
        except pw.IntegrityError:
            earlier = c.get_or_none(
                (c.idempotency_scope == idempotency_scope) & (c.idempotency_key == idempotency_key)
            )
            if earlier is not None:
                return _replayed(earlier, request_hash), True
            raise
        if not moved:
            self.get(campaign_id)  # CAMPAIGN_NOT_FOUND
            return None, False
        return self.get(campaign_id), False

    @staticmethod
    def running_ids(limit: int = 100) -> builtins.list[str]:
        """Running campaigns' ids, oldest first."""
        c = m.Campaign
        rows: Any = (
            c.select(c.id)
            .where(c.state == CampaignState.RUNNING.value)
            .order_by(c.created_at, c.id)
            .limit(limit)
            .tuples()
        )
        return [r[0] for r in rows]

    def complete_if_drained(self, campaign_id: str, now: dt.datetime) -> bool:
        """Completes a running one-off campaign none of whose messages is queued, sending or
        unknown any more (one conditional UPDATE); False when it is not running or not done,
        and always for a drip campaign (it runs until cancelled)."""
        c, e = m.Campaign, m.EmailMessage
        open_messages = e.select(pw.SQL("1")).where(
            (e.campaign == campaign_id) & e.state.in_([*QUEUED_STATES, SENDING, UNKNOWN])
        )
        with self._db.transaction():
            return bool(
                c.update(state=CampaignState.COMPLETED.value, sent_at=now, updated_at=now)
                .where(
                    (c.id == campaign_id)
                    & (c.state == CampaignState.RUNNING.value)
                    & (c.kind != "drip")  # a drip sequence runs until it is cancelled
                    & ~pw.fn.EXISTS(open_messages)
                )
                .execute()
            )

    @staticmethod
    def stats(campaign_ids: Sequence[str]) -> dict[str, MessageCounts]:
        """Each campaign's messages counted by state and event: one grouped statement for all
        of them. A campaign without messages (or unknown) gets empty counts."""
        ids = list(dict.fromkeys(campaign_ids))
        if not ids:
            return {}
        e = m.EmailMessage
        rows: Any = (
            e.select(
                e.campaign,
                e.state,
                pw.fn.COUNT(e.id).alias("n"),
                pw.fn.COUNT(e.delivered_at).alias("delivered"),
                pw.fn.COUNT(e.opened_at).alias("opened"),
                pw.fn.COUNT(e.clicked_at).alias("clicked"),
                pw.fn.COUNT(e.bounced_at).alias("bounced"),
                pw.fn.COUNT(e.complained_at).alias("complained"),
                pw.fn.COUNT(e.unsubscribed_at).alias("unsubscribed"),
            )
            .where(e.campaign.in_(ids))
            .group_by(e.campaign, e.state)
            .tuples()
        )
        acc: dict[str, dict[str, Any]] = {i: {"by_state": {}} for i in ids}
        events = ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
        for campaign_id, state, n, *counts in rows:
            a = acc[campaign_id]
            a["by_state"][state] = n
            for name, value in zip(events, counts, strict=True):
                a[name] = a.get(name, 0) + value
        return {i: MessageCounts(**a) for i, a in acc.items()}

    # --- recipients -----------------------------------------------------------------------

    def materialise(
        self,
        campaign_id: str,
        audience: Audience | Sequence[str],
        template_id: str | None,
        template_version: int,
        now: dt.datetime,
        *,
        kind: str = "marketing",
    ) -> tuple[int, int]:
        """Takes the campaign's recipient snapshot: one message row per recipient, `queued`
        (due `now`), or `suppressed` for an address on the suppression list. Returns (queued,
        suppressed).

        `audience` is a validated `Audience` (`validate_audience`) or explicit lead ids (which
        take no other filter: a converted lead named is mailed). Whatever it says, leads without
        an email address or without email consent are left out, and of several leads with one
        address only the earliest (created first) gets a message.
        One INSERT ... SELECT, one count and one update of the campaign's counters, in one
        transaction; a second call adds no lead or address the campaign already has.
        """
        with self._db.transaction():
            select = self._recipients(
                campaign_id, audience, template_id, template_version, now, kind
            )
            m.EmailMessage.insert_from(select, _MATERIALISED_COLUMNS).on_conflict_ignore().execute()
            e = m.EmailMessage
            counts: dict[str, int] = dict(
                cast(
                    Any,
                    e.select(e.state, pw.fn.COUNT(e.id))
                    .where((e.campaign == campaign_id) & (e.step_index == 0))
                    .group_by(e.state)
                    .tuples(),
                )
            )
            suppressed = int(counts.get(SUPPRESSED, 0))
            recipients = sum(int(n) for n in counts.values()) - suppressed
            m.Campaign.update(
                recipients=recipients, suppressed_count=suppressed, updated_at=now
            ).where(m.Campaign.id == campaign_id).execute()
        return recipients, suppressed

    def _recipients(
        self,
        campaign_id: str,
        audience: Audience | Sequence[str],
        template_id: str | None,
        template_version: int,
        now: dt.datetime,
        kind: str,
    ) -> pw.Select:
        ranked = self._ranked(audience)
        s, e = m.Suppression, m.EmailMessage
        state = pw.Case(
            None,
            [(ranked.c.address.in_(s.select(s.email_normalized)), SUPPRESSED)],
            QUEUED,
        )
        return pw.Select(
            [ranked],
            [
                self._uuid(),
                pw.Value(campaign_id),
                ranked.c.lead_id,
                pw.Value(template_id),
                pw.Value(template_version),
                pw.Value(kind),
                pw.Value(0),
                ranked.c.address,
                state,
                pw.Value(0),
                pw.Value(now),
                pw.Value(""),
                pw.Value(""),
                pw.Value(""),
                pw.Value(""),
                pw.Value(now),
                pw.Value(now),
                pw.Value("template"),
            ],
        ).where(
            (ranked.c.rn == 1)
            & ranked.c.address.not_in(
                e.select(e.to_email).where((e.campaign == campaign_id) & (e.step_index == 0))
            )
        )

    def _ranked(self, audience: Audience | Sequence[str]) -> Any:
        """The audience's leads with an address and email consent, numbered per address
        (`rn` 1 is the earliest lead of an address): the filter `materialise` snapshots."""
        lead = m.Lead
        consent = m.LeadConsent
        wanted: pw.Expression = (lead.email_normalized != "") & pw.fn.EXISTS(
            consent.select(pw.SQL("1")).where(
                (consent.lead == lead.id)
                & (consent.kind == EMAIL_CONSENT_KIND)
                & (consent.granted == True)  # noqa: E712
            )
        )
        if isinstance(audience, Audience):
            wanted &= _audience_condition(audience)
        else:
            wanted &= self._among_ids(builtins.list(audience))
        rank = pw.fn.ROW_NUMBER().over(
            partition_by=[lead.email_normalized], order_by=[lead.created_at, lead.id]
        )
        return (
            lead.select(
                lead.id.alias("lead_id"), lead.email_normalized.alias("address"), rank.alias("rn")
            )
            .where(wanted)
            .alias("ranked")
        )

    def count_recipients(self, audience: Audience | Sequence[str]) -> tuple[int, int]:
        """What `materialise` would take now, without storing anything: (recipients,
        suppressed). One statement over the same filter."""
        ranked = self._ranked(audience)
        s = m.Suppression
        suppressed = ranked.c.address.in_(s.select(s.email_normalized))
        row = (
            pw.Select(
                [ranked],
                [
                    pw.fn.COUNT(pw.SQL("*")),
                    pw.fn.SUM(pw.Case(None, [(suppressed, 1)], 0)),
                ],
            )
            .where(ranked.c.rn == 1)
            .bind(self._db.db)
            .tuples()
        )
        total, n_suppressed = next(iter(cast(Any, row)))
        n_suppressed = int(n_suppressed or 0)
        return int(total or 0) - n_suppressed, n_suppressed

    def sample_recipients(
        self, audience: Audience | Sequence[str], limit: int = 3
    ) -> builtins.list[ClaimedMessage]:
        """Up to `limit` recipients `materialise` would queue now (not suppressed), earliest
        leads first, with the lead fields a template renders (`message_id` is empty)."""
        ranked = self._ranked(audience)
        s, lead, dealer = m.Suppression, m.Lead, m.Dealer
        ids = [
            r[0]
            for r in cast(
                Any,
                pw.Select([ranked], [ranked.c.lead_id])
                .where((ranked.c.rn == 1) & ranked.c.address.not_in(s.select(s.email_normalized)))
                .order_by(ranked.c.lead_id)
                .limit(max(0, limit))
                .bind(self._db.db)
                .tuples(),
            )
        ]
        if not ids:
            return []
        rows: Any = (
            lead.select(lead, dealer.name.alias("dealer_name"))
            .join(dealer, pw.JOIN.LEFT_OUTER, on=(lead.dealer == dealer.id))
            .where(lead.id.in_(ids))
            .order_by(lead.created_at, lead.id)
            .dicts()
        )
        return [_recipient(r, "", r["email_normalized"], r["id"]) for r in rows]

    def due_scheduled(self, now: dt.datetime, limit: int = 10) -> builtins.list[CampaignRecord]:
        """Scheduled campaigns whose `send_at` has come, oldest first."""
        c = m.Campaign
        rows = (
            c.select()
            .where((c.state == CampaignState.SCHEDULED.value) & (c.send_at <= now))
            .order_by(c.send_at, c.id)
            .limit(limit)
        )
        return [_campaign(r) for r in rows]

    def _among_ids(self, ids: builtins.list[str]) -> pw.Expression:
        """`lead.id` among `ids`, as one parameter whatever their number."""
        if self._db.backend == "postgresql":
            return pw.Expression(m.Lead.id, "=", pw.SQL("ANY(%s)", [ids]))
        return pw.Expression(
            m.Lead.id, "IN", pw.SQL("(SELECT value FROM json_each(?))", [json.dumps(ids)])
        )

    def _uuid(self) -> pw.Node:
        """A random (version 4) UUID string per row, made by the database."""
        if self._db.backend == "postgresql":
            return pw.SQL("gen_random_uuid()::text")
        return pw.SQL(
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' ||"
            " substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + abs(random()) % 4, 1) ||"
            " substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
        )

    # --- dispatch -------------------------------------------------------------------------

    def claim_batch(
        self, worker_id: str, now: dt.datetime, lease: dt.timedelta, limit: int = 1000
    ) -> ClaimedBatch | None:
        """Leases up to `limit` (at most 1,000) due messages of one running campaign and one
        template version to `worker_id` under a new batch id, due first; None when nothing is
        due. Campaigns are served oldest first. One transaction: the `sending` messages whose
        lease expired become `unknown` (see the module docstring); the campaign is picked; its
        due messages are selected (FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent workers
        take disjoint messages) and leased with the batch id; the recipients are read.

        The lease is the generic outbox's (`locked_by`, `locked_until`, released on settling),
        but not its `lease_due`: that one matches two queued states and orders all due rows of
        the table, which on SQLite sorts every queued message of the campaign for each batch
        (quadratic over a 100,000-recipient campaign). Here one queued state and the index
        (campaign, state, next_attempt_at) make each claim a range scan of its first rows."""
        e, c = m.EmailMessage, m.Campaign
        with self._db.transaction():
            self._expire_sending(now)
            due = _due_messages(now)
            campaign_id = (
                c.select(c.id)
                .where(
                    c.state.in_(DISPATCH_STATES)
                    & (c.send_at.is_null() | (c.send_at <= now))
                    & pw.fn.EXISTS(e.select(pw.SQL("1")).where(due & (e.campaign == c.id)))
                )
                .order_by(c.created_at, c.id)
                .limit(1)
                .scalar()
            )
            if campaign_id is None:
                return None
            query = (
                e.select(e.id, e.template, e.template_version)
                .where(due & (e.campaign == campaign_id))
                .order_by(e.next_attempt_at)
                .limit(max(1, min(limit, MAX_BATCH_RECIPIENTS)))
            )
            if self._db.backend == "postgresql":
                query = query.for_update(skip_locked=True)
            found: builtins.list[tuple[str, str | None, int]] = list(cast(Any, query.tuples()))
            if not found:
                return None
            _, template_id, template_version = found[0]
            ids = [i for i, t, v in found if (t, v) == (template_id, template_version)]
            batch_id = _new_id()
            e.update(
                locked_by=worker_id, locked_until=now + lease, batch_id=batch_id, updated_at=now
            ).where(e.id.in_(ids)).execute()
            lead, dealer = m.Lead, m.Dealer
            rows: Any = (
                e.select(
                    e.id,
                    e.to_email,
                    e.lead,
                    e.attempts,
                    lead.first_name,
                    lead.state,
                    lead.zip_code,
                    lead.vehicle_year,
                    lead.vehicle_make,
                    lead.vehicle_model,
                    dealer.name.alias("dealer_name"),
                )
                .join(lead, pw.JOIN.LEFT_OUTER, on=(e.lead == lead.id))
                .join(dealer, pw.JOIN.LEFT_OUTER, on=(lead.dealer == dealer.id))
                .where(e.id.in_(ids))
                .order_by(e.id)
                .dicts()
            )
            messages = tuple(
                _recipient(r, r["id"], r["to_email"], r["lead"], r["attempts"]) for r in rows
            )
        return ClaimedBatch(
            batch_id=batch_id,
            campaign_id=campaign_id,
            template_id=template_id,
            template_version=template_version,
            lease_until=now + lease,
            messages=messages,
        )

    @staticmethod
    def _expire_sending(now: dt.datetime) -> int:
        e = m.EmailMessage
        return int(
            e.update(
                state=UNKNOWN,
                locked_by="",
                locked_until=None,
                updated_at=now,
                last_error="lease expired while sending",
                attempts=e.attempts + 1,
            )
            .where((e.state == SENDING) & (e.locked_until < now))
            .execute()
        )

    def expire_sending(self, now: dt.datetime) -> int:
        """`sending` messages whose lease expired become `unknown` (claim_batch does this too).
        The number moved."""
        with self._db.transaction():
            return self._expire_sending(now)

    def mark_batch_sending(
        self,
        batch_id: str,
        now: dt.datetime,
        lease: dt.timedelta,
        size: int,
        *,
        written_by_openai: Sequence[str] = (),
    ) -> bool:
        """Marks a claimed batch `sending` (and extends its lease to `now + lease`) just before
        the call to Mailgun; all or nothing: False, and nothing changed, unless all `size`
        messages are still the batch's under an unexpired lease. Send only after True. The
        messages `written_by_openai` record that engine (`copy_engine`)."""
        e = m.EmailMessage
        with self._db.transaction() as tx:
            if written_by_openai:
                e.update(copy_engine="openai").where(
                    (e.batch_id == batch_id) & e.id.in_(builtins.list(written_by_openai))
                ).execute()
            moved = (
                e.update(state=SENDING, locked_until=now + lease, updated_at=now)
                .where(
                    (e.batch_id == batch_id) & e.state.in_(QUEUED_STATES) & (e.locked_until >= now)
                )
                .execute()
            )
            if moved != size:
                tx.rollback()
                return False
        return True

    def _settle_batch(
        self,
        batch_id: str,
        from_states: Sequence[str],
        now: dt.datetime,
        campaign_failures: str | None,
        **values: Any,
    ) -> int:
        with self._db.transaction():
            return _settle_batch_rows(batch_id, from_states, now, campaign_failures, **values)

    def record_batch_sent(self, batch_id: str, provider_id: str, now: dt.datetime) -> int:
        """Mailgun accepted the batch: its messages become `sent` with Mailgun's id, and the
        campaign's run of failures ends. Also from `unknown` (the lease ran out during the
        call): Mailgun's answer is proof. The number of messages recorded."""
        e = m.EmailMessage
        return self._settle_batch(
            batch_id,
            (SENDING, UNKNOWN),
            now,
            "reset",
            state=SENT,
            provider_message_id=provider_id,
            sent_at=now,
            attempts=e.attempts + 1,
            last_error="",
        )

    def record_batch_simulated(self, batch_id: str, now: dt.datetime) -> int:
        """Simulation mode (no Mailgun key): the batch's messages become `simulated`."""
        e = m.EmailMessage
        return self._settle_batch(
            batch_id,
            (SENDING,),
            now,
            "reset",
            state=SIMULATED,
            sent_at=now,
            attempts=e.attempts + 1,
        )

    def record_batch_unknown(self, batch_id: str, error: str, now: dt.datetime) -> int:
        """The call's outcome is unknown (a timeout, a 5xx after the request went out): the
        batch becomes `unknown` until `resolve_unknown_batch` or an event settles it. `error`
        must hold no address (`server.domain.email.scrub_addresses`)."""
        e = m.EmailMessage
        return self._settle_batch(
            batch_id,
            (SENDING,),
            now,
            "add",
            state=UNKNOWN,
            last_error=error,
            attempts=e.attempts + 1,
        )

    def record_batch_failed(self, batch_id: str, error: str, now: dt.datetime) -> int:
        """Mailgun refused the batch for good (a 4xx other than 429): `failed`."""
        e = m.EmailMessage
        return self._settle_batch(
            batch_id,
            (SENDING,),
            now,
            "add",
            state=FAILED,
            last_error=error,
            attempts=e.attempts + 1,
        )

    def release_batch_for_retry(
        self,
        batch_id: str,
        next_attempt_at: dt.datetime,
        error: str,
        now: dt.datetime | None = None,
    ) -> int:
        """The batch was NOT sent (429, connection refused, or it was claimed but deferred):
        its messages are queued again for `next_attempt_at`. A batch already moved
        to `unknown` stays there."""
        e = m.EmailMessage
        at = now or m.utcnow()
        return self._settle_batch(
            batch_id,
            (SENDING, *QUEUED_STATES),
            at,
            "add" if error else None,
            state=QUEUED,
            next_attempt_at=next_attempt_at,
            last_error=error,
            attempts=e.attempts + 1,
        )

    def defer_messages(
        self,
        batch_id: str,
        deferrals: Sequence[tuple[str, dt.datetime]],
        now: dt.datetime,
    ) -> int:
        """Takes some messages out of a claimed batch before it is marked `sending` (a
        recipient in quiet hours): each is queued again, due at its time, leased to no one and
        in no batch (its attempts unchanged). One UPDATE per distinct due time (quiet hours end
        at a handful of moments, one per time zone), in one transaction. Only messages still
        `queued` in `batch_id` under an unexpired lease move. The number moved."""
        by_due: dict[dt.datetime | None, builtins.list[str]] = {}
        for message_id, due_at in deferrals:
            by_due.setdefault(_naive(due_at), []).append(message_id)
        return self._take_out_of_batch(batch_id, now, by_due, state=QUEUED)

    def fail_messages(
        self, batch_id: str, message_ids: Sequence[str], error: str, now: dt.datetime
    ) -> int:
        """Takes messages out of a claimed batch for good before it is marked `sending` (the
        template does not render for these recipients): `failed` with `error` (no address in
        it), attempts counted. Same conditions as `defer_messages`. The number moved."""
        return self._take_out_of_batch(
            batch_id, now, {None: list(message_ids)}, state=FAILED, error=error
        )

    def _take_out_of_batch(
        self,
        batch_id: str,
        now: dt.datetime,
        groups: Mapping[dt.datetime | None, Sequence[str]],
        *,
        state: str,
        error: str | None = None,
    ) -> int:
        e = m.EmailMessage
        moved = 0
        with self._db.transaction():
            for due_at, ids in groups.items():
                if not ids:
                    continue
                values: dict[Any, Any] = {
                    e.state: state,
                    e.batch_id: "",
                    e.locked_by: "",
                    e.locked_until: None,
                    e.updated_at: now,
                }
                if due_at is not None:
                    values[e.next_attempt_at] = due_at
                if error is not None:
                    values[e.last_error] = error
                    values[e.attempts] = e.attempts + 1
                moved += int(
                    e.update(values)
                    .where(
                        (e.batch_id == batch_id)
                        & (e.state == QUEUED)
                        & (e.locked_until >= now)
                        & e.id.in_(list(dict.fromkeys(ids)))
                    )
                    .execute()
                )
        return moved

    def resolve_unknown_batch(
        self, batch_id: str, sent: bool, provider_id: str, now: dt.datetime
    ) -> int:
        """Settles an `unknown` batch once the outcome is proven: `sent` (with Mailgun's id), or
        not sent, and queued again at once. The number of messages settled."""
        if sent:
            return self._settle_batch(
                batch_id,
                (UNKNOWN,),
                now,
                "reset",
                state=SENT,
                provider_message_id=provider_id,
                sent_at=now,
                last_error="",
            )
        return self._settle_batch(
            batch_id, (UNKNOWN,), now, None, state=QUEUED, next_attempt_at=now
        )

    @staticmethod
    def unknown_batches(limit: int = 100) -> builtins.list[tuple[str, str, int]]:
        """(batch id, campaign id, messages) of batches waiting to be resolved, oldest first."""
        e = m.EmailMessage
        rows: Any = (
            e.select(e.batch_id, e.campaign, pw.fn.COUNT(e.id), pw.fn.MIN(e.updated_at))
            .where(e.state == UNKNOWN)
            .group_by(e.batch_id, e.campaign)
            .order_by(pw.fn.MIN(e.updated_at))
            .limit(limit)
            .tuples()
        )
        return [(b, c, int(n)) for b, c, n, _ in rows]

    @staticmethod
    def unknown_to_resolve(
        settled_before: dt.datetime, limit: int = 20
    ) -> builtins.list[UnknownBatch]:
        """Unknown batches recorded before `settled_before`, oldest first, each with when it
        became unknown, its campaign (None for transactional mail) and one of its addresses
        (what a lookup in Mailgun's events needs)."""
        e = m.EmailMessage
        rows: Any = (
            e.select(
                e.batch_id,
                e.campaign,
                pw.fn.COUNT(e.id),
                pw.fn.MIN(e.updated_at).alias("since"),
                pw.fn.MIN(e.to_email),
            )
            .where(e.state == UNKNOWN)
            .group_by(e.batch_id, e.campaign)
            .having(pw.fn.MIN(e.updated_at) < settled_before)
            .order_by(pw.fn.MIN(e.updated_at))
            .limit(limit)
            .tuples()
        )
        return [
            UnknownBatch(b, c, int(n), _as_datetime(since), address)
            for b, c, n, since, address in rows
        ]

    # --- events ---------------------------------------------------------------------------

    def apply_event(self, event: MailgunEvent, now: dt.datetime) -> bool:
        """Applies a verified Mailgun event to its message, in the caller's transaction (run it
        with the webhook token's `remember_webhook_token` in one `run_atomic`, so a replayed
        request and its event are one unit). True if anything changed: a repeated event
        changes nothing and answers False, and so does an event for no message of ours.

        The message is the one our `ccl_message` variable names, else the one Mailgun's id and
        the recipient's address name. `delivered`, `opened`, `clicked` set their times once;
        `failed` permanent bounces the message and suppresses the address (`hard_bounce`),
        temporary is recorded as the message's last error; `complained` and `unsubscribed` set
        their times and suppress the address. Any event of a message whose batch is `unknown`, or
        still `sending`, proves Mailgun accepted that batch: the whole batch becomes `sent`. (An
        event that came while the batch was `sending`, its worker dead or still waiting for the
        answer, and changed nothing would leave the batch `unknown` for good once the lease ran
        out: Mailgun sends each event once.)
        """
        e = m.EmailMessage
        row = self._event_message(event)
        if row is None:
            return False
        at = _event_time(event, now)
        changed = False
        accepted = event.type is not MailgunEventType.REJECTED
        if row.state in (SENDING, UNKNOWN) and row.batch_id and accepted:
            changed |= bool(
                _settle_batch_rows(
                    row.batch_id,
                    (SENDING, UNKNOWN),
                    now,
                    "reset",
                    state=SENT,
                    provider_message_id=event.message_id or row.provider_message_id,
                    sent_at=at,
                    last_error="",
                )
            )

        def once(column: pw.Field, **extra: Any) -> bool:
            return bool(
                e.update(
                    {column: at, e.updated_at: now, **{getattr(e, k): v for k, v in extra.items()}}
                )
                .where((e.id == row.id) & column.is_null())
                .execute()
            )

        def suppress_as(reason: SuppressionReason) -> None:
            suppress(
                self._db,
                [NewSuppression(row.to_email, reason, "webhook", row.campaign_id or "", row.id)],
                now,
            )

        kind = event.type
        if kind is MailgunEventType.DELIVERED:
            changed |= once(e.delivered_at)
        elif kind is MailgunEventType.OPENED:
            changed |= once(e.opened_at)
        elif kind is MailgunEventType.CLICKED:
            changed |= once(e.clicked_at)
        elif kind is MailgunEventType.FAILED and event.is_hard_bounce:
            bounced = once(e.bounced_at, state=BOUNCED, last_error=event.reason)
            if bounced:
                suppress_as(SuppressionReason.HARD_BOUNCE)
            changed |= bounced
        elif kind is MailgunEventType.FAILED:
            reason = event.reason or "temporary failure"
            changed |= bool(
                e.update(last_error=reason, updated_at=now)
                .where((e.id == row.id) & (e.last_error != reason) & e.bounced_at.is_null())
                .execute()
            )
        elif kind is MailgunEventType.COMPLAINED:
            complained = once(e.complained_at)
            if complained:
                suppress_as(SuppressionReason.COMPLAINT)
            changed |= complained
        elif kind is MailgunEventType.UNSUBSCRIBED:
            unsubscribed = once(e.unsubscribed_at)
            if unsubscribed:
                suppress_as(SuppressionReason.UNSUBSCRIBED)
            changed |= unsubscribed
        elif kind is MailgunEventType.REJECTED:
            changed |= bool(
                e.update(state=FAILED, last_error=event.reason or "rejected", updated_at=now)
                .where((e.id == row.id) & e.state.in_([SENDING, SENT, UNKNOWN]))
                .execute()
            )
        return changed

    @staticmethod
    def _event_message(event: MailgunEvent) -> m.EmailMessage | None:
        e = m.EmailMessage
        columns = (e.id, e.state, e.batch_id, e.to_email, e.campaign, e.provider_message_id)
        ours = event.ccl_message_id
        if ours:
            row = e.select(*columns).where(e.id == ours[:36]).first()
            if row is not None:
                return cast(m.EmailMessage, row)
        if event.message_id and event.recipient:
            return cast(
                m.EmailMessage | None,
                e.select(*columns)
                .where(
                    (e.provider_message_id == event.message_id)
                    & (e.to_email == normalize_address(event.recipient))
                )
                .first(),
            )
        return None


def _due_messages(now: dt.datetime) -> pw.Expression:
    """Queued messages that are due and leased to no one (or under an expired lease)."""
    e = m.EmailMessage
    due: pw.Expression = (
        (e.state == QUEUED)
        & (e.next_attempt_at <= now)
        & (e.locked_until.is_null() | (e.locked_until < now))
    )
    return due


def _settle_batch_rows(
    batch_id: str,
    from_states: Sequence[str],
    now: dt.datetime,
    campaign_failures: str | None,
    **values: Any,
) -> int:
    """Writes `values` to the batch's messages still in `from_states` and releases their lease;
    `campaign_failures` "reset" ends the campaign's run of failed sends, "add" extends it. In
    the caller's transaction. The number of messages settled."""
    e, c = m.EmailMessage, m.Campaign
    states = list(from_states)
    first = (
        e.select(e.id, e.campaign)
        .where((e.batch_id == batch_id) & e.state.in_(states))
        .limit(1)
        .tuples()
        .first()
    )
    if first is None:
        return 0
    campaign_id = first[1]  # None for transactional mail: no campaign to count failures on
    n = int(
        e.update(locked_by="", locked_until=None, updated_at=now, **values)
        .where((e.batch_id == batch_id) & e.state.in_(states))
        .execute()
    )
    if campaign_id is None:
        return n
    if campaign_failures == "reset":
        c.update(consecutive_failures=0).where(
            (c.id == campaign_id) & (c.consecutive_failures != 0)
        ).execute()
    elif campaign_failures == "add":
        c.update(consecutive_failures=c.consecutive_failures + 1).where(
            c.id == campaign_id
        ).execute()
    return n


def _event_time(event: MailgunEvent, now: dt.datetime) -> dt.datetime:
    if event.timestamp <= 0:
        return now
    try:
        return dt.datetime.fromtimestamp(event.timestamp, dt.UTC).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        return now


@dataclass(frozen=True)
class ClaimedMessage:
    """One recipient of a claimed batch, with the lead's fields the template and quiet hours
    need (the lead may be gone: its fields are then empty)."""

    message_id: str
    address: str
    lead_id: str | None
    attempts: int = 0
    first_name: str = field(default="", repr=False)
    state: str = ""
    zip_code: str = ""
    vehicle_year: int = 0
    vehicle_make: str = ""
    vehicle_model: str = ""
    dealer_name: str = ""


def _recipient(
    row: Mapping[str, Any], message_id: str, address: str, lead_id: str | None, attempts: int = 0
) -> ClaimedMessage:
    """A recipient from a row holding the lead's template fields (NULL when the lead is gone)."""
    return ClaimedMessage(
        message_id=message_id,
        address=address,
        lead_id=lead_id,
        attempts=attempts,
        first_name=row["first_name"] or "",
        state=row["state"] or "",
        zip_code=row["zip_code"] or "",
        vehicle_year=row["vehicle_year"] or 0,
        vehicle_make=row["vehicle_make"] or "",
        vehicle_model=row["vehicle_model"] or "",
        dealer_name=row["dealer_name"] or "",
    )


@dataclass(frozen=True)
class UnknownBatch:
    batch_id: str
    campaign_id: str | None
    messages: int
    since: dt.datetime  # when it became unknown
    address: str = field(repr=False)


def _as_datetime(value: Any) -> dt.datetime:
    """A datetime an aggregate returned (SQLite answers its text)."""
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class ClaimedBatch:
    batch_id: str
    campaign_id: str
    template_id: str | None
    template_version: int
    lease_until: dt.datetime
    messages: tuple[ClaimedMessage, ...]


# The columns `_recipients` selects, in order.
_MATERIALISED_COLUMNS = [
    m.EmailMessage.id,
    m.EmailMessage.campaign,
    m.EmailMessage.lead,
    m.EmailMessage.template,
    m.EmailMessage.template_version,
    m.EmailMessage.kind,
    m.EmailMessage.step_index,
    m.EmailMessage.to_email,
    m.EmailMessage.state,
    m.EmailMessage.attempts,
    m.EmailMessage.next_attempt_at,
    m.EmailMessage.locked_by,
    m.EmailMessage.provider_message_id,
    m.EmailMessage.last_error,
    m.EmailMessage.batch_id,
    m.EmailMessage.created_at,
    m.EmailMessage.updated_at,
    m.EmailMessage.copy_engine,
]


def _audience_condition(a: Audience) -> pw.Expression:
    """The audience's filters over `lead` (the always-applied exclusions are the caller's)."""
    lead = m.Lead
    cond: pw.Expression = pw.Value(True) == pw.Value(True)
    if a.exclude_converted:
        cond &= lead.status.not_in(CONVERTED_STATUSES)
    if a.statuses:
        cond &= lead.status.in_(sorted(a.statuses))
    if a.states:
        cond &= lead.state.in_(sorted(a.states))
    if a.sources:
        cond &= lead.source.in_(sorted(a.sources))
    if a.created_after is not None:
        cond &= lead.created_at >= _naive(a.created_after)
    if a.created_before is not None:
        cond &= lead.created_at < _naive(a.created_before)
    if a.abandoned_after is not None or a.abandoned_before is not None:
        cond &= lead.status.in_(ABANDONED_STATUSES)
        if a.abandoned_after is not None:
            cond &= lead.updated_at >= _naive(a.abandoned_after)
        if a.abandoned_before is not None:
            cond &= lead.updated_at < _naive(a.abandoned_before)
    if a.credit_tiers:
        # The lead's latest credit check (by time, then id) has one of the tiers.
        cc = m.CreditCheck
        newer = m.CreditCheck.alias("newer")
        latest_in_tiers = cc.select(cc.lead).where(
            cc.tier.in_(sorted(a.credit_tiers))
            & ~pw.fn.EXISTS(
                newer.select(pw.SQL("1")).where(
                    (newer.lead == cc.lead)
                    & (
                        (newer.created_at > cc.created_at)
                        | ((newer.created_at == cc.created_at) & (newer.id > cc.id))
                    )
                )
            )
        )
        cond &= lead.id.in_(latest_in_tiers)
    return cond


def _naive(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


__all__ = [
    "ABANDONED_STATUSES",
    "CONVERTED_STATUSES",
    "CampaignRecord",
    "CampaignRepository",
    "ClaimedBatch",
    "ClaimedMessage",
    "MessageCounts",
    "NewSuppression",
    "SuppressionRecord",
    "SuppressionRepository",
    "TemplateRecord",
    "TemplateRepository",
    "prune_webhook_tokens",
    "remember_webhook_token",
    "suppress",
]
