"""Dealer endpoint credentials through the API, SQLite and PostgreSQL: over gRPC (Create, Get,
List, Update) and REST through real Envoy (`PATCH /api/dealers/{id}?update_mask=endpoint_auth`),
an answer says which kind is set (and a header's name), never the secret; bad credentials and
a URL with userinfo are INVALID_ARGUMENT (HTTP 400) with one violation per bad field."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2, json_format

from ccl.dealer.v1 import dealer_service_pb2 as pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess

pytestmark = pytest.mark.e2e
PASSWORD = "api-Pa55word-77aa"
TOKEN = "api-token-4b3c2d1e"


@pytest.fixture(scope="module")
def dealers(stack) -> Iterator[dealer_service_pb2_grpc.DealerServiceStub]:  # type: ignore[no-untyped-def]
    with stack.channel() as ch:
        yield dealer_service_pb2_grpc.DealerServiceStub(ch)


@pytest.fixture(scope="module")
def rest(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=envoy_proxy.base_url,
        headers={"Authorization": f"Bearer {admin_key}"},
        timeout=20,
    ) as client:
        yield client


def shown(message: pb.Dealer) -> str:
    return json_format.MessageToJson(message) + str(message.SerializeToString())


def test_grpc_answers_carry_the_kind_never_the_secret(
    dealers: dealer_service_pb2_grpc.DealerServiceStub, admin_key: str
) -> None:
    md = auth(admin_key)
    created = dealers.CreateDealer(
        pb.CreateDealerRequest(
            dealer=pb.Dealer(
                name="Grpc Auth Motors",
                endpoint_url="https://crm.example.com/leads",
                endpoint_auth=pb.EndpointAuth(
                    basic=pb.BasicAuth(username="grpc-user", password=PASSWORD)
                ),
            )
        ),
        metadata=md,
    ).dealer
    assert created.endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_BASIC
    dealer_id = created.dealer_id
    got = dealers.GetDealer(pb.GetDealerRequest(dealer_id=dealer_id), metadata=md).dealer
    listed = [
        d
        for d in dealers.ListDealers(pb.ListDealersRequest(page_size=500), metadata=md).dealers
        if d.dealer_id == dealer_id
    ]
    updated = dealers.UpdateDealer(
        pb.UpdateDealerRequest(
            dealer=pb.Dealer(
                dealer_id=dealer_id,
                endpoint_auth=pb.EndpointAuth(header=pb.HeaderAuth(name="X-Api-Key", value=TOKEN)),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["endpoint_auth"]),
        ),
        metadata=md,
    ).dealer
    assert updated.endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_HEADER
    assert updated.endpoint_auth_header_name == "X-Api-Key"
    for message in (created, got, *listed, updated):
        assert not message.HasField("endpoint_auth")
        assert PASSWORD not in shown(message) and TOKEN not in shown(message)
    cleared = dealers.UpdateDealer(
        pb.UpdateDealerRequest(
            dealer=pb.Dealer(dealer_id=dealer_id, endpoint_auth=pb.EndpointAuth()),
            update_mask=field_mask_pb2.FieldMask(paths=["endpoint_auth"]),
        ),
        metadata=md,
    ).dealer
    assert cleared.endpoint_auth_type == pb.ENDPOINT_AUTH_TYPE_NONE
    assert cleared.endpoint_auth_header_name == ""


def test_grpc_refuses_bad_credentials_field_by_field(
    dealers: dealer_service_pb2_grpc.DealerServiceStub, admin_key: str
) -> None:
    with pytest.raises(grpc.RpcError) as e:
        dealers.CreateDealer(
            pb.CreateDealerRequest(
                dealer=pb.Dealer(
                    name="Bad Auth Motors",
                    endpoint_url="https://user:pw-in-url@crm.example.com/leads",
                    endpoint_auth=pb.EndpointAuth(
                        header=pb.HeaderAuth(name="webhook-signature", value="a\r\nb")
                    ),
                )
            ),
            metadata=auth(admin_key),
        )
    err = rich_error(e.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_DEALER"
    assert set(err.violations) == {
        "dealer.endpoint_url",
        "dealer.endpoint_auth.header.name",
        "dealer.endpoint_auth.header.value",
    }
    assert "endpoint_auth" in err.violations["dealer.endpoint_url"]
    assert "pw-in-url" not in err.message + repr(err.violations)


def test_rest_patch_sets_basic_auth_and_answers_without_the_password(
    rest: httpx.Client,
) -> None:
    created = rest.post(
        "/api/dealers",
        json={"name": "Rest Auth Motors", "endpoint_url": "https://crm.example.com/x"},
    )
    assert created.status_code == 200, created.text
    dealer_id = created.json()["dealer"]["dealer_id"]
    assert created.json()["dealer"]["endpoint_auth_type"] == "ENDPOINT_AUTH_TYPE_NONE"

    patched = rest.patch(
        f"/api/dealers/{dealer_id}",
        params={"update_mask": "endpoint_auth"},
        json={"endpoint_auth": {"basic": {"username": "rest-user", "password": PASSWORD}}},
    )
    assert patched.status_code == 200, patched.text
    dealer = patched.json()["dealer"]
    assert dealer["endpoint_auth_type"] == "ENDPOINT_AUTH_TYPE_BASIC"
    assert "endpoint_auth" not in dealer
    assert PASSWORD not in patched.text and "rest-user" not in patched.text
    got = rest.get(f"/api/dealers/{dealer_id}")
    assert got.json()["dealer"]["endpoint_auth_type"] == "ENDPOINT_AUTH_TYPE_BASIC"
    assert PASSWORD not in got.text and PASSWORD not in rest.get("/api/dealers").text

    bad = rest.patch(
        f"/api/dealers/{dealer_id}",
        params={"update_mask": "endpoint_auth"},
        json={"endpoint_auth": {"basic": {"username": "a:b", "password": ""}}},
    )
    assert bad.status_code == 400, bad.text
    fields = {
        v["field"]
        for d in bad.json()["details"]
        for v in d.get("fieldViolations", d.get("field_violations", []))
    }
    assert fields == {"dealer.endpoint_auth.basic.username", "dealer.endpoint_auth.basic.password"}

    cleared = rest.patch(
        f"/api/dealers/{dealer_id}",
        params={"update_mask": "endpoint_auth"},
        json={"endpoint_auth": {}},
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["dealer"]["endpoint_auth_type"] == "ENDPOINT_AUTH_TYPE_NONE"
