"""The CreditCheck agent: soft-pull pre-qualification by FlexPath, or a deterministic simulation.

FlexPath decides when a client is configured (an API key exists) and answers; without a key,
while its circuit breaker is open, or when it fails, the simulation below decides and the
outcome says why (`fallback_reason`). No LLM takes part. The rules, also in docs/flexpath.md:

1. Sandbox identities, matched on the normalised last name (case, accents, spaces and
   punctuation ignored), force an outcome whatever the other fields say:
   "Prequalified" -> prequalified (tier B, 660-699); "Review" or "Needs Review" ->
   needs_review (tier D, 580-619); "Declined" -> declined (tier E, 300-499).
2. Otherwise a pseudo-score: 560 + (SHA-256 of "first|last|YYYY-MM-DD|zip5", with names
   normalised as above, first 8 bytes big-endian, modulo 101), so 560-660; plus an income
   adjustment by monthly income (< $1,500: -80; < $2,500: -40; < $3,500: 0; < $5,000: +60;
   < $7,500: +80; else +100); plus an age adjustment on the check date (18-20: -40;
   21-24: -20; 25 and over: 0).
3. Tiers: A >= 700, B 660-699, C 620-659, D 580-619, E < 580. Score bands are 40 points wide
   from 500 ("620-659"), with "300-499" below and "740-850" above. A, B and C are
   prequalified, D needs review, E is declined; under 18 on the check date is declined (E).
4. Max payment = income x (A 20%, B 18%, C 15%, D 12%), in whole dollars, at most $2,000;
   max amount = max payment x (A 60, B 54, C 48, D 42) (about 72 months at tier APRs of roughly
   7/11/16/21 %), rounded down to $100, at most $60,000. Declined: both 0.
5. Reference id "sim-<lead id>".

The same applicant on the same check date always gets the same result.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from server.adapters.flexpath import (
    REASON_CIRCUIT_OPEN,
    BreakerState,
    FlexPathClient,
    FlexPathResponse,
)
from server.domain.clock import utcnow
from server.domain.credit import CreditApplicant
from server.domain.leads import CreditResult
from server.errors import UpstreamError

__all__ = [
    "DECISIONS",
    "FALLBACK_CIRCUIT_OPEN",
    "FALLBACK_NO_API_KEY",
    "FALLBACK_UPSTREAM_ERROR",
    "SANDBOX_LAST_NAMES",
    "SOURCE_FLEXPATH",
    "SOURCE_SIMULATED",
    "STATE_DEGRADED",
    "STATE_READY",
    "CreditApplicant",
    "CreditCheckAgent",
    "CreditOutcome",
    "simulate_credit",
    "simulated_score",
]

log = logging.getLogger(__name__)

SOURCE_FLEXPATH = "flexpath"
SOURCE_SIMULATED = "simulated"

PREQUALIFIED = "prequalified"
DECLINED = "declined"
NEEDS_REVIEW = "needs_review"
DECISIONS = (PREQUALIFIED, DECLINED, NEEDS_REVIEW)

FALLBACK_NO_API_KEY = "no_api_key"
FALLBACK_CIRCUIT_OPEN = "circuit_open"
FALLBACK_UPSTREAM_ERROR = "upstream_error"
FALLBACK_REASONS = (FALLBACK_NO_API_KEY, FALLBACK_CIRCUIT_OPEN, FALLBACK_UPSTREAM_ERROR)

STATE_READY = "ready"
STATE_DEGRADED = "degraded"

# Normalised last name -> forced decision (see the module docstring, rule 1).
SANDBOX_LAST_NAMES: dict[str, str] = {
    "prequalified": PREQUALIFIED,
    "review": NEEDS_REVIEW,
    "needsreview": NEEDS_REVIEW,
    "declined": DECLINED,
}
_SANDBOX_GRADE = {
    PREQUALIFIED: ("B", "660-699"),
    NEEDS_REVIEW: ("D", "580-619"),
    DECLINED: ("E", "300-499"),
}

_BASE_SCORE = 560
_HASH_SPREAD = 101
# (monthly income below, in cents; score adjustment), the last row catching everything above.
_INCOME_ADJUSTMENT = (
    (150_000, -80),
    (250_000, -40),
    (350_000, 0),
    (500_000, 60),
    (750_000, 80),
)
_TOP_INCOME_ADJUSTMENT = 100
_TIER_FLOORS = (("A", 700), ("B", 660), ("C", 620), ("D", 580))
_TIER_DECISION = {"A": PREQUALIFIED, "B": PREQUALIFIED, "C": PREQUALIFIED, "D": NEEDS_REVIEW}
# Payment-to-income caps (percent) and payment multipliers (about 72 months at the tier's APR).
_PAYMENT_PERCENT = {"A": 20, "B": 18, "C": 15, "D": 12}
_AMOUNT_MULTIPLIER = {"A": 60, "B": 54, "C": 48, "D": 42}
MAX_PAYMENT_CAP_CENTS = 200_000  # $2,000 a month
MAX_AMOUNT_CAP_CENTS = 6_000_000  # $60,000
MIN_AGE_YEARS = 18


@dataclass(frozen=True)
class CreditOutcome:
    """A credit decision and, when the simulation made it, why FlexPath did not."""

    result: CreditResult
    # "" when FlexPath decided; otherwise one of FALLBACK_REASONS.
    fallback_reason: str = ""


# --- The simulation ----------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if c.isalnum() and not unicodedata.combining(c)).casefold()


def _zip5(zip_code: str) -> str:
    return "".join(c for c in zip_code if c.isdigit())[:5]


def _age_on(born: dt.date, day: dt.date) -> int:
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def _income_adjustment(monthly_income_cents: int) -> int:
    for below, adjustment in _INCOME_ADJUSTMENT:
        if monthly_income_cents < below:
            return adjustment
    return _TOP_INCOME_ADJUSTMENT


def _age_adjustment(age: int) -> int:
    if age < 21:
        return -40
    if age < 25:
        return -20
    return 0


def simulated_score(applicant: CreditApplicant, as_of: dt.date) -> int:
    """The pseudo-score of rule 2: a stable hash of the identity, adjusted by income and age."""
    key = "|".join(
        (
            _normalise_name(applicant.first_name),
            _normalise_name(applicant.last_name),
            applicant.date_of_birth.isoformat(),
            _zip5(applicant.zip_code),
        )
    )
    # SHA-256, not hash(): Python salts str hashes per process, and this must never change.
    digest = hashlib.sha256(key.encode()).digest()
    spread = int.from_bytes(digest[:8], "big") % _HASH_SPREAD
    age = _age_on(applicant.date_of_birth, as_of)
    return (
        _BASE_SCORE
        + spread
        + _income_adjustment(applicant.monthly_income_cents)
        + _age_adjustment(age)
    )


def _tier(score: int) -> str:
    for tier, floor in _TIER_FLOORS:
        if score >= floor:
            return tier
    return "E"


def _score_band(score: int) -> str:
    if score < 500:
        return "300-499"
    if score >= 740:
        return "740-850"
    low = 500 + 40 * ((score - 500) // 40)
    return f"{low}-{low + 39}"


def _limits(tier: str, monthly_income_cents: int) -> tuple[int, int]:
    if tier not in _PAYMENT_PERCENT:
        return 0, 0
    payment = max(0, monthly_income_cents) * _PAYMENT_PERCENT[tier] // 100
    payment = min(payment // 100 * 100, MAX_PAYMENT_CAP_CENTS)
    amount = payment * _AMOUNT_MULTIPLIER[tier] // 10_000 * 10_000
    return payment, min(amount, MAX_AMOUNT_CAP_CENTS)


def simulate_credit(applicant: CreditApplicant, checked_at: dt.datetime) -> CreditResult:
    """The simulated decision for `applicant` on `checked_at`'s date (rules in the docstring)."""
    forced = SANDBOX_LAST_NAMES.get(_normalise_name(applicant.last_name))
    if forced is not None:
        (tier, band), decision = _SANDBOX_GRADE[forced], forced
    else:
        as_of = checked_at.date()
        score = simulated_score(applicant, as_of)
        tier, band = _tier(score), _score_band(score)
        decision = _TIER_DECISION.get(tier, DECLINED)
        if _age_on(applicant.date_of_birth, as_of) < MIN_AGE_YEARS:
            tier, decision = "E", DECLINED
    # Every declined outcome has tier E, which has no limits.
    payment, amount = _limits(tier, applicant.monthly_income_cents)
    return CreditResult(
        decision=decision,
        source=SOURCE_SIMULATED,
        tier=tier,
        score_band=band,
        max_payment_cents=payment,
        max_amount_cents=amount,
        reference_id=f"sim-{applicant.lead_id}"[:128],
        checked_at=checked_at,
    )


