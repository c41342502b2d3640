"""Dealer rows: create, read, page through, update. A signing secret and the endpoint
credentials are stored (encrypted) but never read back into a record: a record only says whether
a secret is set and which kind of endpoint credentials (and header name) there are. Only
`delivery_target` hands them out, to the code that delivers."""

from __future__ import annotations

import datetime as dt
import json

from server.domain.dealers import (
    DealerInput,
    DealerRecord,
    DeliveryTarget,
    EndpointCredentials,
)
from server.domain.leads import PageResult
from server.errors import NotFoundError
from server.storage import models as m
from server.storage.db import Database
from server.storage.pagination import decode_token, encode_token

# DealerInput fields stored as JSON text, and their columns.
_JSON_COLUMNS = {
    "states": "states_json",
    "zip_prefixes": "zip_prefixes_json",
    "accepted_tiers": "accepted_tiers_json",
}


def credentials_json(c: EndpointCredentials | None) -> str | None:
    """The stored (before encryption) form of endpoint credentials; None for none."""
    if c is None or c.kind not in ("basic", "header"):
        return None
    if c.kind == "basic":
        return json.dumps({"kind": "basic", "username": c.username, "password": c.password})
    return json.dumps({"kind": "header", "name": c.name, "value": c.value})


def credentials_of(stored: str | None) -> EndpointCredentials | None:
    """Endpoint credentials from their stored (decrypted) form; None for none."""
    if not stored:
        return None
    data = json.loads(stored)
    kind = data.get("kind")
    if kind == "basic":
        return EndpointCredentials(
            kind="basic", username=data.get("username", ""), password=data.get("password", "")
        )
    if kind == "header":
        return EndpointCredentials(
            kind="header", name=data.get("name", ""), value=data.get("value", "")
        )
    return None


def _record(r: m.Dealer) -> DealerRecord:
    credentials = credentials_of(r.endpoint_auth)
    return DealerRecord(
        dealer_id=r.id,
        name=r.name,
        states=json.loads(r.states_json),
        zip_prefixes=json.loads(r.zip_prefixes_json),
        accepted_tiers=json.loads(r.accepted_tiers_json),
        daily_cap=r.daily_cap,
        priority=r.priority,
        weight=r.weight,
        endpoint_url=r.endpoint_url,
        delivery_format=r.delivery_format,
        signing_secret_set=bool(r.signing_secret),
        active=r.active,
        created_at=r.created_at,
        updated_at=r.updated_at,
        contact_email=r.contact_email,
        contact_phone=r.contact_phone,
        endpoint_auth_type=credentials.kind if credentials else "none",
        endpoint_auth_header_name=credentials.name
        if credentials and credentials.kind == "header"
        else "",
        delivery_channel=r.delivery_channel,
        intake_email=r.intake_email,
    )


def _columns(d: DealerInput, fields: frozenset[str]) -> dict[str, object]:
    """The column values of the given DealerInput fields."""
    columns: dict[str, object] = {}
    for f in fields:
        if f == "endpoint_credentials":
            columns["endpoint_auth"] = credentials_json(d.endpoint_credentials)
        elif f in _JSON_COLUMNS:
            columns[_JSON_COLUMNS[f]] = json.dumps(getattr(d, f))
        else:
            columns[f] = getattr(d, f)
    return columns


def _not_found() -> NotFoundError:
    return NotFoundError("dealer not found", reason="DEALER_NOT_FOUND")


class DealerRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, d: DealerInput) -> DealerRecord:
        """Stores a dealer (every field of `d`) and returns it as stored."""
        with self._db.transaction():
            row = m.Dealer.create(**_columns(d, frozenset(DealerInput.__dataclass_fields__)))
        return _record(m.Dealer.get_by_id(row.id))

    @staticmethod
    def get(dealer_id: str) -> DealerRecord:
        row = m.Dealer.get_or_none(m.Dealer.id == dealer_id)
        if row is None:
            raise _not_found()
        return _record(row)

    @staticmethod
    def page(size: int, token: str) -> PageResult[DealerRecord]:
        """Dealers by name (then id), `size` at a time, after the page `token` ends."""
        query = m.Dealer.select()
        if token:
            cursor = decode_token("dealers", token)
            query = query.where(
                (m.Dealer.name > cursor["n"])
                | ((m.Dealer.name == cursor["n"]) & (m.Dealer.id > cursor["i"]))
            )
        rows = list(query.order_by(m.Dealer.name, m.Dealer.id).limit(size + 1))
        more = len(rows) > size
        rows = rows[:size]
        next_token = encode_token("dealers", {"n": rows[-1].name, "i": rows[-1].id}) if more else ""
        return PageResult(items=[_record(r) for r in rows], next_page_token=next_token)

    def update(self, dealer_id: str, d: DealerInput, fields: frozenset[str]) -> DealerRecord:
        """Sets the given fields of a dealer; returns it as stored (NOT_FOUND if none). A new
        signing secret set this way replaces the old one at once (no overlap)."""
        replaced: dict[str, object] = (
            {"previous_signing_secret": None, "previous_secret_expires_at": None}
            if "signing_secret" in fields
            else {}
        )
        with self._db.transaction():
            updated = (
                m.Dealer.update(**_columns(d, fields), **replaced, updated_at=m.utcnow())
                .where(m.Dealer.id == dealer_id)
                .execute()
            )
        if not updated:
            raise _not_found()
        return self.get(dealer_id)

    @staticmethod
    def delivery_target(dealer_id: str, now: dt.datetime) -> DeliveryTarget | None:
        """Where and how to deliver to a dealer at `now`, secrets and credentials decrypted;
        None if there is no such dealer."""
        row = m.Dealer.get_or_none(m.Dealer.id == dealer_id)
        if row is None:
            return None
        return DeliveryTarget(
            dealer_id=row.id,
            url=row.endpoint_url,
            delivery_format=row.delivery_format,
            secrets=signing_secrets(row, now),
            credentials=credentials_of(row.endpoint_auth),
            active=row.active,
            name=row.name,
            contact_email=row.contact_email,
            contact_phone=row.contact_phone,
            delivery_channel=row.delivery_channel,
            intake_email=row.intake_email,
        )

    def rotate_secret(self, dealer_id: str, new_secret: str, previous_until: dt.datetime) -> None:
        """Makes `new_secret` the dealer's signing secret; the current one keeps signing and
        verifying beside it until `previous_until` (not at all when that is not in the future).
        NOT_FOUND if there is no such dealer."""
        with self._db.transaction():
            row = m.Dealer.get_or_none(m.Dealer.id == dealer_id)
            if row is None:
                raise _not_found()
            now = m.utcnow()
            keep = bool(row.signing_secret) and previous_until > now
            m.Dealer.update(
                signing_secret=new_secret,
                previous_signing_secret=row.signing_secret if keep else None,
                previous_secret_expires_at=previous_until if keep else None,
                updated_at=now,
            ).where(m.Dealer.id == dealer_id).execute()


def signing_secrets(row: m.Dealer, now: dt.datetime) -> list[str]:
    """A dealer row's secrets that sign and verify at `now`: the current one first, then the
    previous one while its rotation overlap lasts. Empty if none is set."""
    found = [row.signing_secret] if row.signing_secret else []
    until = row.previous_secret_expires_at
    if row.previous_signing_secret and until is not None and until > now:
        found.append(row.previous_signing_secret)
    return found
