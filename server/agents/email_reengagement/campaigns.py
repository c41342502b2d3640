"""The campaign lifecycle of EmailReengagement: create (validated, pinning its template's
version), read with statistics, bulk send (now, scheduled, or a dry run), pause, resume, cancel,
and the dispatcher's per-turn work (start scheduled campaigns that fell due, complete drained
ones, pause one whose statistics say so).

Rules:
- A campaign is one-off, named, with a template that exists: its current version is pinned when
  the campaign is created. Or it is a drip sequence: steps (a template each, pinned the same
  way, and a delay after the previous step) instead of one template.
- Its audience is filters (`server.domain.campaigns.Audience`, with `abandoned_within_days`
  read at send time) or explicit lead ids, not both. Every bad field is one violation of
  INVALID_CAMPAIGN.
- BulkSend takes the recipient snapshot (`CampaignRepository.materialise`) and moves the campaign
  to running at once, or schedules it when `send_at` is in the future (the dispatcher's turn
  starts it when due). It is idempotent by `idempotency_key`: a new campaign through the
  storage's keyed create, an existing draft through `start_draft`'s keyed conditional update; a
  retry of a request interrupted between create and start finishes the start (materialising
  twice adds nothing).
- A dry run stores nothing: it counts what the snapshot would take and renders up to three
  recipients exactly as they would be sent (but with a preview unsubscribe link). For a drip,
  the applications its audience matches that are abandoned now, rendered with its first step.
- A drip campaign does not take a snapshot: started, it runs until cancelled (or paused), and
  each turn (`tick`) it enrols the applications abandoned since it started (at most every
  `enrol_seconds`; `storage.drips`) and queues the steps that fell due, or ends a lead's
  sequence when the domain's `drip_exit` says so (converted, application finished, address
  suppressed, lead gone; after its last step, completed). The dispatcher sends the steps like
  any campaign's messages: quiet hours, the frequency cap and suppression apply.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from server.agents.email_reengagement.dispatcher import (
    DispatchReport,
    SenderDetails,
    recipient_context,
)
from server.domain.campaigns import (
    Audience,
    CampaignAction,
    CampaignState,
    DripStep,
    apply_action,
    drip_exit,
    should_pause,
    validate_audience,
    validate_steps,
)
from server.domain.clock import utcnow
from server.domain.leads import Page, PageResult
from server.errors import (
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
)
from server.storage.campaigns import (
    ABANDONED_STATUSES,
    CampaignRecord,
    CampaignRepository,
    MessageCounts,
    TemplateRepository,
)
from server.storage.db import Database
from server.storage.drips import DripRepository, DueEnrollment, PinnedStep, steps_json, steps_of

if TYPE_CHECKING:
    from server.domain.templates import RenderedEmail

__all__ = [
    "BulkSendOutcome",
    "CampaignDraft",
    "CampaignLifecycle",
    "CampaignView",
    "Sample",
]

KIND_ONE_OFF = "one_off"
KIND_DRIP = "drip"
MAX_NAME = 200
MAX_LEAD_IDS = 10_000
MAX_WITHIN_DAYS = 3650
MAX_IDEMPOTENCY_KEY = 128
SAMPLES = 3
OPERATOR = "operator"
_P = "campaign."


@dataclass(frozen=True)
class CampaignDraft:
    """A campaign as a caller describes it (the transport's `Campaign` message)."""

    name: str = ""
    kind: str = KIND_ONE_OFF  # "" means one-off
    template_id: str = ""
    audience: Audience = field(default_factory=Audience)
    lead_ids: tuple[str, ...] = ()
    abandoned_within_days: int = 0
    send_at: dt.datetime | None = None
    steps: tuple[DripStep, ...] = ()


@dataclass(frozen=True)
class CampaignView:
    record: CampaignRecord
    counts: MessageCounts
    audience: dict[str, Any]

    @property
    def steps(self) -> list[PinnedStep]:
        """A drip campaign's steps, each with its pinned template version."""
        return steps_of(self.record.steps_json)


@dataclass(frozen=True)
class Sample:
    lead_id: str
    email: RenderedEmail


@dataclass(frozen=True)
class BulkSendOutcome:
    campaign: CampaignView | None  # None for a dry run of a new campaign
    queued: int
    suppressed: int
    replay: bool = False
    samples: tuple[Sample, ...] = ()


def _audience_json(draft: CampaignDraft) -> str:
    a = draft.audience
    data: dict[str, Any] = {
        "statuses": sorted(a.statuses),
        "credit_tiers": sorted(a.credit_tiers),
        "states": sorted(a.states),
        "sources": sorted(a.sources),
        "created_after": _iso(a.created_after),
        "created_before": _iso(a.created_before),
        "abandoned_after": _iso(a.abandoned_after),
        "abandoned_before": _iso(a.abandoned_before),
        "exclude_converted": a.exclude_converted,
        "abandoned_within_days": draft.abandoned_within_days,
        "lead_ids": list(draft.lead_ids),
    }
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment.isoformat()


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def audience_dict(audience_json: str) -> dict[str, Any]:
    try:
        data = json.loads(audience_json or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _target(data: dict[str, Any], now: dt.datetime) -> Audience | list[str]:
    """What `materialise` takes for a stored audience, evaluated at `now`."""
    if data.get("lead_ids"):
        return [str(i) for i in data["lead_ids"]]
    after = _parse(data.get("abandoned_after"))
    days = int(data.get("abandoned_within_days") or 0)
    if days:
        within = now - dt.timedelta(days=days)
        after = within if after is None else max(after, within)
    return Audience(
        statuses=frozenset(data.get("statuses") or ()),
        credit_tiers=frozenset(data.get("credit_tiers") or ()),
        states=frozenset(data.get("states") or ()),
        sources=frozenset(data.get("sources") or ()),
        created_after=_parse(data.get("created_after")),
        created_before=_parse(data.get("created_before")),
        abandoned_after=after,
        abandoned_before=_parse(data.get("abandoned_before")),
        exclude_converted=bool(data.get("exclude_converted", True)),
    )


def _abandoned(audience: Audience) -> Audience:
    """The audience narrowed to abandoned applications (what a drip enrols)."""
    statuses = audience.statuses & frozenset(ABANDONED_STATUSES) if audience.statuses else None
    return replace(audience, statuses=statuses or frozenset(ABANDONED_STATUSES))


def _decide(due: DueEnrollment) -> str | None:
    """The domain's exit rule for a due drip step: None to queue the step."""
    reason = drip_exit(
        converted=due.converted,
        suppressed=due.suppressed,
        steps_sent=due.next_step,
        total_steps=due.total_steps,
        finished=due.finished,
        lead_gone=due.lead_status is None,
    )
    return None if reason is None else reason.value


def _has_filters(a: Audience, days: int) -> bool:
    return bool(
        a.statuses
        or a.credit_tiers
        or a.states
        or a.sources
        or a.created_after
        or a.created_before
        or a.abandoned_after
        or a.abandoned_before
        or days
    )


def validate_draft(draft: CampaignDraft) -> CampaignDraft:
    """The draft normalised, or INVALID_CAMPAIGN with one violation per bad field."""
    violations: list[FieldViolation] = []
    name = draft.name.strip()
    if not name:
        violations.append(FieldViolation(f"{_P}name", "is required"))
    elif len(name) > MAX_NAME:
        violations.append(FieldViolation(f"{_P}name", f"must be at most {MAX_NAME} characters"))
    kind = draft.kind or KIND_ONE_OFF
    template_id = draft.template_id.strip()
    steps = tuple(replace(s, template_id=s.template_id.strip()) for s in draft.steps)
    if kind == KIND_DRIP:
        try:
            validate_steps(steps, prefix=f"{_P}steps")
        except InvalidArgumentError as e:
            violations.extend(e.violations)
        if template_id:
            violations.append(
                FieldViolation(f"{_P}template_id", "a drip campaign takes its templates per step")
            )
        if draft.lead_ids:
            violations.append(
                FieldViolation(
                    f"{_P}audience.lead_ids", "a drip campaign enrols abandoned applications"
                )
            )
    else:
        if kind != KIND_ONE_OFF:
            violations.append(
                FieldViolation(f"{_P}kind", "must be CAMPAIGN_KIND_ONE_OFF or CAMPAIGN_KIND_DRIP")
            )
        if not template_id:
            violations.append(FieldViolation(f"{_P}template_id", "is required"))
        if steps:
            violations.append(FieldViolation(f"{_P}steps", "only a drip campaign has steps"))
    audience = draft.audience
    try:
        audience = validate_audience(draft.audience, prefix=f"{_P}audience.")
    except InvalidArgumentError as e:
        violations.extend(e.violations)
    days = draft.abandoned_within_days
    if not 0 <= days <= MAX_WITHIN_DAYS:
        violations.append(
            FieldViolation(
                f"{_P}audience.abandoned_within_days", f"must be between 0 and {MAX_WITHIN_DAYS}"
            )
        )
    lead_ids = tuple(dict.fromkeys(i.strip() for i in draft.lead_ids if i.strip()))
    if len(lead_ids) > MAX_LEAD_IDS:
        violations.append(
            FieldViolation(f"{_P}audience.lead_ids", f"must name at most {MAX_LEAD_IDS:,} leads")
        )
    if lead_ids and _has_filters(draft.audience, days):
        violations.append(
            FieldViolation(f"{_P}audience.lead_ids", "cannot be combined with filters")
        )
    if violations:
        raise InvalidArgumentError(
            "the campaign is not valid", reason="INVALID_CAMPAIGN", violations=violations
        )
    return replace(
        draft,
        name=name,
        kind=kind,
        template_id=template_id,
        audience=audience,
        lead_ids=lead_ids,
        steps=steps,
    )


def _request_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class CampaignLifecycle:
    """Campaign use cases over the repositories (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        campaigns: CampaignRepository,
        templates: TemplateRepository,
        sender: SenderDetails,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        rate_check_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        enrol_seconds: float = 30.0,
    ) -> None:
        self._db = db
        self._campaigns = campaigns
        self._drips = DripRepository(db)
        self._templates = templates
        self._enrol_seconds = enrol_seconds
        self._enrolled_at: float | None = None
        self._sender = sender
        self._clock = clock
        self._rate_check_seconds = rate_check_seconds
        self._monotonic = monotonic
        # campaign id -> when `after_batch` last counted its messages for the rate rules
        self._rates_checked: dict[str, float] = {}

    # --- reads ----------------------------------------------------------------------------

    async def get(self, campaign_id: str) -> CampaignView:
        record = await self._db.run(self._campaigns.get, campaign_id)
        return (await self._views([record]))[0]

    async def list_campaigns(self, size: int, token: str) -> PageResult[CampaignView]:
        page = await self._db.run(self._campaigns.list, Page(size=size, token=token))
        views = await self._views(list(page.items))
        return PageResult(items=views, next_page_token=page.next_page_token)

    async def _views(self, records: Sequence[CampaignRecord]) -> list[CampaignView]:
        counts = await self._db.run(self._campaigns.stats, [r.campaign_id for r in records])
        return [
            CampaignView(
                r, counts.get(r.campaign_id, MessageCounts()), audience_dict(r.audience_json)
            )
            for r in records
        ]

    # --- create ---------------------------------------------------------------------------

    async def create(self, draft: CampaignDraft) -> CampaignView:
        draft = validate_draft(draft)
        template_id, version, steps = await self._pin_draft(draft)
        record = await self._db.run(
            lambda: self._campaigns.create(
                name=draft.name,
                kind=draft.kind,
                template_id=template_id,
                template_version=version,
                audience_json=_audience_json(draft),
                steps_json=steps,
                state=CampaignState.DRAFT,
                now=self._clock(),
                send_at=draft.send_at,
            )
        )
        return (await self._views([record]))[0]

    async def _pin(self, template_id: str) -> int:
        record = await self._db.run(self._templates.get, template_id, None)
        return record.current_version

    async def _pin_draft(self, draft: CampaignDraft) -> tuple[str | None, int, str]:
        """(template id, pinned version, steps JSON): a one-off's template, or a drip's steps
        each pinned to its template's current version (TEMPLATE_NOT_FOUND for a step's)."""
        if draft.kind != KIND_DRIP:
            return draft.template_id, await self._pin(draft.template_id), "[]"
        pinned = [
            PinnedStep(s.template_id, await self._pin(s.template_id), s.delay) for s in draft.steps
        ]
        return None, 0, steps_json(pinned)

    # --- bulk send ------------------------------------------------------------------------

    async def bulk_send(
        self,
        *,
        idempotency_key: str,
        scope: str,
        campaign_id: str = "",
        draft: CampaignDraft | None = None,
        dry_run: bool = False,
    ) -> BulkSendOutcome:
        key = idempotency_key.strip()
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise InvalidArgumentError(
                "the idempotency key is too long",
                reason="INVALID_CAMPAIGN",
                violations=[
                    FieldViolation(
                        "idempotency_key", f"must be at most {MAX_IDEMPOTENCY_KEY} characters"
                    )
                ],
            )
        if bool(campaign_id.strip()) == (draft is not None):
            raise InvalidArgumentError(
                "either campaign_id or campaign is required",
                reason="INVALID_CAMPAIGN",
                violations=[FieldViolation("campaign_id", "either this or campaign is required")],
            )
        if draft is not None:
            draft = validate_draft(draft)
        if dry_run:
            return await self._dry_run(campaign_id.strip(), draft)
        now = self._clock()
        if draft is not None:
            template_id, version, steps = await self._pin_draft(draft)
            audience_json = _audience_json(draft)
            future = draft.send_at is not None and draft.send_at > now
            request_hash = _request_hash(
                "new",
                draft.name,
                draft.template_id,
                audience_json,
                _iso(draft.send_at) or "",
                *([draft.kind, steps] if draft.kind == KIND_DRIP else []),
            )
            record = await self._db.run(
                lambda: self._campaigns.create(
                    name=draft.name,
                    kind=draft.kind,
                    template_id=template_id,
                    template_version=version,
                    audience_json=audience_json,
                    steps_json=steps,
                    state=CampaignState.SCHEDULED if future else CampaignState.DRAFT,
                    now=now,
                    send_at=draft.send_at,
                    idempotency_scope=f"bulk-send:{scope}",
                    idempotency_key=key,
                    request_hash=request_hash,
                )
            )
            replay = record.replay
        else:
            record = await self._db.run(self._campaigns.get, campaign_id.strip())
            request_hash = _request_hash("existing", record.campaign_id)
            future = record.send_at is not None and record.send_at > now
            target = CampaignState.SCHEDULED if future else CampaignState.DRAFT
            started, replay = await self._db.run(
                lambda: self._campaigns.start_draft(
                    record.campaign_id,
                    target,
                    now,
                    idempotency_scope=f"bulk-send:{scope}",
                    idempotency_key=key,
                    request_hash=request_hash,
                )
            )
            if started is None:
                raise FailedPreconditionError(
                    "the campaign was sent already (only a draft campaign can be sent)",
                    reason="CAMPAIGN_ALREADY_SENT",
                )
            record = started
        if CampaignState(record.state) is CampaignState.DRAFT:
            record = await self._start(record, [CampaignState.DRAFT], now)
        view = (await self._views([record]))[0]
        return BulkSendOutcome(
            campaign=view,
            queued=record.recipients,
            suppressed=record.suppressed,
            replay=replay,
        )

    async def _start(
        self, record: CampaignRecord, allowed_from: Sequence[CampaignState], now: dt.datetime
    ) -> CampaignRecord:
        """Snapshot the recipients and move to running (or completed when there are none); a
        drip campaign moves to running and enrols the applications abandoned so far."""
        if record.kind == KIND_DRIP:

            def start_drip() -> CampaignRecord:
                self._campaigns.transition(
                    record.campaign_id, allowed_from, CampaignState.RUNNING, now
                )
                self._drips.enrol(record.campaign_id, self._drip_audience(record, now), now)
                return self._campaigns.get(record.campaign_id)

            return await self._db.run(start_drip)
        target = _target(audience_dict(record.audience_json), now)

        def start() -> CampaignRecord:
            self._campaigns.materialise(
                record.campaign_id, target, record.template_id, record.template_version, now
            )
            self._campaigns.transition(record.campaign_id, allowed_from, CampaignState.RUNNING, now)
            self._campaigns.complete_if_drained(record.campaign_id, now)
            return self._campaigns.get(record.campaign_id)

        return await self._db.run(start)

    async def _dry_run(self, campaign_id: str, draft: CampaignDraft | None) -> BulkSendOutcome:
        now = self._clock()
        if draft is not None:
            template_id, version, steps = await self._pin_draft(draft)
            kind = draft.kind
            target: Audience | list[str] = _target(
                audience_dict(_audience_json(draft)), draft.send_at or now
            )
            view = None
        else:
            view = await self.get(campaign_id)
            kind = view.record.kind
            template_id, version = view.record.template_id, view.record.template_version
            steps = view.record.steps_json
            target = _target(view.audience, view.record.send_at or now)
        if kind == KIND_DRIP:
            first = steps_of(steps)[0]
            template_id, version = first.template_id, first.template_version
            if isinstance(target, Audience):
                target = _abandoned(target)
        (queued, suppressed), leads = await self._db.run(
            lambda: (
                self._campaigns.count_recipients(target),
                self._campaigns.sample_recipients(target, SAMPLES),
            )
        )
        record = await self._db.run(self._templates.get, template_id or "", version)

        def render() -> tuple[Sample, ...]:
            from server.domain.templates import validate_template

            compiled = validate_template(record.spec)
            return tuple(
                Sample(
                    m.lead_id or "", compiled.render(recipient_context(self._sender, m, "preview"))
                )
                for m in leads
            )

        samples = await asyncio.to_thread(render)
        return BulkSendOutcome(campaign=view, queued=queued, suppressed=suppressed, samples=samples)

    # --- pause, resume, cancel ------------------------------------------------------------

    async def pause(self, campaign_id: str) -> CampaignView:
        return await self._act(campaign_id, CampaignAction.PAUSE, OPERATOR)

    async def resume(self, campaign_id: str) -> CampaignView:
        return await self._act(campaign_id, CampaignAction.RESUME)

    async def cancel(self, campaign_id: str) -> CampaignView:
        return await self._act(campaign_id, CampaignAction.CANCEL)

    async def _act(
        self, campaign_id: str, action: CampaignAction, reason: str = ""
    ) -> CampaignView:
        def act() -> CampaignRecord:
            # A concurrent move (the dispatcher completing or pausing it) makes the conditional
            # update miss: read again and judge the new state.
            for _ in range(3):
                record = self._campaigns.get(campaign_id)
                current = CampaignState(record.state)
                target = apply_action(current, action)
                if action is CampaignAction.RESUME and record.send_at and record.recipients == 0:
                    # Paused while scheduled: it was never started; it waits for its time again.
                    target = CampaignState.SCHEDULED
                if self._campaigns.transition(
                    campaign_id, [current], target, self._clock(), reason
                ):
                    return self._campaigns.get(campaign_id)
            raise FailedPreconditionError(
                "the campaign is changing state; try again",
                reason="INVALID_CAMPAIGN_TRANSITION",
            )

        record = await self._db.run(act)
        return (await self._views([record]))[0]

    # --- the dispatcher's turn ------------------------------------------------------------

    async def tick(self) -> None:
        """Starts scheduled campaigns that fell due and completes drained running ones; for
        running drips, enrols new abandoned applications (at most every `enrol_seconds`) and
        queues the steps that fell due."""
        now = self._clock()
        for record in await self._db.run(self._campaigns.due_scheduled, now):
            await self._start(record, [CampaignState.SCHEDULED], now)
        at = self._monotonic()
        enrol = self._enrolled_at is None or at - self._enrolled_at >= self._enrol_seconds
        if enrol:
            self._enrolled_at = at

        def drips() -> None:
            if enrol:
                for record in self._drips.running():
                    self._drips.enrol(record.campaign_id, self._drip_audience(record, now), now)
            # A claim at a time (a transaction each), until nothing is due.
            while sum(self._drips.advance_due(now, _decide)):
                pass

        await self._db.run(drips)
        for campaign_id in await self._db.run(self._campaigns.running_ids):
            await self._db.run(self._campaigns.complete_if_drained, campaign_id, now)

    @staticmethod
    def _drip_audience(record: CampaignRecord, now: dt.datetime) -> Audience:
        """A drip's stored audience (filters only) evaluated at `now`."""
        target = _target(audience_dict(record.audience_json), now)
        return target if isinstance(target, Audience) else Audience()

    async def after_batch(self, report: DispatchReport) -> None:
        """Pauses the batch's campaign when its statistics say so; completes it when drained.

        The run of failed sends is on the campaign's row and is checked after every batch. The
        complaint and bounce rates need every message of the campaign counted (a scan of up to
        its whole snapshot, which after every batch of 1,000 made a 100,000-recipient campaign
        quadratic), so they are counted after the campaign's first batch here and then at most
        every `rate_check_seconds`: their numerators only grow through Mailgun's events, which
        come in over minutes and hours, and more sends only lower the rates."""
        now = self._clock()
        at = self._monotonic()
        last = self._rates_checked.get(report.campaign_id)
        count_rates = last is None or at - last >= self._rate_check_seconds

        def check() -> None:
            record = self._campaigns.get(report.campaign_id)
            if CampaignState(record.state) is not CampaignState.RUNNING:
                self._rates_checked.pop(record.campaign_id, None)
                return
            counts = MessageCounts()
            if count_rates:
                counts = self._campaigns.stats([record.campaign_id])[record.campaign_id]
                self._rates_checked[record.campaign_id] = at
            reason = should_pause(counts.as_stats(record.consecutive_failures))
            if reason is not None:
                self._campaigns.transition(
                    record.campaign_id,
                    [CampaignState.RUNNING],
                    CampaignState.PAUSED,
                    now,
                    reason.value,
                )
                self._rates_checked.pop(record.campaign_id, None)
                return
            if self._campaigns.complete_if_drained(record.campaign_id, now):
                self._rates_checked.pop(record.campaign_id, None)

        await self._db.run(check)