# --- The agent ---------------------------------------------------------------------------------


class CreditCheckAgent:
    """Pre-qualifies applicants; counts what it did for the agent status page.

    `client` is None when no FlexPath API key is configured. `clock` gives `checked_at` (naive
    UTC); `monotonic` and `degraded_window` decide how long a fallback keeps the agent
    "degraded" after FlexPath has failed.
    """

    def __init__(
        self,
        client: FlexPathClient | None,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        degraded_window: float = 300.0,
    ) -> None:
        self._client = client
        self._clock = clock
        self._monotonic = monotonic
        self._degraded_window = degraded_window
        self._counts: collections.Counter[str] = collections.Counter()
        self._recent_failures: collections.deque[float] = collections.deque()
        self.last_check_at: dt.datetime | None = None

    async def check(self, applicant: CreditApplicant) -> CreditOutcome:
        """Pre-qualifies `applicant`; never raises for FlexPath's failures (it simulates)."""
        if self._client is None:
            return self._simulate(applicant, FALLBACK_NO_API_KEY)
        try:
            response = await self._client.prequalify(applicant)
        except UpstreamError as e:
            reason = (
                FALLBACK_CIRCUIT_OPEN
                if e.reason == REASON_CIRCUIT_OPEN
                else FALLBACK_UPSTREAM_ERROR
            )
            log.warning(
                "credit check fell back to simulation",
                extra={"lead_id": applicant.lead_id, "fallback": reason, "reason": e.reason},
            )
            self._recent_failures.append(self._monotonic())
            self._forget_old_failures()
            return self._simulate(applicant, reason)
        return self._record(
            CreditOutcome(result=self._from_flexpath(response, self._clock()), fallback_reason="")
        )

    def _simulate(self, applicant: CreditApplicant, reason: str) -> CreditOutcome:
        outcome = CreditOutcome(simulate_credit(applicant, self._clock()), fallback_reason=reason)
        return self._record(outcome)

    @staticmethod
    def _from_flexpath(response: FlexPathResponse, checked_at: dt.datetime) -> CreditResult:
        return CreditResult(
            decision=response.decision,
            source=SOURCE_FLEXPATH,
            tier=response.tier,
            score_band=response.score_band,
            # FlexPath may leave the limits out; the platform's contract says 0 = not given.
            max_payment_cents=response.max_payment_cents or 0,
            max_amount_cents=response.max_amount_cents or 0,
            reference_id=response.reference_id,
            checked_at=checked_at,
        )

    def _record(self, outcome: CreditOutcome) -> CreditOutcome:
        self._counts[f"checks_{outcome.result.source}"] += 1
        self._counts[f"decisions_{outcome.result.decision}"] += 1
        if outcome.fallback_reason:
            self._counts[f"fallbacks_{outcome.fallback_reason}"] += 1
        self.last_check_at = outcome.result.checked_at
        return outcome

    def metrics(self) -> dict[str, int]:
        """Counters since start, every name always present (lower_snake, for AgentMetric)."""
        names = [
            f"checks_{SOURCE_FLEXPATH}",
            f"checks_{SOURCE_SIMULATED}",
            *(f"decisions_{d}" for d in DECISIONS),
            *(f"fallbacks_{r}" for r in FALLBACK_REASONS),
        ]
        return {name: self._counts[name] for name in names}

    def status(self) -> tuple[str, str]:
        """(state, detail) for the agent status page: "ready" with "", or "degraded" and why."""
        if self._client is None:
            return STATE_DEGRADED, "no FlexPath API key configured; credit checks are simulated"
        breaker = self._client.breaker
        state = breaker.state
        if state is BreakerState.OPEN:
            return STATE_DEGRADED, (
                f"FlexPath circuit open after {breaker.consecutive_failures} consecutive "
                f"failures; credit checks are simulated (next trial in "
                f"{breaker.seconds_until_trial():.0f} s)"
            )
        if state is BreakerState.HALF_OPEN:
            return STATE_DEGRADED, (
                "FlexPath circuit half-open; the next check is a trial call, others are simulated"
            )
        self._forget_old_failures()
        if self._recent_failures:
            return STATE_DEGRADED, (
                f"{len(self._recent_failures)} credit check(s) fell back to simulation after "
                f"FlexPath errors in the last {self._degraded_window:.0f} s"
            )
        return STATE_READY, ""

    def _forget_old_failures(self) -> None:
        horizon = self._monotonic() - self._degraded_window
        while self._recent_failures and self._recent_failures[0] < horizon:
            self._recent_failures.popleft()

    async def aclose(self) -> None:
        """Closes the FlexPath client, which the agent owns."""
        if self._client is not None:
            await self._client.aclose()
