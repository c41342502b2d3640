"""LeadPackaging: scores a lead, routes it to a dealer, renders its package, queues delivery.

Score (0 to 100), from these documented rules and nothing else:

| signal | points |
|---|---|
| credit tier A / B / C / D / E | 40 / 32 / 24 / 16 / 8 |
| monthly income >= $5,000 / >= $3,000 / >= $2,000 / > 0 | 20 / 15 / 10 / 5 |
| down payment >= $2,000 / >= $1,000 / > 0 | 15 / 10 / 5 |
| months employed >= 24 / >= 6 | 10 / 5 |
| months at address >= 24 | 5 |
| vehicle of interest named | 5 |
| third-party consent certificate | 5 |

Routing: a dealer is eligible when it is active, has an endpoint, serves the lead's state or
one of its ZIP prefixes matches, accepts the lead's credit tier (no tiers listed = all), and has
capacity (`daily_cap` 0 = no cap; packages rendered for it since 00:00 UTC count). Among eligible
dealers the lowest `priority` number wins; within that priority, weighted round-robin: the
dealer with the fewest leads today relative to its `weight` (ties by id), which spreads leads
in proportion to weight across every server process, because the counts live in the database.
Prequalified leads are routed; declined leads only to dealers that accept their tier; leads
that need review wait for a person. A prequalified lead no dealer can take is `unrouted` and can
be routed again (`RouteLead`). A lead a dealer sent us (dealer webhook) goes back to that
dealer only, with its prequalification, whatever the caps and round-robin: it is the dealer's
own customer and is never sold to a competitor.

The package (ADF XML or JSON, per dealer) and its delivery (the outbox entry the delivery
worker sends) are written in the same transaction as the routing decision.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import peewee as pw

from server.agents import packages
from server.domain.leads import ActivityEntry, AgentName, LeadStatus
from server.storage import models as m
from server.storage.leads import append_activities

A = AgentName.LEAD_PACKAGING

TIER_POINTS = {"A": 40, "B": 32, "C": 24, "D": 16, "E": 8}


def score_lead(lead: m.Lead, tier: str, has_certificate: bool) -> tuple[int, dict[str, int]]:
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


@dataclass(frozen=True)
class RoutingResult:
    status: LeadStatus
    dealer_id: str | None
    package_id: str | None
    delivery_id: str | None
    score: int


def _start_of_day(now: dt.datetime) -> dt.datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class LeadPackaging:
    def __init__(self, backend: str) -> None:
        self._lock_dealers = backend == "postgresql"

    def route(self, lead_id: str, now: dt.datetime) -> RoutingResult:
        """Scores, routes and packages one credit-checked lead. Runs inside a transaction."""
        lead = m.Lead.get_by_id(lead_id)
        credit = (
            m.CreditCheck.select()
            .where(m.CreditCheck.lead == lead_id)
            .order_by(m.CreditCheck.created_at.desc())
            .first()
        )
        tcpa = (
            m.LeadConsent.select()
            .where((m.LeadConsent.lead == lead_id) & (m.LeadConsent.kind == "tcpa"))
            .first()
        )
        tier = credit.tier if credit else ""
        score, parts = score_lead(lead, tier, bool(tcpa and tcpa.certificate_id))
        activities: list[ActivityEntry] = [
            (A, "lead.scored", f"Lead scored {score}/100", {"score": score, "points": parts})
        ]
        decision = credit.decision if credit else ""
        if decision == "needs_review":
            append_activities(
                lead_id,
                [*activities, (A, "routing.held", "Held for human review before routing", {})],
                at=now,
            )
            m.Lead.update(score=score, updated_at=now).where(m.Lead.id == lead_id).execute()
            return RoutingResult(LeadStatus.NEEDS_REVIEW, None, None, None, score)

        dealer = (
            m.Dealer.get_or_none(
                (m.Dealer.id == lead.source_dealer_id)
                & (m.Dealer.active == True)  # noqa: E712
                & (m.Dealer.endpoint_url != "")
            )
            if lead.source_dealer_id
            else self._pick_dealer(lead, tier, now)
        )
        if dealer is None:
            status = LeadStatus.UNROUTED if decision == "prequalified" else LeadStatus.DECLINED
            activities.append(
                (
                    A,
                    "routing.unrouted" if status is LeadStatus.UNROUTED else "routing.skipped",
                    "No eligible dealer with capacity"
                    if status is LeadStatus.UNROUTED
                    else "Declined and no dealer accepts its tier",
                    {"state": lead.state, "tier": tier},
                )
            )
            m.Lead.update(status=status.value, score=score, updated_at=now).where(
                m.Lead.id == lead_id
            ).execute()
            append_activities(lead_id, activities, at=now)
            return RoutingResult(status, None, None, None, score)

        fmt = dealer.delivery_format if dealer.delivery_format in ("adf", "json") else "json"
        body, content_type = packages.render(
            self._package_data(lead, credit, tcpa, dealer, score, now), fmt
        )
        package = m.LeadPackage.create(
            lead=lead_id,
            dealer=dealer.id,
            format=fmt,
            content_type=content_type,
            body=body.decode(),
            created_at=now,
        )
        delivery = m.Delivery.create(
            event_id=uuid.uuid4().hex,
            package=package.id,
            lead=lead_id,
            dealer=dealer.id,
            state="pending",
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        m.Lead.update(
            status=LeadStatus.PACKAGED.value,
            dealer=dealer.id,
            delivery_state="pending",
            score=score,
            updated_at=now,
        ).where(m.Lead.id == lead_id).execute()
        activities += [
            (
                A,
                "lead.routed",
                "Routed to a dealer",
                {"dealer_id": dealer.id, "priority": dealer.priority, "tier": tier},
            ),
            (
                A,
                "package.created",
                f"Dealer package rendered ({fmt})",
                {"package_id": package.id, "format": fmt, "bytes": len(body)},
            ),
            (
                A,
                "delivery.queued",
                "Delivery queued",
                {"delivery_id": delivery.id, "event_id": delivery.event_id},
            ),
        ]
        append_activities(lead_id, activities, at=now)
        return RoutingResult(LeadStatus.PACKAGED, dealer.id, package.id, delivery.id, score)

    def _pick_dealer(self, lead: m.Lead, tier: str, now: dt.datetime) -> m.Dealer | None:
        query = m.Dealer.select().where((m.Dealer.active == True) & (m.Dealer.endpoint_url != ""))  # noqa: E712
        if self._lock_dealers:
            # Serialises concurrent routing to the same dealers, so daily caps hold exactly.
            query = query.order_by(m.Dealer.id).for_update()
        candidates = []
        for dealer in query:
            states = json.loads(dealer.states_json)
            prefixes = json.loads(dealer.zip_prefixes_json)
            tiers = [t.upper() for t in json.loads(dealer.accepted_tiers_json)]
            serves = lead.state in states or any(lead.zip_code.startswith(p) for p in prefixes)
            if serves and (not tiers or tier.upper() in tiers):
                candidates.append(dealer)
        if not candidates:
            return None
        counts: Any = (
            m.LeadPackage.select(m.LeadPackage.dealer, pw.fn.COUNT(pw.SQL("*")))
            .where(
                m.LeadPackage.dealer.in_([d.id for d in candidates])
                & (m.LeadPackage.created_at >= _start_of_day(now))
            )
            .group_by(m.LeadPackage.dealer)
            .tuples()
        )
        today: dict[str, int] = {str(k): int(n) for k, n in counts}
        open_ = [d for d in candidates if d.daily_cap <= 0 or today.get(d.id, 0) < d.daily_cap]
        if not open_:
            return None
        best = min(d.priority for d in open_)
        group = [d for d in open_ if d.priority == best]
        return min(group, key=lambda d: (today.get(d.id, 0) / max(1, d.weight), d.id))

    @staticmethod
    def _package_data(
        lead: m.Lead,
        credit: m.CreditCheck | None,
        tcpa: m.LeadConsent | None,
        dealer: m.Dealer,
        score: int,
        now: dt.datetime,
    ) -> packages.PackageData:
        return packages.PackageData(
            lead_id=lead.id,
            created_at=lead.created_at,
            first_name=lead.first_name,
            last_name=lead.last_name,
            email=lead.email_normalized,
            phone_e164=lead.phone_e164,
            street=lead.street,
            street2=lead.street2,
            city=lead.city,
            state=lead.state,
            zip_code=lead.zip_code,
            vehicle=packages.PackageVehicle(
                year=lead.vehicle_year,
                make=lead.vehicle_make,
                model=lead.vehicle_model,
                trim=lead.vehicle_trim,
                vin=lead.vehicle_vin,
                price_cents=lead.vehicle_price_cents,
            ),
            down_payment_cents=lead.down_payment_cents,
            monthly_income_cents=int(lead.monthly_income_cents),
            credit=packages.PackageCredit(
                decision=credit.decision,
                tier=credit.tier,
                score_band=credit.score_band,
                max_payment_cents=credit.max_payment_cents,
                max_amount_cents=credit.max_amount_cents,
                source=credit.source,
            )
            if credit
            else None,
            score=score,
            dealer_id=dealer.id,
            dealer_name=dealer.name,
            consent=packages.PackageConsent(
                tcpa=bool(tcpa and tcpa.granted),
                consented_at=tcpa.consented_at if tcpa else None,
                certificate_id=tcpa.certificate_id if tcpa else "",
                page_url=tcpa.page_url if tcpa else "",
            ),
            source=lead.source,
        )
