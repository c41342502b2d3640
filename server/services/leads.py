"""Lead reads and lead-side requests that are not the pipeline itself: get/list a lead, its
activity, packages and deliveries, redelivery, and website visitor tracking. Dealer keys see
only their own dealer's leads (another dealer's lead is NOT_FOUND, never FORBIDDEN, so its
existence is not disclosed)."""

from __future__ import annotations

import dataclasses
from typing import Any

from server.agents.visitor_identifier import TrackResult, VisitorEventInput, VisitorIdentifier
from server.domain.clock import utcnow
from server.domain.dealer_view import dealer_view
from server.domain.leads import (
    ActivityRecord,
    AgentName,
    LeadFilter,
    LeadRecord,
    Page,
    PageResult,
)
from server.domain.principal import Principal, Role
from server.domain.validation import Collector
from server.errors import FailedPreconditionError, InvalidArgumentError
from server.storage.db import Database
from server.storage.deliveries import DeliveryRepository, DeliveryView
from server.storage.leads import LeadRepository
from server.storage.packages import PackageRepository, PackageView
from server.storage.pagination import page_size

EVENT_TYPES = frozenset(
    {"page_view", "application_started", "step_completed", "application_abandoned", "identify"}
)


def _dealer_restriction(principal: Principal) -> str | None:
    return principal.dealer_id if principal.role is Role.DEALER else None


# The text fields of a visitor event: attribute, request path, longest accepted value. Stored
# ones are no longer than their VisitorEvent column; email and phone are only used (normalised)
# to stitch identities.
_EVENT_TEXT: tuple[tuple[str, str, int], ...] = (
    ("event_id", "event_id", 128),
    ("page_url", "page.url", 2048),
    ("page_path", "page.path", 2048),
    ("referrer", "page.referrer", 2048),
    ("page_title", "page.title", 320),
    ("utm_source", "campaign.source", 200),
    ("utm_medium", "campaign.medium", 200),
    ("utm_campaign", "campaign.name", 200),
    ("utm_term", "campaign.term", 200),
    ("utm_content", "campaign.content", 200),
    ("user_agent", "user_agent", 1000),
    ("email", "email", 320),
    ("phone", "phone", 320),
    ("step", "step", 64),
)


def validate_event(event: VisitorEventInput) -> VisitorEventInput:
    """The event with its text trimmed and its IP address normalised; raises
    INVALID_ARGUMENT (INVALID_VISITOR_EVENT) naming every bad field."""
    c = Collector("")
    anonymous_id = c.text("anonymous_id", event.anonymous_id, required=True, max_len=128)
    values: dict[str, Any] = {
        name: c.text(path, getattr(event, name), required=False, max_len=max_len)
        for name, path, max_len in _EVENT_TEXT
    }
    if event.event_type not in EVENT_TYPES:
        c.add("event_type", "is required")
    ip_address = c.ip("ip_address", event.ip_address)
    if c.violations:
        raise InvalidArgumentError(
            "the visitor event is not valid",
            reason="INVALID_VISITOR_EVENT",
            violations=c.violations,
        )
    return dataclasses.replace(event, anonymous_id=anonymous_id, ip_address=ip_address, **values)


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
        return dealer_view(record) if dealer else record

    async def list_leads(
        self, principal: Principal, flt: LeadFilter, size: int, token: str
    ) -> PageResult[LeadRecord]:
        page = Page(size=page_size(size, 50), token=token)
        dealer = _dealer_restriction(principal)
        result = await self._db.run(self._repo.list, flt, page, dealer)
        if dealer:
            result.items = [dealer_view(r) for r in result.items]
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

        return await self._db.run(PackageRepository.for_lead, lead_id, dealer)

    async def deliveries(self, principal: Principal, lead_id: str) -> list[DeliveryView]:
        await self.get(principal, lead_id)
        dealer = _dealer_restriction(principal)
        views = await self._db.run(self._deliveries.for_lead, lead_id)
        return [v for v in views if not dealer or v.dealer_id == dealer]

    async def redeliver(self, principal: Principal, delivery_id: str) -> DeliveryView:
        """Queues a rejected or dead-lettered delivery again; one still pending or retrying is
        returned as it is. A delivered package is FAILED_PRECONDITION (ALREADY_DELIVERED): the
        repository leaves a delivered row untouched, so its returned state says so."""
        view = await self._db.run(
            self._deliveries.redeliver, delivery_id, utcnow(), _dealer_restriction(principal)
        )
        if view.state == "delivered":
            raise FailedPreconditionError(
                "the package was delivered already; it is not sent again",
                reason="ALREADY_DELIVERED",
            )
        return view

    async def track(self, event: VisitorEventInput, privacy_opt_out: bool) -> TrackResult:
        valid = validate_event(event)

        # One unit of work: the visitor, its event and any stitching commit together.
        return await self._db.run_atomic(self._identifier.track, valid, privacy_opt_out, utcnow())
