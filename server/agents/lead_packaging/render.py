"""Dealer lead packages: one lead rendered as ADF 1.0 XML or as JSON (pure, no I/O).

A package carries what a dealer needs to call the applicant and structure a deal: contact
details, the vehicle, down payment, monthly income, a credit summary, the lead score and the
TCPA consent evidence. It never carries a date of birth or any SSN: `PackageData` has no field
for either, so neither format can leak them.

Both formats carry the same text. Every string is first cleaned of the characters XML 1.0
cannot represent (most C0 controls, lone surrogates, U+FFFE and U+FFFF); all other unicode is
kept as is.

JSON shape (`ccl.lead_package.v1`; keys in this order, money in integer cents, times ISO 8601
with offset, strings `""` when not given, numbers `null` when unknown)::

    {
      "schema": "ccl.lead_package.v1",
      "lead_id": str,
      "created_at": "2026-11-24T23:58:21+00:00",
      "applicant": {"first_name", "last_name", "email", "phone_e164",
                    "address": {"street", "street2", "city", "state", "zip_code", "country"}},
      "vehicle": {"interest": "buy", "status": "new" | "used", "year": int | null, "make",
                  "model", "trim", "vin", "price_cents": int | null},
      "finance": {"method": "finance", "down_payment_cents": int, "monthly_income_cents": int},
      "credit": {"decision", "tier", "score_band", "max_payment_cents", "max_amount_cents",
                 "source"} | null,
      "score": int,
      "dealer": {"id", "name"},
      "consent": {"tcpa": bool, "consented_at": str | null, "certificate_id", "page_url"},
      "source": str,
      "comments": str,
      "provider": {"name", "service", "url", "email"},
      "trade_in": {"interest": "trade-in", "year": int | null, "make", "model",
                   "mileage": int | null} | null,
      "purchase_timeframe": "within_week" | "within_month" | "within_3_months" | "later" | "",
      "employment": {"status", "months_employed": int, "months_at_address": int},
      "origin": {"channel": "dealer", "dealer_id": str},     only when the dealer sent us the lead
      "test": true                                            only on a TestDelivery sample
    }

The last two keys appear only when they apply, so that every other package stays exactly as
`ccl.lead_package.v1` has always been (dealers' parsers that list the keys keep working). A lead
a dealer sent us (its webhook, or its own API key) goes back to that dealer only, with its
prequalification: `origin` says so, so the dealer recognises its own customer. A sample sent by
`DealerService.TestDelivery` (`sample_package`) carries `"test": true`, a lead id (and
`webhook-id`) starting with `test_` and a made-up sandbox applicant; it is not a lead.

ADF: every package is valid against the public ADF 1.0 DTD (the SendADF project's copy with
its typographic errors repaired, `tests/support/adf-1.0.dtd`). The prospect's `<id>` is our
lead id (`source="Complete Car Loans"`); the vehicle of interest carries the lead's status
(new/used; used when not given) and `interest="buy"`; a trade-in is a second `<vehicle
interest="trade-in">`; the customer carries the purchase `<timeframe>` (a description: the DTD
makes it text) and `<comments>` (credit, score, income, employment, time at address, consent);
the vendor is the dealer, its `<contact>` with the dealer's email and phone; the provider is
CCL with its service, URL and a contact. A lead the dealer sent us opens its `<comments>` with a
`Lead origin:` line naming the dealer; a TestDelivery sample opens them with a `TEST PACKAGE`
line, and its prospect `<id>` (source `Complete Car Loans test`) starts with `test_`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from lxml import etree

__all__ = [
    "ADF_CONTENT_TYPE",
    "DEALER_CHANNEL",
    "FORMATS",
    "JSON_CONTENT_TYPE",
    "JSON_SCHEMA",
    "PROVIDER_NAME",
    "PackageConsent",
    "PackageCredit",
    "PackageData",
    "PackageOrigin",
    "PackageTradeIn",
    "PackageVehicle",
    "clean_text",
    "render",
    "render_adf",
    "render_json",
    "sample_package",
]

# RFC 7303 prefers application/xml to text/xml: with text/* a missing charset parameter means
# US-ASCII to some HTTP clients, while application/xml leaves the encoding to the XML
# declaration, which says UTF-8. (The unregistered application/x-adf+xml is unknown to most
# dealer CRMs.)
ADF_CONTENT_TYPE = "application/xml"
# RFC 8259: JSON is UTF-8 and the media type has no charset parameter.
JSON_CONTENT_TYPE = "application/json"
JSON_SCHEMA = "ccl.lead_package.v1"
FORMATS = ("adf", "json")
PROVIDER_NAME = "Complete Car Loans"
PROVIDER_SERVICE = "Auto loan prequalification"
PROVIDER_URL = "https://completecarloans.com"
PROVIDER_EMAIL = "dealers@completecarloans.com"
PROVIDER_CONTACT_NAME = "Complete Car Loans Dealer Support"
# The prospect <id> source of a TestDelivery sample, so a CRM that files leads by it never
# mixes a sample with real leads.
TEST_ID_SOURCE = "Complete Car Loans test"
TEST_COMMENT = "TEST PACKAGE: a made-up applicant sent by TestDelivery; not a lead, do not contact"
# The channel of a lead a dealer sent us (its webhook or its own API key).
DEALER_CHANNEL = "dealer"
# ADF's <timeframe> is text in the 1.0 DTD: the lead's timeframe as a dealer reads it.
TIMEFRAME_DESCRIPTIONS = {
    "within_week": "Within a week",
    "within_month": "Within a month",
    "within_3_months": "Within 3 months",
    "later": "More than 3 months",
}

# lxml writes the declaration with single quotes; dealer parsers that match it literally
# expect the form the ADF specification shows, so it is written as this fixed header.
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
# Everything outside XML 1.0's `Char` production; the surrogate range also catches lone
# surrogates, which no UTF-8 encoder accepts either.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_COUNTRY = "US"
_CURRENCY = "USD"

D = TypeVar("D", bound="DataclassInstance")


@dataclass(frozen=True, kw_only=True)
class PackageVehicle:
    """The vehicle the applicant asked about; `""` and 0 mean not known."""

    year: int = 0
    make: str = ""
    model: str = ""
    trim: str = ""
    vin: str = ""
    price_cents: int = 0
    status: str = ""  # "new" or "used"; anything else is rendered as "used"


@dataclass(frozen=True, kw_only=True)
class PackageTradeIn:
    """The vehicle the applicant means to trade in; `""` and 0 mean not known."""

    year: int = 0
    make: str = ""
    model: str = ""
    mileage: int = 0


@dataclass(frozen=True, kw_only=True)
class PackageCredit:
    """The dealer-facing credit summary: no bureau data, no reference ids."""

    decision: str
    tier: str
    score_band: str
    max_payment_cents: int = 0
    max_amount_cents: int = 0
    source: str = ""


@dataclass(frozen=True, kw_only=True)
class PackageConsent:
    """TCPA consent evidence, so the dealer may call or text the applicant."""

    tcpa: bool
    consented_at: dt.datetime | None = None
    certificate_id: str = ""
    page_url: str = ""


@dataclass(frozen=True, kw_only=True)
class PackageOrigin:
    """Where a lead came from, when that is not CCL's own channels: `dealer_id` sent it to us."""

    channel: str
    dealer_id: str


