"""The dealer view: what a dealer key reads of a lead through GetLead and ListLeads.

It is exactly what the lead's package carries to the dealer
(`server/agents/lead_packaging/render.py`, `PackageData`), plus the lead's own state (status,
outcome, delivery state, times, dealer ids, decline reason), so a dealer reads no more through
the API than it is sent:

- applicant: first and last name, email, phone, address, vehicle (year, make, model, trim, VIN,
  price) and whether it is new or used, the trade-in, the purchase timeframe, down payment,
  monthly income, employment status, months employed and at the address (the package's
  comments), source;
- consent: TCPA, when it was given, the certificate id and the page URL (the TCPA evidence);
- credit: decision, tier, score band, maximum payment and amount, source; the lead score.

Never: date of birth, the visitor id, the
consent text, FCRA flag, IP address or user agent, the credit reference id or check time, and
how the lead is linked to other records (its identity, or which earlier lead it duplicates;
the outcome itself, a duplicate, stays visible: a dealer needs to know its lead will not be
worked)."""

from __future__ import annotations

import dataclasses

from server.domain.leads import (
    ConsentInput,
    CreditResult,
    LeadInput,
    LeadRecord,
    VehicleInput,
)

__all__ = ["dealer_view"]


def dealer_view(record: LeadRecord) -> LeadRecord:
    """The lead as a dealer key reads it: only what its package carries (see module doc)."""
    a = record.applicant
    applicant = LeadInput(
        first_name=a.first_name,
        last_name=a.last_name,
        email=a.email,
        phone=a.phone,
        address=None if a.address is None else dataclasses.replace(a.address),
        monthly_income_cents=a.monthly_income_cents,
        down_payment_cents=a.down_payment_cents,
        vehicle=None if a.vehicle is None else _vehicle(a.vehicle),
        consent=None if a.consent is None else _consent(a.consent),
        source=a.source,
        employment_status=a.employment_status,
        months_employed=a.months_employed,
        months_at_address=a.months_at_address,
        trade_in=None if a.trade_in is None else dataclasses.replace(a.trade_in),
        purchase_timeframe=a.purchase_timeframe,
        vehicle_status=a.vehicle_status,
    )
    return dataclasses.replace(
        record,
        applicant=applicant,
        credit=None if record.credit is None else _credit(record.credit),
        identity_id="",
        duplicate_of_lead_id="",
    )


def _vehicle(v: VehicleInput) -> VehicleInput:
    return VehicleInput(
        year=v.year, make=v.make, model=v.model, trim=v.trim, vin=v.vin, price_cents=v.price_cents
    )


def _consent(c: ConsentInput) -> ConsentInput:
    return ConsentInput(
        tcpa=c.tcpa,
        consented_at=c.consented_at,
        certificate_id=c.certificate_id,
        page_url=c.page_url,
    )


def _credit(c: CreditResult) -> CreditResult:
    # No reference id (the bureau's, to our account) and no check time: the package has neither.
    # `checked_at` is typed as always set; the transport writes None as an unset check_time.
    return dataclasses.replace(c, reference_id="", checked_at=None)  # type: ignore[arg-type]
