"""Transactional mail (issue 10): the adverse-action notice owed to a declined applicant.

`queue_adverse_actions` runs in the transaction that records the decline
(`PipelineRepository.record_credits`): one `email_message` per declined lead with an address,
`kind` transactional, no campaign, its id derived from the lead's (so the notice is queued once
whatever retries or replays happen), and an entry in the lead's activity. Email consent is not
asked: the notice is owed by law (FCRA § 615(a), ECOA), not marketing.

`claim_notice` leases one due notice under a batch id of its own (the campaign batch machinery
settles it: `mark_batch_sending`, `record_batch_sent`, `record_batch_unknown`, ...) with what
rendering it needs: the lead's first name and latest credit decision, and whether the address is
suppressed for a reason transactional mail respects (a hard bounce or a complaint; an
unsubscribe from marketing does not stop it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, cast

from server.domain.campaigns import MessageKind, SuppressionReason
from server.domain.leads import AgentName
from server.storage import models as m
from server.storage.campaigns import QUEUED, _due_messages
from server.storage.db import Database
from server.storage.leads import append_activity_batches

__all__ = ["ADVERSE_ACTION", "ClaimedNotice", "NoticeRepository", "notice_id"]

TRANSACTIONAL = MessageKind.TRANSACTIONAL.value
ADVERSE_ACTION = "adverse_action"
_NAMESPACE = uuid.UUID("5f0f3a52-8a47-4a8e-9d55-3c1f0e0c7a11")
# Transactional mail still never goes to an address that bounced hard or complained.
BLOCKING = (SuppressionReason.HARD_BOUNCE.value, SuppressionReason.COMPLAINT.value)


def notice_id(lead_id: str, kind: str = ADVERSE_ACTION) -> str:
    """The message id of a lead's notice: the same for every attempt to queue it."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{lead_id}"))


@dataclass(frozen=True)
class ClaimedNotice:
    """One leased adverse-action notice and what rendering it needs."""

    batch_id: str
    message_id: str
    lead_id: str | None
    address: str
    attempts: int
    first_name: str = field(repr=False)
    decision: str  # "" when the lead (or its credit check) is gone
    score_band: str
    decided_at: dt.datetime | None
    blocked_by: str  # the suppression reason that stops it ("" when none does)


class NoticeRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def queue_adverse_actions(lead_ids: list[str], now: dt.datetime) -> int:
        """Queues the adverse-action notice of each of these declined leads that has an
        address, once (inside the caller's transaction): one read, one insert, one insert of
        activity entries. The number queued now."""
        if not lead_ids:
            return 0
        lead = m.Lead
        rows = list(
            cast(
                Any,
                lead.select(lead.id, lead.email_normalized)
                .where(lead.id.in_(lead_ids) & (lead.email_normalized != ""))
                .tuples(),
            )
        )
        if not rows:
            return 0
        e = m.EmailMessage
        ids = [notice_id(lead_id) for lead_id, _ in rows]
        known = {r[0] for r in cast(Any, e.select(e.id).where(e.id.in_(ids)).tuples())}
        new = [(i, r) for i, r in zip(ids, rows, strict=True) if i not in known]
        if not new:
            return 0
        e.insert_many(
            [
                {
                    "id": message_id,
                    "campaign": None,
                    "lead": lead_id,
                    "template": None,
                    "template_version": 0,
                    "kind": TRANSACTIONAL,
                    "step_index": 0,
                    "to_email": address,
                    "state": QUEUED,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for message_id, (lead_id, address) in new
            ]
        ).on_conflict_ignore().execute()
        append_activity_batches(
            [
                (
                    lead_id,
                    [
                        (
                            AgentName.EMAIL_REENGAGEMENT,
                            "email.adverse_action_queued",
                            "Adverse-action notice queued for email",
                            {"message_id": message_id},
                        )
                    ],
                )
                for message_id, (lead_id, _) in new
            ],
            at=now,
        )
        return len(new)

    def claim_notice(
        self, worker_id: str, now: dt.datetime, lease: dt.timedelta
    ) -> ClaimedNotice | None:
        """Leases the oldest due notice under a new batch id; None when none is due."""
        e = m.EmailMessage
        with self._db.transaction():
            query = (
                e.select(e.id, e.lead, e.to_email, e.attempts)
                .where(_due_messages(now) & e.campaign.is_null() & (e.kind == TRANSACTIONAL))
                .order_by(e.next_attempt_at)
                .limit(1)
            )
            if self._db.backend == "postgresql":
                query = query.for_update(skip_locked=True)
            found = cast(Any, query.tuples()).first()
            if found is None:
                return None
            message_id, lead_id, address, attempts = found
            batch_id = str(uuid.uuid4())
            e.update(
                locked_by=worker_id, locked_until=now + lease, batch_id=batch_id, updated_at=now
            ).where(e.id == message_id).execute()
            first_name, decision, band, decided_at = "", "", "", None
            if lead_id is not None:
                lead, cc = m.Lead, m.CreditCheck
                row = lead.select(lead.first_name).where(lead.id == lead_id).first()
                first_name = row.first_name if row is not None else ""
                check = (
                    cc.select(cc.decision, cc.score_band, cc.created_at)
                    .where(cc.lead == lead_id)
                    .order_by(cc.created_at.desc(), cc.id.desc())
                    .first()
                )
                if check is not None:
                    decision, band, decided_at = check.decision, check.score_band, check.created_at
            s = m.Suppression
            blocked = (
                s.select(s.reason)
                .where((s.email_normalized == address) & s.reason.in_(BLOCKING))
                .scalar()
            )
        return ClaimedNotice(
            batch_id=batch_id,
            message_id=message_id,
            lead_id=lead_id,
            address=address,
            attempts=attempts,
            first_name=first_name or "",
            decision=decision,
            score_band=band,
            decided_at=decided_at,
            blocked_by=blocked or "",
        )