@dataclass(frozen=True, kw_only=True)
class PackageData:
    """Everything a dealer package holds. Naive datetimes are UTC."""

    lead_id: str
    created_at: dt.datetime
    first_name: str
    last_name: str
    email: str
    phone_e164: str
    street: str = ""
    street2: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    vehicle: PackageVehicle = field(default_factory=PackageVehicle)
    down_payment_cents: int = 0
    monthly_income_cents: int = 0
    credit: PackageCredit | None = None
    score: int = 0
    dealer_id: str
    dealer_name: str
    consent: PackageConsent
    source: str = ""
    comments: str = ""
    provider_name: str = PROVIDER_NAME
    provider_service: str = PROVIDER_SERVICE
    provider_url: str = PROVIDER_URL
    provider_email: str = PROVIDER_EMAIL
    dealer_email: str = ""
    dealer_phone: str = ""
    trade_in: PackageTradeIn | None = None
    purchase_timeframe: str = ""
    employment_status: str = ""
    months_employed: int = 0
    months_at_address: int = 0
    # Set when a dealer sent us this lead: it goes back to that dealer, labelled as its own.
    origin: PackageOrigin | None = None
    # A TestDelivery sample, not a lead.
    test: bool = False


def clean_text(value: str) -> str:
    """Drop the characters XML 1.0 cannot carry; keep every other character."""
    return _NOT_XML_CHAR.sub("", value)


