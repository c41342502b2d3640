"""Dealer validation is as strict as lead validation: ASCII digits, no control characters,
bounded lists and secrets, one URL rule (regressions found by the hostile-input review)."""

from __future__ import annotations

import base64

import pytest

from server.domain.dealers import DealerInput, generate_signing_secret
from server.errors import InvalidArgumentError
from server.services.dealers import MAX_ZIP_PREFIXES, validate_dealer


def violations(dealer: DealerInput) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_dealer(dealer)
    return {v.field: v.description for v in e.value.violations}


def test_a_good_dealer_is_normalised() -> None:
    valid = validate_dealer(
        DealerInput(
            name="  Springfield Auto ",
            states=["il"],
            zip_prefixes=["627", "627"],
            endpoint_url="https://crm.example.com/leads",
            signing_secret=generate_signing_secret(),
        )
    )
    assert (valid.name, valid.states, valid.zip_prefixes) == ("Springfield Auto", ["IL"], ["627"])


@pytest.mark.parametrize(
    "prefix", ["\uff16\uff12\uff17", "\u0666\u0662\u0667", "62\n7", "", "123456"]
)
def test_zip_prefixes_take_ascii_digits_only(prefix: str) -> None:
    assert "dealer.zip_prefixes" in violations(DealerInput(name="D", zip_prefixes=[prefix]))


def test_zip_prefixes_are_bounded() -> None:
    many = [str(n) for n in range(MAX_ZIP_PREFIXES + 1)]
    assert "dealer.zip_prefixes" in violations(DealerInput(name="D", zip_prefixes=many))


@pytest.mark.parametrize("name", ["A\tB", "A\x00B", "A\x85B", "", "x" * 201])
def test_names_without_control_characters_and_bounded(name: str) -> None:
    assert "dealer.name" in violations(DealerInput(name=name))


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.com/a b",
        "https://crm.example.com/\tleads",
        "https://crm.example.com/le\nads",
        "javascript:alert(1)",
        "https://crm.example.com:99999/",
        "https://" + "a" * 2048 + ".com/",
    ],
)
def test_endpoint_urls_follow_the_one_url_rule(url: str) -> None:
    assert "dealer.endpoint_url" in violations(DealerInput(name="D", endpoint_url=url))


def _whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@pytest.mark.parametrize(
    "secret",
    [
        "short",
        "s" * 40,  # not whsec_
        "whsec_",
        "whsec_not base64!",
        "secret-\n-0123456789",
        _whsec(b"0123456789abcdef"),  # 16 bytes: too few
        _whsec(bytes(range(65))),  # too many
        _whsec(b"\x00" * 32),  # not random
    ],
)
def test_signing_secrets_are_strong_whsec_secrets(secret: str) -> None:
    assert "dealer.signing_secret" in violations(DealerInput(name="D", signing_secret=secret))


def test_a_strong_chosen_secret_is_taken() -> None:
    secret = _whsec(bytes(range(24)))
    assert validate_dealer(DealerInput(name="D", signing_secret=secret)).signing_secret == secret


def test_an_update_cannot_empty_the_secret() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        validate_dealer(DealerInput(), frozenset({"signing_secret"}), updating=True)
    assert [v.field for v in e.value.violations] == ["dealer.signing_secret"]


@pytest.mark.parametrize("char", ['"', "<", ">", "\\", "^", "`", "{", "|", "}"])
def test_endpoint_urls_refuse_characters_rfc_3986_never_allows(char: str) -> None:
    url = f"https://user:pa{char}ss@crm.example.com/leads"
    assert "dealer.endpoint_url" in violations(DealerInput(name="D", endpoint_url=url))


def test_contacts_are_normalised_and_checked() -> None:
    valid = validate_dealer(
        DealerInput(name="D", contact_email=" Leads@Example.COM ", contact_phone="(312) 555-0182")
    )
    assert (valid.contact_email, valid.contact_phone) == ("leads@example.com", "+13125550182")
    bad = violations(DealerInput(name="D", contact_email="not-an-email", contact_phone="12"))
    assert {"dealer.contact_email", "dealer.contact_phone"} <= set(bad)


def test_an_adf_dealer_needs_a_contact_when_created() -> None:
    """The ADF <vendor><contact> needs an email or a phone (the public ADF 1.0 DTD)."""
    assert "dealer.contact_email" in violations(DealerInput(name="D", delivery_format="adf"))
    validate_dealer(DealerInput(name="D", delivery_format="adf", contact_phone="(312) 555-0182"))
    validate_dealer(DealerInput(name="D", delivery_format="json"))  # JSON has no such element
    # An update changes only what it names (an older dealer without one keeps working).
    validate_dealer(
        DealerInput(delivery_format="adf"), frozenset({"delivery_format"}), updating=True
    )
