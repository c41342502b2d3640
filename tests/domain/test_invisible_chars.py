"""Invisible formatting characters (bidirectional controls, zero-width characters, soft hyphen,
byte-order mark...) are refused in the text people read from a lead (names, address lines,
employment, vehicle, trade-in, certificate id), one violation per field; real names in any
script, with the joiners their spelling needs, are accepted."""

from __future__ import annotations

import datetime as dt

import pytest

from server.domain.leads import AddressInput, ConsentInput, LeadInput, TradeInInput, VehicleInput
from server.domain.validation import (
    INVISIBLE_DESCRIPTION,
    Collector,
    invisible_formatting,
    validate_lead,
)
from server.errors import InvalidArgumentError

TODAY = dt.date(2026, 11, 24)
# Every field checked, by its violation path, and how to set it on a LeadInput.
FIELDS = (
    "first_name",
    "last_name",
    "address.street",
    "address.street2",
    "address.city",
    "employment_status",
    "vehicle.make",
    "vehicle.model",
    "vehicle.trim",
    "trade_in.make",
    "trade_in.model",
    "consent.certificate_id",
)
BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)]
OTHER = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u2028", "\U000e0041"]
INVISIBLE = BIDI + OTHER


def lead(**values: str) -> LeadInput:
    """A valid lead, with the given fields (violation paths) set to `values`."""
    out = LeadInput(
        first_name="Maria",
        last_name="Lopez",
        email="maria.lopez@example.com",
        phone="(312) 555-0182",
        date_of_birth="1990-04-12",
        address=AddressInput(
            street="100 Main St", city="Springfield", state="IL", zip_code="62701"
        ),
        monthly_income_cents=420000,
        vehicle=VehicleInput(year=2021, make="Toyota", model="Camry"),
        trade_in=TradeInInput(year=2012, make="Honda", model="Civic", mileage=150_000),
        consent=ConsentInput(tcpa=True, fcra_soft_pull=True, consent_text="I agree"),
        employment_status="employed",
    )
    for path, value in values.items():
        target: object = out
        *parents, name = path.split(".")
        for parent in parents:
            target = getattr(target, parent)
        setattr(target, name, value)
    return out


def violations(candidate: LeadInput) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_lead(candidate, today=TODAY)
    assert e.value.reason == "INVALID_LEAD"
    return [(v.field, v.description) for v in e.value.violations]


@pytest.mark.parametrize("ch", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_each_character_is_refused_in_each_field_once(ch: str) -> None:
    found = violations(lead(**{path: f"Ab{ch}cd" for path in FIELDS}))
    assert sorted(found) == sorted((f"lead.{path}", INVISIBLE_DESCRIPTION) for path in FIELDS)


@pytest.mark.parametrize("ch", INVISIBLE, ids=[f"U+{ord(c):04X}" for c in INVISIBLE])
def test_at_either_end_or_alone_it_is_refused(ch: str) -> None:
    for value in (f"{ch}Maria", f"Maria{ch}", f"Ma{ch}{ch}ria"):
        assert invisible_formatting(value), (ch, value)
    if not ch.isspace():  # U+2028 alone is whitespace: trimmed, so the name is "required"
        assert violations(lead(first_name=ch)) == [("lead.first_name", INVISIBLE_DESCRIPTION)]


@pytest.mark.parametrize("path", FIELDS)
def test_only_the_bad_field_is_named(path: str) -> None:
    assert violations(lead(**{path: "Lo\u202epez"})) == [(f"lead.{path}", INVISIBLE_DESCRIPTION)]


def test_a_field_with_two_problems_gets_one_violation() -> None:
    found = violations(lead(first_name="\u200b" + "x" * 200))
    assert found == [("lead.first_name", "must be at most 100 characters")]


NAMES = [
    "José María",
    "Zoë Müller-Lüdenscheidt",
    "Jose\u0301",  # a combining accent
    "O'Brien",
    "Nguyễn Văn An",
    "李小龙",
    "山田 太郎",
    "김민준",
    "محمد عبد الله",
    "שרה כהן",
    "Σοφία Παπαδοπούλου",
    "Анна Иванова",
    "\u0646\u06cc\u06a9\u200c\u0646\u0627\u0645",  # Persian: ZWNJ inside the word
    "\u0915\u094d\u200d\u0937",  # Devanagari: a half form with ZWJ
    "\u0938\u0930\u094d\u200c\u0935",  # Devanagari: a visible virama with ZWNJ
    "\u0d05\u0d35\u0d28\u0d4d\u200d",  # Malayalam: the older chillu spelling, ZWJ last
]


@pytest.mark.parametrize("name", NAMES)
def test_real_names_in_any_script_are_accepted(name: str) -> None:
    valid = validate_lead(
        lead(**{"first_name": name, "last_name": name, "address.city": name}), today=TODAY
    )
    assert (valid.first_name, valid.last_name, valid.address.city) == (name, name, name)


@pytest.mark.parametrize(
    "value",
    [
        "Ana\u200dMaria",  # after a Latin letter a joiner only hides something
        "Ana\u200cMaria",
        "\u200c\u0646\u0627\u0645",  # at the start
        "\u0646 \u200c\u0627\u0645",  # after a space
        "\u0646\u200c\u200c\u0627\u0645",  # a run of them
        "\u0645\u062d\u0645\u062f\u061c",  # the Arabic letter mark is a bidi control
        "李\u200d小龙",  # Han does not spell with joiners
    ],
)
def test_a_joiner_outside_a_script_that_spells_with_it_is_refused(value: str) -> None:
    assert invisible_formatting(value)
    assert violations(lead(last_name=value)) == [("lead.last_name", INVISIBLE_DESCRIPTION)]


def test_the_helper_serves_other_requests_with_their_own_paths() -> None:
    """`Collector.display_text` is what a dealer's name goes through too."""
    c = Collector("dealer.")
    assert c.display_text("name", "  Springfield Auto\u202e  ", required=True, max_len=200) == (
        "Springfield Auto\u202e"
    )
    assert c.display_text("name", "Springfield Auto", required=True, max_len=200) == (
        "Springfield Auto"
    )
    assert [(v.field, v.description) for v in c.violations] == [
        ("dealer.name", INVISIBLE_DESCRIPTION)
    ]
