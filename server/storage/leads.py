"""Lead repository: the synchronous database work of lead intake and lead reads.

Every function here runs on a database thread (via `Database.run`).

Why `create` still takes a `resolve` callback (VisitorIdentifier's `resolve_lead`): the identity
decision (stitching, merges, the recent-duplicate lookup) reads and writes rows that must commit
or roll back with the lead, its consents, its activity and its idempotency record, or two
concurrent intakes of one person could both pass the duplicate check, or a replayed key could
leave a stitched identity behind. Deciding before the transaction would break that; the agent
may not open the transaction itself (ARCHITECTURE.md rule 3); and running the stitching rules
here would move agent rules into storage. So the transaction stays here and the decision is
passed in as a strategy over domain types (`Resolver`); it issues its SQL through
`storage/identities.py` inside this transaction, and this module imports no agent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import peewee as pw

from server.domain.leads import (
    ActivityEntry,
    ActivityRecord,
    AddressInput,
    AgentName,
    ConsentInput,
    CreditResult,
    IdentityInfo,
    LeadFilter,
    LeadInput,
    LeadOutcome,
    LeadRecord,
    LeadStatus,
    Page,
    PageResult,
    Resolution,
    TradeInInput,
    ValidLead,
    VehicleInput,
)
from server.errors import AlreadyExistsError, CclError, NotFoundError
from server.storage import models
from server.storage.compiled import CompiledInsert, CompiledSelect
from server.storage.db import Database
from server.storage.pagination import decode_token, encode_token

m = models


# The pipeline's hot inserts, their SQL compiled once (issue 9).
_LEADS = CompiledInsert.of(m.Lead)
_CONSENTS = CompiledInsert.of(m.LeadConsent)
_ACTIVITIES = CompiledInsert.of(m.Activity)
_IDEMPOTENCY = CompiledInsert.of(m.IdempotencyRecord)
# ...and its hot reads.
_REPLAYS = CompiledSelect(
    m.IdempotencyRecord,
    lambda scope, keys: m.IdempotencyRecord.select().where(
        (m.IdempotencyRecord.scope == scope) & m.IdempotencyRecord.key.in_(keys)
    ),
)
_REFRESHED = CompiledSelect(
    m.Lead,
    lambda ids: m.Lead.select(
        m.Lead.id,
        m.Lead.status,
        m.Lead.score,
        m.Lead.dealer,
        m.Lead.delivery_state,
        m.Lead.reason,
        m.Lead.updated_at,
    ).where(m.Lead.id.in_(ids)),
)


@dataclass(frozen=True)
class StoredResult:
    lead_id: str
    outcome: LeadOutcome
    returning_applicant: bool
    replay: bool
    identity: IdentityInfo = dataclasses.field(default_factory=IdentityInfo)
    # The lead as just written (None for a replay, whose lead is read back).
    lead: LeadRecord | None = None


Resolver = Callable[[ValidLead, dt.datetime], Resolution]
# Decides a batch of leads at once; None for a lead to decide alone with the `Resolver`.
BatchResolver = Callable[[list[ValidLead], dt.datetime], list[Resolution | None]]


@dataclass(frozen=True)
class PipelineLease:
    """Who runs a lead's pipeline steps (a token per run) and until when."""

    owner: str
    until: dt.datetime


class LeadRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- intake -------------------------------------------------------------------------

    def create(
        self,
        lead: ValidLead,
        *,
        scope: str,
        idempotency_key: str,
        request_hash: str,
        source_dealer_id: str | None,
        resolve: Resolver | None = None,
        pipeline_lease: PipelineLease | None = None,
    ) -> StoredResult:
        """Stores a validated lead, its consent evidence, its first activity entries and the
        idempotency record in one transaction; `resolve` (VisitorIdentifier) decides identity
        and duplicates inside that transaction, and an accepted lead is born holding
        `pipeline_lease` (its creator runs its next steps). A key seen before returns its first
        result."""
        try:
            with self._db.transaction():
                return self.create_in_transaction(
                    lead,
                    scope=scope,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    source_dealer_id=source_dealer_id,
                    resolve=resolve,
                    pipeline_lease=pipeline_lease,
                )
        except pw.IntegrityError:
            # A concurrent call with the same key won the race; answer with its result.
            if idempotency_key:
                earlier = self.replay(scope, idempotency_key, request_hash)
                if earlier is not None:
                    return earlier
            raise

    def create_in_transaction(
        self,
        lead: ValidLead,
        *,
        scope: str,
        idempotency_key: str,
        request_hash: str,
        source_dealer_id: str | None,
        resolve: Resolver | None = None,
        pipeline_lease: PipelineLease | None = None,
    ) -> StoredResult:
        """`create` inside the caller's transaction (bulk import batches many in one)."""
        if idempotency_key:
            earlier = self.replay(scope, idempotency_key, request_hash)
            if earlier is not None:
                return earlier
        return self._insert(
            lead,
            scope,
            idempotency_key,
            request_hash,
            source_dealer_id,
            resolve,
            pipeline_lease,
        )

    def replay(self, scope: str, key: str, request_hash: str) -> StoredResult | None:
        """The stored result of an earlier request with this key; raises if the request differs."""
        record = m.IdempotencyRecord.get_or_none(
            (m.IdempotencyRecord.scope == scope) & (m.IdempotencyRecord.key == key)
        )
        return None if record is None else _replayed(record, request_hash)

    def create_batch_in_transaction(
        self,
        items: list[tuple[ValidLead, str, str]],
        *,
        scope: str,
        source_dealer_id: str | None,
        resolve_batch: BatchResolver,
        pipeline_lease: PipelineLease | None = None,
    ) -> list[StoredResult | CclError | None]:
        """`create_in_transaction` for many leads, set-based: one lookup of their idempotency
        keys, `resolve_batch` (VisitorIdentifier) on the new ones, and one insert per table for
        the leads it decided. None for an item to store alone, after these, with
        `create_in_transaction`: a lead the resolver leaves to be decided alone, or a key
        repeated within the batch (it replays the first). A replayed key answers its first
        result (or the error of a key reused with another request)."""
        now = models.utcnow()
        earlier = self._replays(scope, [key for _, key, _ in items if key])
        out: list[StoredResult | CclError | None] = [None] * len(items)
        fresh: list[int] = []
        keys: set[str] = set()
        for i, (_, key, request_hash) in enumerate(items):
            if key and key in keys:
                continue
            keys.add(key)
            if key in earlier:
                try:
                    out[i] = _replayed(earlier[key], request_hash)
                except CclError as e:
                    out[i] = e
            else:
                fresh.append(i)
        if not fresh:
            return out
        resolutions = resolve_batch([items[i][0] for i in fresh], now)
        decided: list[_NewLead] = []
        for i, resolution in zip(fresh, resolutions, strict=True):
            if resolution is not None:
                lead, key, request_hash = items[i]
                new = _new_lead(
                    lead,
                    scope,
                    key,
                    request_hash,
                    source_dealer_id,
                    resolution,
                    pipeline_lease,
                    now,
                )
                decided.append(new)
                out[i] = new.result
        _write(decided, now)
        return out

    def _insert(
        self,
        lead: ValidLead,
        scope: str,
        idempotency_key: str,
        request_hash: str,
        source_dealer_id: str | None,
        resolve: Resolver | None,
        pipeline_lease: PipelineLease | None,
    ) -> StoredResult:
        now = models.utcnow()
        resolution = resolve(lead, now) if resolve is not None else None
        new = _new_lead(
            lead,
            scope,
            idempotency_key,
            request_hash,
            source_dealer_id,
            resolution,
            pipeline_lease,
            now,
        )
        _write([new], now)
        return new.result

    def _replays(self, scope: str, keys: list[str]) -> dict[str, m.IdempotencyRecord]:
        """The idempotency records of these keys (the known ones), in one statement."""
        if not keys:
            return {}
        return {r.key: r for r in _REPLAYS.objects(scope=scope, keys=keys)}

    # --- reads --------------------------------------------------------------------------

    def get(self, lead_id: str, dealer_id: str | None = None) -> LeadRecord:
        query = m.Lead.select().where(m.Lead.id == lead_id)
        if dealer_id:
            query = query.where(_visible_to_dealer(dealer_id))
        row = query.first()
        if row is None:
            raise NotFoundError("lead not found", reason="LEAD_NOT_FOUND")
        return _to_record(
            row, latest_credit_checks({row.id}).get(row.id), _consents({row.id}).get(row.id)
        )

    def get_many(self, lead_ids: list[str]) -> dict[str, LeadRecord]:
        """The given leads that exist, by id: three statements for any number of them."""
        ids = set(lead_ids)
        if not ids:
            return {}
        credits, consents = latest_credit_checks(ids), _consents(ids)
        return {
            row.id: _to_record(row, credits.get(row.id), consents.get(row.id))
            for row in m.Lead.select().where(m.Lead.id.in_(list(ids)))
        }

    def refreshed(
        self, records: list[LeadRecord], credits: Mapping[str, CreditResult]
    ) -> dict[str, LeadRecord]:
        """Leads known in memory (as intake wrote them) with what the pipeline's steps changed
        since: read in one statement of the columns those steps write, not the whole
        (encrypted) row with its consents. `credits` holds each lead's credit result as just
        recorded. Leads that are gone are left out."""
        known = {r.lead_id: r for r in records}
        if not known:
            return {}
        return {
            row.id: dataclasses.replace(
                known[row.id],
                status=LeadStatus(row.status),
                score=row.score,
                dealer_id=row.dealer_id or "",
                delivery_state=row.delivery_state,
                reason=row.reason,
                updated_at=row.updated_at,
                credit=credits.get(row.id, known[row.id].credit),
            )
            for row in _REFRESHED.objects(ids=list(known))
        }

    def list(
        self, flt: LeadFilter, page: Page, dealer_id: str | None = None
    ) -> PageResult[LeadRecord]:
        query = m.Lead.select()
        if dealer_id:
            query = query.where(_visible_to_dealer(dealer_id))
        elif flt.dealer_id:
            query = query.where(m.Lead.dealer == flt.dealer_id)
        if flt.status is not None:
            query = query.where(m.Lead.status == flt.status.value)
        if flt.source:
            query = query.where(m.Lead.source == flt.source)
        if flt.created_after is not None:
            query = query.where(m.Lead.created_at >= flt.created_after)
        if flt.created_before is not None:
            query = query.where(m.Lead.created_at < flt.created_before)
        if page.token:
            cursor = decode_token("leads", page.token)  # typed and bounded, or INVALID_PAGE_TOKEN
            after_time, after_id = cursor["t"], cursor["i"]
            query = query.where(
                (m.Lead.created_at < after_time)
                | ((m.Lead.created_at == after_time) & (m.Lead.id < after_id))
            )
        rows = list(query.order_by(m.Lead.created_at.desc(), m.Lead.id.desc()).limit(page.size + 1))
        more = len(rows) > page.size
        rows = rows[: page.size]
        ids = {r.id for r in rows}
        credits, consents = latest_credit_checks(ids), _consents(ids)
        token = ""
        if more and rows:
            last = rows[-1]
            token = encode_token("leads", {"t": last.created_at.isoformat(), "i": last.id})
        return PageResult(
            items=[_to_record(r, credits.get(r.id), consents.get(r.id)) for r in rows],
            next_page_token=token,
        )

    def list_activity(
        self, lead_id: str, page: Page, dealer_id: str | None = None
    ) -> PageResult[ActivityRecord]:
        self.get(lead_id, dealer_id)  # NOT_FOUND for unknown or foreign leads
        query = m.Activity.select().where(m.Activity.lead == lead_id)
        if page.token:
            cursor = decode_token("activity", page.token)  # an id within BIGINT range
            query = query.where(m.Activity.id > cursor["i"])
        rows = list(query.order_by(m.Activity.id).limit(page.size + 1))
        more = len(rows) > page.size
        rows = rows[: page.size]
        token = encode_token("activity", {"i": rows[-1].id}) if more and rows else ""
        return PageResult(
            items=[
                ActivityRecord(
                    activity_id=str(r.id),
                    lead_id=r.lead_id,
                    agent=AgentName(r.agent),
                    kind=r.kind,
                    summary=r.summary,
                    details_json=r.details_json,
                    created_at=r.created_at,
                )
                for r in rows
            ],
            next_page_token=token,
        )


