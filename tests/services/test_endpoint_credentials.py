"""Dealer endpoint credentials (SQLite and PostgreSQL): every bad field refused with its own
violation, no credentials in an endpoint URL, stored encrypted (the raw column holds neither the
user nor the secret), never read back by Get/List/Create/Update (only the kind and a header's
name), set and cleared through the `endpoint_auth` update-mask path, and handed out only by
`DealerRepository.delivery_target`."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from google.protobuf import json_format

from ccl.dealer.v1 import dealer_service_pb2 as pb
from server.app import Application
from server.domain.dealers import DealerInput, DealerRecord, EndpointCredentials
from server.errors import InvalidArgumentError
from server.services.dealers import MAX_HEADER_VALUE, validate_dealer
from server.storage import models as m
from server.storage.dealers import DealerRepository
from server.transport import converters

USER = "crm-user-7f3a"
PASSWORD = "pa55:w0rd with spaces & symbols"
TOKEN = "Bearer tok_9d8e7f6a5b4c"


def basic(username: str = USER, password: str = PASSWORD) -> EndpointCredentials:
    return EndpointCredentials(kind="basic", username=username, password=password)


def header(name: str = "Authorization", value: str = TOKEN) -> EndpointCredentials:
    return EndpointCredentials(kind="header", name=name, value=value)


def violations(credentials: EndpointCredentials | None = None, url: str = "") -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_dealer(DealerInput(name="D", endpoint_url=url, endpoint_credentials=credentials))
    assert e.value.reason == "INVALID_DEALER"
    return {v.field: v.description for v in e.value.violations}


# --- validation (no database) ---------------------------------------------------------------

B = "dealer.endpoint_auth.basic."
H = "dealer.endpoint_auth.header."


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        (basic(username=""), B + "username"),
        (basic(username="a:b"), B + "username"),
        (basic(username="a\nb"), B + "username"),
        (basic(username="a\x00b"), B + "username"),
        (basic(username="u" * 257), B + "username"),
        (basic(password=""), B + "password"),
        (basic(password="p\r\nX-Injected: 1"), B + "password"),
        (basic(password="p\x7f"), B + "password"),
        (basic(password="p" * 1025), B + "password"),
        (header(name=""), H + "name"),
        (header(name="X Api Key"), H + "name"),
        (header(name="X-Api-Key:"), H + "name"),
        (header(name="X-Äpi"), H + "name"),
        (header(name="x" * 129), H + "name"),
        (header(name="Content-Type"), H + "name"),
        (header(name="content-length"), H + "name"),
        (header(name="Content-Encoding"), H + "name"),
        (header(name="Host"), H + "name"),
        (header(name="Transfer-Encoding"), H + "name"),
        (header(name="Connection"), H + "name"),
        (header(name="User-Agent"), H + "name"),
        (header(name="Idempotency-Key"), H + "name"),
        (header(name="webhook-signature"), H + "name"),
        (header(name="Webhook-Id"), H + "name"),
        (header(name="X-CCL-Signature"), H + "name"),
        (header(name="TE"), H + "name"),
        (header(name="Upgrade"), H + "name"),
        (header(name="Keep-Alive"), H + "name"),
        (header(name="Proxy-Authorization"), H + "name"),
        (header(name="Trailer"), H + "name"),
        (header(value=""), H + "value"),
        (header(value="a\r\nX-Injected: 1"), H + "value"),
        (header(value="a\nb"), H + "value"),
        (header(value="a\x00b"), H + "value"),
        (header(value="a\tb"), H + "value"),
        (header(value="café"), H + "value"),
        (header(value=" padded"), H + "value"),
        (header(value="v" * (MAX_HEADER_VALUE + 1)), H + "value"),
        (EndpointCredentials(kind="digest"), "dealer.endpoint_auth"),
    ],
)
def test_each_bad_credential_field_is_named(credentials: EndpointCredentials, field: str) -> None:
    assert list(violations(credentials)) == [field]


def test_every_bad_field_at_once() -> None:
    assert set(violations(basic(username="", password=""))) == {B + "username", B + "password"}
    assert set(violations(header(name="Host", value="x\ny"))) == {H + "name", H + "value"}


@pytest.mark.parametrize(
    "credentials",
    [
        basic(),
        basic(username="émile", password="ünïcode ok"),
        header(),
        header(name="X-Api-Key", value="k" * MAX_HEADER_VALUE),
        header(name="x-partner_token.v2", value="a b c"),
    ],
)
def test_good_credentials_pass_unchanged(credentials: EndpointCredentials) -> None:
    valid = validate_dealer(DealerInput(name="D", endpoint_credentials=credentials))
    assert valid.endpoint_credentials == credentials


@pytest.mark.parametrize(
    "url",
    [
        "https://user:s3cr3t@crm.example.com/leads",
        "https://user@crm.example.com/leads",
        "https://:s3cr3t@crm.example.com/leads",
        "http://u:s3cr3t@127.0.0.1:8080/x?y=1",
    ],
)
def test_an_endpoint_url_with_credentials_is_refused(url: str) -> None:
    found = violations(url=url)
    assert list(found) == ["dealer.endpoint_url"]
    assert "endpoint_auth" in found["dealer.endpoint_url"]
    assert "s3cr3t" not in found["dealer.endpoint_url"], "the answer never echoes it"


def test_an_at_sign_outside_the_authority_is_fine() -> None:
    url = "https://crm.example.com/leads/a@b?owner=x@y"
    assert validate_dealer(DealerInput(name="D", endpoint_url=url)).endpoint_url == url


# --- through the service, on both backends --------------------------------------------------


def raw_column(dealer_id: str) -> str | None:
    row = m.Dealer.select(m.Dealer.endpoint_auth.coerce(False)).where(m.Dealer.id == dealer_id)
    value = row.tuples().get()[0]
    return None if value is None else str(value)


def assert_never_shown(record: DealerRecord, *secrets: str) -> None:
    message = converters.dealer_message(record)
    shown = [
        repr(dataclasses.asdict(record)),
        json_format.MessageToJson(message),
        str(message.SerializeToString()),
    ]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    assert not message.HasField("endpoint_auth")


async def test_basic_credentials_are_encrypted_and_never_returned(
    application: Application,
) -> None:
    dealers = application.dealers
    record, _ = await dealers.create(DealerInput(name="Basic Motors", endpoint_credentials=basic()))
    assert (record.endpoint_auth_type, record.endpoint_auth_header_name) == ("basic", "")
    stored = raw_column(record.dealer_id)
    assert stored is not None and stored.startswith("gAAAAA")
    assert PASSWORD not in stored and USER not in stored
    got = await dealers.get(record.dealer_id)
    listed = [
        r for r in (await dealers.list_dealers(500, "")).items if r.dealer_id == record.dealer_id
    ]
    for r in (record, got, *listed):
        assert_never_shown(r, PASSWORD)
        assert converters.dealer_message(r).endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_BASIC
    target = DealerRepository(application.db).delivery_target(record.dealer_id, m.utcnow())
    assert target is not None and target.credentials == basic()
    assert PASSWORD not in repr(target), "repr hides the secret"


async def test_update_mask_sets_replaces_and_clears_the_credentials(
    application: Application,
) -> None:
    dealers = application.dealers
    record, _ = await dealers.create(DealerInput(name="Header Motors"))
    assert record.endpoint_auth_type == "none"
    assert converters.dealer_message(record).endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_NONE

    as_header = converters.dealer_input(
        pb.Dealer(
            endpoint_auth=pb.EndpointAuth(header=pb.HeaderAuth(name="X-Api-Key", value=TOKEN))
        )
    )
    updated = await dealers.update(record.dealer_id, as_header, ["endpoint_auth"])
    assert (updated.endpoint_auth_type, updated.endpoint_auth_header_name) == (
        "header",
        "X-Api-Key",
    )
    message = converters.dealer_message(updated)
    assert message.endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_HEADER
    assert message.endpoint_auth_header_name == "X-Api-Key"
    assert_never_shown(updated, TOKEN)
    assert TOKEN not in (raw_column(record.dealer_id) or "")

    # Another field's update leaves the credentials alone.
    renamed = await dealers.update(
        record.dealer_id, converters.dealer_input(pb.Dealer(name="Renamed")), ["name"]
    )
    assert renamed.endpoint_auth_type == "header"

    cleared = await dealers.update(
        record.dealer_id,
        converters.dealer_input(pb.Dealer(endpoint_auth=pb.EndpointAuth())),
        ["endpoint_auth"],
    )
    assert (cleared.endpoint_auth_type, cleared.endpoint_auth_header_name) == ("none", "")
    assert raw_column(record.dealer_id) is None
    target = DealerRepository(application.db).delivery_target(record.dealer_id, m.utcnow())
    assert target is not None and target.credentials is None


async def test_bad_credentials_on_update_change_nothing(application: Application) -> None:
    dealers = application.dealers
    record, _ = await dealers.create(DealerInput(name="Kept Motors", endpoint_credentials=basic()))
    before = raw_column(record.dealer_id)
    with pytest.raises(InvalidArgumentError) as e:
        await dealers.update(
            record.dealer_id,
            DealerInput(endpoint_credentials=header(name="Host", value="")),
            ["endpoint_auth"],
        )
    assert {v.field for v in e.value.violations} == {H + "name", H + "value"}
    with pytest.raises(InvalidArgumentError) as e:
        await dealers.update(
            record.dealer_id, DealerInput(endpoint_url="https://a:b@x.example/"), ["endpoint_url"]
        )
    assert [v.field for v in e.value.violations] == ["dealer.endpoint_url"]
    assert raw_column(record.dealer_id) == before


async def test_credentials_never_follow_the_endpoint_to_another_host(
    application: Application,
) -> None:
    """Credentials were given for one host: moving the endpoint elsewhere needs them restated
    (or cleared) in the same update; a new path on the same host keeps them."""
    dealers = application.dealers
    record, _ = await dealers.create(
        DealerInput(
            name="Moving Motors",
            endpoint_url="https://crm.example.com/leads",
            endpoint_credentials=basic(),
        )
    )
    same_host = await dealers.update(
        record.dealer_id,
        DealerInput(endpoint_url="https://crm.example.com/v2/leads"),
        ["endpoint_url"],
    )
    assert same_host.endpoint_auth_type == "basic"
    for elsewhere in (
        "https://other.example.net/leads",
        "http://crm.example.com/v2/leads",
        "https://crm.example.com:8443/v2/leads",
    ):
        with pytest.raises(InvalidArgumentError) as e:
            await dealers.update(
                record.dealer_id, DealerInput(endpoint_url=elsewhere), ["endpoint_url"]
            )
        assert [v.field for v in e.value.violations] == ["dealer.endpoint_auth"]
    unchanged = await dealers.get(record.dealer_id)
    assert unchanged.endpoint_url == "https://crm.example.com/v2/leads"
    moved = await dealers.update(
        record.dealer_id,
        DealerInput(endpoint_url="https://other.example.net/leads", endpoint_credentials=None),
        ["endpoint_url", "endpoint_auth"],
    )
    assert (moved.endpoint_url, moved.endpoint_auth_type) == (
        "https://other.example.net/leads",
        "none",
    )


@pytest.mark.parametrize(
    "path", ["endpoint_credentials", "endpoint_auth_type", "endpoint_auth.basic"]
)
async def test_only_the_endpoint_auth_path_reaches_the_credentials(
    application: Application, path: str
) -> None:
    record, _ = await application.dealers.create(DealerInput(name="Mask Motors"))
    with pytest.raises(InvalidArgumentError) as e:
        await application.dealers.update(
            record.dealer_id, DealerInput(endpoint_credentials=basic()), [path]
        )
    assert [v.field for v in e.value.violations] == ["update_mask"]


async def test_delivery_target_holds_what_a_delivery_needs(application: Application) -> None:
    dealers = application.dealers
    record, first = await dealers.create(
        DealerInput(
            name="Target Motors",
            endpoint_url="https://crm.example.com/leads",
            delivery_format="adf",
            contact_email="leads@crm.example.com",
            endpoint_credentials=header(),
        )
    )
    repo = DealerRepository(application.db)
    assert repo.delivery_target("no-such-dealer", m.utcnow()) is None
    target = repo.delivery_target(record.dealer_id, m.utcnow())
    assert target is not None
    assert (target.url, target.delivery_format, target.secrets) == (
        "https://crm.example.com/leads",
        "adf",
        [first],
    )
    assert (target.name, target.contact_email, target.active) == (
        "Target Motors",
        "leads@crm.example.com",
        True,
    )
    assert target.credentials == header()
    second = await dealers.rotate_secret(record.dealer_id, overlap_hours=1)
    now = m.utcnow()
    assert repo.delivery_target(record.dealer_id, now).secrets == [second, first]  # type: ignore[union-attr]
    later = now + dt.timedelta(hours=2)
    assert repo.delivery_target(record.dealer_id, later).secrets == [second]  # type: ignore[union-attr]
