"""Signing secrets (SQLite and PostgreSQL): generated `whsec_` secrets shown once and never read
back, no empty or weak secret, rotation with an overlap; the inbound dealer webhook verifies
Standard Webhooks signatures made with the `standardwebhooks` library against the current
secret and, during an overlap, the previous one."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest

from server.app import Application
from server.domain.dealers import DealerInput
from server.domain.principal import Principal, Role
from server.errors import InvalidArgumentError, UnauthenticatedError
from server.storage import models as m
from server.transport import converters
from support.webhook_signing import legacy_headers, standard_headers

BODY = json.dumps({"events": []}).encode()


async def new_dealer(application: Application) -> tuple[str, str]:
    record, secret = await application.dealers.create(DealerInput(name="Rotation Motors"))
    return record.dealer_id, secret


def principal(dealer_id: str) -> Principal:
    return Principal(key_id="k", role=Role.DEALER, dealer_id=dealer_id)


async def receive(application: Application, dealer_id: str, headers: dict[str, str]) -> list:  # type: ignore[type-arg]
    return await application.dealer_webhook.receive(
        principal(dealer_id), BODY, headers.get("x-ccl-timestamp", ""), "", headers=headers
    )


async def test_a_generated_secret_is_whsec_and_never_read_back(application: Application) -> None:
    dealer_id, secret = await new_dealer(application)
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    record = await application.dealers.get(dealer_id)
    listed = (await application.dealers.list_dealers(500, "")).items
    for r in (record, *listed):
        assert r.signing_secret_set
        assert secret not in repr(dataclasses.asdict(r))
        assert converters.dealer_message(r).signing_secret == ""
    assert "signing_secret" not in {f.name for f in dataclasses.fields(record)}


@pytest.mark.parametrize("secret", ["", "too-weak-but-long-enough-0123456789", "whsec_AAAA"])
async def test_an_update_cannot_set_an_empty_or_weak_secret(
    application: Application, secret: str
) -> None:
    dealer_id, _ = await new_dealer(application)
    with pytest.raises(InvalidArgumentError) as e:
        await application.dealers.update(
            dealer_id, DealerInput(signing_secret=secret), ["signing_secret"]
        )
    assert [v.field for v in e.value.violations] == ["dealer.signing_secret"]


async def test_inbound_standard_webhooks_verify_and_a_wrong_signature_is_refused(
    application: Application,
) -> None:
    dealer_id, secret = await new_dealer(application)
    assert await receive(application, dealer_id, standard_headers(BODY, secret)) == []
    assert await receive(application, dealer_id, legacy_headers(BODY, secret)) == []  # deprecated
    _, other = await new_dealer(application)
    bad = [
        standard_headers(BODY, other),
        {**standard_headers(BODY, secret), "webhook-id": "msg_changed"},
        {**standard_headers(BODY, secret), "webhook-signature": "v1,not-base64!! v2,x ,"},
        standard_headers(b'{"events": [1]}', secret),
    ]
    for headers in bad:
        with pytest.raises(UnauthenticatedError) as e:
            await receive(application, dealer_id, headers)
        assert e.value.reason == "SIGNATURE_INVALID"
    stale = standard_headers(BODY, secret, ts=int(dt.datetime.now(dt.UTC).timestamp()) - 3600)
    with pytest.raises(UnauthenticatedError) as e:
        await receive(application, dealer_id, stale)
    assert e.value.reason == "TIMESTAMP_OUT_OF_RANGE"


async def test_during_a_rotation_both_secrets_verify_then_only_the_new_one(
    application: Application,
) -> None:
    dealer_id, old = await new_dealer(application)
    new = await application.dealers.rotate_secret(dealer_id, overlap_hours=24)
    assert new.startswith("whsec_") and new != old
    for secret in (old, new):
        assert await receive(application, dealer_id, standard_headers(BODY, secret)) == []
    assert (await application.dealers.get(dealer_id)).signing_secret_set

    m.Dealer.update(previous_secret_expires_at=m.utcnow() - dt.timedelta(seconds=1)).where(
        m.Dealer.id == dealer_id
    ).execute()
    assert await receive(application, dealer_id, standard_headers(BODY, new)) == []
    with pytest.raises(UnauthenticatedError):
        await receive(application, dealer_id, standard_headers(BODY, old))


async def test_a_rotation_validates_its_overlap_and_dealer(application: Application) -> None:
    dealer_id, _ = await new_dealer(application)
    with pytest.raises(InvalidArgumentError):
        await application.dealers.rotate_secret(dealer_id, overlap_hours=-1)
    with pytest.raises(Exception) as e:
        await application.dealers.rotate_secret("no-such-dealer")
    assert getattr(e.value, "reason", "") == "DEALER_NOT_FOUND"
