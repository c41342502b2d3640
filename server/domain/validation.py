"""Lead validation: every bad field reported at once, every good value normalised.

Emails go through email-validator (syntax only, no DNS), phones through
phonenumbers (to E.164), IP addresses through `ipaddress` and URLs through
`urllib.parse`. Violations name fields by their request path, for example
`lead.address.zip_code`, so REST and gRPC callers can point at them.

Every text field has a length limit no larger than the column it is stored in
(`server/storage/models.py`). Patterns are matched whole (`fullmatch`, as `$` also
matches before a final newline) with ASCII classes (`[0-9]`: the regex digit class also
matches fullwidth or Arabic-Indic digits).

Text that people read in a dealer's package (names, address lines, employment, vehicle and
trade-in, certificate id; a dealer's name) goes through `Collector.display_text`, which also
refuses invisible formatting characters (`invisible_formatting`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import unicodedata
from urllib.parse import urlsplit

from server.domain.leads import (
    AddressInput,
    ConsentInput,
    LeadInput,
    PurchaseTimeframe,
    TradeInInput,
    ValidLead,
    VehicleInput,
    VehicleStatus,
)
from server.errors import FieldViolation, InvalidArgumentError

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH "
    "NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY".split()
)
# Used with fullmatch only.
_ZIP = re.compile(r"[0-9]{5}(?:-[0-9]{4})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VIN = re.compile(r"[A-HJ-NPR-Z0-9]{17}")
MIN_TRADE_IN_YEAR = 1950
MAX_TRADE_IN_MILEAGE = 2_000_000
_PRINTABLE_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# C0 and C1 control characters and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Invisible formatting: Unicode's format characters (category Cf: the bidirectional embeddings,
# overrides, isolates and marks, U+061C, zero-width space and joiners, word joiner, soft hyphen,
# byte-order mark, invisible operators, tags...) and the line and paragraph separators. In a name
# or an address they reorder or hide what a dealer reads ("Trojan Source" spoofing), or make two
# values that look the same differ (defeating duplicate checks and search).
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Zl", "Zp"})
# Except ZWNJ (U+200C) and ZWJ (U+200D) right after a letter or mark of a script that spells
# with them: Persian and other Arabic-script languages (ZWNJ inside a word), Syriac,
# N'Ko, the Indic scripts (half forms and conjuncts; Malayalam's older chillu spelling ends a word
# with ZWJ), Sinhala, Tibetan, Myanmar, Khmer, Mongolian. After anything else (a Latin letter, a
# space, the start) they only hide something.
_JOINERS = frozenset("\u200c\u200d")
_JOINING_SCRIPTS = (
    "ARABIC",
    "SYRIAC",
    "NKO",
    "DEVANAGARI",
    "BENGALI",
    "GURMUKHI",
    "GUJARATI",
    "ORIYA",
    "TAMIL",
    "TELUGU",
    "KANNADA",
    "MALAYALAM",
    "SINHALA",
    "TIBETAN",
    "MYANMAR",
    "KHMER",
    "MONGOLIAN",
)
INVISIBLE_DESCRIPTION = (
    "must not contain invisible formatting characters "
    "(bidirectional controls, zero-width characters, soft hyphens)"
)

MAX_URL_LENGTH = 2048
# Characters RFC 3986 never allows unencoded in a URL (a userinfo with them would also defeat
# the redaction of logged URLs).
_NOT_IN_URLS = frozenset('"<>\\^`{|}')

MAX_MONTHLY_INCOME_CENTS = 10_000_000  # $100,000 a month
MAX_DOWN_PAYMENT_CENTS = 10_000_000  # $100,000
MAX_VEHICLE_PRICE_CENTS = 50_000_000  # $500,000
MIN_AGE_YEARS = 18
MAX_AGE_YEARS = 120


class Collector:
    """Collects the violations of one request (field paths under `prefix`) while it normalises
    the values it checks."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.violations: list[FieldViolation] = []

    def add(self, path: str, description: str) -> None:
        self.violations.append(FieldViolation(f"{self.prefix}{path}", description))

    def text(self, path: str, value: str, *, required: bool, max_len: int) -> str:
        value = value.strip()
        if not value:
            if required:
                self.add(path, "is required")
        elif len(value) > max_len:
            self.add(path, f"must be at most {max_len} characters")
        elif _CONTROL.search(value):
            self.add(path, "must not contain control characters")
        return value

    def display_text(self, path: str, value: str, *, required: bool, max_len: int) -> str:
        """`text` that a person reads (a name, an address line, a vehicle): also free of
        invisible formatting characters. One violation at most per field."""
        before = len(self.violations)
        value = self.text(path, value, required=required, max_len=max_len)
        if len(self.violations) == before and invisible_formatting(value):
            self.add(path, INVISIBLE_DESCRIPTION)
        return value

    def int_range(self, path: str, value: int, low: int, high: int) -> int:
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}")
        return value

    def ip(self, path: str, value: str) -> str:
        """An optional IP address, normalised (`normalize_ip`)."""
        value = value.strip()
        if not value:
            return ""
        try:
            return normalize_ip(value)
        except ValueError:
            self.add(path, "must be an IPv4 or IPv6 address")
            return value

    def url(self, path: str, value: str) -> str:
        """An optional http(s) URL (`is_http_url`)."""
        value = value.strip()
        if value and not is_http_url(value):
            self.add(
                path,
                f"must be an http(s) URL with a host, without spaces or control characters "
                f"(at most {MAX_URL_LENGTH} characters)",
            )
        return value


