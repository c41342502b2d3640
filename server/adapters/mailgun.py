"""Mailgun client: batch and single sends over Mailgun's HTTP API, classified for the outbox.

One call is `POST {base_url}/v3/{domain}/messages`, a multipart form, HTTP Basic `api:<key>`
(https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages). The base URL is the
region's: `US_BASE_URL`, `EU_BASE_URL` (a domain lives in one region), or a test server's.

A batch (https://documentation.mailgun.com/docs/mailgun/user-manual/sending-messages/batch-sending)
is one `to` per recipient (at most 1,000) plus `recipient-variables`, a JSON object keyed by
address: with it Mailgun sends each recipient a message of their own, so no one sees another's
address. Per recipient it carries `ccl_message` (our message id) and `unsubscribe_url`, used as
`%recipient.ccl_message%` in the `v:ccl_message` custom variable (back in every event) and as
`%recipient.unsubscribe_url%` in `List-Unsubscribe`, with `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` (RFC 8058). Per-recipient data must travel that way: Mailgun limits the
`o:`, `h:` and `v:` options of one call to 16 kB in all, which `batch_form` checks.

Outcomes (`SendResult`): 2xx sent (Mailgun's `id`); 429 (with its `Retry-After`, in seconds or
as an HTTP date), 408, 5xx, timeouts and connection errors retryable; any other 4xx rejected. No
attempt is retried here: the outbox owns retries and back-off. A read timeout or a 5xx may follow
an accepted send (`may_have_been_sent`). Reasons and log lines carry neither an address nor the
API key: an exception is recorded by its class name, an answer's message with addresses scrubbed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

from server.domain.email import (
    BATCH_VARIABLE,
    MAX_BATCH_RECIPIENTS,
    MESSAGE_VARIABLE,
    MailBatch,
    PlainMessage,
    SendOutcome,
    SendResult,
    normalize_message_id,
    scrub_addresses,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "EU_BASE_URL",
    "MAX_OPTIONS_BYTES",
    "US_BASE_URL",
    "MailgunClient",
    "base_url_for_region",
    "batch_form",
    "classify",
    "message_form",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

US_BASE_URL = "https://api.mailgun.net"
EU_BASE_URL = "https://api.eu.mailgun.net"
# Mailgun's limit on the `o:`, `h:` and `v:` options of one call, together.
MAX_OPTIONS_BYTES = 16 * 1024
USER_AGENT = "CCL-Lead-Platform/1 (+email)"
ONE_CLICK = "List-Unsubscribe=One-Click"
UNSUBSCRIBE_URL_VARIABLE = "unsubscribe_url"

Form = list[tuple[str, str]]


def base_url_for_region(region: str) -> str:
    """`us` or `eu` (any case) to the API's base URL; a URL is returned as is (a test server)."""
    key = region.strip().lower()
    if key in ("", "us"):
        return US_BASE_URL
    if key == "eu":
        return EU_BASE_URL
    if key.startswith(("http://", "https://")):
        return region.strip().rstrip("/")
    raise ValueError("Mailgun region must be 'us', 'eu' or a base URL")