def append_activities(
    lead_id: str, entries: list[ActivityEntry], *, at: dt.datetime | None = None
) -> None:
    """Appends steps (agent, kind, summary, details) to a lead's activity log, in order, in one
    statement. Call inside the transaction of the work the steps describe."""
    append_activity_batches([(lead_id, entries)], at=at)


def append_activity_batches(
    batches: list[tuple[str, list[ActivityEntry]]], *, at: dt.datetime | None = None
) -> None:
    """`append_activities` for many leads at once: one statement for all their steps, each
    lead's in order (nothing when there are none)."""
    when = at or models.utcnow()
    rows = [
        {
            "lead": lead_id,
            "agent": agent.value,
            "kind": kind,
            "summary": summary,
            "details_json": json.dumps(details, sort_keys=True),
            "created_at": when,
        }
        for lead_id, entries in batches
        for agent, kind, summary, details in entries
    ]
    if rows:
        _ACTIVITIES.execute(rows)


def _replayed(record: m.IdempotencyRecord, request_hash: str) -> StoredResult:
    """The stored result of an earlier request with this key; raises if the request differs."""
    if record.request_hash != request_hash:
        raise AlreadyExistsError(
            "this idempotency key was already used with a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
        )
    stored = json.loads(record.response_json)
    return StoredResult(
        lead_id=stored["lead_id"],
        outcome=LeadOutcome(stored["outcome"]),
        returning_applicant=bool(stored.get("returning_applicant")),
        replay=True,
        identity=IdentityInfo(**stored.get("identity", {})),
    )


