"""FlexPath client: request shape, response validation, retries, the circuit breaker, and the same
over real loopback HTTP against the fake FlexPath server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.adapters.flexpath import (
    PREQUALIFY_PATH,
    REASON_CIRCUIT_OPEN,
    REASON_INVALID_RESPONSE,
    REASON_REJECTED,
    REASON_UNAVAILABLE,
    BreakerState,
    CircuitBreaker,
    FlexPathClient,
    FlexPathRequest,
    FlexPathResponse,
    request_body,
)
from server.errors import UpstreamError
from support.fake_flexpath import APPROVAL, FakeFlexPath, Reply

API_KEY = "test-flexpath-key"
LEAD_ID = "lead-0001"

REQUEST = FlexPathRequest(
    lead_id=LEAD_ID,
    first_name="Maria",
    last_name="Lopez",
    street="100 Main St",
    city="Springfield",
    state="IL",
    zip_code="62701",
    date_of_birth=dt.date(1990, 4, 12),
    monthly_income_cents=420_000,
    consented_at=dt.datetime(2026, 11, 24, 10, 30, 0),
    consent_certificate_id="cert-abc",
)
PERSONAL_VALUES = ("Maria", "Lopez", "100 Main St", "Springfield", "62701", "1990-04-12", "420000")

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def no_sleep(_: float) -> None:
    pass


def mock_client(handler: Handler, **options: Any) -> FlexPathClient:
    options = {"max_attempts": 3, "backoff_initial": 0.0, "sleep": no_sleep, **options}
    return FlexPathClient(
        "https://flexpath.test", API_KEY, transport=httpx.MockTransport(handler), **options
    )


class Script:
    """A MockTransport handler answering from a list (the last entry repeats); counts calls."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(**changes: Any) -> httpx.Response:
    return httpx.Response(200, json={**APPROVAL, **changes})


# --- Request shape -----------------------------------------------------------------------------

SSN_KEY = re.compile(r"ssn|social|tax_?id|\btin\b|itin|national_?id|security_?number", re.I)
SSN_VALUE = re.compile(r"\b\d{3}-?\d{2}-?\d{4}\b")


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, value


async def test_request_shape() -> None:
    script = Script(ok())
    async with mock_client(script) as client:
        await client.prequalify(REQUEST)

    [sent] = script.requests
    assert sent.method == "POST"
    assert sent.url == httpx.URL("https://flexpath.test" + PREQUALIFY_PATH)
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["idempotency-key"] == LEAD_ID
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "applicant": {
            "first_name": "Maria",
            "last_name": "Lopez",
            "date_of_birth": "1990-04-12",
            "monthly_income_cents": 420_000,
            "address": {
                "street": "100 Main St",
                "city": "Springfield",
                "state": "IL",
                "zip": "62701",
            },
        },
        "consent": {
            "type": "fcra_soft_pull",
            "lead_id": LEAD_ID,
            "consented_at": "2026-11-24T10:30:00Z",
            "certificate_id": "cert-abc",
        },
    }


async def test_request_never_carries_an_ssn() -> None:
    script = Script(ok())
    async with mock_client(script) as client:
        await client.prequalify(REQUEST)
    body = json.loads(script.requests[0].content)
    for path, item in walk(body):
        assert not (isinstance(item, str) and SSN_KEY.search(item)), path
        assert not (isinstance(item, str) and SSN_VALUE.search(item)), path
    assert not any(SSN_KEY.search(name) for name in FlexPathRequest.__dataclass_fields__)
    assert not any(SSN_KEY.search(name) for name in script.requests[0].headers)