def batch_form(batch: MailBatch) -> Form:
    """The form fields of one batch call, in order (also what simulation mode records).
    Raises ValueError for a batch Mailgun would refuse: no recipients, more than 1,000, the same
    address twice, neither text nor HTML, or options over 16 kB."""
    count = len(batch.recipients)
    if count == 0:
        raise ValueError("a batch needs at least one recipient")
    if count > MAX_BATCH_RECIPIENTS:
        raise ValueError(f"a batch takes at most {MAX_BATCH_RECIPIENTS} recipients, not {count}")
    if not (batch.text or batch.html):
        raise ValueError("a batch needs a text or an HTML body")
    variables: dict[str, dict[str, str]] = {}
    for recipient in batch.recipients:
        address = recipient.address.strip()
        if not address or any(c in address for c in ',<>"') or len(address.split()) != 1:
            # A plain address: `to` splits on commas, and recipient-variables is keyed by it.
            raise ValueError("every recipient needs one plain address (no name, no comma)")
        if address in variables:
            # recipient-variables is keyed by address: a second entry would replace the first.
            raise ValueError("the same address appears twice in one batch")
        if not recipient.unsubscribe_url.startswith(("https://", "http://")):
            raise ValueError("every recipient needs an http(s):// unsubscribe link")
        own = dict(recipient.variables)
        own[MESSAGE_VARIABLE] = recipient.message_id
        own[UNSUBSCRIBE_URL_VARIABLE] = recipient.unsubscribe_url
        variables[address] = own
    form: Form = [("from", batch.sender)]
    form.extend(("to", address) for address in variables)
    form.append(("subject", batch.subject))
    if batch.text:
        form.append(("text", batch.text))
    if batch.html:
        form.append(("html", batch.html))
    form.append(("recipient-variables", json.dumps(variables, separators=(",", ":"))))
    unsubscribe = f"<%recipient.{UNSUBSCRIBE_URL_VARIABLE}%>"
    if batch.unsubscribe_mailto:
        mailto = batch.unsubscribe_mailto
        if not mailto.startswith("mailto:"):
            mailto = "mailto:" + mailto
        unsubscribe += f", <{mailto}>"
    # One-click (RFC 8058) only to https links, as the RFC requires; a plain http link (a
    # development stack: a live key needs an https CCL_PUBLIC_BASE_URL, see server/app.py) is
    # a page the recipient opens.
    one_click = all(r.unsubscribe_url.startswith("https://") for r in batch.recipients)
    options: Form = [
        ("h:List-Unsubscribe", unsubscribe),
        *([("h:List-Unsubscribe-Post", ONE_CLICK)] if one_click else []),
        (f"v:{BATCH_VARIABLE}", batch.batch_id),
        (f"v:{MESSAGE_VARIABLE}", f"%recipient.{MESSAGE_VARIABLE}%"),
    ]
    options.extend(_custom_variables(batch.variables))
    if batch.tag:
        options.append(("o:tag", batch.tag))
    if batch.test_mode:
        options.append(("o:testmode", "yes"))
    _check_options(options)
    return form + options


def message_form(message: PlainMessage) -> Form:
    """The form fields of one message to one address, sent as is: `text` (and `html` when the
    message has one: a transactional notice; never an ADF email), no tracking (a CRM parses the
    body as ADF XML, and tracking would rewrite it)."""
    to = message.to.strip()
    if not to or "," in to:
        raise ValueError("a plain message goes to exactly one address")
    if not message.text:
        raise ValueError("a plain message needs a text body")
    form: Form = [
        ("from", message.sender),
        ("to", to),
        ("subject", message.subject),
        ("text", message.text),
    ]
    if message.html:
        form.append(("html", message.html))
    options: Form = [("o:tracking", "no")]
    if message.message_id:
        options.append((f"v:{MESSAGE_VARIABLE}", message.message_id))
    options.extend(_custom_variables(message.variables))
    if message.tag:
        options.append(("o:tag", message.tag))
    if message.test_mode:
        options.append(("o:testmode", "yes"))
    _check_options(options)
    return form + options


def multipart_body(form: Form) -> tuple[bytes, str]:
    """`form` as a multipart/form-data body (RFC 7578), and its Content-Type: each field a part
    with its name and its value's UTF-8 bytes as they are, between boundaries no value holds."""
    encoded = [(name.encode(), value.encode()) for name, value in form]
    for name, _ in encoded:
        if any(c in name for c in b'"\r\n'):
            raise ValueError(f"a form field name cannot hold quotes or line breaks: {name!r}")
    while True:
        boundary = secrets.token_hex(16).encode()
        if not any(boundary in value for _, value in encoded):
            break
    dash = b"--" + boundary
    parts = [
        b"".join(
            (
                dash,
                b'\r\nContent-Disposition: form-data; name="',
                name,
                b'"\r\n\r\n',
                value,
                b"\r\n",
            )
        )
        for name, value in encoded
    ]
    parts.append(dash + b"--\r\n")
    return b"".join(parts), "multipart/form-data; boundary=" + boundary.decode()


