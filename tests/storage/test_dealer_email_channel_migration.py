"""Migration 010 (SQLite and PostgreSQL): every dealer stored before keeps delivering over HTTPS
(`delivery_channel` "https", no intake address), deliveries get an empty provider message id;
rollback removes the columns, and the migration applies again."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
from peewee_migrate import Router

from server.storage.db import open_database
from server.storage.migrate import MIGRATIONS_DIR
from support.backends import postgres_database

MIGRATION = "010_dealer_email_channel"


def router(db: pw.Database) -> Router:
    return Router(db, migrate_dir=MIGRATIONS_DIR, ignore=["basemodel"])


@contextlib.contextmanager
def database_at_009(backend: str, tmp_path: Path) -> Iterator[pw.Database]:
    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if backend == "sqlite"
            else stack.enter_context(postgres_database())
        )
        db = open_database(url)
        stack.callback(db.close)
        router(db).run("009_email_campaigns")
        values = {
            "id": "d-old",
            "name": "Old Motors",
            "states_json": '["IL"]',
            "zip_prefixes_json": "[]",
            "accepted_tiers_json": "[]",
            "daily_cap": 0,
            "priority": 100,
            "weight": 1,
            "endpoint_url": "https://crm.example.com/leads",
            "delivery_format": "adf",
            "contact_email": "",
            "contact_phone": "",
            "active": True,
            "created_at": "2026-11-01 10:00:00",
            "updated_at": "2026-11-01 10:00:00",
        }
        pw.Table("dealer", tuple(values)).bind(db).insert(values).execute()
        yield db


def columns(db: pw.Database, table: str) -> set[str]:
    return {c.name for c in db.get_columns(table)}


def test_dealers_stored_before_stay_on_https(backend: str, tmp_path: Path) -> None:
    with database_at_009(backend, tmp_path) as db:
        assert router(db).run(MIGRATION) == [MIGRATION]
        row = db.execute_sql(
            "SELECT delivery_channel, intake_email, endpoint_url FROM dealer WHERE id = 'd-old'"
        ).fetchone()
        assert tuple(row) == ("https", "", "https://crm.example.com/leads")
        assert "provider_message_id" in columns(db, "delivery")

        router(db).rollback()
        assert not {"delivery_channel", "intake_email"} & columns(db, "dealer")
        assert "provider_message_id" not in columns(db, "delivery")
        assert router(db).run(MIGRATION) == [MIGRATION], "and forward again"
        assert {"delivery_channel", "intake_email"} <= columns(db, "dealer")
