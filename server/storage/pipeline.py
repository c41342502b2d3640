"""Pipeline bookkeeping: the per-lead lease and stage, credit results, stuck-lead sweep, and
the pipeline's units of work (a batch's intake, the steps after the credit check, a re-route).

The steps after the credit check take the routing step as a callable (the LeadPackaging agent):
routing reads the dealers locked and writes the package in the same transaction as the credit
results and the lease check, so daily caps hold exactly and a lead whose lease went to another
run is left to that run."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import peewee as pw

from server.domain.clock import utcnow
from server.domain.credit import CreditApplicant
from server.domain.leads import ActivityEntry, AgentName, CreditResult, LeadStatus, ValidLead
from server.errors import AlreadyExistsError, CclError
from server.storage import models as m
from server.storage.compiled import CompiledInsert, CompiledQuery, CompiledUpdate
from server.storage.db import Database
from server.storage.leads import (
    BatchResolver,
    LeadRepository,
    PipelineLease,
    Resolver,
    StoredResult,
    append_activity_batches,
)
from server.storage.notices import NoticeRepository

__all__ = [
    "STAGE_CREDIT_CHECKED",
    "STAGE_DONE",
    "STAGE_INTAKE",
    "Finished",
    "IntakeItem",
    "PipelineRepository",
    "RouteStep",
]

log = logging.getLogger("ccl.pipeline")

STAGE_INTAKE, STAGE_CREDIT_CHECKED, STAGE_DONE = "intake", "credit_checked", "done"
_CREDIT_CHECKS = CompiledInsert.of(m.CreditCheck)  # compiled once (issue 9)


# The steps' reads and writes of the lead's pipeline columns, compiled once too.
def _leases_query(lock: bool) -> CompiledQuery:
    """The held leases of some leads with their stages; locked on PostgreSQL (`lock`)."""

    def build(ids: Any, owners: Any) -> Any:
        query = m.Lead.select(m.Lead.id, m.Lead.pipeline_owner, m.Lead.pipeline_stage).where(
            m.Lead.id.in_(ids) & m.Lead.pipeline_owner.in_(owners)
        )
        return query.for_update() if lock else query

    return CompiledQuery(m.Lead, build)


_LEASES = {lock: _leases_query(lock) for lock in (False, True)}
_STAGES = CompiledQuery(
    m.Lead,
    lambda ids: m.Lead.select(m.Lead.id, m.Lead.pipeline_stage).where(m.Lead.id.in_(ids)),
)
_SET_STATUS = CompiledUpdate(
    m.Lead, ["status", "pipeline_stage", "updated_at"], lambda ids: m.Lead.id.in_(ids)
)
_FINISH = CompiledUpdate(m.Lead, ["pipeline_stage", "updated_at"], lambda ids: m.Lead.id.in_(ids))
_RELEASE = CompiledUpdate(
    m.Lead,
    ["pipeline_locked_until", "pipeline_owner"],
    lambda ids, owner: m.Lead.id.in_(ids) & (m.Lead.pipeline_owner == owner),
)
# Finishing and releasing a lead in one statement: stage, time and lease.
_FINISH_AND_RELEASE = CompiledUpdate(
    m.Lead,
    ["pipeline_stage", "updated_at", "pipeline_locked_until", "pipeline_owner"],
    lambda ids, owner: m.Lead.id.in_(ids) & (m.Lead.pipeline_owner == owner),
)
_DECISION_STATUS = {
    "prequalified": LeadStatus.PREQUALIFIED,
    "declined": LeadStatus.DECLINED,
    "needs_review": LeadStatus.NEEDS_REVIEW,
}


# One lead of a batch's intake: the validated lead, its idempotency key, its request hash.
IntakeItem = tuple[ValidLead, str, str]
# The routing step of a batch of credit-checked leads (inside the caller's transaction);
# returns whether it queued a delivery.
RouteStep = Callable[[list[str], dt.datetime], bool]


@dataclass(frozen=True)
class Finished:
    """What `finish_steps` did: whether it queued a delivery, and the leads whose credit
    results it recorded (held by their caller's lease until then)."""

    queued: bool
    recorded: list[str]


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
        """The given leads whose lease `owner` still holds (see `owned_by`)."""
        return self.owned_by(dict.fromkeys(lead_ids, owner))

    def release(self, lead_ids: list[str], owner: str) -> None:
        if lead_ids:
            _RELEASE.execute(
                pipeline_locked_until=None, pipeline_owner="", ids=lead_ids, owner=owner
            )

    def stages(self, lead_ids: list[str]) -> dict[str, str]:
        if not lead_ids:
            return {}
        return dict(_STAGES.rows(ids=lead_ids))

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
        return self.record_credits([(lead_id, result, fallback_reason)], now)[0]

    def record_credits(
        self, checked: list[tuple[str, CreditResult, str]], now: dt.datetime
    ) -> list[LeadStatus]:
        """Stores the credit decisions of many leads (lead, result, fallback reason) and moves
        each lead on, inside the caller's transaction: one insert of the checks, one update per
        status reached, one insert of the activity entries. The statuses, in order."""
        if not checked:
            return []
        _CREDIT_CHECKS.execute(
            [
                {
                    "id": m.new_id(),
                    "lead": lead_id,
                    "source": result.source,
                    "decision": result.decision,
                    "tier": result.tier,
                    "score_band": result.score_band,
                    "max_payment_cents": result.max_payment_cents,
                    "max_amount_cents": result.max_amount_cents,
                    "reference_id": result.reference_id,
                    "created_at": result.checked_at,
                }
                for lead_id, result, _ in checked
            ]
        )
        statuses = [_DECISION_STATUS[result.decision] for _, result, _ in checked]
        for status in sorted(set(statuses)):
            ids = [c[0] for c, s in zip(checked, statuses, strict=True) if s is status]
            _SET_STATUS.execute(
                status=status.value, pipeline_stage=STAGE_CREDIT_CHECKED, updated_at=now, ids=ids
            )
        append_activity_batches(
            [(lead_id, [_credit_entry(result, fallback)]) for lead_id, result, fallback in checked],
            at=now,
        )
        # The applicant is told of a decline: the adverse-action notice is owed by email, queued
        # in the transaction that records the decision (issue 10, `storage.notices`).
        declined = [
            lead_id
            for (lead_id, _, _), status in zip(checked, statuses, strict=True)
            if status is LeadStatus.DECLINED
        ]
        NoticeRepository.queue_adverse_actions(declined, now)
        return statuses

    def intake_batch(
        self,
        leads: LeadRepository,
        items: list[IntakeItem],
        *,
        scope: str,
        source_dealer_id: str | None,
        resolve: Resolver | None,
        lease: PipelineLease,
        resolve_batch: BatchResolver | None = None,
    ) -> list[StoredResult | CclError]:
        """Stores a batch's leads in one transaction; one result (or the error that rejected
        it) per item, in order. With `resolve_batch`, the leads it decides at once are stored
        set-based (`create_batch_in_transaction`) in a savepoint; if that fails as a whole (a
        concurrent transaction linked one of their identifiers first, say), it is undone and
        they go one by one like the rest: each in a savepoint, so one bad record undoes only
        itself. A batch of one needs no savepoint: its transaction undoes it, and a conflict
        sends it to `LeadRepository.create` (which answers a concurrent twin of its key with
        that one's result)."""

        def store(
            create: Callable[..., StoredResult], lead: ValidLead, key: str, request_hash: str
        ) -> StoredResult:
            return create(
                lead,
                scope=scope,
                idempotency_key=key,
                request_hash=request_hash,
                source_dealer_id=source_dealer_id,
                resolve=resolve,
                pipeline_lease=lease,
            )

        if len(items) == 1:
            if resolve_batch is not None:
                # The set-based path for one lead too (its inserts are compiled once), in a
                # transaction of its own that a conflict rolls back as a whole.
                try:
                    with self._db.transaction():
                        (decided,) = leads.create_batch_in_transaction(
                            items,
                            scope=scope,
                            source_dealer_id=source_dealer_id,
                            resolve_batch=resolve_batch,
                            pipeline_lease=lease,
                        )
                        if decided is None:  # left to be decided alone
                            decided = store(leads.create_in_transaction, *items[0])
                        return [decided]
                except CclError as e:
                    return [e]
                except pw.IntegrityError:
                    log.info("set-based intake conflicted; storing the lead again alone")
            try:
                return [store(leads.create, *items[0])]
            except CclError as e:
                return [e]
            except pw.IntegrityError:
                return [AlreadyExistsError("record conflicts", "CONFLICT")]
        with self._db.transaction():
            out: list[StoredResult | CclError | None] = [None] * len(items)
            if resolve_batch is not None:
                try:
                    with self._db.db.atomic():
                        out = leads.create_batch_in_transaction(
                            items,
                            scope=scope,
                            source_dealer_id=source_dealer_id,
                            resolve_batch=resolve_batch,
                            pipeline_lease=lease,
                        )
                except pw.IntegrityError:
                    log.info("set-based intake conflicted; storing its leads one by one")
                    out = [None] * len(items)
            for i, (lead, key, request_hash) in enumerate(items):
                if out[i] is not None:
                    continue
                try:
                    with self._db.db.atomic():  # a savepoint: one bad record undoes itself
                        out[i] = store(leads.create_in_transaction, lead, key, request_hash)
                except CclError as e:
                    out[i] = e
                except pw.IntegrityError:
                    # Another stream stored the same key first: answer with its result.
                    try:
                        earlier = leads.replay(scope, key, request_hash)
                    except CclError as e:  # the same key with another request
                        out[i] = e
                        continue
                    out[i] = earlier or AlreadyExistsError("record conflicts", "CONFLICT")
        return [r for r in out if r is not None]

    def owned_by(self, leases: Mapping[str, str]) -> list[str]:
        """The leads of `leases` (lead id -> owner token) whose lease their owner still holds
        (locked on PostgreSQL, like `owned`)."""
        return list(self._held_stages(leases))

    def _held_stages(self, leases: Mapping[str, str]) -> dict[str, str]:
        """`owned_by` with each lead's pipeline stage, in the same statement."""
        if not leases:
            return {}
        rows = _LEASES[self._db.backend == "postgresql"].rows(
            ids=list(leases), owners=sorted(set(leases.values()))
        )
        return {i: stage for i, owner, stage in rows if leases.get(i) == owner}

    def finish_steps(
        self,
        held: list[str],
        owner: str | Mapping[str, str],
        checked: list[tuple[str, CreditResult, str]],
        route: RouteStep,
    ) -> Finished:
        """One transaction: store the credit results (lead, result, fallback reason), route
        every credit-checked lead, mark it done, release the leases. `owner` is the token of
        every lease, or each lead's own (lead id -> token: a batch of leads from several runs).
        Only leads whose lease their owner still holds (locked on PostgreSQL) are touched: one
        whose lease expired and went to another run meanwhile is left to that run. Returns
        whether a delivery was queued and which leads' credit results it recorded."""
        leases = {i: owner for i in held} if isinstance(owner, str) else dict(owner)
        queued = False
        with self._db.transaction():
            now = utcnow()
            stages = self._held_stages(leases)  # the leads whose lease is still held
            mine = set(stages)
            to_record = [c for c in checked if c[0] in mine and stages.get(c[0]) == STAGE_INTAKE]
            self.record_credits(to_record, now)
            stages.update((lead_id, STAGE_CREDIT_CHECKED) for lead_id, _, _ in to_record)
            to_route = [i for i in held if i in mine and stages.get(i) == STAGE_CREDIT_CHECKED]
            if to_route:
                queued = route(to_route, now)
            # Finished leads are marked done and released in one statement per token (each is
            # held: checked above, in this transaction); any others are released.
            done = set(to_route)
            for token in sorted({leases[i] for i in mine}):
                ids = [i for i in mine if leases[i] == token]
                finished = [i for i in ids if i in done]
                if finished:
                    _FINISH_AND_RELEASE.execute(
                        pipeline_stage=STAGE_DONE,
                        updated_at=now,
                        pipeline_locked_until=None,
                        pipeline_owner="",
                        ids=finished,
                        owner=token,
                    )
                self.release([i for i in ids if i not in done], token)
        return Finished(queued, [lead_id for lead_id, _, _ in to_record])

    def reopen(self, lead_id: str, dealer_id: str | None) -> bool:
        """Puts an unrouted lead (of `dealer_id`'s, if given) back to the routing step; False
        (and nothing written) when the lead is not unrouted."""
        with self._db.transaction():
            if not self.unrouted(lead_id, dealer_id):
                return False
            m.Lead.update(pipeline_stage=STAGE_CREDIT_CHECKED).where(m.Lead.id == lead_id).execute()
            return True

    def finish_many(self, lead_ids: list[str], now: dt.datetime) -> None:
        if lead_ids:
            _FINISH.execute(pipeline_stage=STAGE_DONE, updated_at=now, ids=lead_ids)

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


def _credit_entry(result: CreditResult, fallback_reason: str) -> ActivityEntry:
    details = {
        "source": result.source,
        "decision": result.decision,
        "tier": result.tier,
        "score_band": result.score_band,
    }
    if fallback_reason:
        details["fallback_reason"] = fallback_reason
    return (
        AgentName.CREDIT_CHECK,
        "credit.checked",
        f"Soft pull by {result.source}: {result.decision}, tier {result.tier}",
        details,
    )
