"""Routing rules: which dealers may take a lead, and which one does.

A dealer is eligible when it is active, has an endpoint (both checked by the query that lists
candidates), serves the lead's state or one of its ZIP prefixes matches, accepts the lead's
credit tier (no tiers listed = all), and has capacity (`daily_cap` 0 = no cap; packages rendered
for it since 00:00 UTC count). Among eligible dealers the lowest `priority` number wins; within
that priority, weighted round-robin: the dealer with the fewest leads today relative to its
`weight` (ties by id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from server.domain.leads import CreditResult, LeadRecord, TradeInInput

PACKAGE_FORMATS = ("adf", "json")


@dataclass(frozen=True)
class RoutingDealer:
    """A dealer as routing sees it (active, with an endpoint)."""

    dealer_id: str
    name: str
    states: tuple[str, ...]
    zip_prefixes: tuple[str, ...]
    accepted_tiers: tuple[str, ...]
    daily_cap: int
    priority: int
    weight: int
    delivery_format: str
    # The dealer's contact for the package's <vendor><contact>; "" when the record has none.
    contact_email: str = ""
    contact_phone: str = ""


@dataclass(frozen=True)
class TcpaConsent:
    granted: bool
    consented_at: dt.datetime
    certificate_id: str
    page_url: str


@dataclass(frozen=True)
class RoutingLead:
    """What scoring, routing and the dealer package need of a credit-checked lead (decrypted)."""

    lead_id: str
    created_at: dt.datetime
    source: str
    source_dealer_id: str | None
    first_name: str
    last_name: str
    email: str
    phone_e164: str
    street: str
    street2: str
    city: str
    state: str
    zip_code: str
    vehicle_year: int
    vehicle_make: str
    vehicle_model: str
    vehicle_trim: str
    vehicle_vin: str
    vehicle_price_cents: int
    down_payment_cents: int
    monthly_income_cents: int
    months_employed: int
    months_at_address: int
    credit: CreditResult | None  # the latest credit check
    tcpa: TcpaConsent | None
    employment_status: str = ""
    vehicle_status: str = ""  # "new", "used" or "" (not given)
    purchase_timeframe: str = ""  # a PurchaseTimeframe value or "" (not given)
    trade_in: TradeInInput | None = None


def routing_lead_of(record: LeadRecord) -> RoutingLead:
    """What routing needs of a lead known in memory (as intake wrote it, with its credit
    result): the same as storage reads back for it (`PackageRepository.leads`)."""
    a = record.applicant
    address, vehicle, consent = a.address, a.vehicle, a.consent
    assert address is not None and vehicle is not None  # a stored lead has both
    return RoutingLead(
        lead_id=record.lead_id,
        created_at=record.created_at,
        source=a.source,
        source_dealer_id=record.source_dealer_id or None,
        first_name=a.first_name,
        last_name=a.last_name,
        email=a.email,
        phone_e164=a.phone,
        street=address.street,
        street2=address.street2,
        city=address.city,
        state=address.state,
        zip_code=address.zip_code,
        vehicle_year=vehicle.year,
        vehicle_make=vehicle.make,
        vehicle_model=vehicle.model,
        vehicle_trim=vehicle.trim,
        vehicle_vin=vehicle.vin,
        vehicle_price_cents=vehicle.price_cents,
        down_payment_cents=a.down_payment_cents,
        monthly_income_cents=a.monthly_income_cents,
        months_employed=a.months_employed,
        months_at_address=a.months_at_address,
        credit=record.credit,
        tcpa=TcpaConsent(
            granted=consent.tcpa,
            consented_at=consent.consented_at,
            certificate_id=consent.certificate_id,
            page_url=consent.page_url,
        )
        if consent is not None and consent.consented_at is not None
        else None,
        employment_status=a.employment_status,
        vehicle_status=a.vehicle_status,
        purchase_timeframe=a.purchase_timeframe,
        trade_in=a.trade_in,
    )


def serves(dealer: RoutingDealer, state: str, zip_code: str, tier: str) -> bool:
    """Whether the dealer covers the lead's state or ZIP and accepts its credit tier."""
    tiers = [t.upper() for t in dealer.accepted_tiers]
    covers = state in dealer.states or any(zip_code.startswith(p) for p in dealer.zip_prefixes)
    return covers and (not tiers or tier.upper() in tiers)


def choose_dealer(
    candidates: Sequence[RoutingDealer], today: Mapping[str, int]
) -> RoutingDealer | None:
    """Among eligible dealers (`today`: packages per dealer since 00:00 UTC), the one with
    capacity at the best priority with the fewest leads today for its weight (ties by id)."""
    open_ = [d for d in candidates if d.daily_cap <= 0 or today.get(d.dealer_id, 0) < d.daily_cap]
    if not open_:
        return None
    best = min(d.priority for d in open_)
    group = [d for d in open_ if d.priority == best]
    return min(group, key=lambda d: (today.get(d.dealer_id, 0) / max(1, d.weight), d.dealer_id))


def package_format(dealer: RoutingDealer) -> str:
    """The dealer's package format; JSON when it names none we render."""
    return dealer.delivery_format if dealer.delivery_format in PACKAGE_FORMATS else "json"


def start_of_day(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)
