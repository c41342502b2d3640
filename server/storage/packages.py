"""Routing reads and the routing decision's writes: dealers open to routing, their packages
today, a lead as routing sees it, and the package with its delivery (the outbox entry).

Every method runs inside the caller's transaction (the pipeline's routing step), so the
routing decision, the package, its delivery and the lead's new state commit together."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import peewee as pw

from server.domain.leads import ActivityEntry, CreditResult, LeadStatus
from server.domain.routing import RoutingDealer, RoutingLead, TcpaConsent
from server.storage import models as m
from server.storage.compiled import CompiledInsert, CompiledQuery, CompiledSelect, CompiledUpdate
from server.storage.leads import append_activity_batches, latest_credit_checks, trade_in_of

DELIVERY_PENDING = "pending"
# Routing's inserts, their SQL compiled once (issue 9).
_PACKAGES = CompiledInsert.of(m.LeadPackage)
_DELIVERIES = CompiledInsert.of(m.Delivery)
# ...and its reads and the lead's update, compiled once too.
_PACKAGES_SINCE = CompiledQuery(
    m.LeadPackage,
    lambda dealer_ids, since: (
        m.LeadPackage.select(m.LeadPackage.dealer, pw.fn.COUNT(pw.SQL("*")))
        .where(m.LeadPackage.dealer.in_(dealer_ids) & (m.LeadPackage.created_at >= since))
        .group_by(m.LeadPackage.dealer)
    ),
)
_PACKAGED = CompiledUpdate(
    m.Lead,
    ["status", "dealer", "delivery_state", "score", "updated_at"],
    lambda lead_id: m.Lead.id == lead_id,
)


def _open_dealers_query(lock: bool) -> CompiledSelect[m.Dealer]:
    """Every active dealer with an endpoint; locked in id order when `lock` (PostgreSQL)."""

    def build() -> Any:
        query = m.Dealer.select().where(
            (m.Dealer.active == True)  # noqa: E712
            # An email dealer's endpoint is its intake address (required by its validation).
            & ((m.Dealer.endpoint_url != "") | (m.Dealer.delivery_channel == "email"))
        )
        return query.order_by(m.Dealer.id).for_update() if lock else query

    return CompiledSelect(m.Dealer, build)


_OPEN_DEALERS = {lock: _open_dealers_query(lock) for lock in (False, True)}


@dataclass(frozen=True)
class StoredPackage:
    package_id: str
    delivery_id: str
    event_id: str


@dataclass(frozen=True)
class PackageView:
    package_id: str
    lead_id: str
    dealer_id: str
    format: str
    content_type: str
    body: str
    created_at: dt.datetime


class PackageRepository:
    def __init__(self, backend: str) -> None:
        # On PostgreSQL the candidate dealers are locked, so routing serialises on them.
        self._lock_dealers = backend == "postgresql"

    # --- reads ----------------------------------------------------------------------------

    def lead(self, lead_id: str) -> RoutingLead:
        """The lead (decrypted) with its latest credit check and its TCPA consent."""
        return self.leads([lead_id])[lead_id]

    @staticmethod
    def leads(lead_ids: list[str]) -> dict[str, RoutingLead]:
        """`lead` for many leads: three statements for any number of them (missing ids are
        left out)."""
        if not lead_ids:
            return {}
        credits = latest_credit_checks(set(lead_ids))
        tcpas = {
            c.lead_id: c
            for c in m.LeadConsent.select().where(
                m.LeadConsent.lead.in_(lead_ids) & (m.LeadConsent.kind == "tcpa")
            )
        }
        return {
            row.id: _routing_lead(row, credits.get(row.id), tcpas.get(row.id))
            for row in m.Lead.select().where(m.Lead.id.in_(lead_ids))
        }

    def source_dealer(self, dealer_id: str) -> RoutingDealer | None:
        """The dealer that sent the lead, if it is active and has an endpoint."""
        row = m.Dealer.get_or_none(
            (m.Dealer.id == dealer_id)
            & (m.Dealer.active == True)  # noqa: E712
            & ((m.Dealer.endpoint_url != "") | (m.Dealer.delivery_channel == "email"))
        )
        return _dealer(row) if row else None

    def open_dealers(self) -> list[RoutingDealer]:
        """Every active dealer with an endpoint; on PostgreSQL locked (in id order) until the
        caller's transaction ends, which serialises concurrent routing so daily caps hold
        exactly."""
        return [_dealer(r) for r in _OPEN_DEALERS[self._lock_dealers].objects()]

    def packages_since(self, dealer_ids: list[str], since: dt.datetime) -> dict[str, int]:
        """How many packages each dealer got since `since` (dealers with none are left out)."""
        if not dealer_ids:
            return {}
        counts = _PACKAGES_SINCE.rows(dealer_ids=dealer_ids, since=since)
        return {str(k): int(n) for k, n in counts}

    # --- writes ---------------------------------------------------------------------------

    def hold(self, lead_id: str, score: int, now: dt.datetime) -> None:
        """A lead held for review: its score."""
        self.close([(lead_id, None, score)], now)

    def close_unrouted(
        self, lead_id: str, status: LeadStatus, score: int, now: dt.datetime
    ) -> None:
        """A lead no dealer takes: its new status and its score."""
        self.close([(lead_id, status, score)], now)

    def close(self, leads: list[tuple[str, LeadStatus | None, int]], now: dt.datetime) -> None:
        """Leads routing sent to no dealer, in one statement: each one's score and new status
        (None: held for review, its status unchanged)."""
        if not leads:
            return
        statuses = [(lead_id, status.value) for lead_id, status, _ in leads if status]
        m.Lead.update(
            score=pw.Case(m.Lead.id, [(lead_id, score) for lead_id, _, score in leads]),
            status=pw.Case(m.Lead.id, statuses, m.Lead.status) if statuses else m.Lead.status,
            updated_at=now,
        ).where(m.Lead.id.in_([lead_id for lead_id, _, _ in leads])).execute()

    def store_package(
        self,
        lead_id: str,
        dealer_id: str,
        *,
        fmt: str,
        content_type: str,
        body: bytes,
        score: int,
        now: dt.datetime,
    ) -> StoredPackage:
        """The package, its pending delivery (the outbox entry) and the lead, now packaged."""
        package = _PACKAGES.create(
            lead=lead_id,
            dealer=dealer_id,
            format=fmt,
            content_type=content_type,
            body=body.decode(),
            created_at=now,
        )
        delivery = _DELIVERIES.create(
            event_id=uuid.uuid4().hex,
            package=package.id,
            lead=lead_id,
            dealer=dealer_id,
            state=DELIVERY_PENDING,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        _PACKAGED.execute(
            status=LeadStatus.PACKAGED.value,
            dealer=dealer_id,
            delivery_state=DELIVERY_PENDING,
            score=score,
            updated_at=now,
            lead_id=lead_id,
        )
        return StoredPackage(package.id, delivery.id, delivery.event_id)

    def add_activities(
        self, batches: list[tuple[str, list[ActivityEntry]]], now: dt.datetime
    ) -> None:
        """The routing steps' activity entries, of every lead routed, in one statement."""
        append_activity_batches(batches, at=now)

    @staticmethod
    def for_lead(lead_id: str, dealer_id: str | None = None) -> list[PackageView]:
        """A lead's packages, newest first (only those for `dealer_id` when given), decrypted."""
        query = m.LeadPackage.select().where(m.LeadPackage.lead == lead_id)
        if dealer_id:
            query = query.where(m.LeadPackage.dealer == dealer_id)
        return [
            PackageView(
                p.id, p.lead_id, p.dealer_id, p.format, p.content_type, p.body, p.created_at
            )
            for p in query.order_by(m.LeadPackage.created_at.desc())
        ]