@dataclass(frozen=True)
class _NewLead:
    """A new lead's rows, built in memory: the lead, its consents, its first activity entries,
    its idempotency record, and the result its caller gets."""

    row: m.Lead
    consents: list[dict[str, Any]]
    activities: list[ActivityEntry]
    idempotency: dict[str, Any] | None
    result: StoredResult


def _new_lead(
    lead: ValidLead,
    scope: str,
    idempotency_key: str,
    request_hash: str,
    source_dealer_id: str | None,
    resolution: Resolution | None,
    pipeline_lease: PipelineLease | None,
    now: dt.datetime,
) -> _NewLead:
    outcome = resolution.outcome if resolution else LeadOutcome.ACCEPTED
    returning = resolution.returning if resolution else False
    identity = (
        IdentityInfo(
            identity_id=resolution.identity_id,
            new_identity=resolution.new_identity,
            matched_by=resolution.matched_by,
            visitor_id=resolution.visitor_id or "",
        )
        if resolution
        else IdentityInfo()
    )
    row = m.Lead(
        status=(
            LeadStatus.DUPLICATE if outcome is LeadOutcome.DUPLICATE else LeadStatus.RECEIVED
        ).value,
        outcome=outcome.value,
        identity=identity.identity_id or None,
        visitor=identity.visitor_id or None,
        duplicate_of=resolution.duplicate_of_lead_id if resolution else None,
        pipeline_stage="intake" if outcome is LeadOutcome.ACCEPTED else "done",
        **(
            {
                "pipeline_owner": pipeline_lease.owner,
                "pipeline_locked_until": pipeline_lease.until,
            }
            if pipeline_lease and outcome is LeadOutcome.ACCEPTED
            else {}
        ),
        source=lead.source,
        visitor_anonymous_id=lead.visitor_id,
        source_dealer=source_dealer_id,
        first_name=lead.first_name,
        last_name=lead.last_name,
        email=lead.email,
        email_normalized=lead.email_normalized,
        phone_e164=lead.phone_e164,
        date_of_birth=lead.date_of_birth.isoformat(),
        monthly_income_cents=str(lead.monthly_income_cents),
        down_payment_cents=lead.down_payment_cents,
        street=lead.address.street,
        street2=lead.address.street2,
        city=lead.address.city,
        state=lead.address.state,
        zip_code=lead.address.zip_code,
        vehicle_year=lead.vehicle.year,
        vehicle_make=lead.vehicle.make,
        vehicle_model=lead.vehicle.model,
        vehicle_trim=lead.vehicle.trim,
        vehicle_vin=lead.vehicle.vin,
        vehicle_price_cents=lead.vehicle.price_cents,
        employment_status=lead.employment_status,
        months_employed=lead.months_employed,
        months_at_address=lead.months_at_address,
        vehicle_status=lead.vehicle_status,
        purchase_timeframe=lead.purchase_timeframe,
        trade_in_year=lead.trade_in.year if lead.trade_in else 0,
        trade_in_make=lead.trade_in.make if lead.trade_in else "",
        trade_in_model=lead.trade_in.model if lead.trade_in else "",
        trade_in_mileage=lead.trade_in.mileage if lead.trade_in else 0,
        created_at=now,
        updated_at=now,
    )
    consent = lead.consent
    consented_at = consent.consented_at or now
    consents = [
        {
            "lead": row.id,
            "kind": kind,
            "granted": granted,
            "consent_text": consent.consent_text,
            "consented_at": consented_at,
            "ip_address": consent.ip_address,
            "user_agent": consent.user_agent,
            "page_url": consent.page_url,
            "certificate_id": consent.certificate_id,
            "created_at": now,
        }
        for kind, granted in (
            ("tcpa", consent.tcpa),
            ("fcra_soft_pull", consent.fcra_soft_pull),
        )
    ]
    activities: list[ActivityEntry] = [
        (
            AgentName.ORCHESTRATOR,
            "lead.received",
            f"Lead received from source '{lead.source}'",
            {"source": lead.source, "idempotency_key": bool(idempotency_key)},
        ),
        (
            AgentName.ORCHESTRATOR,
            "lead.validated",
            "Lead validated: email normalised, phone stored as E.164, consent recorded",
            {"consents": ["tcpa", "fcra_soft_pull"]},
        ),
        *(resolution.activities if resolution else []),
    ]
    result = StoredResult(
        lead_id=row.id,
        outcome=outcome,
        returning_applicant=returning,
        replay=False,
        identity=identity,
        lead=_to_record(row, None, dataclasses.replace(consent, consented_at=consented_at)),
    )
    idempotency = (
        {
            "scope": scope,
            "key": idempotency_key,
            "request_hash": request_hash,
            "response_json": json.dumps(
                {
                    "lead_id": result.lead_id,
                    "outcome": result.outcome.value,
                    "returning_applicant": result.returning_applicant,
                    "identity": dataclasses.asdict(identity),
                }
            ),
            "lead": row.id,
            "created_at": now,
        }
        if idempotency_key
        else None
    )
    return _NewLead(row, consents, activities, idempotency, result)


