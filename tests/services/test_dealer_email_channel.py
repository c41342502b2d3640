"""The email delivery channel's rules: an email dealer needs a valid intake address and ADF,
with INVALID_DEALER field violations as for every other field; https dealers are as before; an
update is checked against the dealer as it ends up (SQLite and PostgreSQL for the updates)."""

from __future__ import annotations

import pytest

from server.app import Application
from server.domain.dealers import DealerInput, generate_signing_secret
from server.errors import InvalidArgumentError
from server.services.dealers import DealerService, validate_dealer


def email_dealer(**changes: object) -> DealerInput:
    values: dict[str, object] = {
        "name": "Intake Motors",
        "states": ["IL"],
        "delivery_format": "adf",
        "contact_email": "sales@intake-motors.example.com",
        "delivery_channel": "email",
        "intake_email": "  Leads@CRM.Intake-Motors.example.com ",
        "signing_secret": generate_signing_secret(),
    }
    values.update(changes)
    return DealerInput(**values)  # type: ignore[arg-type]


def violations(dealer: DealerInput) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_dealer(dealer)
    assert e.value.reason == "INVALID_DEALER"
    return {v.field: v.description for v in e.value.violations}


def test_an_email_dealer_is_valid_and_its_intake_address_normalised() -> None:
    valid = validate_dealer(email_dealer())
    assert valid.delivery_channel == "email"
    # Normalised as every address we store (trimmed, lower-cased).
    assert valid.intake_email == "leads@crm.intake-motors.example.com"
    assert valid.endpoint_url == ""


def test_an_email_dealer_needs_an_intake_address() -> None:
    assert "dealer.intake_email" in violations(email_dealer(intake_email=""))


@pytest.mark.parametrize("address", ["not-an-address", "a@b", "leads@@crm.example.com"])
def test_an_intake_address_must_be_an_email_address(address: str) -> None:
    assert violations(email_dealer(intake_email=address)) == {
        "dealer.intake_email": "is not a valid email address"
    }


def test_an_email_dealer_takes_adf_only() -> None:
    assert violations(email_dealer(delivery_format="json")) == {
        "dealer.delivery_format": "must be adf for the email channel"
    }


def test_an_unknown_channel_is_a_violation() -> None:
    assert "dealer.delivery_channel" in violations(email_dealer(delivery_channel="fax"))


def test_https_dealers_are_unchanged_and_ignore_the_intake_address() -> None:
    valid = validate_dealer(
        DealerInput(name="Web Motors", endpoint_url="https://crm.example.com/leads")
    )
    assert (valid.delivery_channel, valid.intake_email) == ("https", "")
    # An https dealer may keep an intake address on file (for a later switch); json is fine.
    kept = validate_dealer(
        DealerInput(
            name="Web Motors",
            endpoint_url="https://crm.example.com/leads",
            intake_email="leads@crm.example.com",
        )
    )
    assert kept.delivery_channel == "https"


async def test_an_update_is_checked_against_the_stored_dealer(application: Application) -> None:
    service = DealerService(application.db)
    https, _ = await service.create(
        DealerInput(name="Switching Motors", endpoint_url="https://crm.example.com/in")
    )
    # To email without an intake address, nor ADF: both named.
    with pytest.raises(InvalidArgumentError) as e:
        await service.update(
            https.dealer_id, DealerInput(delivery_channel="email"), ["delivery_channel"]
        )
    assert e.value.reason == "INVALID_DEALER"
    assert {v.field for v in e.value.violations} == {
        "dealer.intake_email",
        "dealer.delivery_format",
    }
    switched = await service.update(
        https.dealer_id,
        DealerInput(
            delivery_channel="email",
            intake_email="leads@crm.example.com",
            delivery_format="adf",
            contact_phone="(312) 555-0100",
        ),
        ["delivery_channel", "intake_email", "delivery_format", "contact_phone"],
    )
    assert (switched.delivery_channel, switched.intake_email) == (
        "email",
        "leads@crm.example.com",
    )
    # Now an email dealer: clearing its intake address, or leaving ADF, is refused alone.
    with pytest.raises(InvalidArgumentError) as e:
        await service.update(https.dealer_id, DealerInput(intake_email=""), ["intake_email"])
    assert [v.field for v in e.value.violations] == ["dealer.intake_email"]
    with pytest.raises(InvalidArgumentError) as e:
        await service.update(
            https.dealer_id, DealerInput(delivery_format="json"), ["delivery_format"]
        )
    assert [v.field for v in e.value.violations] == ["dealer.delivery_format"]
    # Back to https: allowed, the intake address stays on file.
    back = await service.update(
        https.dealer_id, DealerInput(delivery_channel="https"), ["delivery_channel"]
    )
    assert (back.delivery_channel, back.intake_email) == ("https", "leads@crm.example.com")
    assert (await service.get(https.dealer_id)).delivery_channel == "https"
