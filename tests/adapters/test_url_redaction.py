"""No URL's userinfo or query string reaches a log record (from any logger, httpx's and
httpcore's included) or a delivery attempt's stored error: `server.redact`, the record factory
and JSON formatter of `server.logs`, and the dealer CRM adapter. Deliveries run through a real
server (SQLite and PostgreSQL); their errors are read over gRPC and over REST through Envoy."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ccl.lead.v1 import lead_pb2, lead_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from server.adapters.dealer_crm import DealerCrmClient, Outcome
from server.agents.lead_packaging import LeadPackaging
from server.domain.principal import Role
from server.logs import RedactingJsonFormatter, configure_logging, install_url_redaction
from server.redact import UNPARSEABLE_URL, redact_url, redact_urls
from server.storage import models as m
from support.builders import credit_checked_lead, dealer
from support.fake_crm import FakeCrm, running
from support.rpc import auth
from support.stack import EnvoyProcess, ServerThread, free_port, make_settings

SIGNING_SECRET = "redaction-test-signing-secret-0123"
# What must never show: the password, the userinfo, the query's credential.
LEAKS = ("secret", "user:", "token=abc")


def with_credentials(url: str) -> str:
    """`http://127.0.0.1:PORT/leads` -> `http://user:secret@127.0.0.1:PORT/hook?token=abc`."""
    return url.replace("http://", "http://user:secret@").replace("/leads", "/hook?token=abc")


def assert_no_leak(text: str) -> None:
    for leak in LEAKS:
        assert leak not in text, text


# --- redact_url / redact_urls --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:secret@127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/hook"),
        ("https://crm.example.com/leads", "https://crm.example.com/leads"),
        ("https://crm.example.com/a/b?x=1&token=abc#frag", "https://crm.example.com/a/b"),
        ("https://user@crm.example.com", "https://crm.example.com"),
        ("https://us@r:p@ss@crm.example.com/x", "https://crm.example.com/x"),  # a raw "@"
        ("http://user:secret@[::1]:9000/h?token=abc", "http://[::1]:9000/h"),
        ("postgresql://ccl:secret@db:5432/ccl?sslpassword=x", "postgresql://db:5432/ccl"),
        ("http://user:secret@[::1/hook?token=abc", UNPARSEABLE_URL),
        ("sqlite:///var/ccl.db", "sqlite:///var/ccl.db"),  # an empty authority stays
        ("sqlite:////srv/ccl/ccl.db", "sqlite:////srv/ccl/ccl.db"),
    ],
)
def test_redact_url_keeps_scheme_host_port_and_path(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    if url.startswith("http") and "[::1/" not in url:  # httpx.URL rewrites sqlite:/// itself
        assert redact_url(httpx.URL(url)) == expected


def test_redact_urls_redacts_every_url_in_a_text() -> None:
    text = (
        'HTTP Request: POST http://user:secret@127.0.0.1:81/hook?token=abc "HTTP/1.1 200 OK"; '
        "for url 'https://a:b@x.example/p?token=abc'\n(see http://x.example/ok)"
    )
    assert redact_urls(text) == (
        'HTTP Request: POST http://127.0.0.1:81/hook "HTTP/1.1 200 OK"; '
        "for url 'https://x.example/p'\n(see http://x.example/ok)"
    )
    # Shapes a dealer's answer may echo: JSON-escaped slashes, quotes or backslashes in the
    # userinfo, a URL inside JSON with text after it.
    assert redact_urls(r"x https:\/\/user:pw@crm.example.com\/hook?token=abc y") == (
        "x https://crm.example.com/hook y"
    )
    assert redact_urls('a https://us"er:p\\w@crm.example.com/h?token=abc b') == (
        "a https://crm.example.com/h b"
    )
    assert redact_urls('{"url":"https://u:p@h/p?token=abc","other":"x"}') == (
        '{"url":"https://h/p","other":"x"}'
    )
    assert redact_urls("no URL: user:secret@host?token=abc") == (
        "no URL: user:secret@host?token=abc"
    )


# --- logging -------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def url_redaction() -> Iterator[None]:
    """Installs the redaction as `configure_logging` does for `ccl serve` and `ccl run`."""
    previous = logging.getLogRecordFactory()
    install_url_redaction()
    yield
    logging.setLogRecordFactory(previous)


def test_records_of_any_logger_carry_redacted_messages(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = httpx.URL("http://user:secret@127.0.0.1:81/hook?token=abc")
    logging.getLogger("some.library").info('HTTP Request: POST %s "%s"', url, "HTTP/1.1 200 OK")
    logging.getLogger("some.driver").debug(("INSERT ... VALUES (?)", [str(url)]))
    logging.getLogger("plain").warning("no URL here: %s", "token=abc")

    names = ("some.library", "some.driver", "plain")
    library, driver, plain = (r for r in caplog.records if r.name in names)
    assert library.getMessage() == 'HTTP Request: POST http://127.0.0.1:81/hook "HTTP/1.1 200 OK"'
    assert "http://127.0.0.1:81/hook" in driver.getMessage()
    assert_no_leak(library.getMessage() + driver.getMessage())
    assert plain.getMessage() == "no URL here: token=abc", "only URLs are redacted"
    factory = logging.getLogRecordFactory()
    install_url_redaction()  # idempotent: one redacting factory, not one per call
    assert logging.getLogRecordFactory() is factory


def test_json_lines_redact_extra_values_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("test.url_redaction.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("cannot reach http://user:secret@127.0.0.1:81/hook?token=abc")
    except ValueError:
        logger.exception(
            "failed",
            extra={
                "endpoint": "http://user:secret@127.0.0.1:81/hook?token=abc",
                "tried": ["https://user:secret@x.example/?token=abc"],
            },
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["endpoint"] == "http://127.0.0.1:81/hook"
    assert line["tried"] == ["https://x.example/"]
    assert "cannot reach http://127.0.0.1:81/hook" in line["exc_info"]
    assert_no_leak(stream.getvalue())


def test_configure_logging_installs_the_redaction() -> None:
    root = logging.getLogger()
    handlers, level, factory = root.handlers[:], root.level, logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        configure_logging("INFO")
        record = logging.getLogRecordFactory()(
            "x", logging.INFO, __file__, 1, "GET %s", ("http://u:secret@h/p?token=abc",), None
        )
        assert isinstance(root.handlers[0].formatter, RedactingJsonFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.setLogRecordFactory(factory)
    assert record.getMessage() == "GET http://h/p"


# --- the dealer CRM adapter ----------------------------------------------------------------------


async def test_an_answer_echoing_the_url_is_stored_redacted() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"bad request for {request.url}\nsee docs")

    client = DealerCrmClient(timeout_seconds=2, transport=httpx.MockTransport(echo))
    try:
        result = await client.deliver(
            url="http://user:secret@127.0.0.1:81/hook?token=abc",
            body=b"{}",
            content_type="application/json",
            secret=SIGNING_SECRET,
            event_id="evt-1",
        )
    finally:
        await client.aclose()
    assert result.outcome is Outcome.REJECTED
    assert result.error == "HTTP 400: bad request for http://127.0.0.1:81/hook see docs"


# --- deliveries through the server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    settings = make_settings(
        db_url,
        worker_poll_seconds=0.05,
        delivery_max_attempts=1,  # a failed attempt is final, so last_error is set
        delivery_timeout_seconds=5,
    )
    stack = ServerThread(settings).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def proxy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess([server.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    yield envoy
    envoy.stop()


@pytest.fixture(scope="module")
def admin_key(server: ServerThread) -> str:
    return server.create_key(Role.ADMIN)


def deliver_lead(server: ServerThread, endpoint_url: str) -> str:
    """A credit-checked lead routed to a new dealer (the only active one) at `endpoint_url`:
    the server's delivery worker picks it up. Returns the lead's id."""
    server.app.db.db.connect(reuse_if_open=True)
    try:
        m.Dealer.update(active=False).execute()
        dealer(endpoint_url=endpoint_url, signing_secret=SIGNING_SECRET)
        lead_id = credit_checked_lead(server.app)
        with server.app.db.transaction():
            LeadPackaging(server.app.db.backend).route(lead_id, m.utcnow())
    finally:
        server.app.db.db.close()
    return lead_id


def finished_delivery(
    server: ServerThread, key: str, lead_id: str, timeout: float = 60
) -> lead_pb.Delivery:
    """The lead's delivery over gRPC once it left pending/retrying (timeout: a hang guard)."""
    unfinished = (lead_pb2.DELIVERY_STATE_PENDING, lead_pb2.DELIVERY_STATE_RETRYING)
    deadline = time.monotonic() + timeout
    with server.channel() as channel:
        stub = lead_service_pb2_grpc.LeadServiceStub(channel)
        while True:
            response = stub.ListLeadDeliveries(
                lead_pb.ListLeadDeliveriesRequest(lead_id=lead_id), metadata=auth(key), timeout=10
            )
            (delivery,) = response.deliveries
            if delivery.state not in unfinished:
                return delivery
            assert time.monotonic() < deadline, delivery
            time.sleep(0.05)


