"""Strict formats: ASCII digits for ZIP codes, YYYY-MM-DD dates only, printable ASCII
idempotency keys, parsed http(s) URLs and IP addresses, and visitor event fields no longer
than the columns they are stored in."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import peewee as pw
import pytest

from server.domain.identity import VisitorEventInput
from server.domain.leads import AddressInput, ConsentInput, LeadInput, TradeInInput
from server.domain.validation import (
    is_http_url,
    normalize_ip,
    parse_date,
    validate_idempotency_key,
    validate_lead,
)
from server.errors import InvalidArgumentError
from server.services.leads import validate_event
from server.storage import models as m

TODAY = dt.date(2026, 11, 24)


def lead(**changes: object) -> LeadInput:
    base = LeadInput(
        first_name="Maria",
        last_name="Lopez",
        email="maria.lopez@example.com",
        phone="(312) 555-0182",
        date_of_birth="1990-04-12",
        address=AddressInput(
            street="100 Main St", city="Springfield", state="IL", zip_code="62701"
        ),
        monthly_income_cents=420_000,
        consent=ConsentInput(tcpa=True, fcra_soft_pull=True, consent_text="I agree"),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def consent(**changes: object) -> ConsentInput:
    return dataclasses.replace(
        ConsentInput(tcpa=True, fcra_soft_pull=True, consent_text="I agree"),
        **changes,  # type: ignore[arg-type]
    )


def bad_fields(value: LeadInput) -> set[str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_lead(value, today=TODAY)
    assert e.value.reason == "INVALID_LEAD"
    return {v.field for v in e.value.violations}


# --- ZIP codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zip_code",
    [
        "\uff16\uff12\uff17\uff10\uff11",  # fullwidth 62701
        "\u0666\u0662\u0667\u0660\u0661",  # Arabic-Indic 62701
        "\u06f6\u06f2\u06f7\u06f0\u06f1",  # extended Arabic-Indic (Persian) 62701
        "6270\u0661",  # one Arabic-Indic digit
        "62701-\uff11\uff12\uff13\uff14",  # fullwidth +4
        "62701\n1234",
    ],
)
def test_zip_codes_take_ascii_digits_only(zip_code: str) -> None:
    address = AddressInput(street="1 St", city="X", state="IL", zip_code=zip_code)
    assert bad_fields(lead(address=address)) == {"lead.address.zip_code"}


@pytest.mark.parametrize("zip_code", ["62701", "62701-1234"])
def test_ascii_zip_codes_are_accepted(zip_code: str) -> None:
    address = AddressInput(street="1 St", city="X", state="IL", zip_code=zip_code)
    assert validate_lead(lead(address=address), today=TODAY).address.zip_code == zip_code


# --- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "1985-W24-6",  # ISO week date: 10 characters, like YYYY-MM-DD
        "1985W246",
        "1985-166",  # ISO ordinal date
        "19850614",  # ISO basic format
        "1985-06-14T00:00",
        "1985-06-14 00:00",
        "1985-6-14",
        "+1985-06-14",
        "\uff11\uff19\uff18\uff15-\uff10\uff16-\uff11\uff14",  # fullwidth
        "1985-06-1\u0664",  # an Arabic-Indic digit
        "1985-02-30",
    ],
)
def test_dates_are_yyyy_mm_dd_only(value: str) -> None:
    with pytest.raises(ValueError):
        parse_date(value)
    assert bad_fields(lead(date_of_birth=value)) == {"lead.date_of_birth"}


def test_yyyy_mm_dd_is_parsed() -> None:
    assert parse_date("1985-06-14") == dt.date(1985, 6, 14)
    valid = validate_lead(lead(date_of_birth="1985-06-14"), today=TODAY)
    assert valid.date_of_birth == dt.date(1985, 6, 14)


# --- idempotency keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["web-7f1c2a\n", "web-7f1c2a\r\n", "\nweb-7f1c2a", "web\n7f1c2a", "web-7f1c2a\x7f"]
)
def test_idempotency_keys_with_a_newline_or_control_character_are_refused(key: str) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        validate_idempotency_key(key)
    assert e.value.reason == "INVALID_IDEMPOTENCY_KEY"
    assert [v.field for v in e.value.violations] == ["idempotency_key"]


# --- page URLs ----------------------------------------------------------------------------

GOOD_URLS = [
    "https://completecarloans.com/apply",
    "http://localhost:8080/apply?step=2#top",
    "HTTPS://CompleteCarLoans.com/apply",
    "https://[2001:db8::1]/apply",
    "https://x.com/" + "a" * (2048 - len("https://x.com/")),  # exactly 2048
]
BAD_URLS = [
    "https://completecarloans.com/ap\nply",
    "https://completecarloans.com/ap\rply",
    "https://completecarloans.com/ap\tply",
    "https://completecarloans.com/ap ply",
    "https://completecarloans.com/ap\u00a0ply",  # no-break space
    "https://completecarloans.com/ap\u0085ply",  # C1 control (next line)
    "https://complete\ncarloans.com/apply",
    "javascript:alert(1)",
    "JavaScript://completecarloans.com/%0aalert(1)",
    "ftp://completecarloans.com/apply",
    "data:text/html,<script>x</script>",
    "//completecarloans.com/apply",
    "completecarloans.com/apply",
    "https://",
    "http:///apply",
    "https://completecarloans.com:99999/apply",
    "https://completecarloans.com:port/apply",
    "https://[2001:db8::1/apply",
    "https://x.com/" + "a" * (2049 - len("https://x.com/")),  # 2049
]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_http_urls_are_accepted(url: str) -> None:
    assert is_http_url(url)
    valid = validate_lead(lead(consent=consent(page_url=url)), today=TODAY)
    assert valid.consent.page_url == url


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_page_urls_are_refused(url: str) -> None:
    assert not is_http_url(url)
    assert bad_fields(lead(consent=consent(page_url=url))) == {"lead.consent.page_url"}


# --- IP addresses -------------------------------------------------------------------------

BAD_IPS = [
    "<script>x</script>",
    "fe80::1%eth0",  # zone id: an interface of the sender's host
    "fe80::1%<script>x</script>",
    "fe80::1%" + "x" * 100,
    "1.2.3.4.5",
    "01.2.3.4",
    "\u0661.\u0662.\u0663.\u0664",
    "1.2.3.4/24",
    "1" * 65,
]


@pytest.mark.parametrize("ip", BAD_IPS)
def test_bad_ip_addresses_are_refused(ip: str) -> None:
    with pytest.raises(ValueError):
        normalize_ip(ip)
    assert bad_fields(lead(consent=consent(ip_address=ip))) == {"lead.consent.ip_address"}


@pytest.mark.parametrize(
    ("ip", "normalised"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:DB8:0000::0001", "2001:db8::1"),
        ("::FFFF:203.0.113.9", "::ffff:cb00:7109"),
    ],
)
def test_ip_addresses_are_stored_normalised(ip: str, normalised: str) -> None:
    assert normalize_ip(ip) == normalised
    valid = validate_lead(lead(consent=consent(ip_address=ip)), today=TODAY)
    assert valid.consent.ip_address == normalised
    assert validate_event(event(ip_address=ip)).ip_address == normalised


# --- visitor events -----------------------------------------------------------------------


def event(**changes: Any) -> VisitorEventInput:
    return dataclasses.replace(
        VisitorEventInput(anonymous_id="anon-1", event_type="page_view"), **changes
    )


def event_fields(value: VisitorEventInput) -> set[str]:
    with pytest.raises(InvalidArgumentError) as e:
        validate_event(value)
    assert e.value.reason == "INVALID_VISITOR_EVENT"
    fields = [v.field for v in e.value.violations]
    assert len(fields) == len(set(fields)), "one violation per field"
    return set(fields)


# (VisitorEventInput attribute, request path, longest accepted value)
EVENT_LIMITS = [
    ("anonymous_id", "anonymous_id", 128),
    ("event_id", "event_id", 128),
    ("page_url", "page.url", 2048),
    ("page_path", "page.path", 2048),
    ("referrer", "page.referrer", 2048),
    ("page_title", "page.title", 320),
    ("utm_source", "campaign.source", 200),
    ("utm_medium", "campaign.medium", 200),
    ("utm_campaign", "campaign.name", 200),
    ("utm_term", "campaign.term", 200),
    ("utm_content", "campaign.content", 200),
    ("user_agent", "user_agent", 1000),
    ("email", "email", 320),
    ("phone", "phone", 320),
    ("step", "step", 64),
]


@pytest.mark.parametrize(("name", "path", "limit"), EVENT_LIMITS)
def test_visitor_event_text_at_and_over_its_limit(name: str, path: str, limit: int) -> None:
    assert getattr(validate_event(event(**{name: "x" * limit})), name) == "x" * limit
    assert event_fields(event(**{name: "x" * (limit + 1)})) == {path}


@pytest.mark.parametrize(("name", "path", "limit"), EVENT_LIMITS)
def test_visitor_event_limits_fit_their_columns(name: str, path: str, limit: int) -> None:
    column = getattr(m.VisitorEvent, name, None) or getattr(m.Visitor, name, None)
    if isinstance(column, pw.CharField):
        assert limit <= column.max_length, f"{path} is longer than its column"


def test_visitor_event_reports_every_bad_field_at_once() -> None:
    bad = event(
        anonymous_id=" ",
        event_type="",
        utm_campaign="c" * 201,
        step="s" * 65,
        ip_address="<script>x</script>",
        page_title="a\x00b",
    )
    assert event_fields(bad) == {
        "anonymous_id",
        "event_type",
        "campaign.name",
        "step",
        "ip_address",
        "page.title",
    }


@pytest.mark.parametrize("ip", BAD_IPS)
def test_visitor_event_ip_addresses_are_parsed(ip: str) -> None:
    assert event_fields(event(ip_address=ip)) == {"ip_address"}


def test_visitor_event_values_are_trimmed() -> None:
    valid = validate_event(event(anonymous_id=" anon-1 ", step=" income\n", ip_address=" ::1 "))
    assert (valid.anonymous_id, valid.step, valid.ip_address) == ("anon-1", "income", "::1")


# --- trade-in, purchase timeframe, vehicle status ---------------------------------------------


def test_vehicle_details_are_optional() -> None:
    valid = validate_lead(lead(), today=TODAY)
    assert (valid.trade_in, valid.purchase_timeframe, valid.vehicle_status) == (None, "", "")


def test_vehicle_details_are_kept_normalised() -> None:
    valid = validate_lead(
        lead(
            trade_in=TradeInInput(year=2012, make=" Honda ", model=" Fit ", mileage=141000),
            purchase_timeframe=" Within_Month ",
            vehicle_status="NEW",
        ),
        today=TODAY,
    )
    assert valid.trade_in == TradeInInput(year=2012, make="Honda", model="Fit", mileage=141000)
    assert (valid.purchase_timeframe, valid.vehicle_status) == ("within_month", "new")


@pytest.mark.parametrize(
    ("trade_in", "fields"),
    [
        (TradeInInput(), {"lead.trade_in.make"}),
        (TradeInInput(make="Honda", year=1949), {"lead.trade_in.year"}),
        (TradeInInput(make="Honda", year=TODAY.year + 2), {"lead.trade_in.year"}),
        (TradeInInput(make="Honda", mileage=-1), {"lead.trade_in.mileage"}),
        (TradeInInput(make="Honda", mileage=2_000_001), {"lead.trade_in.mileage"}),
        (
            TradeInInput(make="H" * 65, model="M" * 65),
            {"lead.trade_in.make", "lead.trade_in.model"},
        ),
        (
            TradeInInput(make="Hon\x00da", model="Fi\x1bt"),
            {"lead.trade_in.make", "lead.trade_in.model"},
        ),
    ],
)
def test_bad_trade_ins_are_refused(trade_in: TradeInInput, fields: set[str]) -> None:
    assert bad_fields(lead(trade_in=trade_in)) == fields


def test_trade_in_limits_are_accepted() -> None:
    trade_in = TradeInInput(year=1950, make="H" * 64, model="M" * 64, mileage=2_000_000)
    assert validate_lead(lead(trade_in=trade_in), today=TODAY).trade_in == trade_in
    later = TradeInInput(year=TODAY.year + 1, make="Kia")
    assert validate_lead(lead(trade_in=later), today=TODAY).trade_in == later


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"purchase_timeframe": "soon"}, "lead.purchase_timeframe"),
        ({"purchase_timeframe": "within_year"}, "lead.purchase_timeframe"),
        ({"vehicle_status": "certified"}, "lead.vehicle_status"),
        ({"vehicle_status": "unspecified"}, "lead.vehicle_status"),
    ],
)
def test_unknown_timeframes_and_vehicle_statuses_are_refused(
    changes: dict[str, str], field: str
) -> None:
    assert bad_fields(lead(**changes)) == {field}


def test_income_is_required_so_a_misspelt_field_is_never_a_silent_zero() -> None:
    with pytest.raises(InvalidArgumentError) as e:
        validate_lead(lead(monthly_income_cents=0), today=TODAY)
    assert [v.field for v in e.value.violations] == ["lead.monthly_income_cents"]
    assert validate_lead(lead(monthly_income_cents=1), today=TODAY).monthly_income_cents == 1
