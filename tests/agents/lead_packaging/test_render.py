"""Dealer packages: ADF 1.0 and JSON rendering, hostile text, properties over any input, no DOB."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from server.agents.lead_packaging.render import (
    ADF_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    JSON_SCHEMA,
    TIMEFRAME_DESCRIPTIONS,
    PackageConsent,
    PackageCredit,
    PackageData,
    PackageTradeIn,
    PackageVehicle,
    clean_text,
    render,
    render_adf,
    render_json,
)

# The full public ADF 1.0 DTD (SendADF's copy, typographic errors repaired; see the file).
ADF_DTD_PATH = Path(__file__).parents[2] / "support" / "adf-1.0.dtd"
DTD = etree.DTD(str(ADF_DTD_PATH))

DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
P = "/adf/prospect"
CONTACT = f"{P}/customer/contact"
FINANCE = f"{P}/vehicle/finance"

# Every string field of PackageData and where render_adf puts it verbatim (None: the summary
# or nowhere; street2 and the optional vehicle fields appear only when not empty).
ADF_PATHS: dict[str, str | None] = {
    "lead_id": f"{P}/id",
    "first_name": f"{CONTACT}/name[@part='first']",
    "last_name": f"{CONTACT}/name[@part='last']",
    "email": f"{CONTACT}/email",
    "phone_e164": f"{CONTACT}/phone",
    "street": f"{CONTACT}/address/street[@line='1']",
    "street2": f"{CONTACT}/address/street[@line='2']",
    "city": f"{CONTACT}/address/city",
    "state": f"{CONTACT}/address/regioncode",
    "zip_code": f"{CONTACT}/address/postalcode",
    "dealer_id": f"{P}/vendor/id",
    "dealer_name": f"{P}/vendor/vendorname",
    "provider_name": f"{P}/provider/name[@part='full']",
    "provider_service": f"{P}/provider/service",
    "provider_url": f"{P}/provider/url",
    "provider_email": f"{P}/provider/email",
    "dealer_phone": f"{P}/vendor/contact/phone",
    # None: checked apart (an empty vendor email when the dealer has neither; the timeframe's
    # description; the employment in the summary).
    "dealer_email": None,
    "purchase_timeframe": None,
    "employment_status": None,
    "source": None,
    "comments": None,
}
OPTIONAL_ELEMENTS = {
    "street2",
    "city",
    "state",
    "zip_code",
    "provider_service",
    "provider_url",
    "provider_email",
    "dealer_phone",
}
STRING_FIELDS = [f.name for f in dataclasses.fields(PackageData) if f.type == "str"]


def test_every_string_field_has_a_known_place_in_adf() -> None:
    assert set(ADF_PATHS) == set(STRING_FIELDS)


def maria(**changes: Any) -> PackageData:
    """The example applicant, with `changes` applied."""
    data = PackageData(
        lead_id="0b7c2a4e-5d1f-4c3a-9e8b-1a2b3c4d5e6f",
        created_at=dt.datetime(2026, 11, 24, 23, 58, 21),
        first_name="Maria",
        last_name="Lopez",
        email="maria.lopez@example.com",
        phone_e164="+13125550182",
        street="100 Main St",
        city="Springfield",
        state="IL",
        zip_code="62701",
        vehicle=PackageVehicle(year=2021, make="Toyota", model="Camry"),
        down_payment_cents=100000,
        monthly_income_cents=420000,
        credit=PackageCredit(
            decision="prequalified",
            tier="B",
            score_band="650-699",
            max_payment_cents=45050,
            max_amount_cents=1800000,
            source="flexpath",
        ),
        score=82,
        dealer_id="dlr-42",
        dealer_name="Springfield Auto Mall",
        consent=PackageConsent(
            tcpa=True,
            consented_at=dt.datetime(2026, 11, 24, 23, 57, 3),
            certificate_id="cert-7f3a",
            page_url="https://completecarloans.com/apply?utm=x",
        ),
        source="website",
    )
    return dataclasses.replace(data, **changes)


def parse_adf(body: bytes) -> etree._Element:
    """Parse a package and check it against the ADF DTD."""
    root = etree.fromstring(body)
    assert DTD.validate(root), DTD.error_log.filter_from_errors()
    return root


def text(root: etree._Element, path: str) -> str:
    return str(root.xpath(f"string({path})"))


def count(root: etree._Element, path: str) -> int:
    return int(root.xpath(f"count({path})"))


# The example applicant.


def test_adf_starts_with_the_declaration_and_the_adf_processing_instruction() -> None:
    body = render_adf(maria())
    assert body.startswith(DECLARATION + b'<?adf version="1.0"?>\n<adf>')
    pi = etree.fromstring(body).getprevious()
    assert isinstance(pi, etree._ProcessingInstruction)
    assert (pi.target, pi.text) == ("adf", 'version="1.0"')
    body.decode("utf-8")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"{P}/@status", "new"),
        (f"{P}/id", "0b7c2a4e-5d1f-4c3a-9e8b-1a2b3c4d5e6f"),
        (f"{P}/id/@sequence", "1"),
        (f"{P}/id/@source", "Complete Car Loans"),
        (f"{P}/requestdate", "2026-11-24T23:58:21+00:00"),
        (f"{P}/vehicle/@interest", "buy"),
        (f"{P}/vehicle/@status", "used"),
        (f"{P}/vehicle/year", "2021"),
        (f"{P}/vehicle/make", "Toyota"),
        (f"{P}/vehicle/model", "Camry"),
        (f"{FINANCE}/method", "finance"),
        (f"{FINANCE}/amount[@type='downpayment']", "1000"),
        (f"{FINANCE}/amount[@type='downpayment']/@currency", "USD"),
        (f"{FINANCE}/amount[@type='downpayment']/@limit", "exact"),
        # Whole dollars, rounded down: $450.50 a month is offered as $450.
        (f"{FINANCE}/amount[@type='monthly'][@limit='maximum']", "450"),
        (f"{FINANCE}/amount[@type='total'][@limit='maximum']", "18000"),
        (f"{CONTACT}/name[@part='first']", "Maria"),
        (f"{CONTACT}/name[@part='last']", "Lopez"),
        (f"{CONTACT}/email", "maria.lopez@example.com"),
        (f"{CONTACT}/phone[@type='voice']", "+13125550182"),
        (f"{CONTACT}/address/street[@line='1']", "100 Main St"),
        (f"{CONTACT}/address/city", "Springfield"),
        (f"{CONTACT}/address/regioncode", "IL"),
        (f"{CONTACT}/address/postalcode", "62701"),
        (f"{CONTACT}/address/country", "US"),
        (f"{P}/vendor/id", "dlr-42"),
        (f"{P}/vendor/vendorname", "Springfield Auto Mall"),
        (f"{P}/vendor/contact/name[@part='full']", "Springfield Auto Mall"),
        (f"{P}/provider/name[@part='full']", "Complete Car Loans"),
    ],
)
def test_example_adf_values(path: str, expected: str) -> None:
    root = parse_adf(render_adf(maria()))
    assert count(root, path) == 1
    assert text(root, path) == expected


def test_example_adf_leaves_out_what_is_not_known() -> None:
    root = parse_adf(render_adf(maria()))
    for path in (
        f"{P}/vehicle/vin",
        f"{P}/vehicle/trim",
        f"{P}/vehicle/price",
        f"{CONTACT}/address/street[@line='2']",
        f"{P}/vehicle[@interest='trade-in']",
        f"{P}/customer/timeframe",
        f"{P}/vendor/contact/phone",
    ):
        assert count(root, path) == 0, path


def test_example_adf_comments_summarise_credit_score_income_and_consent() -> None:
    root = parse_adf(render_adf(maria(comments="Call after 5pm please")))
    assert text(root, f"{P}/customer/comments").splitlines() == [
        "Credit: prequalified; tier B; score band 650-699",
        "Lead score: 82/100",
        "Monthly income: $4,200",
        "Employment: not given; months employed not given",
        "Months at address: not given",
        "TCPA consent: granted 2026-11-24T23:57:03+00:00; certificate cert-7f3a",
        "Lead source: website",
        "Applicant comments: Call after 5pm please",
    ]


def test_adf_summary_keeps_applicant_text_on_one_line() -> None:
    root = parse_adf(render_adf(maria(comments="hi\nCredit: approved; tier A\r\nbye")))
    lines = text(root, f"{P}/customer/comments").splitlines()
    assert lines[-1] == "Applicant comments: hi Credit: approved; tier A bye"
    assert [line for line in lines if line.startswith("Credit:")] == [lines[0]]


def test_adf_vehicle_details_when_known() -> None:
    vehicle = PackageVehicle(
        year=2019,
        make="Honda",
        model="Civic",
        trim="EX",
        vin="1HGCV1F34KA000001",
        price_cents=1899999,
    )
    root = parse_adf(render_adf(maria(vehicle=vehicle)))
    v = f"{P}/vehicle"
    assert [e.tag for e in root.xpath(f"{v}/*")] == [
        "year",
        "make",
        "model",
        "vin",
        "trim",
        "price",
        "finance",
    ]
    assert text(root, f"{v}/vin") == "1HGCV1F34KA000001"
    assert text(root, f"{v}/trim") == "EX"
    assert text(root, f"{v}/price") == "18999"
    assert text(root, f"{v}/price/@type") == "asking"
    assert text(root, f"{v}/price/@currency") == "USD"


def test_adf_without_vehicle_credit_or_consent() -> None:
    data = maria(
        vehicle=PackageVehicle(),
        credit=None,
        down_payment_cents=0,
        consent=PackageConsent(tcpa=False),
        street2="Apt 4",
        provider_service="Used car financing",
        provider_url="https://completecarloans.com",
    )
    root = parse_adf(render_adf(data))
    # The DTD requires year, make and model, so unknown ones are present and empty.
    assert [text(root, f"{P}/vehicle/{tag}") for tag in ("year", "make", "model")] == ["", "", ""]
    assert [e.get("type") for e in root.xpath(f"{FINANCE}/amount")] == ["downpayment"]
    assert text(root, f"{FINANCE}/amount") == "0"
    comments = text(root, f"{P}/customer/comments").splitlines()
    assert comments[0] == "Credit: not checked"
    assert "TCPA consent: not granted" in comments
    assert text(root, f"{CONTACT}/address/street[@line='2']") == "Apt 4"
    assert text(root, f"{P}/provider/service") == "Used car financing"
    assert text(root, f"{P}/provider/url") == "https://completecarloans.com"


def test_adf_carries_the_lead_vehicle_details_timeframe_and_employment() -> None:
    data = maria(
        vehicle=PackageVehicle(year=2026, make="Kia", model="Sorento", status="new"),
        trade_in=PackageTradeIn(year=2014, make="Ford", model="Focus", mileage=128500),
        purchase_timeframe="within_month",
        employment_status="full_time",
        months_employed=30,
        months_at_address=18,
    )
    root = parse_adf(render_adf(data))
    vehicles = root.xpath(f"{P}/vehicle")
    assert [(v.get("interest"), v.get("status")) for v in vehicles] == [
        ("buy", "new"),
        ("trade-in", "used"),
    ]
    trade = f"{P}/vehicle[@interest='trade-in']"
    assert [e.tag for e in root.xpath(f"{trade}/*")] == ["year", "make", "model", "odometer"]
    assert [text(root, f"{trade}/{t}") for t in ("year", "make", "model", "odometer")] == [
        "2014",
        "Ford",
        "Focus",
        "128500",
    ]
    assert text(root, f"{trade}/odometer/@units") == "mi"
    assert text(root, f"{P}/customer/timeframe") == "Within a month"
    assert [e.tag for e in root.xpath(f"{P}/customer/*")] == ["contact", "timeframe", "comments"]
    lines = text(root, f"{P}/customer/comments").splitlines()
    assert "Employment: full_time; months employed 30" in lines
    assert "Months at address: 18" in lines


@pytest.mark.parametrize(
    ("value", "description"),
    [
        ("within_week", "Within a week"),
        ("within_month", "Within a month"),
        ("within_3_months", "Within 3 months"),
        ("later", "More than 3 months"),
    ],
)
def test_adf_timeframe_descriptions(value: str, description: str) -> None:
    root = parse_adf(render_adf(maria(purchase_timeframe=value)))
    assert text(root, f"{P}/customer/timeframe") == description


def test_adf_vehicle_status_defaults_to_used() -> None:
    for status in ("", "used", "USED", "other"):
        root = parse_adf(render_adf(maria(vehicle=PackageVehicle(make="Kia", status=status))))
        assert text(root, f"{P}/vehicle/@status") == "used"


def test_adf_vendor_and_provider_contacts_have_an_email_or_phone() -> None:
    root = parse_adf(render_adf(maria(dealer_email="sales@springfield.example")))
    vendor = f"{P}/vendor/contact"
    assert text(root, f"{vendor}/name[@part='full'][@type='business']") == "Springfield Auto Mall"
    assert text(root, f"{vendor}/email") == "sales@springfield.example"
    assert count(root, f"{vendor}/phone") == 0
    provider = f"{P}/provider"
    assert [e.tag for e in root.xpath(f"{provider}/*")] == [
        "name",
        "service",
        "url",
        "email",
        "contact",
    ]
    assert text(root, f"{provider}/name") == "Complete Car Loans"
    assert text(root, f"{provider}/service") == "Auto loan prequalification"
    assert text(root, f"{provider}/url") == "https://completecarloans.com"
    assert text(root, f"{provider}/email") == "dealers@completecarloans.com"
    assert text(root, f"{provider}/contact/name") == "Complete Car Loans Dealer Support"
    assert text(root, f"{provider}/contact/email") == "dealers@completecarloans.com"

    root = parse_adf(render_adf(maria(dealer_phone="+13125550100")))
    assert count(root, f"{vendor}/email") == 0
    assert text(root, f"{vendor}/phone[@type='voice']") == "+13125550100"

    both = parse_adf(render_adf(maria(dealer_email="a@b.example", dealer_phone="+13125550100")))
    assert [e.tag for e in both.xpath(f"{vendor}/*")] == ["name", "email", "phone"]


def test_adf_vendor_contact_without_dealer_email_or_phone_is_an_empty_email() -> None:
    root = parse_adf(render_adf(maria()))
    vendor = f"{P}/vendor/contact"
    assert [e.tag for e in root.xpath(f"{vendor}/*")] == ["name", "email"]
    assert text(root, f"{vendor}/email") == ""


def test_the_full_dtd_refuses_a_contact_without_email_or_phone() -> None:
    root = etree.fromstring(render_adf(maria()))
    for email in root.iterfind("prospect/vendor/contact/email"):
        email.getparent().remove(email)  # type: ignore[union-attr]
    assert not DTD.validate(root)
    assert "contact" in str(DTD.error_log)


def test_json_carries_the_lead_vehicle_details_timeframe_and_employment() -> None:
    data = maria(
        vehicle=PackageVehicle(year=2026, make="Kia", model="Sorento", status="new"),
        trade_in=PackageTradeIn(year=2014, make="Ford", model="Focus", mileage=128500),
        purchase_timeframe="within_month",
        employment_status="full_time",
        months_employed=30,
        months_at_address=18,
    )
    doc = json.loads(render_json(data))
    assert doc["vehicle"]["status"] == "new"
    assert doc["trade_in"] == {
        "interest": "trade-in",
        "year": 2014,
        "make": "Ford",
        "model": "Focus",
        "mileage": 128500,
    }
    assert doc["purchase_timeframe"] == "within_month"
    assert doc["employment"] == {
        "status": "full_time",
        "months_employed": 30,
        "months_at_address": 18,
    }


def test_adf_request_date_converts_aware_times_to_utc() -> None:
    created = dt.datetime(2026, 11, 24, 17, 58, 21, 999, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    root = parse_adf(render_adf(maria(created_at=created)))
    assert text(root, f"{P}/requestdate") == "2026-11-24T23:58:21+00:00"


def test_adf_leaves_out_the_consent_page_url_and_credit_source() -> None:
    body = render_adf(maria())
    assert b"completecarloans.com/apply" not in body
    assert b"flexpath" not in body


def test_example_json() -> None:
    doc = json.loads(render_json(maria(comments="Call after 5pm")))
    assert list(doc) == [
        "schema",
        "lead_id",
        "created_at",
        "applicant",
        "vehicle",
        "finance",
        "credit",
        "score",
        "dealer",
        "consent",
        "source",
        "comments",
        "provider",
        "trade_in",
        "purchase_timeframe",
        "employment",
    ]
    assert doc == {
        "schema": JSON_SCHEMA,
        "lead_id": "0b7c2a4e-5d1f-4c3a-9e8b-1a2b3c4d5e6f",
        "created_at": "2026-11-24T23:58:21+00:00",
        "applicant": {
            "first_name": "Maria",
            "last_name": "Lopez",
            "email": "maria.lopez@example.com",
            "phone_e164": "+13125550182",
            "address": {
                "street": "100 Main St",
                "street2": "",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
                "country": "US",
            },
        },
        "vehicle": {
            "interest": "buy",
            "status": "used",
            "year": 2021,
            "make": "Toyota",
            "model": "Camry",
            "trim": "",
            "vin": "",
            "price_cents": None,
        },
        "finance": {
            "method": "finance",
            "down_payment_cents": 100000,
            "monthly_income_cents": 420000,
        },
        "credit": {
            "decision": "prequalified",
            "tier": "B",
            "score_band": "650-699",
            "max_payment_cents": 45050,
            "max_amount_cents": 1800000,
            "source": "flexpath",
        },
        "score": 82,
        "dealer": {"id": "dlr-42", "name": "Springfield Auto Mall"},
        "consent": {
            "tcpa": True,
            "consented_at": "2026-11-24T23:57:03+00:00",
            "certificate_id": "cert-7f3a",
            "page_url": "https://completecarloans.com/apply?utm=x",
        },
        "source": "website",
        "comments": "Call after 5pm",
        "provider": {
            "name": "Complete Car Loans",
            "service": "Auto loan prequalification",
            "url": "https://completecarloans.com",
            "email": "dealers@completecarloans.com",
        },
        "trade_in": None,
        "purchase_timeframe": "",
        "employment": {"status": "", "months_employed": 0, "months_at_address": 0},
    }


def test_json_without_credit_or_consent_time() -> None:
    data = maria(credit=None, consent=PackageConsent(tcpa=False), vehicle=PackageVehicle())
    doc = json.loads(render_json(data))
    assert doc["credit"] is None
    assert doc["consent"] == {
        "tcpa": False,
        "consented_at": None,
        "certificate_id": "",
        "page_url": "",
    }
    assert doc["vehicle"]["year"] is None
    assert doc["vehicle"]["price_cents"] is None


def test_json_is_deterministic_utf8_without_ascii_escapes() -> None:
    data = maria(first_name="José", last_name="Ñúñez 山田 🚗")
    body = render_json(data)
    assert body == render_json(data)
    assert "José".encode() in body
    assert "🚗".encode() in body


def test_render_picks_the_format_and_content_type() -> None:
    data = maria()
    assert render(data, "adf") == (render_adf(data), ADF_CONTENT_TYPE)
    assert render(data, "json") == (render_json(data), JSON_CONTENT_TYPE)
    assert ADF_CONTENT_TYPE == "application/xml"
    assert JSON_CONTENT_TYPE == "application/json"


@pytest.mark.parametrize("fmt", ["", "xml", "ADF", "Json", "csv"])
def test_render_rejects_other_formats(fmt: str) -> None:
    with pytest.raises(ValueError, match="unknown package format"):
        render(maria(), fmt)


# No date of birth, no SSN.

PRIVATE = re.compile(r"birth|dob|ssn|social", re.IGNORECASE)


def test_package_data_has_no_field_for_a_birth_date_or_ssn() -> None:
    classes = (PackageData, PackageVehicle, PackageTradeIn, PackageCredit, PackageConsent)
    names = [f.name for cls in classes for f in dataclasses.fields(cls)]
    assert not [name for name in names if PRIVATE.search(name)]


def test_no_birth_date_or_ssn_in_either_format() -> None:
    data = maria(comments="")
    root = parse_adf(render_adf(data))
    names = [e.tag for e in root.iter()] + [a for e in root.iter() for a in e.attrib]
    assert not [n for n in names if PRIVATE.search(n)]

    def keys(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [k for k, v in node.items() for k in [k, *keys(v)]]
        return []

    assert not [k for k in keys(json.loads(render_json(data))) if PRIVATE.search(k)]
    for body in (render_adf(data), render_json(data)):
        assert not PRIVATE.search(body.decode())
        # No date other than the lead's and the consent's.
        dates = set(re.findall(rb"\d{4}-\d{2}-\d{2}", body))
        assert dates == {b"2026-11-24"}


# Hostile text.

HOSTILE = [
    "<script>alert('x')</script> & \"quoted\" 'single'",
    "]]> <![CDATA[ x ]]> &amp; &#0; &lt;",
    "José Ñúñez",
    "🚗💨 👩\u200d👩\u200d👧 family",
    "مرحبا بالعالم \u202eevil\u202c",
    "שלום",
    "山田太郎 김민준",
    "tab\there\nnew line\r\ncrlf\rcr",
    "nul\x00 bell\x07 vt\x0b ff\x0c esc\x1b us\x1f",
    "lone \ud800 surrogate \udfff",
    "non-chars \ufffe \uffff kept \ufdd0 \U0001fffe",
    "   ",
    "",
    "x" * 100_000,
    "<&>\"'" * 5_000 + "ü" * 5_000,
]


def hostile_package(value: str) -> PackageData:
    return maria(
        **{name: value for name in STRING_FIELDS},
        vehicle=PackageVehicle(
            year=2020, make=value, model=value, trim=value, vin=value, price_cents=1, status=value
        ),
        trade_in=PackageTradeIn(year=2015, make=value, model=value, mileage=1),
        credit=PackageCredit(decision=value, tier=value, score_band=value, source=value),
        consent=PackageConsent(tcpa=True, certificate_id=value, page_url=value),
    )


def assert_adf_round_trips(data: PackageData) -> None:
    body = render_adf(data)
    assert body.startswith(DECLARATION)
    root = parse_adf(body)
    for name, path in ADF_PATHS.items():
        if path is None:
            continue
        expected = clean_text(getattr(data, name))
        if name in OPTIONAL_ELEMENTS and not expected:
            assert count(root, path) == 0, name
        else:
            assert count(root, path) == 1, name
            assert text(root, path) == expected, name
    v = data.vehicle
    buy = f"{P}/vehicle[@interest='buy']"
    assert text(root, f"{buy}/make") == clean_text(v.make)
    assert text(root, f"{buy}/model") == clean_text(v.model)
    assert text(root, f"{buy}/@status") == ("new" if v.status == "new" else "used")
    assert text(root, f"{P}/id/@source") == clean_text(data.provider_name)
    trade = f"{P}/vehicle[@interest='trade-in']"
    t = data.trade_in
    assert count(root, trade) == (0 if t is None else 1)
    if t is not None:
        assert text(root, f"{trade}/make") == clean_text(t.make)
        assert text(root, f"{trade}/model") == clean_text(t.model)
        assert text(root, f"{trade}/year") == (str(t.year) if t.year > 0 else "")
        assert text(root, f"{trade}/odometer") == (str(t.mileage) if t.mileage > 0 else "")
    # The vendor contact has an email or a phone (the DTD checks it) and says nothing false.
    vendor = f"{P}/vendor/contact"
    assert text(root, f"{vendor}/name") == clean_text(data.dealer_name)
    if clean_text(data.dealer_email) or not clean_text(data.dealer_phone):
        assert text(root, f"{vendor}/email") == clean_text(data.dealer_email)
    else:
        assert count(root, f"{vendor}/email") == 0
    timeframe = " ".join(clean_text(data.purchase_timeframe).split())
    assert count(root, f"{P}/customer/timeframe") == (1 if timeframe else 0)
    comments = text(root, f"{P}/customer/comments")
    employment = " ".join(clean_text(data.employment_status).split()) or "not given"
    assert f"\nEmployment: {employment}; months employed " in comments
    said = " ".join(clean_text(data.comments).split())
    assert comments.endswith(f"\nApplicant comments: {said}" if said else "")


def assert_json_round_trips(data: PackageData) -> None:
    doc = json.loads(render_json(data).decode("utf-8"))
    c = clean_text
    applicant = doc["applicant"]
    assert [applicant[k] for k in ("first_name", "last_name", "email", "phone_e164")] == [
        c(data.first_name),
        c(data.last_name),
        c(data.email),
        c(data.phone_e164),
    ]
    assert applicant["address"] == {
        "street": c(data.street),
        "street2": c(data.street2),
        "city": c(data.city),
        "state": c(data.state),
        "zip_code": c(data.zip_code),
        "country": "US",
    }
    assert doc["lead_id"] == c(data.lead_id)
    assert doc["dealer"] == {"id": c(data.dealer_id), "name": c(data.dealer_name)}
    assert doc["provider"] == {
        "name": c(data.provider_name),
        "service": c(data.provider_service),
        "url": c(data.provider_url),
        "email": c(data.provider_email),
    }
    assert doc["vehicle"]["status"] == ("new" if data.vehicle.status == "new" else "used")
    t = data.trade_in
    assert doc["trade_in"] == (
        None
        if t is None
        else {
            "interest": "trade-in",
            "year": t.year or None,
            "make": c(t.make),
            "model": c(t.model),
            "mileage": t.mileage or None,
        }
    )
    assert doc["purchase_timeframe"] == c(data.purchase_timeframe)
    assert doc["employment"] == {
        "status": c(data.employment_status),
        "months_employed": data.months_employed,
        "months_at_address": data.months_at_address,
    }
    assert [doc["source"], doc["comments"]] == [c(data.source), c(data.comments)]
    v = data.vehicle
    assert [doc["vehicle"][k] for k in ("make", "model", "trim", "vin")] == [
        c(v.make),
        c(v.model),
        c(v.trim),
        c(v.vin),
    ]
    if data.credit is not None:
        cr = data.credit
        assert [doc["credit"][k] for k in ("decision", "tier", "score_band", "source")] == [
            c(cr.decision),
            c(cr.tier),
            c(cr.score_band),
            c(cr.source),
        ]
    assert doc["consent"]["certificate_id"] == c(data.consent.certificate_id)
    assert doc["consent"]["page_url"] == c(data.consent.page_url)


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_text_stays_well_formed_and_round_trips(value: str) -> None:
    data = hostile_package(value)
    assert_adf_round_trips(data)
    assert_json_round_trips(data)


def test_hostile_text_is_escaped_not_interpreted() -> None:
    body = render_adf(maria(first_name='</name><name part="last">Evil', last_name="]]>"))
    root = parse_adf(body)
    assert count(root, f"{CONTACT}/name") == 2
    assert text(root, f"{CONTACT}/name[@part='first']") == '</name><name part="last">Evil'
    assert b"]]&gt;" in body


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("".join(map(chr, range(0x20))), "\t\n\r"),
        ("a\ud800b\udc00c\udbff\udfffd", "abcd"),
        ("a\ufffeb\uffffc", "abc"),
        (
            "\x7f\x80\x9f\u2028\ufdd0\ufffd\U0001f697\U0010ffff",
            "\x7f\x80\x9f\u2028\ufdd0\ufffd\U0001f697\U0010ffff",
        ),
        ("José Ñúñez", "José Ñúñez"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


# Properties over any text, including the characters XML cannot carry.

EDGY = st.sampled_from(list("\x00\x08\x0b\x0c\x1f\ufffe\uffff\ud800\udfff<>&\"']\r\n\t \u2028"))
CHARS = st.one_of(st.characters(exclude_categories=()), EDGY)
TEXT = st.one_of(
    st.text(CHARS, max_size=40),
    st.text(CHARS, min_size=200, max_size=2_000),  # long values
)
TIMES = st.datetimes(
    min_value=dt.datetime(1970, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.one_of(st.none(), st.timezones()),
)
CENTS = st.integers(min_value=0, max_value=10**12)
PACKAGES = st.builds(
    PackageData,
    created_at=TIMES,
    vehicle=st.builds(
        PackageVehicle,
        year=st.integers(min_value=0, max_value=9999),
        make=TEXT,
        model=TEXT,
        trim=TEXT,
        vin=TEXT,
        price_cents=CENTS,
        status=st.one_of(st.sampled_from(["new", "used", ""]), TEXT),
    ),
    trade_in=st.one_of(
        st.none(),
        st.builds(
            PackageTradeIn,
            year=st.integers(min_value=0, max_value=9999),
            make=TEXT,
            model=TEXT,
            mileage=st.integers(min_value=0, max_value=10**7),
        ),
    ),
    months_employed=st.integers(min_value=0, max_value=1200),
    months_at_address=st.integers(min_value=0, max_value=1200),
    down_payment_cents=CENTS,
    monthly_income_cents=CENTS,
    credit=st.one_of(
        st.none(),
        st.builds(
            PackageCredit,
            decision=TEXT,
            tier=TEXT,
            score_band=TEXT,
            max_payment_cents=CENTS,
            max_amount_cents=CENTS,
            source=TEXT,
        ),
    ),
    score=st.integers(min_value=0, max_value=100),
    consent=st.builds(
        PackageConsent,
        tcpa=st.booleans(),
        consented_at=st.one_of(st.none(), TIMES),
        certificate_id=TEXT,
        page_url=TEXT,
    ),
    purchase_timeframe=st.one_of(st.sampled_from(list(TIMEFRAME_DESCRIPTIONS)), TEXT),
    **{name: TEXT for name in STRING_FIELDS if name != "purchase_timeframe"},
)


@settings(max_examples=150, deadline=None)
@given(PACKAGES)
def test_any_package_renders_well_formed_adf_that_round_trips(data: PackageData) -> None:
    assert_adf_round_trips(data)


@settings(max_examples=150, deadline=None)
@given(PACKAGES)
def test_any_package_renders_json_that_round_trips(data: PackageData) -> None:
    assert_json_round_trips(data)


@given(TEXT)
def test_clean_text_leaves_only_xml_characters(value: str) -> None:
    cleaned = clean_text(value)
    assert clean_text(cleaned) == cleaned
    cleaned.encode("utf-8")
    element = etree.Element("x")
    element.text = cleaned  # lxml refuses any character XML 1.0 forbids
    assert all(ch in value for ch in cleaned)