def _custom_variables(variables: Mapping[str, str]) -> Form:
    out: Form = []
    for key, value in variables.items():
        if key in (BATCH_VARIABLE, MESSAGE_VARIABLE):
            raise ValueError(f"custom variable {key!r} is the platform's own")
        out.append((f"v:{key}", str(value)))
    return out


def _check_options(options: Form) -> None:
    size = sum(len(k.encode()) + len(v.encode()) for k, v in options)
    if size > MAX_OPTIONS_BYTES:
        raise ValueError(f"o:/h:/v: options take {size} bytes; Mailgun allows {MAX_OPTIONS_BYTES}")


def classify(status_code: int) -> SendOutcome:
    if 200 <= status_code < 300:
        return SendOutcome.SENT
    if status_code in (408, 429) or status_code >= 500:
        return SendOutcome.RETRY
    return SendOutcome.REJECTED


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: delta-seconds or an HTTP date (RFC 9110); None when
    absent or unreadable, never negative."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


class MailgunLookupError(Exception):
    """Mailgun's events could not be read (no answer, or not a 200 with JSON); the message names
    the cause, never an address or the key."""


# At most this many pages of events per lookup (300 events a page).
MAX_EVENT_PAGES = 20


class MailgunClient:
    """Sends through one Mailgun domain. One client (connection pool) per process."""

    def __init__(
        self,
        *,
        api_key: str,
        domain: str,
        base_url: str = US_BASE_URL,
        timeout_seconds: float = 10.0,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("a Mailgun API key is required (simulation mode sends nothing)")
        if not domain or "/" in domain:
            raise ValueError("a Mailgun sending domain is required")
        self._api_key = api_key
        self.domain = domain
        self.base_url = base_url_for_region(base_url)
        self.messages_url = f"{self.base_url}/v3/{quote(domain, safe='')}/messages"
        self.events_url = f"{self.base_url}/v3/{quote(domain, safe='')}/events"
        self._timeout_seconds = timeout_seconds
        self._max_connections = max_connections
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """Made on the first send, so a server that mails nothing never loads httpx."""
        if self._client is None:
            import httpx  # lazy: see above

            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    self._timeout_seconds, connect=min(5.0, self._timeout_seconds)
                ),
                limits=httpx.Limits(max_connections=self._max_connections),
                transport=self._transport,
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                auth=httpx.BasicAuth("api", self._api_key),
            )
        return self._client

    async def send_batch(self, batch: MailBatch) -> SendResult:
        """One batch call. Raises ValueError for a batch that cannot be sent (see `batch_form`)."""
        form = batch_form(batch)
        result = await self._post(form)
        _log(result, "batch", batch.batch_id, len(batch.recipients))
        return result

    async def send_message(self, message: PlainMessage) -> SendResult:
        """One plain-text message (an ADF lead to a dealer's intake address)."""
        form = message_form(message)
        result = await self._post(form)
        _log(result, "message", message.message_id, 1)
        return result

    async def _post(self, form: Form) -> SendResult:
        http = self._http
        import httpx  # loaded by now (see `_http`)

        # multipart/form-data (what Mailgun's own examples send): a batch's half a megabyte of
        # form goes as it is, where url-encoding it cost about 25 ms of CPU per batch.
        body, content_type = multipart_body(form)
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        start = time.perf_counter()
        try:
            response = await http.post(self.messages_url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            # Nothing reached Mailgun.
            return SendResult(SendOutcome.RETRY, reason=_class(e), duration_ms=_ms(start))
        except httpx.TimeoutException as e:
            # The request may have been read and acted on before the answer was lost.
            return SendResult(
                SendOutcome.RETRY,
                reason="timeout: " + _class(e),
                may_have_been_sent=True,
                duration_ms=_ms(start),
            )
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            return SendResult(SendOutcome.REJECTED, reason=_class(e), duration_ms=_ms(start))
        except httpx.HTTPError as e:
            return SendResult(
                SendOutcome.RETRY,
                reason=_class(e),
                may_have_been_sent=True,
                duration_ms=_ms(start),
            )
        return self._result(response, _ms(start))

    def _result(self, response: httpx.Response, duration_ms: int) -> SendResult:
        status = response.status_code
        outcome = classify(status)
        answer = _json_object(response)
        if outcome is SendOutcome.SENT:
            provider_id = normalize_message_id(str(answer.get("id") or ""))
            reason = "" if provider_id else "accepted without a message id"
            return SendResult(outcome, status, provider_id, reason=reason, duration_ms=duration_ms)
        message = answer.get("message")
        detail = message if isinstance(message, str) else response.reason_phrase
        reason = scrub_addresses(f"HTTP {status}: {detail}", self._api_key)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return SendResult(
            outcome,
            status,
            retry_after=retry_after if outcome is SendOutcome.RETRY else None,
            reason=reason,
            may_have_been_sent=status >= 500,
            duration_ms=duration_ms,
        )

    async def accepted_id(
        self, *, batch_id: str, recipient: str, tag: str, begin: float, end: float
    ) -> str | None:
        """Mailgun's message id of the call of our batch `batch_id` if Mailgun accepted it: its
        `accepted` event for `recipient` (one address of the batch) with `v:ccl_batch` =
        `batch_id`, between `begin` and `end` (epoch seconds), in the Events API
        (`GET /v3/<domain>/events`, filtered by event, recipient and tag, oldest first, paged);
        "" for such an event without a message id. None when there is no such event.
        MailgunLookupError when the events cannot be read."""
        http = self._http
        import httpx  # loaded by now (see `_http`)

        params = {
            "event": "accepted",
            "recipient": recipient,
            "tags": tag,
            "begin": f"{begin:.3f}",
            "end": f"{end:.3f}",
            "ascending": "yes",
            "limit": "300",
        }
        url: str | None = self.events_url
        query: dict[str, str] | None = params
        for _ in range(MAX_EVENT_PAGES):
            if url is None:
                return None
            try:
                response = await http.get(url, params=query)
            except httpx.HTTPError as e:
                raise MailgunLookupError(_class(e)) from None
            if response.status_code != 200:
                raise MailgunLookupError(f"HTTP {response.status_code}")
            page = _json_object(response)
            items = page.get("items")
            if not isinstance(items, list) or not items:
                return None
            for item in items:
                if not isinstance(item, dict):
                    continue
                variables = item.get("user-variables")
                if isinstance(variables, dict) and variables.get(BATCH_VARIABLE) == batch_id:
                    message = item.get("message")
                    headers = message.get("headers") if isinstance(message, dict) else None
                    found = headers.get("message-id") if isinstance(headers, dict) else None
                    return normalize_message_id(str(found or ""))
            paging = page.get("paging")
            following = paging.get("next") if isinstance(paging, dict) else None
            # Only pages of our own events URL: the key goes nowhere else.
            url = (
                following
                if isinstance(following, str) and following.startswith(self.events_url)
                else None
            )
            query = None
        raise MailgunLookupError(f"more than {MAX_EVENT_PAGES} pages of events")

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _log(result: SendResult, kind: str, ref: str, count: int) -> None:
    if result.outcome is SendOutcome.SENT:
        log.debug("mailgun %s %s sent (%d recipients)", kind, ref, count)
    else:
        log.warning(
            "mailgun %s %s %s (%d recipients): %s",
            kind,
            ref,
            result.outcome.value,
            count,
            result.reason,
        )


def _class(error: BaseException) -> str:
    # httpx's texts name the URL; the class alone names the failure.
    return type(error).__name__


def _ms(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