def test_request_body_omits_empty_certificate_and_converts_aware_times() -> None:
    aware = dt.datetime(2026, 11, 24, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    request = FlexPathRequest(
        **{**vars(REQUEST), "consent_certificate_id": "", "consented_at": aware}
    )
    consent = request_body(request)["consent"]
    assert "certificate_id" not in consent
    assert consent["consented_at"] == "2026-11-24T10:30:00Z"


def test_request_repr_hides_personal_data() -> None:
    shown = repr(REQUEST)
    assert LEAD_ID in shown
    assert not any(value in shown for value in PERSONAL_VALUES)


# --- Response parsing --------------------------------------------------------------------------


async def test_parses_a_full_response() -> None:
    async with mock_client(Script(ok(extra_field="ignored"))) as client:
        response = await client.prequalify(REQUEST)
    assert response == FlexPathResponse(
        reference_id="fp-0001",
        decision="prequalified",
        tier="B",
        score_band="660-699",
        max_payment_cents=75_600,
        max_amount_cents=4_080_000,
    )


async def test_limits_are_optional() -> None:
    body = {k: v for k, v in APPROVAL.items() if not k.startswith("max_")} | {
        "decision": "declined",
        "tier": "E",
        "score_band": "300-499",
        "max_amount_cents": None,
    }
    async with mock_client(Script(httpx.Response(201, json=body))) as client:
        response = await client.prequalify(REQUEST)
    assert (response.decision, response.max_payment_cents, response.max_amount_cents) == (
        "declined",
        None,
        None,
    )


MALFORMED: dict[str, bytes] = {
    "not json": b"<html>oops</html>",
    "empty": b"",
    "a list": b"[]",
    "unknown decision": json.dumps({**APPROVAL, "decision": "approved"}).encode(),
    "missing decision": json.dumps({k: v for k, v in APPROVAL.items() if k != "decision"}).encode(),
    "missing reference": json.dumps({**APPROVAL, "reference_id": ""}).encode(),
    "tier not a letter": json.dumps({**APPROVAL, "tier": "B2"}).encode(),
    "lowercase tier": json.dumps({**APPROVAL, "tier": "b"}).encode(),
    "bad band": json.dumps({**APPROVAL, "score_band": "good"}).encode(),
    "band upside down": json.dumps({**APPROVAL, "score_band": "699-660"}).encode(),
    "band off scale": json.dumps({**APPROVAL, "score_band": "100-199"}).encode(),
    "negative payment": json.dumps({**APPROVAL, "max_payment_cents": -1}).encode(),
    "payment as string": json.dumps({**APPROVAL, "max_payment_cents": "75600"}).encode(),
    "payment as float": json.dumps({**APPROVAL, "max_payment_cents": 756.5}).encode(),
    "payment as bool": json.dumps({**APPROVAL, "max_amount_cents": True}).encode(),
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_response_is_an_upstream_error(raw: bytes) -> None:
    script = Script(httpx.Response(200, content=raw))
    async with mock_client(script) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert caught.value.reason == REASON_INVALID_RESPONSE
    assert caught.value.__cause__ is not None
    assert len(script.requests) == 1  # a broken contract is not retried


async def test_unexpected_redirect_is_an_invalid_response() -> None:
    script = Script(httpx.Response(302, headers={"Location": "https://elsewhere.test/"}))
    async with mock_client(script) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert caught.value.reason == REASON_INVALID_RESPONSE


# --- Retries -----------------------------------------------------------------------------------


async def test_retries_500_then_succeeds() -> None:
    script = Script(httpx.Response(500), ok())
    async with mock_client(script) as client:
        response = await client.prequalify(REQUEST)
    assert response.decision == "prequalified"
    assert len(script.requests) == 2
    # The retry reuses the idempotency key, so FlexPath can replay rather than pull twice.
    assert {r.headers["idempotency-key"] for r in script.requests} == {LEAD_ID}


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(429),
        httpx.Response(503),
        httpx.Response(408),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("closed"),
    ],
    ids=["429", "503", "408", "connect", "read-timeout", "protocol"],
)
async def test_retries_transient_failures(failure: httpx.Response | Exception) -> None:
    script = Script(failure, failure, ok())
    async with mock_client(script) as client:
        assert (await client.prequalify(REQUEST)).reference_id == "fp-0001"
    assert len(script.requests) == 3


async def test_gives_up_after_max_attempts() -> None:
    script = Script(httpx.Response(502))
    async with mock_client(script, max_attempts=4) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert len(script.requests) == 4
    assert caught.value.reason == REASON_UNAVAILABLE
    assert caught.value.metadata == {"error": "HTTP 502", "attempts": "4"}
    assert caught.value.__cause__ is not None


async def test_backoff_grows_exponentially() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    script = Script(httpx.Response(500))
    async with mock_client(
        script, max_attempts=4, backoff_initial=0.5, backoff_max=10, sleep=record
    ) as client:
        with pytest.raises(UpstreamError):
            await client.prequalify(REQUEST)
    assert len(waits) == 3
    # initial * 2**n plus up to `initial` of jitter
    for n, wait in enumerate(waits):
        assert 0.5 * 2**n <= wait <= 0.5 * 2**n + 0.5


