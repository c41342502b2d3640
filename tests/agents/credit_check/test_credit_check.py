"""CreditCheck agent: the deterministic simulation and its sandbox identities, FlexPath decisions
over real loopback HTTP, fallbacks with their reasons, status and counters."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.adapters.flexpath import BreakerState, CircuitBreaker, FlexPathClient
from server.agents.credit_check.agent import (
    DECISIONS,
    FALLBACK_CIRCUIT_OPEN,
    FALLBACK_NO_API_KEY,
    FALLBACK_UPSTREAM_ERROR,
    SANDBOX_LAST_NAMES,
    STATE_DEGRADED,
    STATE_READY,
    CreditCheckAgent,
    _normalise_name,
    simulate_credit,
    simulated_score,
)
from server.domain.credit import CreditApplicant
from server.domain.leads import AddressInput, ConsentInput, ValidLead, VehicleInput
from support.fake_flexpath import FakeFlexPath, Reply

NOW = dt.datetime(2026, 11, 24, 15, 0, 0)
BAND = re.compile(r"^(\d{3})-(\d{3})$")

MARIA = CreditApplicant(
    lead_id="lead-maria",
    first_name="Maria",
    last_name="Lopez",
    street="100 Main St",
    city="Springfield",
    state="IL",
    zip_code="62701",
    date_of_birth=dt.date(1990, 4, 12),
    monthly_income_cents=420_000,
    consented_at=dt.datetime(2026, 11, 24, 14, 59, 0),
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def agent_with(client: FlexPathClient | None, **options: Any) -> CreditCheckAgent:
    return CreditCheckAgent(client, clock=lambda: NOW, **options)


# --- Simulation --------------------------------------------------------------------------------


def test_example_applicant_is_prequalified_by_the_rules() -> None:
    assert _normalise_name(MARIA.last_name) not in SANDBOX_LAST_NAMES
    result = simulate_credit(MARIA, NOW)
    assert result.decision == "prequalified"
    assert result.source == "simulated"
    assert result.tier in {"A", "B", "C"}
    assert result.max_payment_cents > 0 and result.max_amount_cents > 0
    assert result.reference_id == "sim-lead-maria"
    assert result.checked_at == NOW


def test_example_applicant_is_prequalified_whatever_the_hash() -> None:
    # Her income and age put her above tier D's ceiling even at the lowest hash value (560).
    assert 560 + 60 + 0 >= 620
    assert simulated_score(MARIA, NOW.date()) >= 620


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)
applicants = st.builds(
    CreditApplicant,
    lead_id=st.uuids().map(str),
    first_name=names,
    last_name=names,
    street=st.just("1 Any St"),
    city=st.just("Anytown"),
    state=st.sampled_from(["IL", "CA", "TX"]),
    zip_code=st.from_regex(r"\d{5}(-\d{4})?", fullmatch=True),
    date_of_birth=st.dates(dt.date(1900, 1, 1), dt.date(2026, 11, 24)),
    monthly_income_cents=st.integers(0, 10_000_000),
    consented_at=st.just(NOW),
)
check_times = st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2040, 1, 1))


@settings(max_examples=300, deadline=None)
@given(applicant=applicants, checked_at=check_times)
def test_simulation_is_deterministic_and_always_valid(
    applicant: CreditApplicant, checked_at: dt.datetime
) -> None:
    first = simulate_credit(applicant, checked_at)
    again = simulate_credit(dataclasses.replace(applicant), checked_at)
    assert first == again

    assert first.source == "simulated"
    assert first.decision in DECISIONS
    assert first.tier in {"A", "B", "C", "D", "E"}
    band = BAND.match(first.score_band)
    assert band and 300 <= int(band[1]) < int(band[2]) <= 850
    assert first.checked_at == checked_at
    assert first.reference_id == f"sim-{applicant.lead_id}"
    assert 0 <= first.max_payment_cents <= 200_000
    assert first.max_payment_cents <= applicant.monthly_income_cents * 20 // 100
    assert 0 <= first.max_amount_cents <= 6_000_000
    if first.decision == "declined":
        assert (first.tier, first.max_payment_cents, first.max_amount_cents) == ("E", 0, 0)
    if first.decision == "prequalified":
        assert first.tier in {"A", "B", "C"}


@settings(max_examples=200, deadline=None)
@given(applicant=applicants)
def test_tier_and_band_follow_the_score(applicant: CreditApplicant) -> None:
    if _normalise_name(applicant.last_name) in SANDBOX_LAST_NAMES:
        return
    result = simulate_credit(applicant, NOW)
    score = simulated_score(applicant, NOW.date())
    band = BAND.match(result.score_band)
    assert band and int(band[1]) <= score <= int(band[2])
    if applicant.date_of_birth <= dt.date(2008, 11, 24):  # adult: the tier is the score's
        floors = (("A", 700), ("B", 660), ("C", 620), ("D", 580))
        assert result.tier == next((t for t, floor in floors if score >= floor), "E")


def test_names_are_normalised_before_hashing() -> None:
    variants = [
        MARIA,
        dataclasses.replace(MARIA, first_name="MARÍA", last_name=" lópez "),
        dataclasses.replace(MARIA, first_name="maria", last_name="Lo-pez", zip_code="62701-1234"),
    ]
    scores = {simulated_score(a, NOW.date()) for a in variants}
    assert len(scores) == 1


def test_different_identities_spread_across_scores() -> None:
    scores = {
        simulated_score(dataclasses.replace(MARIA, zip_code=f"{60000 + i:05d}"), NOW.date())
        for i in range(200)
    }
    assert len(scores) > 50


SANDBOX = [
    ("Prequalified", "prequalified", "B", "660-699"),
    ("PREQUALIFIED", "prequalified", "B", "660-699"),
    ("Review", "needs_review", "D", "580-619"),
    ("Needs Review", "needs_review", "D", "580-619"),
    ("Declined", "declined", "E", "300-499"),
]


@pytest.mark.parametrize(("last_name", "decision", "tier", "band"), SANDBOX)
@settings(max_examples=50, deadline=None)
@given(applicant=applicants)
def test_sandbox_identities_force_the_outcome(
    last_name: str, decision: str, tier: str, band: str, applicant: CreditApplicant
) -> None:
    result = simulate_credit(dataclasses.replace(applicant, last_name=last_name), NOW)
    assert (result.decision, result.tier, result.score_band) == (decision, tier, band)


def test_sandbox_overrides_rules_that_would_decide_otherwise() -> None:
    poor_teen = dataclasses.replace(
        MARIA, date_of_birth=dt.date(2008, 1, 1), monthly_income_cents=50_000
    )
    assert simulate_credit(poor_teen, NOW).decision == "declined"
    forced = simulate_credit(dataclasses.replace(poor_teen, last_name="Prequalified"), NOW)
    assert forced.decision == "prequalified"
    assert simulate_credit(dataclasses.replace(MARIA, last_name="Declined"), NOW).decision == (
        "declined"
    )
    assert simulate_credit(dataclasses.replace(MARIA, last_name="Review"), NOW).decision == (
        "needs_review"
    )


def test_minors_are_declined() -> None:
    minor = dataclasses.replace(MARIA, date_of_birth=dt.date(2009, 1, 1))
    result = simulate_credit(minor, NOW)
    assert (result.decision, result.tier, result.max_payment_cents) == ("declined", "E", 0)


def test_limits_follow_the_documented_formula() -> None:
    result = simulate_credit(MARIA, NOW)
    percent = {"A": 20, "B": 18, "C": 15}[result.tier]
    multiplier = {"A": 60, "B": 54, "C": 48}[result.tier]
    payment = 420_000 * percent // 100 // 100 * 100
    assert result.max_payment_cents == payment
    assert result.max_amount_cents == min(payment * multiplier // 10_000 * 10_000, 6_000_000)


def test_applicant_repr_hides_personal_data() -> None:
    shown = repr(MARIA)
    assert "lead-maria" in shown
    assert not any(v in shown for v in ("Maria", "Lopez", "Main", "62701", "1990"))


def test_from_valid_lead() -> None:
    lead = ValidLead(
        first_name="Maria",
        last_name="Lopez",
        email="maria.lopez@example.com",
        email_normalized="maria.lopez@example.com",
        phone_e164="+13125550182",
        date_of_birth=dt.date(1990, 4, 12),
        address=AddressInput(
            street="100 Main St", city="Springfield", state="IL", zip_code="62701"
        ),
        monthly_income_cents=420_000,
        down_payment_cents=0,
        vehicle=VehicleInput(),
        consent=ConsentInput(fcra_soft_pull=True, certificate_id="cert-1"),
        source="website",
        visitor_id="",
        employment_status="",
        months_employed=0,
        months_at_address=0,
    )
    with pytest.raises(ValueError, match="consent"):
        CreditApplicant.from_valid_lead("lead-maria", lead)
    applicant = CreditApplicant.from_valid_lead("lead-maria", lead, MARIA.consented_at)
    assert applicant == dataclasses.replace(MARIA, consent_certificate_id="cert-1")


# --- Agent without FlexPath --------------------------------------------------------------------


async def test_without_api_key_the_agent_simulates() -> None:
    agent = agent_with(None)
    outcome = await agent.check(MARIA)
    assert outcome.fallback_reason == FALLBACK_NO_API_KEY
    assert outcome.result == simulate_credit(MARIA, NOW)
    state, detail = agent.status()
    assert state == STATE_DEGRADED and "API key" in detail
    assert agent.metrics()["checks_simulated"] == 1
    assert agent.metrics()["fallbacks_no_api_key"] == 1
    assert agent.last_check_at == NOW


async def test_checked_at_is_naive_utc_by_default() -> None:
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    outcome = await CreditCheckAgent(None).check(MARIA)
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert outcome.result.checked_at.tzinfo is None
    assert before <= outcome.result.checked_at <= after


# --- Agent with FlexPath over loopback ---------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeFlexPath]:
    with FakeFlexPath() as server:
        yield server


def client_for(fake: FakeFlexPath, **options: Any) -> FlexPathClient:
    options = {"max_attempts": 3, "backoff_initial": 0.0, **options}
    return FlexPathClient(fake.url, "test-key", **options)


async def test_flexpath_decides_when_it_answers(fake: FakeFlexPath) -> None:
    fake.default = Reply.ok(decision="needs_review", tier="D", score_band="580-619")
    agent = agent_with(client_for(fake))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert outcome.fallback_reason == ""
    result = outcome.result
    assert (result.source, result.decision, result.tier, result.score_band) == (
        "flexpath",
        "needs_review",
        "D",
        "580-619",
    )
    assert (result.max_payment_cents, result.max_amount_cents) == (75_600, 4_080_000)
    assert (result.reference_id, result.checked_at) == ("fp-0001", NOW)
    assert agent.status() == (STATE_READY, "")
    assert agent.metrics()["checks_flexpath"] == 1
    assert agent.metrics()["decisions_needs_review"] == 1
    assert fake.requests[0].json()["consent"]["lead_id"] == "lead-maria"


async def test_flexpath_missing_limits_become_zero(fake: FakeFlexPath) -> None:
    fake.default = Reply.ok(max_payment_cents=None, max_amount_cents=None)
    agent = agent_with(client_for(fake))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert (outcome.result.max_payment_cents, outcome.result.max_amount_cents) == (0, 0)


async def test_slow_flexpath_within_timeout_still_decides(fake: FakeFlexPath) -> None:
    fake.default = Reply.ok(delay=0.3, reference_id="fp-slow")
    agent = agent_with(client_for(fake, total_timeout=2.0))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert (outcome.result.source, outcome.result.reference_id) == ("flexpath", "fp-slow")
    assert outcome.fallback_reason == ""


async def test_500_is_retried_then_falls_back_to_simulation(fake: FakeFlexPath) -> None:
    fake.default = Reply.error(500)
    agent = agent_with(client_for(fake))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert len(fake.requests) == 3
    assert outcome.fallback_reason == FALLBACK_UPSTREAM_ERROR
    assert outcome.result == simulate_credit(MARIA, NOW)
    state, detail = agent.status()
    assert state == STATE_DEGRADED and "fell back" in detail
    assert agent.metrics()["fallbacks_upstream_error"] == 1


async def test_timeout_falls_back_to_simulation(fake: FakeFlexPath) -> None:
    fake.default = Reply.hanging()
    agent = agent_with(client_for(fake, max_attempts=2, connect_timeout=0.5, total_timeout=0.3))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert len(fake.requests) == 2
    assert outcome.fallback_reason == FALLBACK_UPSTREAM_ERROR
    assert outcome.result.source == "simulated"


async def test_4xx_falls_back_without_retrying(fake: FakeFlexPath) -> None:
    fake.default = Reply.error(422)
    agent = agent_with(client_for(fake))
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert len(fake.requests) == 1
    assert outcome.fallback_reason == FALLBACK_UPSTREAM_ERROR
    assert outcome.result.source == "simulated"


async def test_open_breaker_falls_back_without_network(fake: FakeFlexPath) -> None:
    clock = FakeClock()
    fake.default = Reply.error(503)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30, clock=clock)
    agent = agent_with(
        client_for(fake, max_attempts=1, breaker=breaker), monotonic=clock, degraded_window=60
    )

    reasons = [(await agent.check(MARIA)).fallback_reason for _ in range(5)]
    assert reasons == [FALLBACK_UPSTREAM_ERROR] * 2 + [FALLBACK_CIRCUIT_OPEN] * 3
    assert len(fake.requests) == 2
    state, detail = agent.status()
    assert state == STATE_DEGRADED and "circuit open" in detail and "next trial in 30 s" in detail
    assert agent.metrics()["fallbacks_circuit_open"] == 3

    clock.now += 30
    assert breaker.state is BreakerState.HALF_OPEN
    assert agent.status()[0] == STATE_DEGRADED
    fake.default = Reply.ok()
    outcome = await agent.check(MARIA)
    assert (outcome.result.source, outcome.fallback_reason) == ("flexpath", "")
    assert len(fake.requests) == 3
    # Recovered, but recent fallbacks keep it degraded until the window has passed.
    assert agent.status()[0] == STATE_DEGRADED
    clock.now += 61
    assert agent.status() == (STATE_READY, "")
    await agent.aclose()

    assert agent.metrics() == {
        "checks_flexpath": 1,
        "checks_simulated": 5,
        "decisions_prequalified": 6,
        "decisions_declined": 0,
        "decisions_needs_review": 0,
        "fallbacks_no_api_key": 0,
        "fallbacks_circuit_open": 3,
        "fallbacks_upstream_error": 2,
    }


async def test_mock_transport_flexpath_path() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "reference_id": "fp-9",
                "decision": "declined",
                "tier": "E",
                "score_band": "500-539",
            },
        )

    client = FlexPathClient("https://flexpath.test", "k", transport=httpx.MockTransport(answer))
    agent = agent_with(client)
    outcome = await agent.check(MARIA)
    await agent.aclose()
    assert (outcome.result.decision, outcome.result.max_payment_cents) == ("declined", 0)
    assert outcome.fallback_reason == ""