def render(data: PackageData, fmt: str) -> tuple[bytes, str]:
    """The package in `fmt` ("adf" or "json") and its content type."""
    if fmt == "adf":
        return render_adf(data), ADF_CONTENT_TYPE
    if fmt == "json":
        return render_json(data), JSON_CONTENT_TYPE
    raise ValueError(f"unknown package format {fmt!r}; expected one of {', '.join(FORMATS)}")


def sample_package(
    fmt: str,
    *,
    sample_id: str,
    created_at: dt.datetime,
    dealer_id: str,
    dealer_name: str,
    dealer_email: str = "",
    dealer_phone: str = "",
) -> tuple[bytes, str]:
    """A TestDelivery sample in `fmt` and its content type, rendered as a real package is.

    The applicant is made up and obviously so: the credit simulation's sandbox last name
    `Prequalified` (docs/flexpath.md), an `example.com` email (RFC 2606), a 555-01xx phone
    number (reserved for fiction) and a placeholder street. `sample_id` (the `webhook-id`,
    starting with `test_`) stands in for the lead id."""
    data = PackageData(
        lead_id=sample_id,
        created_at=created_at,
        first_name="Sample",
        last_name="Prequalified",
        email="sample.prequalified@example.com",
        phone_e164="+13125550100",
        street="123 Sample Street",
        city="Springfield",
        state="IL",
        zip_code="62701",
        vehicle=PackageVehicle(year=2021, make="Toyota", model="Camry", status="used"),
        down_payment_cents=150_000,
        monthly_income_cents=400_000,
        credit=PackageCredit(
            decision="prequalified",
            tier="B",
            score_band="660-699",
            max_payment_cents=48_000,
            max_amount_cents=2_000_000,
            source="simulated",
        ),
        score=75,
        dealer_id=dealer_id,
        dealer_name=dealer_name,
        dealer_email=dealer_email,
        dealer_phone=dealer_phone,
        consent=PackageConsent(
            tcpa=True,
            consented_at=created_at,
            certificate_id="test-certificate",
            page_url=PROVIDER_URL + "/apply",
        ),
        source="test",
        purchase_timeframe="within_month",
        employment_status="employed",
        months_employed=24,
        months_at_address=36,
        test=True,
    )
    return render(data, fmt)


def render_adf(data: PackageData) -> bytes:
    """The package as an ADF 1.0 document in UTF-8, elements in the order the DTD gives."""
    from lxml import etree  # lazy: lxml costs ~5 MB, which an idle server need not hold

    d = _cleaned(data)
    adf = etree.Element("adf")
    adf.addprevious(etree.ProcessingInstruction("adf", 'version="1.0"'))
    prospect = _sub(adf, "prospect", status="new")
    _sub(
        prospect,
        "id",
        d.lead_id,
        sequence="1",
        source=TEST_ID_SOURCE if d.test else d.provider_name,
    )
    _sub(prospect, "requestdate", _iso(d.created_at))
    _add_vehicle(prospect, d)
    _add_customer(prospect, d)

    vendor = _sub(prospect, "vendor")
    _sub(vendor, "id", d.dealer_id, source=d.provider_name)
    _sub(vendor, "vendorname", d.dealer_name)
    # The DTD requires a vendor contact with an email or a phone. CRMs that ignore
    # <vendorname> read the dealer here. A dealer record without either gets an empty <email>,
    # the one form the DTD allows that states nothing false.
    contact = _sub(vendor, "contact")
    _sub(contact, "name", d.dealer_name, part="full", type="business")
    if d.dealer_email or not d.dealer_phone:
        _sub(contact, "email", d.dealer_email)
    if d.dealer_phone:
        _sub(contact, "phone", d.dealer_phone, type="voice")

    provider = _sub(prospect, "provider")
    _sub(provider, "name", d.provider_name, part="full", type="business")
    if d.provider_service:
        _sub(provider, "service", d.provider_service)
    if d.provider_url:
        _sub(provider, "url", d.provider_url)
    if d.provider_email:
        _sub(provider, "email", d.provider_email)
        contact = _sub(provider, "contact")
        _sub(contact, "name", PROVIDER_CONTACT_NAME, part="full", type="business")
        _sub(contact, "email", d.provider_email)

    body = etree.tostring(
        adf.getroottree(), encoding="UTF-8", xml_declaration=False, pretty_print=True
    )
    return _XML_DECLARATION + body