@pytest.mark.parametrize("status", [400, 401, 404, 409, 422])
async def test_no_retry_on_4xx(status: int) -> None:
    script = Script(httpx.Response(status, json={"error": "no"}))
    async with mock_client(script) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert len(script.requests) == 1
    assert caught.value.reason == REASON_REJECTED
    assert caught.value.metadata == {"status": str(status)}
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)


async def test_errors_and_logs_carry_no_personal_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # FlexPath might echo the request in an error body; none of it may surface.
    echo = json.dumps({"error": "bad applicant", "echo": request_body(REQUEST)})
    failures: list[UpstreamError] = []
    for script in (
        Script(httpx.Response(500, text=echo)),
        Script(httpx.Response(422, text=echo)),
        Script(httpx.Response(200, text=echo)),
        Script(httpx.ConnectError("refused")),
    ):
        async with mock_client(script) as client:
            with pytest.raises(UpstreamError) as caught:
                await client.prequalify(REQUEST)
        failures.append(caught.value)

    texts = [caplog.text]
    for error in failures:
        texts += [str(error), repr(error), str(error.__cause__), repr(error.__cause__)]
    for text in texts:
        for value in PERSONAL_VALUES:
            assert value not in text


def test_api_key_is_required() -> None:
    with pytest.raises(ValueError, match="API key"):
        FlexPathClient("https://flexpath.test", "")


# --- Circuit breaker ---------------------------------------------------------------------------


def test_breaker_state_machine() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30, clock=clock)
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success()  # a success resets the run of failures
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    assert breaker.seconds_until_trial() == 30

    clock.advance(29.9)
    assert not breaker.allow()
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one at a time
    breaker.record_failure()  # the trial failed: open for another cool-down
    assert breaker.state is BreakerState.OPEN and not breaker.allow()

    clock.advance(30)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_breaker_release_gives_the_trial_back() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record_failure()
    clock.advance(5)
    assert breaker.allow() and not breaker.allow()
    breaker.release()
    assert breaker.allow()


async def test_breaker_opens_after_threshold_and_fails_fast() -> None:
    clock = FakeClock()
    script = Script(httpx.Response(500))
    breaker = CircuitBreaker(failure_threshold=5, reset_timeout=30, clock=clock)
    async with mock_client(script, max_attempts=1, breaker=breaker) as client:
        for _ in range(5):
            with pytest.raises(UpstreamError) as caught:
                await client.prequalify(REQUEST)
            assert caught.value.reason == REASON_UNAVAILABLE
        assert breaker.state is BreakerState.OPEN

        for _ in range(3):
            with pytest.raises(UpstreamError) as caught:
                await client.prequalify(REQUEST)
            assert caught.value.reason == REASON_CIRCUIT_OPEN
        assert len(script.requests) == 5  # no network while open

        clock.advance(30)
        script.answers = [ok()]
        assert (await client.prequalify(REQUEST)).decision == "prequalified"
        assert breaker.state is BreakerState.CLOSED
        assert len(script.requests) == 6


async def test_request_rejections_do_not_open_the_breaker() -> None:
    script = Script(httpx.Response(422))
    async with mock_client(script, breaker=CircuitBreaker(failure_threshold=2)) as client:
        for _ in range(4):
            with pytest.raises(UpstreamError):
                await client.prequalify(REQUEST)
        assert client.breaker.state is BreakerState.CLOSED


async def test_a_bad_api_key_opens_the_breaker() -> None:
    script = Script(httpx.Response(401))
    async with mock_client(script, breaker=CircuitBreaker(failure_threshold=2)) as client:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await client.prequalify(REQUEST)
        assert client.breaker.state is BreakerState.OPEN


async def test_half_open_lets_one_trial_through() -> None:
    clock = FakeClock()
    release = asyncio.Event()
    calls = 0

    async def slow_ok(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await release.wait()
        return ok()

    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    client = FlexPathClient(
        "https://flexpath.test", API_KEY, transport=httpx.MockTransport(slow_ok), breaker=breaker
    )
    async with client:
        trial = asyncio.create_task(client.prequalify(REQUEST))
        await asyncio.sleep(0.01)
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)  # a second caller during the trial
        assert caught.value.reason == REASON_CIRCUIT_OPEN
        release.set()
        assert (await trial).decision == "prequalified"
    assert calls == 1
    assert breaker.state is BreakerState.CLOSED