def rest_deliveries(proxy: EnvoyProcess, key: str, lead_id: str) -> str:
    response = httpx.get(
        f"{proxy.base_url}/api/leads/{lead_id}/deliveries",
        headers={"Authorization": f"Bearer {key}"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    return response.text


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record's message and traceback (caplog's formatter renders both)."""
    return caplog.text + "\n".join(r.getMessage() for r in caplog.records)


def test_a_delivery_to_a_url_with_credentials_logs_none_of_them(
    server: ServerThread, proxy: EnvoyProcess, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx's and httpcore's included
    fake = FakeCrm(secret=SIGNING_SECRET)
    with running(fake) as url:
        lead_id = deliver_lead(server, with_credentials(url))
        delivery = finished_delivery(server, admin_key, lead_id)
    assert delivery.state == lead_pb2.DELIVERY_STATE_DELIVERED, delivery
    # The credentials did travel: in the query and as Basic auth from the userinfo.
    (received,) = fake.received
    assert received.path == "/hook?token=abc" and received.headers["authorization"]
    # httpx logged the request at INFO, without them.
    host_path = url.replace("/leads", "/hook")
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any(f"POST {host_path} " in message for message in requests), requests
    assert_no_leak(logged(caplog))
    assert_no_leak(str(delivery) + rest_deliveries(proxy, admin_key, lead_id))


def test_a_refused_delivery_stores_and_logs_no_credentials(
    server: ServerThread, proxy: EnvoyProcess, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed = f"http://127.0.0.1:{free_port()}/leads"  # nothing listens there

    lead_id = deliver_lead(server, with_credentials(closed))
    delivery = finished_delivery(server, admin_key, lead_id)

    assert delivery.state == lead_pb2.DELIVERY_STATE_DEAD_LETTERED, delivery
    assert delivery.last_error and delivery.attempts[0].error == delivery.last_error
    rest = rest_deliveries(proxy, admin_key, lead_id)
    assert json.loads(rest)["deliveries"][0]["last_error"] == delivery.last_error
    assert_no_leak(logged(caplog))
    assert_no_leak(str(delivery) + rest)
