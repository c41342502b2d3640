"""Dealer packages: ADF 1.0 and JSON rendering, hostile text, properties over any input, no DOB."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from server.agents.lead_packaging.render import (
    ADF_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    JSON_SCHEMA,
    PackageConsent,
    PackageCredit,
    PackageData,
    PackageVehicle,
    clean_text,
    render,
    render_adf,
    render_json,
)

# The ADF 1.0 DTD for the elements a package uses, with the specification's typographic quotes
# fixed. One rule is relaxed: the spec wants an email or a phone in every <contact>, and we know
# neither for the dealer's vendor contact; the customer's email and phone are asserted apart.
ADF_DTD = """
<!ELEMENT adf (prospect+)>
<!ELEMENT prospect (id*, requestdate, vehicle+, customer, vendor, provider?)>
<!ATTLIST prospect status (new | resend) "new">
<!ELEMENT id (#PCDATA)>
<!ATTLIST id sequence CDATA #IMPLIED source CDATA #IMPLIED>
<!ELEMENT requestdate (#PCDATA)>
<!ELEMENT vehicle (id*, year, make, model, vin?, stock?, trim?, price?, finance?, comments?)>
<!ATTLIST vehicle interest (buy | lease | sell | trade-in | test-drive) "buy"
                  status (new | used) "new">
<!ELEMENT year (#PCDATA)>
<!ELEMENT make (#PCDATA)>
<!ELEMENT model (#PCDATA)>
<!ELEMENT vin (#PCDATA)>
<!ELEMENT stock (#PCDATA)>
<!ELEMENT trim (#PCDATA)>
<!ELEMENT price (#PCDATA)>
<!ATTLIST price type (quote | offer | msrp | invoice | call | appraisal | asking) "quote"
                currency CDATA #IMPLIED delta (absolute | relative | percentage) #IMPLIED
                relativeto (msrp | invoice) #IMPLIED source CDATA #IMPLIED>
<!ELEMENT finance (method, amount+, balance?)>
<!ELEMENT method (#PCDATA)>
<!ELEMENT amount (#PCDATA)>
<!ATTLIST amount type (downpayment | monthly | total) "total"
                 limit (maximum | minimum | exact) "maximum" currency CDATA #IMPLIED>
<!ELEMENT balance (#PCDATA)>
<!ATTLIST balance type (finance | residual) "finance" currency CDATA #IMPLIED>
<!ELEMENT customer (contact, id*, comments?)>
<!ELEMENT comments (#PCDATA)>
<!ELEMENT vendor (id*, vendorname, url?, contact)>
<!ELEMENT vendorname (#PCDATA)>
<!ELEMENT url (#PCDATA)>
<!ELEMENT provider (id*, name, service?, url?, email?, phone?, contact?)>
<!ELEMENT service (#PCDATA)>
<!ELEMENT contact (name+, email?, phone*, address?)>
<!ELEMENT name (#PCDATA)>
<!ATTLIST name part (surname | first | middle | last | full) "full"
               type (business | individual) "individual">
<!ELEMENT email (#PCDATA)>
<!ATTLIST email preferredcontact (0 | 1) "0">
<!ELEMENT phone (#PCDATA)>
<!ATTLIST phone type (voice | fax | cellphone | pager) "voice"
                time (morning | afternoon | evening | nopreference | day) "nopreference"
                preferredcontact (0 | 1) "0">
<!ELEMENT address (street+, apartment?, city?, regioncode?, postalcode?, country?)>
<!ATTLIST address type (work | home | delivery) #IMPLIED>
<!ELEMENT street (#PCDATA)>
<!ATTLIST street line CDATA #IMPLIED>
<!ELEMENT apartment (#PCDATA)>
<!ELEMENT city (#PCDATA)>
<!ELEMENT regioncode (#PCDATA)>
<!ELEMENT postalcode (#PCDATA)>
<!ELEMENT country (#PCDATA)>
"""
DTD = etree.DTD(io.StringIO(ADF_DTD))

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
    "source": None,
    "comments": None,
}
OPTIONAL_ELEMENTS = {"street2", "city", "state", "zip_code", "provider_service", "provider_url"}
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
        f"{P}/provider/service",
        f"{P}/provider/url",
    ):
        assert count(root, path) == 0, path


def test_example_adf_comments_summarise_credit_score_income_and_consent() -> None:
    root = parse_adf(render_adf(maria(comments="Call after 5pm please")))
    assert text(root, f"{P}/customer/comments").splitlines() == [
        "Credit: prequalified; tier B; score band 650-699",
        "Lead score: 82/100",
        "Monthly income: $4,200",
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
        "provider": {"name": "Complete Car Loans", "service": "", "url": ""},
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
    classes = (PackageData, PackageVehicle, PackageCredit, PackageConsent)
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
            year=2020, make=value, model=value, trim=value, vin=value, price_cents=1
        ),
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
    assert text(root, f"{P}/vehicle/make") == clean_text(v.make)
    assert text(root, f"{P}/vehicle/model") == clean_text(v.model)
    assert text(root, f"{P}/id/@source") == clean_text(data.provider_name)
    comments = text(root, f"{P}/customer/comments")
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
TEXT = st.text(st.one_of(st.characters(exclude_categories=()), EDGY), max_size=40)
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
    ),
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
    **{name: TEXT for name in STRING_FIELDS},
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
