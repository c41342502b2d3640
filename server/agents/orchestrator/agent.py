"""The orchestrator: one lead flows VisitorIdentifier -> CreditCheck -> LeadPackaging -> delivery.

1. Intake (one transaction): idempotency, validation already done, VisitorIdentifier's identity
   and duplicate decision, the lead with its consent evidence, the first activity entries, the
   idempotency record. Rejected input writes nothing.
2. Credit check (outside any transaction: it may call FlexPath), then one transaction storing
   the result and the lead's new status.
3. Routing and packaging (one transaction), which also queues the delivery in the outbox.
4. The delivery worker sends the package.

Steps 2 and 3 run under a per-lead lease and record the next stage on the lead, so a retried
request (same idempotency key) or the periodic sweep resumes a pipeline a crash interrupted,
and two processes never run the same lead's steps at once. Bulk import runs the same steps on
chunks of leads, batching each step's writes into one transaction.

Real-time calls are batched too (group commit, `batcher.py`): concurrent `process` calls share
one intake transaction (a lease per batch) and, after each lead's own credit check, one
transaction for the results and routing, which also reads the leads back. A caller is answered
only after its batch committed; one lead that breaks its batch fails alone; a caller that goes
away does not stop its accepted lead's steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from server.agents.credit_check import CreditCheckAgent, CreditOutcome
from server.agents.lead_packaging import LeadPackaging
from server.agents.orchestrator.batcher import Batcher
from server.agents.visitor_identifier import VisitorIdentifier
from server.domain.clock import utcnow
from server.domain.credit import CreditApplicant
from server.domain.dealer_view import dealer_view
from server.domain.leads import (
    LeadInput,
    LeadOutcome,
    LeadRecord,
    ProcessResult,
    ValidLead,
)
from server.domain.principal import Principal, Role
from server.domain.routing import RoutingLead, routing_lead_of
from server.domain.validation import validate_idempotency_key, validate_lead
from server.errors import CclError, FailedPreconditionError, InvalidArgumentError
from server.storage.db import Database
from server.storage.leads import LeadRepository, PipelineLease, StoredResult
from server.storage.pipeline import STAGE_INTAKE, IntakeItem, PipelineRepository

log = logging.getLogger("ccl.orchestrator")

# Longer than the slowest legitimate pipeline (FlexPath: 3 attempts x 15 s plus backoff), so a
# live process never loses a lead to the sweep; short enough that a crashed one's leads resume
# within a couple of minutes.
PIPELINE_LEASE = dt.timedelta(seconds=90)
MAX_IMPORT_RECORDS = 100_000
IMPORT_CHUNK = 100


def request_fingerprint(lead: LeadInput) -> str:
    """A stable hash of a submission, to tell a retry from a different request: SHA-256 of
    the JSON of `dataclasses.asdict(lead)` with sorted keys (stored with every idempotency
    record, so it must never change), built without `asdict`'s deep copies."""
    canonical = json.dumps(_plain(lead), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _plain(value: object) -> object:
    """What `dataclasses.asdict` gives for JSON: dataclasses as dicts of their fields,
    recursively (tuples become lists, which JSON writes the same way)."""
    if isinstance(value, _LEAVES) or value is None:
        return value
    names = _FIELD_NAMES.get(type(value))
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[type(value)] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_LEAVES = (str, int, float, bool, dt.date)  # as they are (a date is written by `default=str`)


def dealer_of(principal: Principal) -> str | None:
    return principal.dealer_id if principal.role is Role.DEALER else None


@dataclass(frozen=True)
class ImportRecord:
    idempotency_key: str
    lead: LeadInput | None
    record_ref: str


@dataclass(frozen=True)
class ImportRecordResult:
    record_ref: str
    outcome: LeadOutcome
    lead_id: str
    reason: str
    replay: bool = False


@dataclass(frozen=True)
class _Finishing:
    """A new lead waiting for its batch's finishing step: its credit outcome, the lease it
    is held under, and the lead as intake wrote it."""

    lead_id: str
    owner: str
    outcome: CreditOutcome
    written: LeadRecord


@dataclass(frozen=True)
class _Intake:
    """One `process` call's intake, waiting for its batch."""

    scope: str
    source_dealer_id: str | None
    lead: ValidLead
    key: str
    request_hash: str


def _applicant(lead: ValidLead, stored: StoredResult) -> CreditApplicant | None:
    """The credit applicant of a lead accepted and created now (not a replay, not a duplicate:
    those have no steps to run here), from what was validated and stored; else None (also if
    it cannot be built: the lead is stored, and the sweep runs its steps)."""
    if stored.outcome is not LeadOutcome.ACCEPTED or stored.replay or stored.lead is None:
        return None
    consent = stored.lead.applicant.consent
    try:
        return CreditApplicant.from_valid_lead(
            stored.lead_id, lead, consent.consented_at if consent else None
        )
    except ValueError:
        log.exception("no credit applicant for a stored lead", extra={"lead_id": stored.lead_id})
        return None


def describe(error: CclError) -> str:
    """A rejection reason for a per-record result: 'field: problem; ...' or the message."""
    if isinstance(error, InvalidArgumentError) and error.violations:
        return "; ".join(f"{v.field}: {v.description}" for v in error.violations)
    return f"{error.reason}: {error.message}"


class Orchestrator:
    def __init__(
        self,
        db: Database,
        leads: LeadRepository,
        pipeline: PipelineRepository,
        identifier: VisitorIdentifier,
        credit: CreditCheckAgent,
        packaging: LeadPackaging,
        *,
        region: str,
        on_delivery_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._leads = leads
        self._pipeline = pipeline
        self._identifier = identifier
        self._credit = credit
        self._packaging = packaging
        self._region = region
        self._on_delivery_queued = on_delivery_queued
        # Group commit (see `batcher.py`). SQLite has one writer, so one batch of a kind at a
        # time; PostgreSQL commits several at once.
        concurrent = 1 if db.backend == "sqlite" else 4
        self._intake_batcher: Batcher[_Intake, tuple[StoredResult, str, CreditApplicant | None]] = (
            Batcher(self._intake_many, name="intake", max_size=64, max_concurrent=concurrent)
        )
        self._finish_batcher: Batcher[_Finishing, LeadRecord | None] = Batcher(
            self._finish_many, name="finish", max_size=64, max_concurrent=concurrent
        )

    # --- real time ------------------------------------------------------------------------

    async def process(
        self,
        principal: Principal,
        idempotency_key: str,
        lead: LeadInput | None,
        *,
        source_dealer_id: str | None = None,
    ) -> ProcessResult:
        """Runs one lead through the whole pipeline and returns where it ended up."""
        key = validate_idempotency_key(idempotency_key)
        valid = validate_lead(lead, region=self._region)
        assert lead is not None
        intake = _Intake(
            principal.scope,
            source_dealer_id or dealer_of(principal),
            valid,
            key,
            request_fingerprint(lead),
        )
        # Intake and, for a new lead, its steps run to the end even if the caller goes away:
        # an accepted lead is ours to finish (not left under its lease for the sweep).
        stored, record = await asyncio.shield(self._accept(intake))
        if record is None and stored.outcome is LeadOutcome.ACCEPTED and stored.replay:
            # A replay must claim the lead (it may be running elsewhere, or have stopped midway
            # in a crash).
            await self.advance([stored.lead_id])
        if record is None:
            record = await self._db.run(self._leads.get, stored.lead_id)
        if dealer_of(principal):
            return ProcessResult(
                lead=dealer_view(record),
                outcome=stored.outcome,
                idempotent_replay=stored.replay,
            )
        return ProcessResult(
            lead=record,
            outcome=stored.outcome,
            idempotent_replay=stored.replay,
            returning_applicant=stored.returning_applicant,
            identity=stored.identity,
        )

    # --- real time, in batches (group commit) ---------------------------------------------

    async def _accept(self, intake: _Intake) -> tuple[StoredResult, LeadRecord | None]:
        """A call's intake (in a batch) and, for a lead created now, its steps: the stored
        result and the lead as it ended up (None when no steps ran here)."""
        stored, owner, applicant = await self._intake_batcher.submit(intake)
        if applicant is None or stored.lead is None:
            return stored, None
        return stored, await self._steps(applicant, owner, stored.lead)

    async def _intake_many(
        self, items: list[_Intake]
    ) -> list[tuple[StoredResult, str, CreditApplicant | None] | BaseException]:
        """The intake of concurrent `process` calls: one trip to the database thread, one
        transaction per (scope, source dealer) among them (in practice one), every new lead
        born holding the batch's lease. What a new lead's credit check needs is known already:
        the validated lead, and its consent time as stored."""
        lease = PipelineLease(uuid.uuid4().hex, utcnow() + PIPELINE_LEASE)
        groups: dict[tuple[str, str | None], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.scope, item.source_dealer_id), []).append(i)

        def intake(
            indexes: list[int], scope: str, source_dealer_id: str | None
        ) -> list[StoredResult | CclError]:
            return self._pipeline.intake_batch(
                self._leads,
                [(items[i].lead, items[i].key, items[i].request_hash) for i in indexes],
                scope=scope,
                source_dealer_id=source_dealer_id,
                resolve=self._identifier.resolve_lead,
                resolve_batch=self._identifier.resolve_leads,
                lease=lease,
            )

        def run() -> list[StoredResult | BaseException]:
            """Each group in its own transaction; a group that fails as a whole is run again
            item by item, so a committed group is never run twice (nothing here raises)."""
            out: list[StoredResult | BaseException | None] = [None] * len(items)
            for (scope, source_dealer_id), indexes in groups.items():
                try:
                    stored: list[StoredResult | BaseException] = list(
                        intake(indexes, scope, source_dealer_id)
                    )
                except Exception as e:
                    if len(indexes) == 1:
                        stored = [e]
                    else:
                        log.exception("intake batch failed; storing its leads one by one")
                        stored = []
                        for i in indexes:
                            try:
                                stored += intake([i], scope, source_dealer_id)
                            except Exception as alone:
                                stored.append(alone)
                for i, result in zip(indexes, stored, strict=True):
                    out[i] = result
            return [r for r in out if r is not None]

        stored = await self._db.run(run)
        return [
            r if isinstance(r, BaseException) else (r, lease.owner, _applicant(items[i].lead, r))
            for i, r in enumerate(stored)
        ]

    async def aclose(self) -> None:
        """Waits for the batches still running (shutdown: before the database closes)."""
        await self._intake_batcher.drain()
        await self._finish_batcher.drain()

    async def _steps(
        self, applicant: CreditApplicant, owner: str, written: LeadRecord
    ) -> LeadRecord | None:
        """A new lead's credit check (on its own: it may wait on FlexPath), then its routing in a
        batch with the others finishing at the same time; the lead as it ended up (None if it
        is gone)."""
        try:
            outcome = await self._credit.check(applicant)
            return await self._finish_batcher.submit(
                _Finishing(applicant.lead_id, owner, outcome, written)
            )
        except Exception:
            log.exception("pipeline steps failed", extra={"lead_id": applicant.lead_id})
            # Leave the lead to the sweep (or a retry) at once rather than when the lease ends.
            await self._db.run(self._pipeline.release, [applicant.lead_id], owner)
            raise

    async def _finish_many(self, items: list[_Finishing]) -> list[LeadRecord | None]:
        """Credit results and routing of many leads in one transaction, and the leads as they
        ended up, on the same trip to the database thread: as intake wrote them, with the
        columns the steps changed read back (a lead finished elsewhere is read whole)."""
        held = [item.lead_id for item in items]
        # Routing takes these leads from memory (as intake wrote them, with their credit
        # result) rather than reading them back and decrypting them.
        known = {
            item.lead_id: routing_lead_of(
                dataclasses.replace(item.written, credit=item.outcome.result)
            )
            for item in items
        }

        def finish_and_read() -> dict[str, LeadRecord]:
            recorded = set(
                self._finish_steps(
                    held,
                    {item.lead_id: item.owner for item in items},
                    [(item.lead_id, item.outcome) for item in items],
                    known,
                )
            )
            records = self._leads.refreshed(
                [item.written for item in items if item.lead_id in recorded],
                {item.lead_id: item.outcome.result for item in items},
            )
            rest = [lead_id for lead_id in held if lead_id not in records]
            return records | self._leads.get_many(rest) if rest else records

        records = await self._db.run(finish_and_read)
        return [records.get(lead_id) for lead_id in held]

    # --- the pipeline steps ---------------------------------------------------------------

    async def advance(self, lead_ids: list[str], *, owner: str | None = None) -> None:
        """Runs the remaining steps (credit check, routing) of the given leads, in batches.
        Leads another run holds, or that are done, are skipped. With `owner`, the caller
        already holds their leases under that token (it just created them).

        Writes: the credit results, the routing, the new stage and the lease release of all
        the leads go in one transaction after the (network-bound) credit checks, and only for
        the leads whose lease this run still holds then."""
        token = owner or uuid.uuid4().hex
        held = (
            list(lead_ids)
            if owner
            else await self._db.run(self._pipeline.claim, lead_ids, token, utcnow(), PIPELINE_LEASE)
        )
        if not held:
            return
        finished = False
        try:
            stages = await self._db.run(self._pipeline.stages, held)
            to_check = [i for i in held if stages.get(i) == STAGE_INTAKE]
            outcomes = await self._check(to_check) if to_check else []
            try:
                await self._db.run(self._finish_steps, held, token, outcomes)
            except Exception:
                if len(held) == 1:
                    raise
                # One lead that always fails must not hold back the rest of its batch: finish
                # them one by one; the failing one stays for the sweep (and is logged).
                log.exception("pipeline batch failed; finishing its leads one by one")
                by_lead = dict(outcomes)
                for lead_id in held:
                    checked = [(lead_id, by_lead[lead_id])] if lead_id in by_lead else []
                    try:
                        await self._db.run(self._finish_steps, [lead_id], token, checked)
                    except Exception:
                        log.exception("pipeline step failed", extra={"lead_id": lead_id})
                await self._db.run(self._pipeline.release, held, token)  # the failed ones
            finished = True
        finally:
            if not finished:
                await self._db.run(self._pipeline.release, held, token)

    async def _check(self, lead_ids: list[str]) -> list[tuple[str, CreditOutcome]]:
        applicants = await self._db.run(self._pipeline.applicants, lead_ids)
        outcomes = await asyncio.gather(*(self._credit.check(a) for a in applicants))
        return [(a.lead_id, o) for a, o in zip(applicants, outcomes, strict=True)]

    def _finish_steps(
        self,
        held: list[str],
        owner: str | dict[str, str],
        checked: list[tuple[str, CreditOutcome]],
        known: Mapping[str, RoutingLead] | None = None,
    ) -> list[str]:
        """One transaction (storage's unit of work): store credit results, route every
        credit-checked lead, release; leads whose lease expired and went to another run
        meanwhile are left to that run. The leads whose credit results it recorded. `known`:
        leads routing may take from memory instead of reading them back."""

        def route(lead_ids: list[str], now: dt.datetime) -> bool:
            return self._route_step(lead_ids, now, known)

        finished = self._pipeline.finish_steps(
            held,
            owner,
            [(lead_id, o.result, o.fallback_reason) for lead_id, o in checked],
            route,
        )
        if finished.queued:
            self._on_delivery_queued()
        return finished.recorded

    def _route_step(
        self,
        lead_ids: list[str],
        now: dt.datetime,
        known: Mapping[str, RoutingLead] | None = None,
    ) -> bool:
        """LeadPackaging on a batch of leads, inside the pipeline's transaction; True if it
        queued a delivery."""
        routed = self._packaging.route_many(lead_ids, now, known)
        return any(r.delivery_id is not None for r in routed.values())

    async def route(self, principal: Principal, lead_id: str) -> LeadRecord:
        """Routes an unrouted lead again (RouteLead)."""
        dealer = dealer_of(principal)
        await self._db.run(self._leads.get, lead_id, dealer)  # NOT_FOUND for foreign leads

        if not await self._db.run(self._pipeline.reopen, lead_id, dealer):
            raise FailedPreconditionError(
                "only an unrouted lead can be routed again", reason="LEAD_NOT_UNROUTED"
            )
        await self.advance([lead_id])
        record = await self._db.run(self._leads.get, lead_id, dealer)
        return dealer_view(record) if dealer else record

    async def sweep(self, older_than: dt.timedelta) -> int:
        """Resumes pipelines that stopped midway (a crash between steps); returns how many."""
        stuck = await self._db.run(self._pipeline.stuck, utcnow(), older_than)
        if stuck:
            log.warning("resuming stopped pipelines", extra={"leads": len(stuck)})
            await self.advance(stuck)
        return len(stuck)

    async def run_sweeper(self, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
            try:
                await self.sweep(dt.timedelta(seconds=interval))
            except Exception:
                log.exception("pipeline sweep failed")

    # --- bulk -----------------------------------------------------------------------------

    async def import_leads(
        self, principal: Principal, records: AsyncIterator[ImportRecord]
    ) -> list[ImportRecordResult]:
        """Processes a stream of records in chunks: one result per record, in order."""
        results: list[ImportRecordResult] = []
        chunk: list[ImportRecord] = []
        count = 0
        async for record in records:
            count += 1
            if count > MAX_IMPORT_RECORDS:
                raise InvalidArgumentError(
                    f"an import stream takes at most {MAX_IMPORT_RECORDS} records",
                    reason="IMPORT_TOO_LARGE",
                )
            chunk.append(record)
            if len(chunk) >= IMPORT_CHUNK:
                results += await self._import_chunk(principal, chunk)
                chunk = []
        if chunk:
            results += await self._import_chunk(principal, chunk)
        return results

    async def _import_chunk(
        self, principal: Principal, chunk: list[ImportRecord]
    ) -> list[ImportRecordResult]:
        results: dict[int, ImportRecordResult] = {}
        valid: list[tuple[int, ImportRecord, str, ValidLead]] = []
        for i, record in enumerate(chunk):
            try:
                key = validate_idempotency_key(record.idempotency_key)
                valid.append((i, record, key, validate_lead(record.lead, region=self._region)))
            except CclError as e:
                results[i] = ImportRecordResult(
                    record.record_ref, LeadOutcome.REJECTED, "", describe(e)
                )

        lease = PipelineLease(uuid.uuid4().hex, utcnow() + PIPELINE_LEASE)

        items: list[IntakeItem] = []
        for _, record, key, lead in valid:
            assert record.lead is not None
            items.append((lead, key, request_fingerprint(record.lead)))
        intake = await self._db.run(
            self._pipeline.intake_batch,
            self._leads,
            items,
            scope=principal.scope,
            source_dealer_id=dealer_of(principal),
            resolve=self._identifier.resolve_lead,
            resolve_batch=self._identifier.resolve_leads,
            lease=lease,
        )

        accepted: list[str] = []  # created here, so holding their leases
        replayed: list[str] = []
        for (i, *_), stored in zip(valid, intake, strict=True):
            ref = chunk[i].record_ref
            if isinstance(stored, CclError):
                results[i] = ImportRecordResult(ref, LeadOutcome.REJECTED, "", describe(stored))
                continue
            results[i] = ImportRecordResult(ref, stored.outcome, stored.lead_id, "", stored.replay)
            if stored.outcome is LeadOutcome.ACCEPTED:
                (replayed if stored.replay else accepted).append(stored.lead_id)
        if accepted:
            await self.advance(accepted, owner=lease.owner)
        if replayed:
            await self.advance(replayed)
        return [results[i] for i in range(len(chunk))]