async def test_a_cancelled_trial_does_not_wedge_the_breaker() -> None:
    clock = FakeClock()

    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    async with FlexPathClient(
        "https://flexpath.test", API_KEY, transport=httpx.MockTransport(never), breaker=breaker
    ) as client:
        trial = asyncio.create_task(client.prequalify(REQUEST))
        await asyncio.sleep(0.01)
        trial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await trial
    assert breaker.allow()  # the next caller gets the trial


# --- Real HTTP over loopback -------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeFlexPath]:
    with FakeFlexPath() as server:
        yield server


def loopback_client(fake: FakeFlexPath, **options: Any) -> FlexPathClient:
    options = {"max_attempts": 3, "backoff_initial": 0.0, **options}
    return FlexPathClient(fake.url, API_KEY, **options)


async def test_loopback_normal_answer(fake: FakeFlexPath) -> None:
    async with loopback_client(fake) as client:
        response = await client.prequalify(REQUEST)
    assert response.reference_id == "fp-0001"
    [received] = fake.requests
    assert received.path == PREQUALIFY_PATH
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert received.headers["idempotency-key"] == LEAD_ID
    assert received.json() == request_body(REQUEST)


async def test_loopback_slow_but_within_timeout(fake: FakeFlexPath) -> None:
    fake.script(Reply.ok(delay=0.3))
    async with loopback_client(fake, connect_timeout=1.0, total_timeout=2.0) as client:
        started = time.monotonic()
        response = await client.prequalify(REQUEST)
    assert response.decision == "prequalified"
    assert time.monotonic() - started >= 0.3
    assert len(fake.requests) == 1


async def test_loopback_500_is_retried_then_gives_up(fake: FakeFlexPath) -> None:
    fake.default = Reply.error(500)
    async with loopback_client(fake) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert caught.value.reason == REASON_UNAVAILABLE
    assert len(fake.requests) == 3


async def test_loopback_500_then_success(fake: FakeFlexPath) -> None:
    fake.script(Reply.error(500), Reply.error(503))
    async with loopback_client(fake) as client:
        assert (await client.prequalify(REQUEST)).decision == "prequalified"
    assert len(fake.requests) == 3


async def test_loopback_timeout(fake: FakeFlexPath) -> None:
    fake.default = Reply.hanging()
    async with loopback_client(
        fake, max_attempts=2, connect_timeout=0.5, total_timeout=0.3
    ) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
        elapsed = time.monotonic() - started
    assert caught.value.reason == REASON_UNAVAILABLE
    assert caught.value.metadata["error"] == "timeout"
    assert len(fake.requests) == 2
    assert 0.6 <= elapsed < 2.0


async def test_loopback_4xx_is_not_retried(fake: FakeFlexPath) -> None:
    fake.default = Reply.error(400)
    async with loopback_client(fake) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert caught.value.reason == REASON_REJECTED
    assert len(fake.requests) == 1


async def test_loopback_connection_refused_is_unavailable() -> None:
    with FakeFlexPath() as gone:
        url = gone.url
    async with FlexPathClient(url, API_KEY, backoff_initial=0.0) as client:
        with pytest.raises(UpstreamError) as caught:
            await client.prequalify(REQUEST)
    assert caught.value.reason == REASON_UNAVAILABLE


async def test_loopback_open_breaker_sends_nothing(fake: FakeFlexPath) -> None:
    clock = FakeClock()
    fake.default = Reply.error(503)
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=30, clock=clock)
    async with loopback_client(fake, max_attempts=1, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await client.prequalify(REQUEST)
        assert len(fake.requests) == 2
        for _ in range(5):
            with pytest.raises(UpstreamError) as caught:
                await client.prequalify(REQUEST)
            assert caught.value.reason == REASON_CIRCUIT_OPEN
        assert len(fake.requests) == 2

        clock.advance(30)
        fake.default = Reply.ok()
        assert (await client.prequalify(REQUEST)).decision == "prequalified"
        assert len(fake.requests) == 3
        assert breaker.state is BreakerState.CLOSED
