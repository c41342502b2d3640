"""Credit domain types: what a soft pull needs to know about an applicant."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from server.domain.leads import ValidLead


@dataclass(frozen=True)
class CreditApplicant:
    """What a soft pull needs to know about a lead. No SSN: a soft pull does not need one.

    Personal fields stay out of `repr`, so a logged applicant shows only its lead id.
    """

    lead_id: str
    first_name: str = field(repr=False)
    last_name: str = field(repr=False)
    street: str = field(repr=False)
    city: str = field(repr=False)
    state: str = field(repr=False)
    zip_code: str = field(repr=False)
    date_of_birth: dt.date = field(repr=False)
    monthly_income_cents: int = field(repr=False)
    consented_at: dt.datetime
    consent_certificate_id: str = ""

    @classmethod
    def from_valid_lead(
        cls, lead_id: str, lead: ValidLead, consented_at: dt.datetime | None = None
    ) -> CreditApplicant:
        """The applicant of a validated lead; `consented_at` overrides the lead's consent time
        (the stored consent record has it when the request did not)."""
        when = consented_at or lead.consent.consented_at
        if when is None:
            raise ValueError("a soft pull needs the time the applicant consented")
        return cls(
            lead_id=lead_id,
            first_name=lead.first_name,
            last_name=lead.last_name,
            street=lead.address.street,
            city=lead.address.city,
            state=lead.address.state,
            zip_code=lead.address.zip_code,
            date_of_birth=lead.date_of_birth,
            monthly_income_cents=lead.monthly_income_cents,
            consented_at=when,
            consent_certificate_id=lead.consent.certificate_id,
        )
