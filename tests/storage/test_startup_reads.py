"""What a server reads at start-up without the libraries it leaves unloaded: the pending
migrations as peewee-migrate lists them, and the database URL as playhouse.db_url parses it."""

from __future__ import annotations

from pathlib import Path

import pytest
from peewee_migrate import Router
from playhouse import db_url

from server.storage.db import open_database, parse_url
from server.storage.migrate import (
    _IGNORED,
    MIGRATIONS_DIR,
    apply_migrations,
    pending_migrations,
)


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/ccl.db",
        "sqlite:///relative/ccl.db",
        "sqlite:///:memory:",
        "postgresql://root@127.0.0.1:5432/test",
        "postgres://user:p%40ss@db.example:6432/ccl?sslmode=require&connect_timeout=5",
        "postgresql://h/db?a=1.5&b=TRUE&c=false&d=None&e=&f=x.y",
    ],
)
def test_urls_parse_as_playhouse_parses_them(url: str) -> None:
    assert parse_url(url) == db_url.parse(url)


def test_pending_migrations_are_what_peewee_migrate_lists(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        router = Router(db, migrate_dir=MIGRATIONS_DIR, ignore=_IGNORED)
        everything = list(router.diff)
        assert everything and pending_migrations(db) == everything  # nothing applied
        router.run_one(everything[0], router.migrator, fake=False)
        assert pending_migrations(db) == list(router.diff) == everything[1:]
        assert apply_migrations(db) == everything[1:]
        assert pending_migrations(db) == [] == list(router.diff)
    finally:
        db.close()
