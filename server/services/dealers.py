"""Dealer administration: validated create/update, reads; signing secrets never leave."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import httpx

from server.domain.dealers import DealerInput, DealerRecord
from server.domain.leads import PageResult
from server.domain.validation import US_STATES, Collector, is_http_url
from server.errors import FieldViolation, InvalidArgumentError
from server.storage.db import Database
from server.storage.dealers import DealerRepository
from server.storage.pagination import page_size

UPDATABLE = frozenset(DealerInput.__dataclass_fields__)
TIERS = frozenset("ABCDE")
_ZIP_PREFIX = re.compile(r"[0-9]{1,5}")  # ASCII digits only: `\d` also matches Arabic-Indic
MAX_ZIP_PREFIXES = 1000
MAX_SIGNING_SECRET = 256
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def validate_dealer(d: DealerInput, fields: frozenset[str] = UPDATABLE) -> DealerInput:
    """Normalises and checks the given fields; raises naming every bad one."""
    c = Collector("dealer.")
    v = c.violations
    out = DealerInput(**{k: getattr(d, k) for k in DealerInput.__dataclass_fields__})
    if "name" in fields:
        out.name = c.text("name", d.name, required=True, max_len=200)
    if "states" in fields:
        out.states = sorted({s.strip().upper() for s in d.states})
        bad = [s for s in out.states if s not in US_STATES]
        if bad:
            v.append(FieldViolation("dealer.states", "must be two-letter US state codes"))
    if "zip_prefixes" in fields:
        out.zip_prefixes = sorted({z.strip() for z in d.zip_prefixes})
        if len(out.zip_prefixes) > MAX_ZIP_PREFIXES:
            v.append(
                FieldViolation(
                    "dealer.zip_prefixes", f"must be at most {MAX_ZIP_PREFIXES} prefixes"
                )
            )
        elif any(not _ZIP_PREFIX.fullmatch(z) for z in out.zip_prefixes):
            v.append(FieldViolation("dealer.zip_prefixes", "must be 1 to 5 ASCII digits each"))
    if "accepted_tiers" in fields:
        out.accepted_tiers = sorted({t.strip().upper() for t in d.accepted_tiers})
        if any(t not in TIERS for t in out.accepted_tiers):
            v.append(FieldViolation("dealer.accepted_tiers", "must be tiers A to E"))
    if "daily_cap" in fields and not 0 <= d.daily_cap <= 100_000:
        v.append(FieldViolation("dealer.daily_cap", "must be between 0 and 100000"))
    if "priority" in fields and not 0 <= d.priority <= 1000:
        v.append(FieldViolation("dealer.priority", "must be between 0 and 1000"))
    if "weight" in fields and not 1 <= d.weight <= 100:
        v.append(FieldViolation("dealer.weight", "must be between 1 and 100"))
    if "endpoint_url" in fields:
        out.endpoint_url = d.endpoint_url.strip()
        if out.endpoint_url and not (
            is_http_url(out.endpoint_url) and _httpx_can_use(out.endpoint_url)
        ):
            v.append(FieldViolation("dealer.endpoint_url", "must be an http(s) URL"))
    if "delivery_format" in fields:
        out.delivery_format = d.delivery_format or "json"
        if out.delivery_format not in ("json", "adf"):
            v.append(FieldViolation("dealer.delivery_format", "must be json or adf"))
    if "signing_secret" in fields and d.signing_secret:
        if not (
            16 <= len(d.signing_secret) <= MAX_SIGNING_SECRET
            and _PRINTABLE.fullmatch(d.signing_secret)
        ):
            v.append(
                FieldViolation(
                    "dealer.signing_secret",
                    f"must be 16 to {MAX_SIGNING_SECRET} printable ASCII characters",
                )
            )
    if v:
        raise InvalidArgumentError("the dealer is not valid", reason="INVALID_DEALER", violations=v)
    return out


def _httpx_can_use(value: str) -> bool:
    """Parses as the delivery client will (httpx), so a stored endpoint can always be used."""
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


class DealerService:
    def __init__(self, db: Database, on_deactivated: Callable[[str], None] | None = None) -> None:
        """`on_deactivated(dealer_id)` runs once a dealer is saved inactive (the API key cache
        forgets its keys, so they are refused at once)."""
        self._db = db
        self._dealers = DealerRepository(db)
        self._on_deactivated = on_deactivated

    async def create(self, dealer: DealerInput) -> tuple[DealerRecord, str]:
        """Creates a dealer; returns it and the generated signing secret ("" if one was given)."""
        valid = validate_dealer(dealer)
        generated = "" if valid.signing_secret else secrets.token_urlsafe(32)
        valid.signing_secret = valid.signing_secret or generated
        return await self._db.run(self._dealers.create, valid), generated

    async def get(self, dealer_id: str) -> DealerRecord:
        return await self._db.run(self._dealers.get, dealer_id)

    async def list_dealers(self, size: int, token: str) -> PageResult[DealerRecord]:
        return await self._db.run(self._dealers.page, page_size(size, 50), token)

    async def update(self, dealer_id: str, dealer: DealerInput, fields: list[str]) -> DealerRecord:
        unknown = sorted(set(fields) - UPDATABLE)
        if unknown or not fields:
            raise InvalidArgumentError(
                "update_mask names no updatable field"
                if not fields
                else "update_mask is not valid",
                reason="INVALID_DEALER",
                violations=[
                    FieldViolation("update_mask", f"unknown field(s): {', '.join(unknown)}")
                ]
                if unknown
                else [FieldViolation("update_mask", "is required")],
            )
        chosen = frozenset(fields)
        valid = validate_dealer(dealer, chosen)
        record = await self._db.run(self._dealers.update, dealer_id, valid, chosen)
        if not record.active and "active" in chosen and self._on_deactivated is not None:
            self._on_deactivated(dealer_id)
        return record
