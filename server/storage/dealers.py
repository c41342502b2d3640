"""Dealer rows: create, read, page through, update. A signing secret is stored (encrypted) but
never read back here: a record only says whether one is set."""

from __future__ import annotations

import datetime as dt
import json

from server.domain.dealers import DealerInput, DealerRecord
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


def _record(r: m.Dealer) -> DealerRecord:
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
    )


def _columns(d: DealerInput, fields: frozenset[str]) -> dict[str, object]:
    """The column values of the given DealerInput fields."""
    return {
        _JSON_COLUMNS[f] if f in _JSON_COLUMNS else f: (
            json.dumps(getattr(d, f)) if f in _JSON_COLUMNS else getattr(d, f)
        )
        for f in fields
    }


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