def _write(leads: list[_NewLead], now: dt.datetime) -> None:
    """Inserts new leads' rows, one statement per table."""
    if not leads:
        return
    _LEADS.execute([new.row.__data__ for new in leads])
    _CONSENTS.execute([c for new in leads for c in new.consents])
    append_activity_batches([(new.row.id, new.activities) for new in leads], at=now)
    records = [new.idempotency for new in leads if new.idempotency is not None]
    if records:
        _IDEMPOTENCY.execute(records)


def _visible_to_dealer(dealer_id: str) -> Any:
    return (m.Lead.dealer == dealer_id) | (m.Lead.source_dealer == dealer_id)


def latest_credit_checks(lead_ids: set[str]) -> dict[str, CreditResult]:
    if not lead_ids:
        return {}
    out: dict[str, CreditResult] = {}
    rows = (
        m.CreditCheck.select()
        .where(m.CreditCheck.lead.in_(list(lead_ids)))
        .order_by(m.CreditCheck.created_at)
    )
    for r in rows:
        out[r.lead_id] = credit_result_of(r)
    return out


def credit_result_of(row: m.CreditCheck) -> CreditResult:
    """A stored credit check as the domain's result."""
    return CreditResult(
        decision=row.decision,
        source=row.source,
        tier=row.tier,
        score_band=row.score_band,
        max_payment_cents=row.max_payment_cents,
        max_amount_cents=row.max_amount_cents,
        reference_id=row.reference_id,
        checked_at=row.created_at,
    )


