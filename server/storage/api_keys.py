"""API key rows: create, revoke, list, and the lookup behind every authenticated call.

Only the SHA-256 of a key is stored (`secret_hash`); comparing it with the caller's is the
service's job (`server.services.auth`), in constant time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import peewee as pw

from server.domain.principal import Role
from server.errors import NotFoundError
from server.storage import models as m
from server.storage.db import Database


@dataclass(frozen=True)
class ApiKeyRecord:
    """An API key as listed (`ccl keys list`); never its hash."""

    id: str
    name: str
    role: str
    dealer_id: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


@dataclass(frozen=True)
class UsableKey:
    """A key that may authenticate: not revoked, and its dealer (if any) active."""

    key_id: str
    role: str
    dealer_id: str | None
    secret_hash: str


class ApiKeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def create(key_id: str, name: str, role: Role, dealer_id: str | None, secret_hash: str) -> None:
        """Stores a key; NOT_FOUND (DEALER_NOT_FOUND) if `dealer_id` names no dealer."""
        if dealer_id and not m.Dealer.select().where(m.Dealer.id == dealer_id).exists():
            raise NotFoundError("no such dealer", reason="DEALER_NOT_FOUND")
        m.ApiKey.create(
            id=key_id, name=name, role=role.value, dealer=dealer_id, secret_hash=secret_hash
        )

    @staticmethod
    def revoke(key_id: str, now: dt.datetime | None = None) -> bool:
        """Revokes an active key; False if there is no active key with that id."""
        updated: int = (
            m.ApiKey.update(revoked_at=now or m.utcnow())
            .where((m.ApiKey.id == key_id) & (m.ApiKey.revoked_at.is_null()))
            .execute()
        )
        return bool(updated)

    @staticmethod
    def list() -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        return [
            ApiKeyRecord(
                id=r.id,
                name=r.name,
                role=r.role,
                dealer_id=r.dealer_id,
                created_at=r.created_at,
                revoked_at=r.revoked_at,
            )
            for r in m.ApiKey.select().order_by(m.ApiKey.created_at)
        ]

    @staticmethod
    def usable(key_id: str) -> UsableKey | None:
        """The key `key_id` if it may authenticate, else None (unknown, revoked, or its dealer
        deactivated). One statement: the dealer's state comes with the key."""
        row = (
            m.ApiKey.select(
                m.ApiKey.id,
                m.ApiKey.role,
                m.ApiKey.dealer,
                m.ApiKey.secret_hash,
                m.ApiKey.revoked_at,
                m.Dealer.active.alias("dealer_active"),
            )
            .join(m.Dealer, pw.JOIN.LEFT_OUTER, on=(m.ApiKey.dealer == m.Dealer.id))
            .where(m.ApiKey.id == key_id)
            .objects()
            .first()
        )
        if row is None or row.revoked_at is not None:
            return None
        if row.dealer_id and not row.dealer_active:
            return None  # a deactivated dealer's keys stop working
        return UsableKey(
            key_id=row.id, role=row.role, dealer_id=row.dealer_id, secret_hash=row.secret_hash
        )
