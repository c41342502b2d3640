"""FlexPath client: soft-pull pre-qualification over HTTP, with bounded retries and a breaker.

The wire contract is an assumption until FlexPath credentials arrive; docs/flexpath.md writes
it down so it can be checked against the real API. Every failure reaches the caller as an
`UpstreamError` whose `reason` is one of the `REASON_*` constants below, and no message or log
line carries an applicant's personal data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, Literal

import pydantic
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from server.domain.credit import CreditApplicant
from server.errors import UpstreamError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "PREQUALIFY_PATH",
    "REASON_CIRCUIT_OPEN",
    "REASON_INVALID_RESPONSE",
    "REASON_REJECTED",
    "REASON_UNAVAILABLE",
    "BreakerState",
    "CircuitBreaker",
    "Decision",
    "FlexPathClient",
    "FlexPathRequest",
    "FlexPathResponse",
]

log = logging.getLogger(__name__)

PREQUALIFY_PATH = "/v1/prequalifications"

# FlexPath could not be reached, timed out, or answered 5xx/429 on every attempt.
REASON_UNAVAILABLE = "FLEXPATH_UNAVAILABLE"
# FlexPath refused the request with a 4xx (not retried: the same request would fail again).
REASON_REJECTED = "FLEXPATH_REJECTED"
# FlexPath answered 2xx with a body that does not follow the contract.
REASON_INVALID_RESPONSE = "FLEXPATH_INVALID_RESPONSE"
# The circuit breaker is open: the call failed fast, without touching the network.
REASON_CIRCUIT_OPEN = "FLEXPATH_CIRCUIT_OPEN"

# 408 is a timeout seen by the server, 429 a rate limit: both are worth another attempt.
_RETRYABLE_STATUS = frozenset({408, 429})
# A bad or revoked API key fails every call alike, so it counts towards opening the breaker;
# other 4xx answers are about one request and show that FlexPath itself is up.
_SYSTEMIC_REJECTIONS = frozenset({"401", "403"})

Decision = Literal["prequalified", "declined", "needs_review"]


# What a pre-qualification sends is the domain's CreditApplicant; the adapter owns only its
# wire format (`request_body`). No SSN field exists to send.
FlexPathRequest = CreditApplicant


def request_body(request: FlexPathRequest) -> dict[str, Any]:
    """The request body (see docs/flexpath.md)."""
    consent: dict[str, Any] = {
        "type": "fcra_soft_pull",
        "lead_id": request.lead_id,
        "consented_at": _iso_utc(request.consented_at),
    }
    if request.consent_certificate_id:
        consent["certificate_id"] = request.consent_certificate_id
    return {
        "applicant": {
            "first_name": request.first_name,
            "last_name": request.last_name,
            "date_of_birth": request.date_of_birth.isoformat(),
            "monthly_income_cents": request.monthly_income_cents,
            "address": {
                "street": request.street,
                "city": request.city,
                "state": request.state,
                "zip": request.zip_code,
            },
        },
        "consent": consent,
    }


def _iso_utc(value: dt.datetime) -> str:
    # The platform keeps naive UTC datetimes; an aware one is converted rather than trusted.
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"


def _check_score_band(value: str) -> str:
    low, high = (int(part) for part in value.split("-"))
    if not 300 <= low <= high <= 850:
        raise ValueError("score band must lie within 300-850, low end first")
    return value


class FlexPathResponse(pydantic.BaseModel):
    """A validated pre-qualification answer. Unknown extra fields are ignored."""

    # Strict: a number sent as a string or a float is a contract violation, not something to
    # coerce. Inputs stay out of validation errors, which end up chained to UpstreamError.
    model_config = pydantic.ConfigDict(
        strict=True, frozen=True, extra="ignore", hide_input_in_errors=True
    )

    reference_id: Annotated[str, pydantic.Field(min_length=1, max_length=128)]
    decision: Decision
    tier: Annotated[str, pydantic.Field(pattern=r"^[A-Z]$")]
    score_band: Annotated[
        str,
        pydantic.Field(pattern=r"^\d{3}-\d{3}$"),
        pydantic.AfterValidator(_check_score_band),
    ]
    # Bounded ($10M) so an absurd answer is an invalid response, not a value the database
    # column cannot hold.
    max_payment_cents: Annotated[int, pydantic.Field(ge=0, le=1_000_000_000)] | None = None
    max_amount_cents: Annotated[int, pydantic.Field(ge=0, le=1_000_000_000)] | None = None


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures and then fails calls fast.

    After `reset_timeout` seconds it lets exactly one trial call through (half-open): success
    closes it, failure opens it for another cool-down. `clock` is injectable so tests move time
    instead of sleeping. Meant for one event loop; it has no locks.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._open = False
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._failures = 0

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._trial_in_flight or self._clock() - self._opened_at >= self.reset_timeout:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def seconds_until_trial(self) -> float:
        """How long until a trial call is allowed; 0 when closed or already due."""
        if not self._open:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    def allow(self) -> bool:
        """Whether a call may go ahead now. In half-open state the first caller gets the trial."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._open = False
        self._trial_in_flight = False
        self._failures = 0

    def record_failure(self) -> None:
        self._failures += 1
        if self._trial_in_flight or (not self._open and self._failures >= self.failure_threshold):
            self._open = True
            self._opened_at = self._clock()
            self._trial_in_flight = False
            log.warning(
                "flexpath circuit opened",
                extra={"failures": self._failures, "cooldown_seconds": self.reset_timeout},
            )

    def release(self) -> None:
        """Gives the trial back when a trial call ended without a verdict (it was cancelled)."""
        self._trial_in_flight = False


