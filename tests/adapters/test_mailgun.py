"""The Mailgun client against a fake Mailgun on loopback: batch sends, their recipient variables
and unsubscribe headers, the limits, result classification, regions, plain-text ADF messages,
and no address or key in reasons or logs."""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from server.adapters.mailgun import (
    EU_BASE_URL,
    MAX_OPTIONS_BYTES,
    US_BASE_URL,
    MailgunClient,
    base_url_for_region,
    batch_form,
    parse_retry_after,
)
from server.domain.email import (
    MAX_BATCH_RECIPIENTS,
    MailBatch,
    MailRecipient,
    PlainMessage,
    SendOutcome,
)
from support.fake_mailgun import FakeMailgun, running

ADF = '<?xml version="1.0"?>\n<adf><prospect><id sequence="1">L-1</id></prospect></adf>\n'


@pytest.fixture
def mailgun() -> Iterator[FakeMailgun]:
    yield from running()


@pytest.fixture
async def client(mailgun: FakeMailgun) -> AsyncIterator[MailgunClient]:
    mg = MailgunClient(
        api_key=mailgun.api_key, domain=mailgun.domain, base_url=mailgun.url, timeout_seconds=2
    )
    yield mg
    await mg.aclose()


def recipients(count: int, start: int = 0) -> list[MailRecipient]:
    return [
        MailRecipient(
            address=f"lead{i}@example.com",
            message_id=f"msg-{i}",
            unsubscribe_url=f"https://ccl.example/u/tok{i}",
            variables={"first_name": f"Name{i}"},
        )
        for i in range(start, start + count)
    ]


def batch(count: int = 3, **changes: object) -> MailBatch:
    fields: dict[str, object] = {
        "batch_id": "batch-1",
        "sender": "CCL Offers <offers@mg.example.test>",
        "subject": "Hi %recipient.first_name%",
        "recipients": recipients(count),
        "text": "Hello %recipient.first_name%. Unsubscribe: %recipient.unsubscribe_url%",
        "html": "<p>Hello %recipient.first_name%</p>",
        "tag": "campaign-42",
        "unsubscribe_mailto": "unsubscribe@mg.example.test",
    }
    fields.update(changes)
    return MailBatch(**fields)  # type: ignore[arg-type]


