"""DealerService.TestDelivery through a real server (SQLite and PostgreSQL) against the fake
dealer CRM over loopback: the sample is signed exactly as a real delivery (verified with
`standardwebhooks.Webhook(secret).verify`, as a dealer does), in the dealer's format, with its
endpoint credentials; the answer (2xx, 500, 400, a refused connection, a timeout) is reported
with whether a real delivery would be retried; nothing is stored; a dealer key may test only
itself."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from lxml import etree
from standardwebhooks import Webhook

from ccl.dealer.v1 import dealer_service_pb2 as pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2
from server.domain.dealers import DealerInput, EndpointCredentials, generate_signing_secret
from server.domain.principal import Role
from server.storage import models as m
from server.storage.dealers import DealerRepository
from support.fake_crm import FakeCrm, running
from support.rpc import auth, rich_error
from support.stack import ServerThread, free_port, make_settings

DTD = etree.DTD(str(Path(__file__).parents[1] / "support" / "adf-1.0.dtd"))
TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    stack = ServerThread(make_settings(db_url, delivery_timeout_seconds=TIMEOUT_SECONDS)).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def stub(server: ServerThread) -> Iterator[dealer_service_pb2_grpc.DealerServiceStub]:
    with server.channel() as channel:
        yield dealer_service_pb2_grpc.DealerServiceStub(channel)


@pytest.fixture(scope="module")
def admin(server: ServerThread) -> str:
    return server.create_key(Role.ADMIN)


def new_dealer(
    server: ServerThread, url: str, crm: FakeCrm | None = None, **changes: object
) -> tuple[str, str]:
    """A dealer (straight in storage) delivering to `url`; returns its id and signing secret
    (which `crm` then verifies with)."""
    secret = generate_signing_secret()
    if crm is not None:
        crm.secret = secret
    values: dict[str, object] = {
        "name": "Test Drive Motors",
        "states": ["IL"],
        "endpoint_url": url,
        "delivery_format": "json",
        "signing_secret": secret,
        "contact_email": "leads@test-drive.example",
        **changes,
    }
    server.app.db.db.connect(reuse_if_open=True)
    try:
        record = DealerRepository(server.app.db).create(DealerInput(**values))  # type: ignore[arg-type]
    finally:
        server.app.db.db.close()
    return record.dealer_id, secret


def row_counts(server: ServerThread) -> tuple[int, ...]:
    server.app.db.db.connect(reuse_if_open=True)
    try:
        return tuple(
            t.select().count() for t in (m.Lead, m.LeadPackage, m.Delivery, m.DeliveryAttempt)
        )
    finally:
        server.app.db.db.close()


def test_a_json_sample_is_signed_verifiable_and_marked_as_a_test(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm()
    with running(crm) as url:
        dealer_id, secret = new_dealer(server, url, crm)
        before = row_counts(server)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert r.delivered and r.http_status == 200 and r.error == "" and not r.retryable
    assert r.webhook_id.startswith("test_") and len(r.webhook_id) > len("test_") + 16
    assert r.format == lead_service_pb2.PACKAGE_FORMAT_JSON
    assert r.response_excerpt == '{"ok": true}'
    assert r.latency_ms >= 0
    [got] = crm.received
    # Verified exactly as a dealer verifies it, with the reference library.
    Webhook(secret).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == r.webhook_id
    assert got.headers["content-type"] == "application/json"
    doc = json.loads(got.body)
    assert doc["test"] is True
    assert doc["lead_id"] == r.webhook_id
    assert doc["dealer"]["id"] == dealer_id
    assert doc["applicant"]["last_name"] == "Prequalified"
    assert row_counts(server) == before  # nothing stored


def test_an_adf_sample_is_dtd_valid_with_both_secrets_during_a_rotation(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm()
    with running(crm) as url:
        dealer_id, old = new_dealer(server, url, crm, delivery_format="adf")
        new = generate_signing_secret()
        server.app.db.db.connect(reuse_if_open=True)
        try:
            DealerRepository(server.app.db).rotate_secret(
                dealer_id, new, m.utcnow() + dt.timedelta(hours=1)
            )
        finally:
            server.app.db.db.close()
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert r.delivered and r.format == lead_service_pb2.PACKAGE_FORMAT_ADF
    [got] = crm.received
    assert got.headers["content-type"] == "application/xml"
    for secret in (old, new):  # a dealer holding either secret verifies it (XML: no JSON)
        Webhook(secret).verify(got.body, got.headers, json_parse=False)
    root = etree.fromstring(got.body)
    assert DTD.validate(root), DTD.error_log.filter_from_errors()
    assert root.xpath("string(/adf/prospect/id)") == r.webhook_id
    comments = str(root.xpath("string(/adf/prospect/customer/comments)"))
    assert comments.startswith("TEST PACKAGE")


def test_the_endpoint_credentials_go_with_the_sample_and_never_come_back(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm(script=[401])
    password = "s3cret-pa55word-for-the-crm"
    with running(crm) as url:
        dealer_id, _ = new_dealer(
            server,
            url,
            crm,
            endpoint_credentials=EndpointCredentials(
                kind="basic", username="ccl", password=password
            ),
        )
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    [got] = crm.received
    expected = "Basic " + base64.b64encode(f"ccl:{password}".encode()).decode()
    assert got.headers["authorization"] == expected
    assert not r.delivered and r.http_status == 401 and not r.retryable
    assert r.error == "HTTP 401 Unauthorized"
    assert password not in str(r)


def test_a_500_answer_is_reported_as_retryable(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm(script=[500])
    with running(crm) as url:
        dealer_id, _ = new_dealer(server, url, crm)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert (r.delivered, r.http_status, r.retryable) == (False, 500, True)
    assert r.error == "HTTP 500 Internal Server Error"
    assert r.response_excerpt == '{"ok": false}'


def test_a_400_answer_is_reported_as_not_retryable(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm(script=[400])
    with running(crm) as url:
        dealer_id, _ = new_dealer(server, url, crm)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert (r.delivered, r.http_status, r.retryable) == (False, 400, False)
    assert r.error == "HTTP 400 Bad Request"


def test_a_refused_connection_is_reported_as_retryable_without_the_url(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}/leads?token=do-not-echo"  # nothing listens there
    dealer_id, _ = new_dealer(server, url)
    r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert (r.delivered, r.http_status, r.retryable) == (False, 0, True)
    assert r.error.startswith("connection failed")
    assert "do-not-echo" not in str(r) and "127.0.0.1" not in r.error
    assert r.response_excerpt == ""
    assert r.webhook_id.startswith("test_")


def test_an_endpoint_that_does_not_answer_in_time_is_a_retryable_timeout(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    crm = FakeCrm(delay=TIMEOUT_SECONDS + 1)
    with running(crm) as url:
        dealer_id, _ = new_dealer(server, url, crm)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    assert (r.delivered, r.http_status, r.retryable) == (False, 0, True)
    assert r.error.startswith("timeout")
    assert r.latency_ms >= TIMEOUT_SECONDS * 1000 * 0.9


def test_a_dealer_key_tests_itself_and_an_inactive_dealer_may_test(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub
) -> None:
    crm = FakeCrm()
    with running(crm) as url:
        dealer_id, secret = new_dealer(server, url, crm)
        key = server.create_key(Role.DEALER, dealer_id)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(key))
        assert r.delivered
        Webhook(secret).verify(crm.received[0].body, crm.received[0].headers)

        inactive_id, _ = new_dealer(server, url, crm, active=False)
        admin = server.create_key(Role.ADMIN)
        r = stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=inactive_id), metadata=auth(admin))
        assert r.delivered
    assert len(crm.received) == 2


def test_a_dealer_key_testing_another_dealer_is_not_found(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub
) -> None:
    crm = FakeCrm()
    with running(crm) as url:
        mine, _ = new_dealer(server, url, crm)
        other, _ = new_dealer(server, url, crm)
        key = server.create_key(Role.DEALER, mine)
        for dealer_id in (other, "00000000-0000-4000-8000-000000000000"):
            with pytest.raises(grpc.RpcError) as e:
                stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(key))
            error = rich_error(e.value)
            assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "DEALER_NOT_FOUND")
    assert crm.received == []


def test_an_unknown_dealer_is_not_found_and_no_endpoint_is_a_failed_precondition(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub, admin: str
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        stub.TestDelivery(pb.TestDeliveryRequest(dealer_id="no-such-dealer"), metadata=auth(admin))
    assert rich_error(e.value).reason == "DEALER_NOT_FOUND"
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    dealer_id, _ = new_dealer(server, "")
    with pytest.raises(grpc.RpcError) as e:
        stub.TestDelivery(pb.TestDeliveryRequest(dealer_id=dealer_id), metadata=auth(admin))
    error = rich_error(e.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ENDPOINT_NOT_SET")


def test_an_ops_key_may_not_send_a_test(
    server: ServerThread, stub: dealer_service_pb2_grpc.DealerServiceStub
) -> None:
    crm = FakeCrm()
    with running(crm) as url:
        dealer_id, _ = new_dealer(server, url, crm)
        with pytest.raises(grpc.RpcError) as e:
            stub.TestDelivery(
                pb.TestDeliveryRequest(dealer_id=dealer_id),
                metadata=auth(server.create_key(Role.OPS)),
            )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert crm.received == []
