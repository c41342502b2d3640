"""Lead domain types: what a caller submits and what the platform stores and returns."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class AddressInput:
    street: str = ""
    street2: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""


@dataclass
class VehicleInput:
    year: int = 0
    make: str = ""
    model: str = ""
    trim: str = ""
    vin: str = ""
    price_cents: int = 0


@dataclass
class TradeInInput:
    """A vehicle the applicant means to trade in; 0 and "" mean not known."""

    year: int = 0
    make: str = ""
    model: str = ""
    mileage: int = 0


class PurchaseTimeframe(enum.StrEnum):
    """When the applicant means to buy (the proto enum's names, lower case)."""

    WITHIN_WEEK = "within_week"
    WITHIN_MONTH = "within_month"
    WITHIN_3_MONTHS = "within_3_months"
    LATER = "later"


class VehicleStatus(enum.StrEnum):
    """Whether the vehicle of interest is new or used (ADF's vehicle status)."""

    NEW = "new"
    USED = "used"


@dataclass
class ConsentInput:
    tcpa: bool = False
    fcra_soft_pull: bool = False
    consent_text: str = ""
    ip_address: str = ""
    user_agent: str = ""
    page_url: str = ""
    certificate_id: str = ""
    consented_at: dt.datetime | None = None


@dataclass
class LeadInput:
    """A lead as submitted, before validation. `None` sub-objects were not sent."""

    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    date_of_birth: str = ""
    address: AddressInput | None = None
    monthly_income_cents: int = 0
    down_payment_cents: int = 0
    vehicle: VehicleInput | None = None
    consent: ConsentInput | None = None
    source: str = ""
    visitor_id: str = ""
    employment_status: str = ""
    months_employed: int = 0
    months_at_address: int = 0
    trade_in: TradeInInput | None = None
    purchase_timeframe: str = ""  # a PurchaseTimeframe value; "" when not given
    vehicle_status: str = ""  # a VehicleStatus value; "" when not given


@dataclass(frozen=True)
class ValidLead:
    """A lead that passed validation, with every value normalised."""

    first_name: str
    last_name: str
    email: str
    email_normalized: str
    phone_e164: str
    date_of_birth: dt.date
    address: AddressInput
    monthly_income_cents: int
    down_payment_cents: int
    vehicle: VehicleInput
    consent: ConsentInput
    source: str
    visitor_id: str
    employment_status: str
    months_employed: int
    months_at_address: int
    trade_in: TradeInInput | None = None
    purchase_timeframe: str = ""
    vehicle_status: str = ""


class LeadStatus(enum.StrEnum):
    RECEIVED = "received"
    PREQUALIFIED = "prequalified"
    DECLINED = "declined"
    NEEDS_REVIEW = "needs_review"
    UNROUTED = "unrouted"
    PACKAGED = "packaged"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    CONTACTED = "contacted"
    APPOINTMENT_SET = "appointment_set"
    SOLD = "sold"
    LOST = "lost"
    RETURNED = "returned"
    DUPLICATE = "duplicate"


class LeadOutcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class AgentName(enum.StrEnum):
    VISITOR_IDENTIFIER = "visitor_identifier"
    CREDIT_CHECK = "credit_check"
    LEAD_PACKAGING = "lead_packaging"
    EMAIL_REENGAGEMENT = "email_reengagement"
    REALTIME_CHAT = "realtime_chat"
    ORCHESTRATOR = "orchestrator"


# One step for a lead's activity log: (agent, kind, summary, details without personal data).
ActivityEntry = tuple[AgentName, str, str, dict[str, Any]]


@dataclass
class Resolution:
    """What VisitorIdentifier decided for a new lead, inside the intake transaction."""

    identity_id: str
    new_identity: bool
    matched_by: str
    visitor_id: str | None
    returning: bool
    duplicate_of_lead_id: str | None
    activities: list[ActivityEntry] = field(default_factory=list)

    @property
    def outcome(self) -> LeadOutcome:
        return LeadOutcome.DUPLICATE if self.duplicate_of_lead_id else LeadOutcome.ACCEPTED


@dataclass(frozen=True)
class IdentityInfo:
    identity_id: str = ""
    new_identity: bool = False
    matched_by: str = ""
    visitor_id: str = ""


@dataclass(frozen=True)
class CreditResult:
    decision: str
    source: str
    tier: str
    score_band: str
    max_payment_cents: int
    max_amount_cents: int
    reference_id: str
    checked_at: dt.datetime


@dataclass(frozen=True)
class LeadRecord:
    """A stored lead, decrypted, as the services return it."""

    lead_id: str
    status: LeadStatus
    outcome: LeadOutcome
    applicant: LeadInput
    created_at: dt.datetime
    updated_at: dt.datetime
    identity_id: str = ""
    duplicate_of_lead_id: str = ""
    credit: CreditResult | None = None
    score: int = 0
    dealer_id: str = ""
    delivery_state: str = ""
    source_dealer_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ProcessResult:
    lead: LeadRecord
    outcome: LeadOutcome
    idempotent_replay: bool = False
    returning_applicant: bool = False
    identity: IdentityInfo = field(default_factory=IdentityInfo)


@dataclass(frozen=True)
class ActivityRecord:
    activity_id: str
    lead_id: str
    agent: AgentName
    kind: str
    summary: str
    details_json: str
    created_at: dt.datetime


@dataclass(frozen=True)
class LeadFilter:
    status: LeadStatus | None = None
    dealer_id: str = ""
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    source: str = ""


@dataclass(frozen=True)
class Page:
    size: int
    token: str = ""


@dataclass
class PageResult(Generic[T]):
    items: list[T] = field(default_factory=list)
    next_page_token: str = ""