def _dealer(row: m.Dealer) -> RoutingDealer:
    return RoutingDealer(
        dealer_id=row.id,
        name=row.name,
        states=tuple(json.loads(row.states_json)),
        zip_prefixes=tuple(json.loads(row.zip_prefixes_json)),
        accepted_tiers=tuple(json.loads(row.accepted_tiers_json)),
        daily_cap=row.daily_cap,
        priority=row.priority,
        weight=row.weight,
        delivery_format=row.delivery_format,
        contact_email=row.contact_email,
        contact_phone=row.contact_phone,
    )


def _routing_lead(
    row: m.Lead, credit: CreditResult | None, tcpa: m.LeadConsent | None
) -> RoutingLead:
    return RoutingLead(
        lead_id=row.id,
        created_at=row.created_at,
        source=row.source,
        source_dealer_id=row.source_dealer_id,
        first_name=row.first_name,
        last_name=row.last_name,
        email=row.email_normalized,
        phone_e164=row.phone_e164,
        street=row.street,
        street2=row.street2,
        city=row.city,
        state=row.state,
        zip_code=row.zip_code,
        vehicle_year=row.vehicle_year,
        vehicle_make=row.vehicle_make,
        vehicle_model=row.vehicle_model,
        vehicle_trim=row.vehicle_trim,
        vehicle_vin=row.vehicle_vin,
        vehicle_price_cents=row.vehicle_price_cents,
        down_payment_cents=row.down_payment_cents,
        monthly_income_cents=int(row.monthly_income_cents),
        months_employed=row.months_employed,
        months_at_address=row.months_at_address,
        credit=credit,
        tcpa=TcpaConsent(
            granted=tcpa.granted,
            consented_at=tcpa.consented_at,
            certificate_id=tcpa.certificate_id,
            page_url=tcpa.page_url,
        )
        if tcpa
        else None,
        employment_status=row.employment_status,
        vehicle_status=row.vehicle_status,
        purchase_timeframe=row.purchase_timeframe,
        trade_in=trade_in_of(row),
    )
