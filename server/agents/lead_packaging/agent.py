"""LeadPackaging: scores a lead, routes it to a dealer, renders its package, queues delivery.

Score (0 to 100): the rules of `server.domain.scoring`.

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
worker sends) are written in the same transaction as the routing decision: `route` runs inside
the caller's transaction (the pipeline's routing step), and every read and write it makes goes
through `PackageRepository`. The rules (score, eligibility, choice) are pure functions in
`server.domain.scoring` and `server.domain.routing`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from server.agents.lead_packaging import render as packages
from server.domain.leads import ActivityEntry, AgentName, LeadStatus
from server.domain.routing import (
    RoutingDealer,
    RoutingLead,
    choose_dealer,
    package_format,
    serves,
    start_of_day,
)
from server.domain.scoring import ScoringFacts, score_lead
from server.storage.packages import PackageRepository

__all__ = ["LeadPackaging", "RoutingResult", "score_lead"]

A = AgentName.LEAD_PACKAGING


@dataclass(frozen=True)
class RoutingResult:
    status: LeadStatus
    dealer_id: str | None
    package_id: str | None
    delivery_id: str | None
    score: int


class LeadPackaging:
    def __init__(self, backend: str, repository: PackageRepository | None = None) -> None:
        self._repo = repository or PackageRepository(backend)

    def route(self, lead_id: str, now: dt.datetime) -> RoutingResult:
        """Scores, routes and packages one credit-checked lead. Runs inside a transaction."""
        return self.route_many([lead_id], now)[lead_id]

    def route_many(
        self,
        lead_ids: list[str],
        now: dt.datetime,
        known: Mapping[str, RoutingLead] | None = None,
    ) -> dict[str, RoutingResult]:
        """`route` for a batch of credit-checked leads, in order, inside one transaction: the
        leads are read together, the dealers open to routing and their packages today once
        (counted on as the batch assigns leads, so caps and round-robin come out as if the
        leads were routed one by one), and every activity entry goes in one statement. Leads
        in `known` (the orchestrator's, in memory) are not read again."""
        known = known or {}
        leads = self._repo.leads([i for i in lead_ids if i not in known])
        leads.update((i, known[i]) for i in lead_ids if i in known)
        routing = _DealerSnapshot(self._repo, now)
        activities: list[tuple[str, list[ActivityEntry]]] = []
        results: dict[str, RoutingResult] = {}
        closing: list[tuple[str, LeadStatus | None, int]] = []  # sent to no dealer
        for lead_id in lead_ids:
            result, entries = self._route(leads[lead_id], routing, now)
            results[lead_id] = result
            activities.append((lead_id, entries))
            if result.dealer_id is None:
                held = result.status is LeadStatus.NEEDS_REVIEW
                closing.append((lead_id, None if held else result.status, result.score))
        self._repo.close(closing, now)
        self._repo.add_activities(activities, now)
        return results

    def _route(
        self, lead: RoutingLead, routing: _DealerSnapshot, now: dt.datetime
    ) -> tuple[RoutingResult, list[ActivityEntry]]:
        lead_id = lead.lead_id
        credit = lead.credit
        tcpa = lead.tcpa
        tier = credit.tier if credit else ""
        facts = ScoringFacts(
            monthly_income_cents=lead.monthly_income_cents,
            down_payment_cents=lead.down_payment_cents,
            months_employed=lead.months_employed,
            months_at_address=lead.months_at_address,
            vehicle_make=lead.vehicle_make,
            vehicle_model=lead.vehicle_model,
        )
        score, parts = score_lead(facts, tier, bool(tcpa and tcpa.certificate_id))
        activities: list[ActivityEntry] = [
            (A, "lead.scored", f"Lead scored {score}/100", {"score": score, "points": parts})
        ]
        decision = credit.decision if credit else ""
        if decision == "needs_review":
            activities.append((A, "routing.held", "Held for human review before routing", {}))
            return RoutingResult(LeadStatus.NEEDS_REVIEW, None, None, None, score), activities

        dealer = (
            self._repo.source_dealer(lead.source_dealer_id)
            if lead.source_dealer_id
            else routing.pick(lead, tier)
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
            return RoutingResult(status, None, None, None, score), activities

        fmt = package_format(dealer)
        body, content_type = packages.render(self._package_data(lead, dealer, score), fmt)
        stored = self._repo.store_package(
            lead_id,
            dealer.dealer_id,
            fmt=fmt,
            content_type=content_type,
            body=body,
            score=score,
            now=now,
        )
        routing.assigned(dealer.dealer_id)
        activities += [
            (
                A,
                "lead.routed",
                "Routed to a dealer",
                {"dealer_id": dealer.dealer_id, "priority": dealer.priority, "tier": tier},
            ),
            (
                A,
                "package.created",
                f"Dealer package rendered ({fmt})",
                {"package_id": stored.package_id, "format": fmt, "bytes": len(body)},
            ),
            (
                A,
                "delivery.queued",
                "Delivery queued",
                {"delivery_id": stored.delivery_id, "event_id": stored.event_id},
            ),
        ]
        result = RoutingResult(
            LeadStatus.PACKAGED, dealer.dealer_id, stored.package_id, stored.delivery_id, score
        )
        return result, activities

    @staticmethod
    def _package_data(lead: RoutingLead, dealer: RoutingDealer, score: int) -> packages.PackageData:
        credit = lead.credit
        tcpa = lead.tcpa
        return packages.PackageData(
            lead_id=lead.lead_id,
            created_at=lead.created_at,
            first_name=lead.first_name,
            last_name=lead.last_name,
            email=lead.email,
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
                status=lead.vehicle_status,
            ),
            down_payment_cents=lead.down_payment_cents,
            monthly_income_cents=lead.monthly_income_cents,
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
            dealer_id=dealer.dealer_id,
            dealer_name=dealer.name,
            consent=packages.PackageConsent(
                tcpa=bool(tcpa and tcpa.granted),
                consented_at=tcpa.consented_at if tcpa else None,
                certificate_id=tcpa.certificate_id if tcpa else "",
                page_url=tcpa.page_url if tcpa else "",
            ),
            source=lead.source,
            dealer_email=dealer.contact_email,
            dealer_phone=dealer.contact_phone,
            trade_in=packages.PackageTradeIn(
                year=lead.trade_in.year,
                make=lead.trade_in.make,
                model=lead.trade_in.model,
                mileage=lead.trade_in.mileage,
            )
            if lead.trade_in
            else None,
            purchase_timeframe=lead.purchase_timeframe,
            employment_status=lead.employment_status,
            months_employed=lead.months_employed,
            months_at_address=lead.months_at_address,
            origin=packages.PackageOrigin(
                channel=packages.DEALER_CHANNEL, dealer_id=lead.source_dealer_id
            )
            if lead.source_dealer_id
            else None,
        )


class _DealerSnapshot:
    """The dealers open to routing and their packages today, read once per batch (on
    PostgreSQL the dealer rows stay locked until the transaction ends) and counted on as the
    batch assigns leads."""

    def __init__(self, repo: PackageRepository, now: dt.datetime) -> None:
        self._repo = repo
        self._now = now
        self._dealers: list[RoutingDealer] | None = None
        self._today: dict[str, int] = {}

    def pick(self, lead: RoutingLead, tier: str) -> RoutingDealer | None:
        if self._dealers is None:  # read on the first lead that needs a dealer
            self._dealers = self._repo.open_dealers()
            self._today = self._repo.packages_since(
                [d.dealer_id for d in self._dealers], start_of_day(self._now)
            )
        candidates = [d for d in self._dealers if serves(d, lead.state, lead.zip_code, tier)]
        return choose_dealer(candidates, self._today) if candidates else None

    def assigned(self, dealer_id: str) -> None:
        """A package for `dealer_id` was stored: it counts toward its cap and round-robin."""
        self._today[dealer_id] = self._today.get(dealer_id, 0) + 1
