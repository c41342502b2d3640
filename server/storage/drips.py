"""Drip sequences and the frequency cap's lookup (issue 10): the `drip_enrollment` table.

A running drip campaign enrols the applications abandoned since it started (or since its
audience's `abandoned_after`): leads with an address and email consent whose status is one of
`ABANDONED_STATUSES`, matching the campaign's audience, whose address is neither suppressed nor
enrolled in the campaign already, the earliest lead of an address first. `entered_at` is the
lead's last move (when it stopped); its steps fall due from there. `enrol` looks at the leads
that moved since the campaign's `enrolled_through` (less a margin for transactions that commit
late), so each call reads the recent leads only.

Each enrolment is the outbox item of its lead's next step. `advance_due` claims the due ones of
running drip campaigns (FOR UPDATE SKIP LOCKED on PostgreSQL) and, in one transaction, either
queues the step's message (an ordinary `email_message` of the campaign, `step_index` the step,
pinned to the step's template version: the campaign dispatcher sends it like any other, with
quiet hours, the frequency cap and the suppression list) and moves the enrolment to its next
step, or ends the enrolment with the reason the caller's `decide` gives (the domain's
`drip_exit`). The message's unique (campaign, lead, step) makes a step queued at most once.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import peewee as pw

from server.domain.campaigns import Audience, CampaignState, DripStep, MessageKind, due_times
from server.storage import models as m
from server.storage.campaigns import (
    ABANDONED_STATUSES,
    BOUNCED,
    CONVERTED_STATUSES,
    EMAIL_CONSENT_KIND,
    QUEUED,
    SENT,
    SIMULATED,
    CampaignRecord,
    _as_datetime,
    _audience_condition,
    _campaign,
    _naive,
)
from server.storage.db import Database

__all__ = [
    "ACTIVE",
    "EXITED",
    "KIND_DRIP",
    "DripRepository",
    "DueEnrollment",
    "PinnedStep",
    "steps_json",
    "steps_of",
]

KIND_DRIP = "drip"
ACTIVE, EXITED = "active", "exited"
# `enrol` looks this far behind its last look: a lead that moved just before it may commit after.
ENROL_MARGIN = dt.timedelta(minutes=5)
# Counted every sent message: their states that mean it went (or would have, simulated).
_WENT = (SENT, BOUNCED, SIMULATED)


@dataclass(frozen=True)
class PinnedStep:
    """A step as a campaign stores it: its template pinned to the version it sends."""

    template_id: str
    template_version: int
    delay: dt.timedelta

    @property
    def step(self) -> DripStep:
        return DripStep(delay=self.delay, template_id=self.template_id)


def steps_json(steps: Sequence[PinnedStep]) -> str:
    return json.dumps(
        [
            {
                "template_id": s.template_id,
                "template_version": s.template_version,
                "delay_minutes": int(s.delay.total_seconds() // 60),
            }
            for s in steps
        ]
    )


def steps_of(stored: str) -> list[PinnedStep]:
    return [
        PinnedStep(
            template_id=str(s["template_id"]),
            template_version=int(s.get("template_version", 0)),
            delay=dt.timedelta(minutes=int(s.get("delay_minutes", 0))),
        )
        for s in json.loads(stored or "[]")
    ]


@dataclass(frozen=True)
class DueEnrollment:
    """A due enrolment and what deciding its next step needs."""

    enrollment_id: str
    campaign_id: str
    lead_id: str | None
    address: str
    next_step: int
    total_steps: int
    lead_status: str | None  # None: the lead is gone
    suppressed: bool

    @property
    def converted(self) -> bool:
        return self.lead_status in CONVERTED_STATUSES

    @property
    def finished(self) -> bool:
        """The application is no longer abandoned (it reached a dealer, or was decided)."""
        return self.lead_status is not None and self.lead_status not in ABANDONED_STATUSES


class DripRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def check_templates(self, steps: Sequence[PinnedStep]) -> list[int]:
        """The indexes of the steps whose template version is not stored."""
        v = m.EmailTemplateVersion
        wanted = {(s.template_id, s.template_version) for s in steps}
        if not wanted:
            return []
        rows = cast(
            Any,
            v.select(v.template, v.version)
            .where(v.template.in_(sorted({t for t, _ in wanted})))
            .tuples(),
        )
        found = {(t, n) for t, n in rows}
        return [i for i, s in enumerate(steps) if (s.template_id, s.template_version) not in found]

    @staticmethod
    def running(limit: int = 100) -> builtins.list[CampaignRecord]:
        """The running drip campaigns, oldest first."""
        c = m.Campaign
        rows = (
            c.select()
            .where((c.kind == KIND_DRIP) & (c.state == CampaignState.RUNNING.value))
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        return [_campaign(r) for r in rows]

    # --- enrolment --------------------------------------------------------------------------

    def enrol(
        self, campaign_id: str, audience: Audience, now: dt.datetime, limit: int = 1000
    ) -> int:
        """Enrols up to `limit` applications abandoned since the campaign's last look (see the
        module docstring) into a running drip campaign; the number enrolled. When fewer than
        `limit` were found, the campaign's `enrolled_through` moves to `now`. Refreshes the
        campaign's `recipients` (its enrolments)."""
        c, lead, e = m.Campaign, m.Lead, m.DripEnrollment
        with self._db.transaction():
            row = c.get_or_none(
                (c.id == campaign_id)
                & (c.kind == KIND_DRIP)
                & (c.state == CampaignState.RUNNING.value)
            )
            if row is None:
                return 0
            steps = steps_of(row.steps_json)
            if not steps:
                return 0
            since = row.started_at or now
            if audience.abandoned_after is not None:
                since = min(since, _naive(audience.abandoned_after))
            if row.enrolled_through is not None:
                since = max(since, row.enrolled_through - ENROL_MARGIN)
            consent = m.LeadConsent
            s = m.Suppression
            query = (
                lead.select(lead.id, lead.email_normalized, lead.updated_at)
                .where(
                    (lead.email_normalized != "")
                    & lead.status.in_(ABANDONED_STATUSES)
                    & (lead.updated_at >= since)
                    & _audience_condition(audience)
                    & pw.fn.EXISTS(
                        consent.select(pw.SQL("1")).where(
                            (consent.lead == lead.id)
                            & (consent.kind == EMAIL_CONSENT_KIND)
                            & (consent.granted == True)  # noqa: E712
                        )
                    )
                    & ~pw.fn.EXISTS(
                        s.select(pw.SQL("1")).where(s.email_normalized == lead.email_normalized)
                    )
                    & ~pw.fn.EXISTS(
                        e.select(pw.SQL("1")).where(
                            (e.campaign == campaign_id) & (e.address == lead.email_normalized)
                        )
                    )
                )
                .order_by(lead.updated_at, lead.id)
                .limit(limit)
                .tuples()
            )
            found: builtins.list[tuple[str, str, dt.datetime]] = list(cast(Any, query))
            rows, seen = [], set()
            first = steps[0].delay
            for lead_id, address, moved_at in found:
                if address in seen:
                    continue
                seen.add(address)
                rows.append(
                    {
                        "id": m.new_id(),
                        "campaign": campaign_id,
                        "lead": lead_id,
                        "address": address,
                        "entered_at": moved_at,
                        "next_step": 0,
                        "next_due_at": moved_at + first,
                        "state": ACTIVE,
                        "exit_reason": "",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            if rows:
                e.insert_many(rows).on_conflict_ignore().execute()
            values: dict[Any, Any] = {
                c.recipients: e.select(pw.fn.COUNT(e.id)).where(e.campaign == campaign_id),
                c.updated_at: now,
            }
            if len(found) < limit:
                values[c.enrolled_through] = now
            c.update(values).where(c.id == campaign_id).execute()
        return len(rows)

    # --- steps ------------------------------------------------------------------------------

    def advance_due(
        self,
        now: dt.datetime,
        decide: Callable[[DueEnrollment], str | None],
        limit: int = 500,
    ) -> tuple[int, int]:
        """Claims up to `limit` due enrolments of running drip campaigns and, in one
        transaction, queues each one's next step (when `decide` answers None) or ends it with
        the reason `decide` answers; queuing the last step ends it as `completed`. Returns
        (steps queued, enrolments ended)."""
        e, c, lead, s = m.DripEnrollment, m.Campaign, m.Lead, m.Suppression
        with self._db.transaction():
            query = (
                e.select(
                    e.id,
                    e.campaign,
                    e.lead,
                    e.address,
                    e.next_step,
                    e.entered_at,
                    c.steps_json,
                    lead.status,
                    s.id.alias("suppression_id"),
                )
                .join(c, on=(e.campaign == c.id))
                .join(lead, pw.JOIN.LEFT_OUTER, on=(e.lead == lead.id))
                .join(s, pw.JOIN.LEFT_OUTER, on=(s.email_normalized == e.address))
                .where(
                    (e.state == ACTIVE)
                    & (e.next_due_at <= now)
                    & (c.state == CampaignState.RUNNING.value)
                    & (c.kind == KIND_DRIP)
                )
                .order_by(e.next_due_at, e.id)
                .limit(limit)
            )
            if self._db.backend == "postgresql":
                query = query.for_update(of=e, skip_locked=True)
            rows: builtins.list[dict[str, Any]] = list(cast(Any, query.dicts()))
            if not rows:
                return 0, 0
            steps_by_campaign: dict[str, list[PinnedStep]] = {}
            messages: builtins.list[dict[str, Any]] = []
            moves: builtins.list[tuple[str, int, dt.datetime | None, str]] = []
            for r in rows:
                steps = steps_by_campaign.setdefault(r["campaign"], steps_of(r["steps_json"]))
                due = DueEnrollment(
                    enrollment_id=r["id"],
                    campaign_id=r["campaign"],
                    lead_id=r["lead"],
                    address=r["address"],
                    next_step=r["next_step"],
                    total_steps=len(steps),
                    lead_status=r["status"],
                    suppressed=r["suppression_id"] is not None,
                )
                reason = decide(due)
                if reason is not None:
                    moves.append((due.enrollment_id, due.next_step, None, reason))
                    continue
                step = steps[due.next_step]
                messages.append(
                    {
                        "id": m.new_id(),
                        "campaign": due.campaign_id,
                        "lead": due.lead_id,
                        "template": step.template_id,
                        "template_version": step.template_version,
                        "kind": MessageKind.MARKETING.value,
                        "step_index": due.next_step,
                        "to_email": due.address,
                        "state": QUEUED,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                following = due.next_step + 1
                if following >= len(steps):
                    moves.append((due.enrollment_id, following, None, "completed"))
                else:
                    times = due_times(r["entered_at"], [p.step for p in steps])
                    moves.append((due.enrollment_id, following, max(times[following], now), ""))
            if messages:
                m.EmailMessage.insert_many(messages).on_conflict_ignore().execute()
            for enrollment_id, next_step, due_at, reason in moves:
                values: dict[Any, Any] = {e.next_step: next_step, e.updated_at: now}
                if due_at is None:
                    values.update({e.state: EXITED, e.exit_reason: reason})
                else:
                    values[e.next_due_at] = due_at
                e.update(values).where(e.id == enrollment_id).execute()
        return len(messages), sum(1 for _, _, due_at, _ in moves if due_at is None)

    @staticmethod
    def enrollments(campaign_id: str) -> dict[str, int]:
        """A campaign's enrolments counted: `active`, and each exit reason."""
        e = m.DripEnrollment
        rows = cast(
            Any,
            e.select(e.state, e.exit_reason, pw.fn.COUNT(e.id))
            .where(e.campaign == campaign_id)
            .group_by(e.state, e.exit_reason)
            .tuples(),
        )
        return {(reason or state): int(n) for state, reason, n in rows}

    # --- the frequency cap --------------------------------------------------------------------

    @staticmethod
    def last_marketing_sends(
        addresses: Iterable[str], since: dt.datetime
    ) -> dict[str, dt.datetime]:
        """Each address's latest marketing message sent at or after `since` (addresses with
        none are left out): one grouped statement over the (to_email, sent_at) index."""
        wanted = sorted(set(addresses))
        if not wanted:
            return {}
        e = m.EmailMessage
        out: dict[str, dt.datetime] = {}
        # A thousand addresses per statement: within every backend's parameter limit.
        for i in range(0, len(wanted), 1000):
            rows = cast(
                Any,
                e.select(e.to_email, pw.fn.MAX(e.sent_at))
                .where(
                    e.to_email.in_(wanted[i : i + 1000])
                    & (e.sent_at >= since)
                    & (e.kind == MessageKind.MARKETING.value)
                    & e.state.in_(_WENT)
                )
                .group_by(e.to_email)
                .tuples(),
            )
            for address, at in rows:
                if at is not None:
                    out[address] = _as_datetime(at)
        return out
