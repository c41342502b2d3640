"""Pipeline bookkeeping: the per-lead lease and stage, credit results, stuck-lead sweep."""

from __future__ import annotations

import datetime as dt

from server.domain.credit import CreditApplicant
from server.domain.leads import AgentName, CreditResult, LeadStatus
from server.storage import models as m
from server.storage.db import Database
from server.storage.leads import append_activities

STAGE_INTAKE, STAGE_CREDIT_CHECKED, STAGE_DONE = "intake", "credit_checked", "done"
_DECISION_STATUS = {
    "prequalified": LeadStatus.PREQUALIFIED,
    "declined": LeadStatus.DECLINED,
    "needs_review": LeadStatus.NEEDS_REVIEW,
}


class PipelineRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claim(
        self, lead_ids: list[str], owner: str, now: dt.datetime, lease: dt.timedelta
    ) -> list[str]:
        """Takes the pipeline lease of the given leads that nobody holds; returns those.

        One conditional UPDATE: on PostgreSQL a concurrent claimant waits for the row lock and
        then re-checks the condition against the committed row, so exactly one wins."""
        if not lead_ids:
            return []
        with self._db.transaction():
            free = (m.Lead.pipeline_locked_until.is_null()) | (m.Lead.pipeline_locked_until < now)
            m.Lead.update(pipeline_owner=owner, pipeline_locked_until=now + lease).where(
                m.Lead.id.in_(lead_ids) & free & (m.Lead.pipeline_stage != STAGE_DONE)
            ).execute()
            return self.owned(lead_ids, owner)

    def owned(self, lead_ids: list[str], owner: str) -> list[str]:
        """The given leads whose lease `owner` still holds (locked on PostgreSQL, so nobody takes
        them over before the caller's transaction ends)."""
        query = m.Lead.select(m.Lead.id).where(
            m.Lead.id.in_(lead_ids) & (m.Lead.pipeline_owner == owner)
        )
        if self._db.backend == "postgresql":
            query = query.for_update()
        return [r.id for r in query]

    def release(self, lead_ids: list[str], owner: str) -> None:
        if lead_ids:
            m.Lead.update(pipeline_locked_until=None, pipeline_owner="").where(
                m.Lead.id.in_(lead_ids) & (m.Lead.pipeline_owner == owner)
            ).execute()

    def stages(self, lead_ids: list[str]) -> dict[str, str]:
        rows = m.Lead.select(m.Lead.id, m.Lead.pipeline_stage).where(m.Lead.id.in_(lead_ids))
        return {r.id: r.pipeline_stage for r in rows}

    def applicants(self, lead_ids: list[str]) -> list[CreditApplicant]:
        """What the credit step needs of each lead (decrypted)."""
        consents = {
            c.lead_id: c
            for c in m.LeadConsent.select().where(
                m.LeadConsent.lead.in_(lead_ids) & (m.LeadConsent.kind == "fcra_soft_pull")
            )
        }
        out = []
        for r in m.Lead.select().where(m.Lead.id.in_(lead_ids)):
            consent = consents.get(r.id)
            out.append(
                CreditApplicant(
                    lead_id=r.id,
                    first_name=r.first_name,
                    last_name=r.last_name,
                    street=r.street,
                    city=r.city,
                    state=r.state,
                    zip_code=r.zip_code,
                    date_of_birth=dt.date.fromisoformat(r.date_of_birth),
                    monthly_income_cents=int(r.monthly_income_cents),
                    consented_at=consent.consented_at if consent else r.created_at,
                    consent_certificate_id=consent.certificate_id if consent else "",
                )
            )
        return out

    def record_credit(
        self, lead_id: str, result: CreditResult, fallback_reason: str, now: dt.datetime
    ) -> LeadStatus:
        """Stores a credit decision and moves the lead on (inside the caller's transaction)."""
        status = _DECISION_STATUS[result.decision]
        m.CreditCheck.create(
            lead=lead_id,
            source=result.source,
            decision=result.decision,
            tier=result.tier,
            score_band=result.score_band,
            max_payment_cents=result.max_payment_cents,
            max_amount_cents=result.max_amount_cents,
            reference_id=result.reference_id,
            created_at=result.checked_at,
        )
        m.Lead.update(
            status=status.value, pipeline_stage=STAGE_CREDIT_CHECKED, updated_at=now
        ).where(m.Lead.id == lead_id).execute()
        details = {
            "source": result.source,
            "decision": result.decision,
            "tier": result.tier,
            "score_band": result.score_band,
        }
        if fallback_reason:
            details["fallback_reason"] = fallback_reason
        append_activities(
            lead_id,
            [
                (
                    AgentName.CREDIT_CHECK,
                    "credit.checked",
                    f"Soft pull by {result.source}: {result.decision}, tier {result.tier}",
                    details,
                )
            ],
            at=now,
        )
        return status

    def finish(self, lead_id: str, now: dt.datetime) -> None:
        m.Lead.update(pipeline_stage=STAGE_DONE, updated_at=now).where(
            m.Lead.id == lead_id
        ).execute()

    def unrouted(self, lead_id: str, dealer_id: str | None) -> bool:
        query = m.Lead.select().where(
            (m.Lead.id == lead_id) & (m.Lead.status == LeadStatus.UNROUTED.value)
        )
        if dealer_id:
            query = query.where(m.Lead.source_dealer == dealer_id)
        return bool(query.exists())

    def stuck(self, now: dt.datetime, older_than: dt.timedelta, limit: int = 100) -> list[str]:
        """Accepted leads whose pipeline stopped midway (a crash) and nobody is running, oldest
        first. A lead that keeps failing keeps its place, but the orchestrator finishes the
        others of a batch around it, so it costs one of the `limit` places, not the sweep."""
        rows = (
            m.Lead.select(m.Lead.id)
            .where(
                (m.Lead.pipeline_stage != STAGE_DONE)
                & (m.Lead.updated_at < now - older_than)
                & (m.Lead.pipeline_locked_until.is_null() | (m.Lead.pipeline_locked_until < now))
            )
            .order_by(m.Lead.updated_at)
            .limit(limit)
        )
        return [r.id for r in rows]