def _consents(lead_ids: set[str]) -> dict[str, ConsentInput]:
    """The consent evidence of each lead: TCPA's text and context, and both grants."""
    if not lead_ids:
        return {}
    by_lead: dict[str, dict[str, models.LeadConsent]] = {}
    for r in m.LeadConsent.select().where(m.LeadConsent.lead.in_(list(lead_ids))):
        by_lead.setdefault(r.lead_id, {})[r.kind] = r
    out: dict[str, ConsentInput] = {}
    for lead_id, kinds in by_lead.items():
        tcpa, fcra = kinds.get("tcpa"), kinds.get("fcra_soft_pull")
        evidence = tcpa or fcra
        if evidence is None:
            continue
        out[lead_id] = ConsentInput(
            tcpa=bool(tcpa and tcpa.granted),
            fcra_soft_pull=bool(fcra and fcra.granted),
            consent_text=evidence.consent_text,
            ip_address=evidence.ip_address,
            user_agent=evidence.user_agent,
            page_url=evidence.page_url,
            certificate_id=evidence.certificate_id,
            consented_at=evidence.consented_at,
        )
    return out


def _to_record(
    row: models.Lead, credit: CreditResult | None, consent: ConsentInput | None
) -> LeadRecord:
    applicant = LeadInput(
        first_name=row.first_name,
        last_name=row.last_name,
        email=row.email_normalized,
        phone=row.phone_e164,
        date_of_birth=row.date_of_birth,
        address=AddressInput(
            street=row.street,
            street2=row.street2,
            city=row.city,
            state=row.state,
            zip_code=row.zip_code,
        ),
        monthly_income_cents=int(row.monthly_income_cents),
        down_payment_cents=row.down_payment_cents,
        vehicle=VehicleInput(
            year=row.vehicle_year,
            make=row.vehicle_make,
            model=row.vehicle_model,
            trim=row.vehicle_trim,
            vin=row.vehicle_vin,
            price_cents=row.vehicle_price_cents,
        ),
        consent=consent,
        source=row.source,
        visitor_id=row.visitor_anonymous_id,
        employment_status=row.employment_status,
        months_employed=row.months_employed,
        months_at_address=row.months_at_address,
        trade_in=trade_in_of(row),
        purchase_timeframe=row.purchase_timeframe,
        vehicle_status=row.vehicle_status,
    )
    return LeadRecord(
        lead_id=row.id,
        status=LeadStatus(row.status),
        outcome=LeadOutcome(row.outcome),
        applicant=applicant,
        created_at=row.created_at,
        updated_at=row.updated_at,
        identity_id=row.identity_id or "",
        duplicate_of_lead_id=row.duplicate_of_id or "",
        credit=credit,
        score=row.score,
        dealer_id=row.dealer_id or "",
        delivery_state=row.delivery_state,
        source_dealer_id=row.source_dealer_id or "",
        reason=row.reason,
    )


def trade_in_of(row: m.Lead) -> TradeInInput | None:
    """A stored lead's trade-in vehicle (None when it gave none: a trade-in needs a make)."""
    if not row.trade_in_make:
        return None
    return TradeInInput(
        year=row.trade_in_year,
        make=row.trade_in_make,
        model=row.trade_in_model,
        mileage=row.trade_in_mileage,
    )
