"""Lead reads and lead-side requests that are not the pipeline itself: get/list a lead, its
activity, packages and deliveries, redelivery, and website visitor tracking. Dealer keys see
only their own dealer's leads (another dealer's lead is NOT_FOUND, never FORBIDDEN, so its
existence is not disclosed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from server.agents.visitor_identifier import TrackResult, VisitorEventInput, VisitorIdentifier
from server.domain.leads import (
    ActivityRecord,
    AgentName,
    LeadFilter,
    LeadRecord,
    Page,
    PageResult,
    redacted_for_dealer,
)
from server.errors import FieldViolation, InvalidArgumentError
from server.services.auth import Principal, Role
from server.storage import models as m
from server.storage.db import Database
from server.storage.deliveries import DeliveryRepository, DeliveryView
from server.storage.leads import LeadRepository
from server.storage.pagination import page_size

EVENT_TYPES = frozenset(
    {"page_view", "application_started", "step_completed", "application_abandoned", "identify"}
)


@dataclass(frozen=True)
class PackageView:
    package_id: str
    lead_id: str
    dealer_id: str
    format: str
    content_type: str
    body: str
    created_at: dt.datetime


def _dealer_restriction(principal: Principal) -> str | None:
    return principal.dealer_id if principal.role is Role.DEALER else None


def validate_event(event: VisitorEventInput) -> None:
    v: list[FieldViolation] = []
    if not event.anonymous_id.strip() or len(event.anonymous_id) > 128:
        v.append(FieldViolation("anonymous_id", "is required (at most 128 characters)"))
    if event.event_type not in EVENT_TYPES:
        v.append(FieldViolation("event_type", "is required"))
    for name in ("page_url", "referrer"):
        if len(getattr(event, name)) > 2048:
            v.append(
                FieldViolation(f"page.{name.removeprefix('page_')}", "at most 2048 characters")
            )
    if len(event.user_agent) > 1000:
        v.append(FieldViolation("user_agent", "at most 1000 characters"))
    if len(event.event_id) > 128:
        v.append(FieldViolation("event_id", "at most 128 characters"))
    for name in (
        "email",
        "phone",
        "step",
        "page_title",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_term",
        "utm_content",
    ):
        if len(getattr(event, name)) > 320:
            v.append(FieldViolation(name, "at most 320 characters"))
    if v:
        raise InvalidArgumentError(
            "the visitor event is not valid", reason="INVALID_VISITOR_EVENT", violations=v
        )


class LeadService:
    def __init__(
        self,
        db: Database,
        repository: LeadRepository,
        deliveries: DeliveryRepository,
        identifier: VisitorIdentifier,
    ) -> None:
        self._db = db
        self._repo = repository
        self._deliveries = deliveries
        self._identifier = identifier

    async def get(self, principal: Principal, lead_id: str) -> LeadRecord:
        dealer = _dealer_restriction(principal)
        record = await self._db.run(self._repo.get, lead_id, dealer)
        return redacted_for_dealer(record) if dealer else record

    async def list_leads(
        self, principal: Principal, flt: LeadFilter, size: int, token: str
    ) -> PageResult[LeadRecord]:
        page = Page(size=page_size(size, 50), token=token)
        dealer = _dealer_restriction(principal)
        result = await self._db.run(self._repo.list, flt, page, dealer)
        if dealer:
            result.items = [redacted_for_dealer(r) for r in result.items]
        return result

    async def list_activity(
        self, principal: Principal, lead_id: str, size: int, token: str
    ) -> PageResult[ActivityRecord]:
        page = Page(size=page_size(size, 100), token=token)
        dealer = _dealer_restriction(principal)
        result = await self._db.run(self._repo.list_activity, lead_id, page, dealer)
        if dealer:
            # Identity steps say how the applicant relates to other records: not for dealers.
            result.items = [a for a in result.items if a.agent is not AgentName.VISITOR_IDENTIFIER]
        return result

    async def packages(self, principal: Principal, lead_id: str) -> list[PackageView]:
        await self.get(principal, lead_id)
        dealer = _dealer_restriction(principal)

        def read() -> list[PackageView]:
            query = m.LeadPackage.select().where(m.LeadPackage.lead == lead_id)
            if dealer:
                query = query.where(m.LeadPackage.dealer == dealer)
            return [
                PackageView(
                    p.id, p.lead_id, p.dealer_id, p.format, p.content_type, p.body, p.created_at
                )
                for p in query.order_by(m.LeadPackage.created_at.desc())
            ]

        return await self._db.run(read)

    async def deliveries(self, principal: Principal, lead_id: str) -> list[DeliveryView]:
        await self.get(principal, lead_id)
        dealer = _dealer_restriction(principal)
        views = await self._db.run(self._deliveries.for_lead, lead_id)
        return [v for v in views if not dealer or v.dealer_id == dealer]

    async def redeliver(self, principal: Principal, delivery_id: str) -> DeliveryView:
        return await self._db.run(
            self._deliveries.redeliver, delivery_id, m.utcnow(), _dealer_restriction(principal)
        )

    async def track(self, event: VisitorEventInput, privacy_opt_out: bool) -> TrackResult:
        validate_event(event)

        def record() -> TrackResult:
            with self._db.transaction():
                return self._identifier.track(event, privacy_opt_out, m.utcnow())

        return await self._db.run(record)
