"""Lead scoring (0 to 100), from these documented rules and nothing else:

| signal | points |
|---|---|
| credit tier A / B / C / D / E | 40 / 32 / 24 / 16 / 8 |
| monthly income >= $5,000 / >= $3,000 / >= $2,000 / > 0 | 20 / 15 / 10 / 5 |
| down payment >= $2,000 / >= $1,000 / > 0 | 15 / 10 / 5 |
| months employed >= 24 / >= 6 | 10 / 5 |
| months at address >= 24 | 5 |
| vehicle of interest named | 5 |
| third-party consent certificate | 5 |
"""

from __future__ import annotations

from dataclasses import dataclass

TIER_POINTS = {"A": 40, "B": 32, "C": 24, "D": 16, "E": 8}


@dataclass(frozen=True)
class ScoringFacts:
    """What the score looks at in a lead (besides its credit tier and consent certificate)."""

    monthly_income_cents: int
    down_payment_cents: int
    months_employed: int
    months_at_address: int
    vehicle_make: str = ""
    vehicle_model: str = ""


def score_lead(lead: ScoringFacts, tier: str, has_certificate: bool) -> tuple[int, dict[str, int]]:
    """The lead's score and the points of each rule (for the activity log)."""
    income = int(lead.monthly_income_cents)
    down = int(lead.down_payment_cents)
    parts = {
        "credit_tier": TIER_POINTS.get(tier.upper(), 0),
        "income": 20
        if income >= 500_000
        else 15
        if income >= 300_000
        else 10
        if income >= 200_000
        else 5
        if income > 0
        else 0,
        "down_payment": 15 if down >= 200_000 else 10 if down >= 100_000 else 5 if down > 0 else 0,
        "employment": 10 if lead.months_employed >= 24 else 5 if lead.months_employed >= 6 else 0,
        "residence": 5 if lead.months_at_address >= 24 else 0,
        "vehicle": 5 if (lead.vehicle_make or lead.vehicle_model) else 0,
        "certificate": 5 if has_certificate else 0,
    }
    return min(100, sum(parts.values())), parts
