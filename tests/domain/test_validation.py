"""Lead validation: each rule, every violation reported at once, and properties over any input."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.leads import AddressInput, ConsentInput, LeadInput, VehicleInput
from server.domain.validation import (
    normalize_email,
    normalize_phone,
    validate_idempotency_key,
    validate_lead,
)
from server.errors import InvalidArgumentError

TODAY = dt.date(2026, 11, 24)


def good(**changes: object) -> LeadInput:
    lead = LeadInput(
        first_name="Maria",
        last_name="Lopez",
        email="Maria.Lopez@Example.COM",
        phone="(312) 555-0182",
        date_of_birth="1990-04-12",
        address=AddressInput(
            street="100 Main St", city="Springfield", state="il", zip_code="62701"
        ),
        monthly_income_cents=420000,
        down_payment_cents=100000,
        vehicle=VehicleInput(year=2021, make="Toyota", model="Camry"),
        consent=ConsentInput(
            tcpa=True, fcra_soft_pull=True, consent_text="I agree", ip_address="203.0.113.9"
        ),
        source="Website",
    )
    for k, v in changes.items():
        setattr(lead, k, v)
    return lead


def violations(lead: LeadInput | None) -> dict[str, str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_lead(lead, today=TODAY)
    assert e.value.reason == "INVALID_LEAD"
    fields = [v.field for v in e.value.violations]
    assert len(fields) == len(set(fields)), "one violation per field"
    return {v.field: v.description for v in e.value.violations}


def test_good_lead_is_normalised() -> None:
    valid = validate_lead(good(), today=TODAY)
    assert valid.email_normalized == "maria.lopez@example.com"
    assert valid.phone_e164 == "+13125550182"
    assert valid.address.state == "IL"
    assert valid.source == "website"
    assert valid.date_of_birth == dt.date(1990, 4, 12)


def test_missing_lead() -> None:
    assert violations(None) == {"lead": "is required"}


def test_everything_missing_is_reported_at_once() -> None:
    got = violations(LeadInput())
    assert set(got) == {
        "lead.first_name",
        "lead.last_name",
        "lead.email",
        "lead.phone",
        "lead.date_of_birth",
        "lead.address",
        "lead.monthly_income_cents",  # the credit decision needs it
        "lead.consent",
    }


@pytest.mark.parametrize(
    ("dob", "ok"),
    [
        ("2008-11-24", True),  # 18 today
        ("2008-11-25", False),  # 18 tomorrow
        ("1900-01-01", False),  # older than 120
        ("2030-01-01", False),  # future
        ("1990-02-30", False),  # no such date
        ("04/12/1990", False),
        ("19900412", False),
    ],
)
def test_date_of_birth(dob: str, ok: bool) -> None:
    if ok:
        validate_lead(good(date_of_birth=dob), today=TODAY)
    else:
        assert "lead.date_of_birth" in violations(good(date_of_birth=dob))


@pytest.mark.parametrize(
    "phone", ["555", "(000) 000-0000", "+44 20 7946 0958", "+44 20 7946 0958x", "call me", "1" * 40]
)
def test_bad_phones(phone: str) -> None:
    assert "lead.phone" in violations(good(phone=phone))


@pytest.mark.parametrize(
    "phone", ["312-555-0182", "+1 312 555 0182", "(312) 555-0182", "3125550182"]
)
def test_us_phone_forms_normalise_to_e164(phone: str) -> None:
    assert normalize_phone(phone, "US") == "+13125550182"


@pytest.mark.parametrize(
    "email", ["maria@", "@example.com", "maria@@example.com", "maria example@x.com", "a@b"]
)
def test_bad_emails(email: str) -> None:
    assert "lead.email" in violations(good(email=email))


def test_state_and_zip() -> None:
    got = violations(
        good(address=AddressInput(street="1 St", city="X", state="XX", zip_code="1234"))
    )
    assert set(got) == {"lead.address.state", "lead.address.zip_code"}
    validate_lead(
        good(address=AddressInput(street="1 St", city="X", state="DC", zip_code="20001-1234")),
        today=TODAY,
    )


def test_consent_must_be_given_with_its_text() -> None:
    got = violations(
        good(
            consent=ConsentInput(
                tcpa=False, fcra_soft_pull=False, ip_address="999.1.1.1", page_url="ftp://x"
            )
        )
    )
    assert set(got) == {
        "lead.consent.tcpa",
        "lead.consent.fcra_soft_pull",
        "lead.consent.consent_text",
        "lead.consent.ip_address",
        "lead.consent.page_url",
    }


def test_amounts_and_vehicle_ranges() -> None:
    got = violations(
        good(
            monthly_income_cents=-1,
            down_payment_cents=10**12,
            vehicle=VehicleInput(year=1950, vin="IOQ", price_cents=-5),
        )
    )
    assert set(got) == {
        "lead.monthly_income_cents",
        "lead.down_payment_cents",
        "lead.vehicle.year",
        "lead.vehicle.vin",
        "lead.vehicle.price_cents",
    }


def test_source_slug_and_control_characters() -> None:
    got = violations(good(source="Web Site!", first_name="Ma\x00ria"))
    assert set(got) == {"lead.source", "lead.first_name"}


def test_prefix_for_nested_requests() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        validate_lead(good(email="x"), today=TODAY, prefix="records[3].lead.")
    assert [v.field for v in e.value.violations] == ["records[3].lead.email"]


@pytest.mark.parametrize("key", ["", "web-7f1c2a", "a" * 128, "k:1/2"])
def test_good_idempotency_keys(key: str) -> None:
    assert validate_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["a" * 129, "has space", "tab\t", "ünicode"])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        validate_idempotency_key(key)
    assert e.value.reason == "INVALID_IDEMPOTENCY_KEY"


# --- properties -------------------------------------------------------------------------

text = st.text(max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    first=text,
    last=text,
    email=text,
    phone=text,
    dob=text,
    street=text,
    city=text,
    state=text,
    zip_code=text,
    income=st.integers(-(2**63), 2**63 - 1),
    source=text,
)
def test_any_input_validates_or_raises_invalid_argument(  # type: ignore[no-untyped-def]
    first, last, email, phone, dob, street, city, state, zip_code, income, source
) -> None:
    lead = LeadInput(
        first_name=first,
        last_name=last,
        email=email,
        phone=phone,
        date_of_birth=dob,
        address=AddressInput(street=street, city=city, state=state, zip_code=zip_code),
        monthly_income_cents=income,
        source=source,
        consent=ConsentInput(tcpa=True, fcra_soft_pull=True, consent_text="ok"),
    )
    try:
        valid = validate_lead(lead, today=TODAY)
    except InvalidArgumentError as e:
        assert e.violations
        assert all(v.field.startswith("lead.") for v in e.violations)
    else:
        assert valid.phone_e164.startswith("+")
        assert valid.address.state.isupper() and len(valid.address.state) == 2


@settings(max_examples=200, deadline=None)
@given(st.emails())
def test_generated_emails_normalise_idempotently(email: str) -> None:
    try:
        once = normalize_email(email)
    except ValueError:
        return  # email-validator is stricter than the RFC grammar hypothesis draws from
    assert normalize_email(once) == once
    assert once == once.lower()


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]?\d{4}\Z"))
def test_e164_is_a_fixed_point(phone: str) -> None:
    try:
        e164 = normalize_phone(phone, "US")
    except ValueError:
        return  # not every NANP-shaped number is assigned
    assert normalize_phone(e164, "US") == e164
    assert len(e164) == 12