def render_json(data: PackageData) -> bytes:
    """The package as a `ccl.lead_package.v1` JSON document in UTF-8 (shape in the docstring)."""
    d = _cleaned(data)
    v = d.vehicle
    c = d.credit
    t = d.trade_in
    consented_at = d.consent.consented_at
    credit = (
        None
        if c is None
        else {
            "decision": c.decision,
            "tier": c.tier,
            "score_band": c.score_band,
            "max_payment_cents": c.max_payment_cents,
            "max_amount_cents": c.max_amount_cents,
            "source": c.source,
        }
    )
    doc: dict[str, Any] = {
        "schema": JSON_SCHEMA,
        "lead_id": d.lead_id,
        "created_at": _iso(d.created_at),
        "applicant": {
            "first_name": d.first_name,
            "last_name": d.last_name,
            "email": d.email,
            "phone_e164": d.phone_e164,
            "address": {
                "street": d.street,
                "street2": d.street2,
                "city": d.city,
                "state": d.state,
                "zip_code": d.zip_code,
                "country": _COUNTRY,
            },
        },
        "vehicle": {
            "interest": "buy",
            "status": _status(v),
            "year": v.year or None,
            "make": v.make,
            "model": v.model,
            "trim": v.trim,
            "vin": v.vin,
            "price_cents": v.price_cents or None,
        },
        "finance": {
            "method": "finance",
            "down_payment_cents": d.down_payment_cents,
            "monthly_income_cents": d.monthly_income_cents,
        },
        "credit": credit,
        "score": d.score,
        "dealer": {"id": d.dealer_id, "name": d.dealer_name},
        "consent": {
            "tcpa": d.consent.tcpa,
            "consented_at": None if consented_at is None else _iso(consented_at),
            "certificate_id": d.consent.certificate_id,
            "page_url": d.consent.page_url,
        },
        "source": d.source,
        "comments": d.comments,
        "provider": {
            "name": d.provider_name,
            "service": d.provider_service,
            "url": d.provider_url,
            "email": d.provider_email,
        },
        "trade_in": None
        if t is None
        else {
            "interest": "trade-in",
            "year": t.year or None,
            "make": t.make,
            "model": t.model,
            "mileage": t.mileage or None,
        },
        "purchase_timeframe": d.purchase_timeframe,
        "employment": {
            "status": d.employment_status,
            "months_employed": d.months_employed,
            "months_at_address": d.months_at_address,
        },
    }
    if d.origin is not None:
        doc["origin"] = {"channel": d.origin.channel, "dealer_id": d.origin.dealer_id}
    if d.test:
        doc["test"] = True
    return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _add_vehicle(prospect: etree._Element, d: PackageData) -> None:
    v = d.vehicle
    vehicle = _sub(prospect, "vehicle", interest="buy", status=_status(v))
    # year, make and model are required by the DTD even when the applicant gave none.
    _sub(vehicle, "year", str(v.year) if v.year > 0 else "")
    _sub(vehicle, "make", v.make)
    _sub(vehicle, "model", v.model)
    if v.vin:
        _sub(vehicle, "vin", v.vin)
    if v.trim:
        _sub(vehicle, "trim", v.trim)
    if v.price_cents > 0:
        _sub(vehicle, "price", _dollars(v.price_cents), type="asking", currency=_CURRENCY)

    finance = _sub(vehicle, "finance")
    _sub(finance, "method", "finance")
    # ADF's amount types are downpayment, monthly and total; `limit` says how to read each.
    _sub(
        finance,
        "amount",
        _dollars(d.down_payment_cents),
        type="downpayment",
        limit="exact",
        currency=_CURRENCY,
    )
    c = d.credit
    if c is not None and c.max_payment_cents > 0:
        _sub(
            finance,
            "amount",
            _dollars(c.max_payment_cents),
            type="monthly",
            limit="maximum",
            currency=_CURRENCY,
        )
    if c is not None and c.max_amount_cents > 0:
        _sub(
            finance,
            "amount",
            _dollars(c.max_amount_cents),
            type="total",
            limit="maximum",
            currency=_CURRENCY,
        )

    t = d.trade_in
    if t is not None:
        trade = _sub(prospect, "vehicle", interest="trade-in", status="used")
        _sub(trade, "year", str(t.year) if t.year > 0 else "")
        _sub(trade, "make", t.make)
        _sub(trade, "model", t.model)
        if t.mileage > 0:
            _sub(trade, "odometer", str(t.mileage), units="mi")