class _RetryableStatus(Exception):
    """An HTTP answer worth another attempt (5xx, 408, 429); carries no body."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"FlexPath answered HTTP {status_code}")
        self.status_code = status_code


def _is_retryable(error: BaseException) -> bool:
    import httpx  # lazy: imported by the client on its first call (see `FlexPathClient._http`)

    return isinstance(
        error,
        _RetryableStatus
        | TimeoutError
        | httpx.TimeoutException
        | httpx.NetworkError
        | httpx.RemoteProtocolError,
    )


def _describe(error: BaseException | None) -> str:
    """A log- and message-safe description: the status code or the exception class only."""
    import httpx  # lazy: see `FlexPathClient._http`

    if isinstance(error, _RetryableStatus):
        return f"HTTP {error.status_code}"
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return "timeout"
    return type(error).__name__


def _is_upstream_fault(error: UpstreamError) -> bool:
    """Whether a failure says FlexPath is unwell (and so counts towards opening the breaker)."""
    if error.reason != REASON_REJECTED:
        return True
    return error.metadata.get("status", "") in _SYSTEMIC_REJECTIONS


def _log_retry(retry_state: RetryCallState) -> None:
    error = retry_state.outcome.exception() if retry_state.outcome else None
    log.warning(
        "flexpath attempt failed; retrying",
        extra={"attempt": retry_state.attempt_number, "error": _describe(error)},
    )


class FlexPathClient:
    """Calls FlexPath's pre-qualification endpoint.

    `connect_timeout` bounds connecting and `total_timeout` a whole attempt (connect, send,
    wait, read); `max_attempts` counts the first try. `transport` replaces the network (for
    `httpx.MockTransport` in tests) and `sleep` the back-off wait.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10.0,
        total_timeout: float = 15.0,
        max_attempts: int = 3,
        backoff_initial: float = 0.5,
        backoff_max: float = 4.0,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("a FlexPath API key is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.breaker = breaker or CircuitBreaker()
        self._total_timeout = total_timeout
        self._max_attempts = max_attempts
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._sleep = sleep
        self._base_url = base_url
        self._api_key = api_key
        self._transport = transport
        self._connect_timeout = connect_timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool, made on the first call: an idle server does not import httpx
        or load the CA bundle (several MB of memory)."""
        if self._client is None:
            import httpx  # lazy: see above

            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                transport=self._transport,
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
                timeout=httpx.Timeout(self._total_timeout, connect=self._connect_timeout),
            )
        return self._client

    async def prequalify(self, request: FlexPathRequest) -> FlexPathResponse:
        """Runs one soft-pull pre-qualification.

        Raises `UpstreamError` with reason FLEXPATH_CIRCUIT_OPEN (failed fast),
        FLEXPATH_UNAVAILABLE (retries exhausted), FLEXPATH_REJECTED (a 4xx) or
        FLEXPATH_INVALID_RESPONSE (a 2xx that breaks the contract).
        """
        if not self.breaker.allow():
            raise UpstreamError(
                "FlexPath is unavailable; the circuit breaker is open",
                reason=REASON_CIRCUIT_OPEN,
                metadata={"retry_in_seconds": f"{self.breaker.seconds_until_trial():.0f}"},
            )
        try:
            response = await self._send_with_retries(request)
        except UpstreamError as e:
            if _is_upstream_fault(e):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            raise
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        return response

    async def _send_with_retries(self, request: FlexPathRequest) -> FlexPathResponse:
        http = self._http
        import httpx  # lazy (see `_http`); loaded by now, so only a dict lookup

        body = request_body(request)
        # FlexPath replays the first answer for a repeated key, so a retry after a lost
        # response cannot cause a second inquiry on the applicant's file.
        headers = {"Idempotency-Key": request.lead_id}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(
                multiplier=self._backoff_initial,
                max=self._backoff_max,
                jitter=self._backoff_initial,
            ),
            retry=retry_if_exception(_is_retryable),
            before_sleep=_log_retry,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._send_once(http, body, headers)
        except (_RetryableStatus, TimeoutError, httpx.HTTPError) as e:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise UpstreamError(
                f"FlexPath is unavailable ({_describe(e)} after {attempts} attempt(s))",
                reason=REASON_UNAVAILABLE,
                metadata={"error": _describe(e), "attempts": str(attempts)},
            ) from e
        return self._parse(response)

    async def _send_once(
        self, http: httpx.AsyncClient, body: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        # httpx's timeouts bound each phase; this bounds the attempt as a whole.
        async with asyncio.timeout(self._total_timeout):
            response = await http.post(PREQUALIFY_PATH, json=body, headers=headers)
        if response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS:
            raise _RetryableStatus(response.status_code)
        return response

    @staticmethod
    def _parse(response: httpx.Response) -> FlexPathResponse:
        import httpx  # lazy: see `_http`

        status = response.status_code
        if 400 <= status < 500:
            # The body may echo the request, so only the status travels with the error.
            cause = httpx.HTTPStatusError(
                f"HTTP {status}", request=response.request, response=response
            )
            raise UpstreamError(
                f"FlexPath rejected the request (HTTP {status})",
                reason=REASON_REJECTED,
                metadata={"status": str(status)},
            ) from cause
        if not 200 <= status < 300:
            raise UpstreamError(
                f"FlexPath answered an unexpected HTTP {status}",
                reason=REASON_INVALID_RESPONSE,
                metadata={"status": str(status)},
            )
        try:
            return FlexPathResponse.model_validate_json(response.content)
        except pydantic.ValidationError as e:
            raise UpstreamError(
                "FlexPath answered with a response that breaks the contract",
                reason=REASON_INVALID_RESPONSE,
                metadata={"status": str(status)},
            ) from e

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def __aenter__(self) -> FlexPathClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