def invisible_formatting(value: str) -> bool:
    """Whether `value` holds an invisible formatting character (see `_INVISIBLE_CATEGORIES`),
    other than a joiner that spells a word of a script that uses it (`_JOINERS`)."""
    if value.isascii():
        return False
    previous = ""
    for ch in value:
        if unicodedata.category(ch) in _INVISIBLE_CATEGORIES and not (
            ch in _JOINERS and _spells_with_joiners(previous)
        ):
            return True
        previous = ch
    return False


def _spells_with_joiners(ch: str) -> bool:
    """Whether `ch` is a letter or mark of a script whose spelling uses ZWNJ/ZWJ."""
    return (
        bool(ch)
        and unicodedata.category(ch)[0] in "LM"
        and unicodedata.name(ch, "").startswith(_JOINING_SCRIPTS)
    )


def validate_idempotency_key(key: str, field: str = "idempotency_key") -> str:
    if key and not _PRINTABLE_KEY.fullmatch(key):
        raise InvalidArgumentError(
            "the idempotency key is not valid",
            reason="INVALID_IDEMPOTENCY_KEY",
            violations=[FieldViolation(field, "must be 1 to 128 printable ASCII characters")],
        )
    return key


def normalize_email(email: str) -> str:
    """Returns the normalised address (lower-cased for matching); raises ValueError if bad."""
    # lazy: an idle server does without email-validator and idna; a dict lookup once loaded
    from email_validator import EmailNotValidError, validate_email

    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e
    return str(result.normalized).lower()


def normalize_phone(phone: str, region: str) -> str:
    """Returns the number in E.164; raises ValueError if it is not a valid number."""
    import phonenumbers  # lazy: ~1 MB an idle server does without; a dict lookup once loaded

    try:
        parsed = phonenumbers.parse(phone, region)
    except phonenumbers.NumberParseException as e:
        raise ValueError("is not a phone number") from e
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid phone number")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def parse_date(value: str) -> dt.date:
    """A calendar date written exactly as YYYY-MM-DD (ASCII digits); ValueError otherwise.

    `date.fromisoformat` alone also takes other ISO 8601 forms (`19850614`, `1985-W24-6`)."""
    if not _DATE.fullmatch(value):
        raise ValueError("not YYYY-MM-DD")
    return dt.date.fromisoformat(value)


def normalize_ip(value: str) -> str:
    """The address in its canonical form (IPv6 compressed, lower case); ValueError if `value`
    is not an IPv4 or IPv6 address. IPv6 zone ids (`fe80::1%eth0`, free text after the `%`)
    name an interface of the sender's own host: never an applicant's address."""
    if "%" in value:
        raise ValueError("zone ids are not accepted")
    return str(ipaddress.ip_address(value))