async def test_a_batch_of_1000_arrives_with_recipient_variables_and_unsubscribe_headers(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    result = await client.send_batch(batch(MAX_BATCH_RECIPIENTS))

    assert result.outcome is SendOutcome.SENT
    assert len(mailgun.calls) == 1
    call = mailgun.calls[0]
    assert result.provider_id == call.message_id.strip("<>")
    assert not result.provider_id.startswith("<")
    addresses = [f"lead{i}@example.com" for i in range(MAX_BATCH_RECIPIENTS)]
    assert call.to == addresses
    variables = call.recipient_variables
    assert sorted(variables) == sorted(addresses)
    assert variables["lead7@example.com"] == {
        "first_name": "Name7",
        "ccl_message": "msg-7",
        "unsubscribe_url": "https://ccl.example/u/tok7",
    }
    assert call.get("o:tag") == "campaign-42"
    assert call.get("v:ccl_batch") == "batch-1"
    assert call.get("h:List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    assert call.get("o:testmode") is None
    # What each recipient gets once Mailgun substitutes their variables.
    for i in (0, 999):
        address = f"lead{i}@example.com"
        assert call.rendered("v:ccl_message", address) == f"msg-{i}"
        assert call.rendered("h:List-Unsubscribe", address) == (
            f"<https://ccl.example/u/tok{i}>, <mailto:unsubscribe@mg.example.test>"
        )
        assert call.rendered("subject", address) == f"Hi Name{i}"
    # Nobody's address is in a field every recipient sees.
    shared = [v for k, v in call.fields if k not in ("to", "recipient-variables")]
    assert not any("@example.com" in v for v in shared)
    assert mailgun.recipient_counts() == {a: 1 for a in addresses}


async def test_1001_recipients_are_refused_before_any_request(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    with pytest.raises(ValueError, match="at most 1000"):
        await client.send_batch(batch(MAX_BATCH_RECIPIENTS + 1))
    assert mailgun.attempts == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recipients": []}, "at least one recipient"),
        ({"recipients": recipients(2) + recipients(1)}, "twice"),
        (
            {"recipients": [MailRecipient("a@example.com", "m", "javascript:alert(1)")]},
            "http\\(s\\)://",
        ),
        (
            {"recipients": [MailRecipient("Al <a@example.com>", "m", "https://ccl.example/u")]},
            "plain address",
        ),
        ({"text": "", "html": ""}, "text or an HTML body"),
        ({"variables": {"ccl_batch": "x"}}, "platform's own"),
        ({"variables": {"big": "x" * MAX_OPTIONS_BYTES}}, "16384"),
    ],
)
def test_batches_mailgun_would_refuse_are_refused_here(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        batch_form(batch(**changes))


def test_one_click_only_to_https_links() -> None:
    """RFC 8058 one-click posts only to https; a plain http link (a development stack) is a
    page the recipient opens, still in List-Unsubscribe."""
    secure = dict(batch_form(batch()))
    assert secure["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = batch(recipients=[MailRecipient("a@example.com", "m", "http://127.0.0.1:8080/u")])
    form = dict(batch_form(plain))
    assert "h:List-Unsubscribe-Post" not in form
    assert form["h:List-Unsubscribe"].startswith("<%recipient.unsubscribe_url%>")


async def test_test_mode_and_custom_variables_are_sent(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    result = await client.send_batch(batch(2, test_mode=True, variables={"campaign": "c-9"}))
    assert result.outcome is SendOutcome.SENT
    call = mailgun.calls[0]
    assert call.get("o:testmode") == "yes"
    assert call.get("v:campaign") == "c-9"


async def test_429_is_retryable_with_its_retry_after(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    mailgun.throttle(1, retry_after=7)
    result = await client.send_batch(batch())
    assert result.outcome is SendOutcome.RETRY
    assert result.status_code == 429
    assert result.retry_after == 7.0
    assert not result.may_have_been_sent
    assert mailgun.calls == []
    # The throttle is over: the next attempt goes through.
    assert (await client.send_batch(batch())).outcome is SendOutcome.SENT


async def test_429_with_an_http_date_retry_after(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    mailgun.throttle(1, retry_after=email.utils.formatdate(time.time() + 30, usegmt=True))
    result = await client.send_batch(batch())
    assert result.outcome is SendOutcome.RETRY
    assert result.retry_after is not None
    assert 27 <= result.retry_after <= 30


def test_retry_after_parsing() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after("1.5", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 60, usegmt=True), now=now) == 60.0
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


async def test_500_is_retryable_and_may_have_been_sent(
    mailgun: FakeMailgun, client: MailgunClient
) -> None:
    mailgun.fail(1, 500)
    result = await client.send_batch(batch())
    assert result.outcome is SendOutcome.RETRY
    assert result.status_code == 500
    assert result.retry_after is None
    assert result.may_have_been_sent
    assert (await client.send_batch(batch())).outcome is SendOutcome.SENT


async def test_a_hang_times_out_as_retryable(mailgun: FakeMailgun) -> None:
    mailgun.hang(1, accepted=True)
    mg = MailgunClient(
        api_key=mailgun.api_key, domain=mailgun.domain, base_url=mailgun.url, timeout_seconds=0.2
    )
    try:
        result = await mg.send_batch(batch())  # the fake hangs for 30 s: the timeout answers
    finally:
        await mg.aclose()
    assert result.outcome is SendOutcome.RETRY
    assert result.status_code == 0
    assert result.reason.startswith("timeout")
    assert result.may_have_been_sent  # and indeed the fake took it
    assert len(mailgun.calls) == 1


async def test_a_refused_connection_is_retryable_and_not_sent() -> None:
    with FakeMailgun() as fake:
        url, key, domain = fake.url, fake.api_key, fake.domain
    mg = MailgunClient(api_key=key, domain=domain, base_url=url, timeout_seconds=1)
    try:
        result = await mg.send_batch(batch())
    finally:
        await mg.aclose()
    assert result.outcome is SendOutcome.RETRY
    assert result.status_code == 0
    assert result.reason == "ConnectError"
    assert not result.may_have_been_sent


async def test_a_wrong_key_is_rejected_for_good(mailgun: FakeMailgun) -> None:
    wrong = "key-wrong-9876543210"
    mg = MailgunClient(api_key=wrong, domain=mailgun.domain, base_url=mailgun.url)
    try:
        result = await mg.send_batch(batch())
    finally:
        await mg.aclose()
    assert result.outcome is SendOutcome.REJECTED
    assert result.status_code == 401
    assert result.reason == "HTTP 401: Forbidden"
    assert mailgun.calls == []


async def test_an_unknown_domain_is_rejected(mailgun: FakeMailgun) -> None:
    mg = MailgunClient(api_key=mailgun.api_key, domain="other.example", base_url=mailgun.url)
    try:
        result = await mg.send_batch(batch())
    finally:
        await mg.aclose()
    assert result.outcome is SendOutcome.REJECTED
    assert result.status_code == 404


@pytest.mark.parametrize("status", [400, 403, 413])
async def test_other_4xx_are_rejected(
    mailgun: FakeMailgun, client: MailgunClient, status: int
) -> None:
    mailgun.fail(1, status)
    result = await client.send_batch(batch())
    assert result.outcome is SendOutcome.REJECTED
    assert result.status_code == status
    assert not result.may_have_been_sent


def test_the_fake_refuses_bad_recipient_variables(mailgun: FakeMailgun) -> None:
    auth = ("api", mailgun.api_key)
    url = f"{mailgun.url}/v3/{mailgun.domain}/messages"
    base = [("from", "a@mg.example.test"), ("subject", "s"), ("text", "t")]
    two = [("to", "x@example.com"), ("to", "y@example.com")]
    cases = [
        two,  # a batch without recipient-variables
        [*two, ("recipient-variables", "{not json")],
        [*two, ("recipient-variables", json.dumps({"x@example.com": {}}))],
        [],  # no `to`
        [("to", ",".join(f"r{i}@example.com" for i in range(1001)))],
    ]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    with httpx.Client(auth=auth) as http:
        for extra in cases:
            response = http.post(url, content=urlencode(base + extra), headers=form)
            assert response.status_code == 400, extra
        # multipart is understood too
        ok = http.post(
            url,
            data={"from": "a@mg.example.test", "to": "x@example.com", "subject": "s"},
            files={"text": (None, "hello")},
        )
        assert ok.status_code == 200
    assert [c.get("text") for c in mailgun.calls] == ["hello"]


@pytest.mark.parametrize(
    ("region", "expected"),
    [("us", US_BASE_URL), ("EU", EU_BASE_URL), ("", US_BASE_URL), ("http://127.0.0.1:9/", None)],
)
async def test_region_selects_the_base_url(region: str, expected: str | None) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        assert request.headers["authorization"].startswith("Basic ")
        return httpx.Response(200, json={"id": "<1.2@mg.example.test>", "message": "Queued."})

    mg = MailgunClient(
        api_key="key-x",
        domain="mg.example.test",
        base_url=region,
        transport=httpx.MockTransport(handler),
    )
    try:
        result = await mg.send_batch(batch(1))
    finally:
        await mg.aclose()
    base = expected or "http://127.0.0.1:9"
    assert seen == [f"{base}/v3/mg.example.test/messages"]
    assert result.provider_id == "1.2@mg.example.test"
    assert base_url_for_region("eu") == "https://api.eu.mailgun.net"
    with pytest.raises(ValueError):
        base_url_for_region("asia")


async def test_a_plain_text_adf_message(mailgun: FakeMailgun, client: MailgunClient) -> None:
    message = PlainMessage(
        sender="CCL Leads <leads@mg.example.test>",
        to="intake@dealer-crm.example",
        subject="New lead for Smith Motors",
        text=ADF,
        message_id="delivery-77",
        tag="adf",
    )
    result = await client.send_message(message)
    assert result.outcome is SendOutcome.SENT
    call = mailgun.calls[0]
    assert call.to == ["intake@dealer-crm.example"]
    assert call.get("text") == ADF
    assert call.get("html") is None
    assert call.get("recipient-variables") is None
    assert call.get("subject") == "New lead for Smith Motors"
    assert call.get("v:ccl_message") == "delivery-77"
    assert call.get("o:tracking") == "no"
    with pytest.raises(ValueError):
        await client.send_message(
            PlainMessage(sender="a@x", to="a@x.example, b@x.example", subject="s", text="t")
        )


async def test_latency_mode_delays_each_answer(mailgun: FakeMailgun, client: MailgunClient) -> None:
    mailgun.latency = 0.02
    result = await client.send_batch(batch(1))
    assert result.outcome is SendOutcome.SENT
    assert result.duration_ms >= 20


async def test_no_address_or_key_in_reasons_or_logs(
    mailgun: FakeMailgun, caplog: pytest.LogCaptureFixture
) -> None:
    key = "key-secret-abcdef0123456789"

    def echoing(request: httpx.Request) -> httpx.Response:
        # An answer that echoes what it was sent: an address and the key.
        return httpx.Response(
            400, json={"message": f"to parameter 'lead1@example.com' is invalid for api:{key}"}
        )

    caplog.set_level(logging.DEBUG)
    results = []
    echo = MailgunClient(
        api_key=key, domain="mg.example.test", transport=httpx.MockTransport(echoing)
    )
    wrong = MailgunClient(api_key=key, domain=mailgun.domain, base_url=mailgun.url)
    right = MailgunClient(
        api_key=mailgun.api_key, domain=mailgun.domain, base_url=mailgun.url, timeout_seconds=0.2
    )
    try:
        results.append(await echo.send_batch(batch()))
        results.append(await wrong.send_batch(batch()))
        mailgun.throttle(1)
        results.append(await right.send_batch(batch()))
        mailgun.fail(1)
        results.append(await right.send_batch(batch()))
        mailgun.hang(1)
        results.append(await right.send_batch(batch()))
        results.append(
            await right.send_message(PlainMessage("a@mg.example.test", "i@d.example", "s", ADF))
        )
    finally:
        for mg in (echo, wrong, right):
            await mg.aclose()
    assert [r.outcome for r in results] == [SendOutcome.REJECTED] * 2 + [SendOutcome.RETRY] * 3 + [
        SendOutcome.SENT
    ]
    assert "[address]" in results[0].reason
    assert "[redacted]" in results[0].reason
    texts = [r.reason for r in results] + [caplog.text]
    for text in texts:
        assert "@" not in text.replace("[address]", "")
        assert key not in text
        assert mailgun.api_key not in text
    assert "mailgun batch batch-1 rejected" in caplog.text


def test_the_multipart_form_carries_every_value_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.adapters import mailgun as adapter
    from support.fake_mailgun import _parse_form

    form = [
        ("to", "a@example.com"),
        ("to", "b@example.com"),
        ("text", "line one\r\nline two\n--not a boundary\n"),
        ("html", "<p>Ünïcödé — ✓</p>"),
        ("recipient-variables", json.dumps({"a@example.com": {"x": "%recipient.y%"}})),
        ("v:empty", ""),
        ("clash", "0" * 32),
    ]
    # The first boundary drawn appears in a value: another is drawn.
    drawn = iter(["0" * 32, "f" * 32])
    monkeypatch.setattr(adapter.secrets, "token_hex", lambda n: next(drawn))
    body, content_type = adapter.multipart_body(form)
    assert content_type == "multipart/form-data; boundary=" + "f" * 32
    assert _parse_form(content_type, body) == form
    with pytest.raises(ValueError):
        adapter.multipart_body([('bad"name', "x")])