def _status(v: PackageVehicle) -> str:
    return "new" if v.status == "new" else "used"


def _add_customer(prospect: etree._Element, d: PackageData) -> None:
    customer = _sub(prospect, "customer")
    contact = _sub(customer, "contact")
    _sub(contact, "name", d.first_name, part="first")
    _sub(contact, "name", d.last_name, part="last")
    _sub(contact, "email", d.email)
    _sub(contact, "phone", d.phone_e164, type="voice")
    address = _sub(contact, "address")
    _sub(address, "street", d.street, line="1")
    if d.street2:
        _sub(address, "street", d.street2, line="2")
    if d.city:
        _sub(address, "city", d.city)
    if d.state:
        _sub(address, "regioncode", d.state)
    if d.zip_code:
        _sub(address, "postalcode", d.zip_code)
    _sub(address, "country", _COUNTRY)
    if timeframe := _timeframe(d.purchase_timeframe):
        _sub(customer, "timeframe", timeframe)
    _sub(customer, "comments", _summary(d))


def _timeframe(value: str) -> str:
    return TIMEFRAME_DESCRIPTIONS.get(value) or _one_line(value)


def _summary(d: PackageData) -> str:
    """The dealer's one-glance view: credit, score, income, consent, then the applicant's words.

    Each value is put on one line, so text from the web form cannot forge a summary line.
    """
    c = d.credit
    if c is None:
        credit = "Credit: not checked"
    else:
        credit = (
            f"Credit: {_one_line(c.decision) or 'unknown'};"
            f" tier {_one_line(c.tier) or 'none'};"
            f" score band {_one_line(c.score_band) or 'none'}"
        )
    consented_at = d.consent.consented_at
    if d.consent.tcpa:
        when = "time unknown" if consented_at is None else _iso(consented_at)
        cert = _one_line(d.consent.certificate_id) or "none"
        consent = f"TCPA consent: granted {when}; certificate {cert}"
    else:
        consent = "TCPA consent: not granted"
    lines = []
    if d.test:
        lines.append(TEST_COMMENT)
    if d.origin is not None:
        lines.append(
            f"Lead origin: sent to us by {_one_line(d.origin.channel)}"
            f" {_one_line(d.origin.dealer_id)} (your own lead, returned with its credit result)"
        )
    lines += [
        credit,
        f"Lead score: {d.score}/100",
        f"Monthly income: ${d.monthly_income_cents // 100:,}",
        f"Employment: {_one_line(d.employment_status) or 'not given'};"
        f" months employed {_months(d.months_employed)}",
        f"Months at address: {_months(d.months_at_address)}",
        consent,
    ]
    if source := _one_line(d.source):
        lines.append(f"Lead source: {source}")
    if said := _one_line(d.comments):
        lines.append(f"Applicant comments: {said}")
    return "\n".join(lines)


def _months(months: int) -> str:
    return str(months) if months > 0 else "not given"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = parent.makeelement(tag, attrs)  # what etree.SubElement does, a little faster
    parent.append(child)
    if text is not None:
        child.text = text
    return child


def _dollars(cents: int) -> str:
    # Whole dollars, rounded down, so no amount is ever overstated to the dealer.
    return str(cents // 100)


def _iso(ts: dt.datetime) -> str:
    aware = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    return aware.isoformat(timespec="seconds")


def _cleaned(obj: D) -> D:
    """A copy of a package dataclass with `clean_text` applied to every string, at any depth."""
    changes: dict[str, object] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, str):
            changes[f.name] = clean_text(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = _cleaned(value)
    return dataclasses.replace(obj, **changes)