def is_http_url(value: str) -> bool:
    """True for an absolute http(s) URL with a host, a valid port if any, and at most
    MAX_URL_LENGTH characters, with no whitespace or control characters anywhere (`urlsplit`
    would silently drop tabs and newlines) and none of the characters RFC 3986 never allows
    unencoded (`_NOT_IN_URLS`)."""
    if len(value) > MAX_URL_LENGTH or _CONTROL.search(value):
        return False
    if any(ch.isspace() or ch in _NOT_IN_URLS for ch in value):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _age_on(born: dt.date, today: dt.date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def validate_lead(
    lead: LeadInput | None,
    *,
    region: str = "US",
    today: dt.date | None = None,
    prefix: str = "lead.",
) -> ValidLead:
    """Validates and normalises `lead`; raises InvalidArgumentError naming every bad field."""
    if lead is None:
        raise InvalidArgumentError(
            "the lead is missing",
            reason="INVALID_LEAD",
            violations=[FieldViolation(prefix.rstrip("."), "is required")],
        )
    c = Collector(prefix)
    today = today or dt.datetime.now(dt.UTC).date()

    first_name = c.display_text("first_name", lead.first_name, required=True, max_len=100)
    last_name = c.display_text("last_name", lead.last_name, required=True, max_len=100)

    email = lead.email.strip()
    email_normalized = ""
    if not email:
        c.add("email", "is required")
    elif len(email) > 320:
        c.add("email", "must be at most 320 characters")
    else:
        try:
            email_normalized = normalize_email(email)
        except ValueError:
            c.add("email", "is not a valid email address")

    phone_e164 = ""
    if not lead.phone.strip():
        c.add("phone", "is required")
    elif len(lead.phone) > 32:
        c.add("phone", "must be at most 32 characters")
    else:
        try:
            phone_e164 = normalize_phone(lead.phone, region)
        except ValueError as e:
            c.add("phone", str(e))
        else:
            if not phone_e164.startswith("+1"):
                # Applicants are reached by US dialers and dealer CRMs: NANP numbers only.
                c.add("phone", "must be a US number")

    born = dt.date.min
    if not lead.date_of_birth.strip():
        c.add("date_of_birth", "is required")
    else:
        try:
            born = parse_date(lead.date_of_birth.strip())
        except ValueError:
            c.add("date_of_birth", "must be a date as YYYY-MM-DD")
        else:
            age = _age_on(born, today)
            if born > today:
                c.add("date_of_birth", "must not be in the future")
            elif age < MIN_AGE_YEARS:
                c.add("date_of_birth", f"the applicant must be at least {MIN_AGE_YEARS}")
            elif age > MAX_AGE_YEARS:
                c.add("date_of_birth", f"the applicant must be at most {MAX_AGE_YEARS}")

    address = _validate_address(c, lead.address)
    if lead.monthly_income_cents == 0:
        # The credit decision needs it: a misspelt or missing field (JSON drops unknown names,
        # leaving 0) must be a violation, never a silent decline.
        c.add("monthly_income_cents", "is required (the applicant's monthly income in cents)")
    else:
        c.int_range("monthly_income_cents", lead.monthly_income_cents, 1, MAX_MONTHLY_INCOME_CENTS)
    c.int_range("down_payment_cents", lead.down_payment_cents, 0, MAX_DOWN_PAYMENT_CENTS)
    vehicle = _validate_vehicle(c, lead.vehicle, today)
    consent = _validate_consent(c, lead.consent)

    source = lead.source.strip().lower() or "api"
    if not _SLUG.fullmatch(source):
        c.add("source", "must be a lowercase slug of letters, digits, '-' and '_' (max 64)")
    visitor_id = c.text("visitor_id", lead.visitor_id, required=False, max_len=128)
    employment = c.display_text(
        "employment_status", lead.employment_status, required=False, max_len=32
    )
    c.int_range("months_employed", lead.months_employed, 0, 1200)
    c.int_range("months_at_address", lead.months_at_address, 0, 1200)
    trade_in = _validate_trade_in(c, lead.trade_in, today)
    timeframe = lead.purchase_timeframe.strip().lower()
    if timeframe and timeframe not in set(PurchaseTimeframe):
        c.add("purchase_timeframe", f"must be one of {', '.join(PurchaseTimeframe)}")
    vehicle_status = lead.vehicle_status.strip().lower()
    if vehicle_status and vehicle_status not in set(VehicleStatus):
        c.add("vehicle_status", f"must be one of {', '.join(VehicleStatus)}")

    if c.violations:
        raise InvalidArgumentError(
            f"the lead has {len(c.violations)} invalid field(s)",
            reason="INVALID_LEAD",
            violations=c.violations,
        )
    return ValidLead(
        first_name=first_name,
        last_name=last_name,
        email=email,
        email_normalized=email_normalized,
        phone_e164=phone_e164,
        date_of_birth=born,
        address=address,
        monthly_income_cents=lead.monthly_income_cents,
        down_payment_cents=lead.down_payment_cents,
        vehicle=vehicle,
        consent=consent,
        source=source,
        visitor_id=visitor_id,
        employment_status=employment,
        months_employed=lead.months_employed,
        months_at_address=lead.months_at_address,
        trade_in=trade_in,
        purchase_timeframe=timeframe,
        vehicle_status=vehicle_status,
    )


def _validate_trade_in(
    c: Collector, trade_in: TradeInInput | None, today: dt.date
) -> TradeInInput | None:
    if trade_in is None:
        return None
    if trade_in.year != 0:
        c.int_range("trade_in.year", trade_in.year, MIN_TRADE_IN_YEAR, today.year + 1)
    c.int_range("trade_in.mileage", trade_in.mileage, 0, MAX_TRADE_IN_MILEAGE)
    return TradeInInput(
        year=trade_in.year,
        make=c.display_text("trade_in.make", trade_in.make, required=True, max_len=64),
        model=c.display_text("trade_in.model", trade_in.model, required=False, max_len=64),
        mileage=trade_in.mileage,
    )


def _validate_address(c: Collector, address: AddressInput | None) -> AddressInput:
    if address is None:
        c.add("address", "is required")
        return AddressInput()
    state = address.state.strip().upper()
    zip_code = address.zip_code.strip()
    out = AddressInput(
        street=c.display_text("address.street", address.street, required=True, max_len=200),
        street2=c.display_text("address.street2", address.street2, required=False, max_len=200),
        city=c.display_text("address.city", address.city, required=True, max_len=100),
        state=state,
        zip_code=zip_code,
    )
    if not state:
        c.add("address.state", "is required")
    elif state not in US_STATES:
        c.add("address.state", "must be a two-letter US state code")
    if not zip_code:
        c.add("address.zip_code", "is required")
    elif not _ZIP.fullmatch(zip_code):
        c.add("address.zip_code", "must be 5 digits, optionally followed by -NNNN")
    return out


def _validate_vehicle(c: Collector, vehicle: VehicleInput | None, today: dt.date) -> VehicleInput:
    if vehicle is None:
        return VehicleInput()
    if vehicle.year != 0:
        c.int_range("vehicle.year", vehicle.year, 1980, today.year + 2)
    vin = vehicle.vin.strip().upper()
    if vin and not _VIN.fullmatch(vin):
        c.add("vehicle.vin", "must be 17 characters (letters except I, O, Q, and digits)")
    c.int_range("vehicle.price_cents", vehicle.price_cents, 0, MAX_VEHICLE_PRICE_CENTS)
    return VehicleInput(
        year=vehicle.year,
        make=c.display_text("vehicle.make", vehicle.make, required=False, max_len=64),
        model=c.display_text("vehicle.model", vehicle.model, required=False, max_len=64),
        trim=c.display_text("vehicle.trim", vehicle.trim, required=False, max_len=64),
        vin=vin,
        price_cents=vehicle.price_cents,
    )


def _validate_consent(c: Collector, consent: ConsentInput | None) -> ConsentInput:
    if consent is None:
        c.add("consent", "is required")
        return ConsentInput()
    if not consent.tcpa:
        c.add("consent.tcpa", "the applicant must consent to be contacted (TCPA)")
    if not consent.fcra_soft_pull:
        c.add("consent.fcra_soft_pull", "the applicant must authorise the soft credit pull (FCRA)")
    text = consent.consent_text.strip()
    if not text:
        c.add("consent.consent_text", "is required")
    elif len(text) > 10_000:
        c.add("consent.consent_text", "must be at most 10000 characters")
    if consent.consented_at is not None:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if not dt.datetime(2000, 1, 1) <= consent.consented_at <= now + dt.timedelta(minutes=5):
            c.add("consent.consented_time", "must be a past time (since 2000)")
    return ConsentInput(
        tcpa=consent.tcpa,
        fcra_soft_pull=consent.fcra_soft_pull,
        consent_text=text,
        ip_address=c.ip("consent.ip_address", consent.ip_address),
        user_agent=c.text("consent.user_agent", consent.user_agent, required=False, max_len=1000),
        page_url=c.url("consent.page_url", consent.page_url),
        certificate_id=c.display_text(
            "consent.certificate_id", consent.certificate_id, required=False, max_len=200
        ),
        consented_at=consent.consented_at,
    )
