"""Migration 008 (SQLite and PostgreSQL): a dealer whose endpoint URL carried its credentials
(`https://u:p@host/x`, as written before `endpoint_auth` existed) ends up with a clean URL and
the same credentials as encrypted Basic credentials; other dealers are untouched. Rollback puts
them back into the URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import peewee as pw
from peewee_migrate import Router

from server.app import Application
from server.domain.dealers import EndpointCredentials
from server.storage.db import open_database
from server.storage.dealers import credentials_of
from server.storage.migrate import MIGRATIONS_DIR
from server.storage.models import Dealer
from support.backends import postgres_database

MIGRATION = "008_dealer_endpoint_auth"
URLS = {
    "d-basic": "https://u:p@crm.example.com/x",
    "d-encoded": "https://lead%20desk:p%40ss%3Aword@crm.example.com:8443/in?src=ccl",
    "d-user-only": "http://only-user@127.0.0.1:9000/leads",
    "d-clean": "https://crm.example.com/leads?owner=a@b",
    "d-empty": "",
}


def router(db: pw.Database) -> Router:
    return Router(db, migrate_dir=MIGRATIONS_DIR, ignore=["basemodel"])


@contextlib.contextmanager
def database_at_007(backend: str, tmp_path: Path) -> Iterator[pw.Database]:
    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if backend == "sqlite"
            else stack.enter_context(postgres_database())
        )
        db = open_database(url)
        stack.callback(db.close)
        router(db).run("007_dealer_contact")
        for dealer_id, endpoint in URLS.items():
            values = {
                "id": dealer_id,
                "name": dealer_id,
                "states_json": "[]",
                "zip_prefixes_json": "[]",
                "accepted_tiers_json": "[]",
                "daily_cap": 0,
                "priority": 100,
                "weight": 1,
                "endpoint_url": endpoint,
                "delivery_format": "json",
                "contact_email": "",
                "contact_phone": "",
                "active": True,
                "created_at": "2026-11-01 10:00:00",
                "updated_at": "2026-11-01 10:00:00",
            }
            pw.Table("dealer", tuple(values)).bind(db).insert(values).execute()
        yield db


def stored(db: pw.Database) -> dict[str, tuple[str, str | None]]:
    rows = db.execute_sql("SELECT id, endpoint_url, endpoint_auth FROM dealer").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def credentials(value: str | None) -> EndpointCredentials | None:
    return credentials_of(Dealer.endpoint_auth.python_value(value))


def test_credentials_move_from_the_url_into_encrypted_basic_auth(
    backend: str, tmp_path: Path, application: Application
) -> None:
    """`application` configures the data keys the migration encrypts with."""
    with database_at_007(backend, tmp_path) as db:
        assert router(db).run(MIGRATION) == [MIGRATION]
        after = stored(db)
        assert after["d-basic"][0] == "https://crm.example.com/x"
        assert after["d-encoded"][0] == "https://crm.example.com:8443/in?src=ccl"
        assert after["d-user-only"][0] == "http://127.0.0.1:9000/leads"
        for dealer_id in ("d-basic", "d-encoded", "d-user-only"):
            raw = after[dealer_id][1]
            assert raw is not None and raw.startswith("gAAAAA"), "encrypted"
        assert "p@ss" not in str(after) and "lead desk" not in str(after)
        assert credentials(after["d-basic"][1]) == EndpointCredentials(
            kind="basic", username="u", password="p"
        )
        assert credentials(after["d-encoded"][1]) == EndpointCredentials(
            kind="basic", username="lead desk", password="p@ss:word"
        )
        assert credentials(after["d-user-only"][1]) == EndpointCredentials(
            kind="basic", username="only-user", password=""
        )
        assert after["d-clean"] == (URLS["d-clean"], None), "an @ in the query is not userinfo"
        assert after["d-empty"] == ("", None)

        router(db).rollback()
        back = db.execute_sql("SELECT id, endpoint_url FROM dealer").fetchall()
        assert dict(back) == {
            **URLS,
            "d-encoded": "https://lead%20desk:p%40ss%3Aword@crm.example.com:8443/in?src=ccl",
        }
        assert "endpoint_auth" not in {c.name for c in db.get_columns("dealer")}
        assert router(db).run(MIGRATION) == [MIGRATION], "and forward again"
        assert stored(db)["d-basic"][0] == "https://crm.example.com/x"
