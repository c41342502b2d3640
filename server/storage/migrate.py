"""Versioned schema migrations (peewee-migrate), applied in place by `ccl migrate` and `make run`.

Migration files live in `server/storage/migrations/`, numbered, each a frozen
snapshot of what it changes. `make migration NAME=…` writes the next one by
diffing the models against the migrations already there.

Known quirk of peewee-migrate 2.3: its auto-diff compares index fields with
`!=`, which peewee turns into a (truthy) SQL expression, so every existing
index shows up as a drop_index/add_index pair. Delete those pairs from a
generated migration; keep only real changes. The test suite checks that the
migrated schema equals the schema of the models on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from pathlib import Path

import peewee as pw
from peewee_migrate import Router

from server.storage import models

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_IGNORED = ["basemodel"]


def _router(db: pw.Database) -> Router:
    logger = logging.getLogger("ccl.migrate")
    return Router(db, migrate_dir=MIGRATIONS_DIR, ignore=_IGNORED, logger=logger)


def apply_migrations(db: pw.Database) -> list[str]:
    """Applies every migration not applied yet; returns the names applied."""
    router = _router(db)
    pending = list(router.diff)
    if pending:
        router.run()
    return pending


def pending_migrations(db: pw.Database) -> list[str]:
    return list(_router(db).diff)


def _models() -> list[type[pw.Model]]:
    return [m for m in models.ALL_MODELS if m._meta.name not in _IGNORED]


def create_migration(db: pw.Database, name: str) -> str | None:
    """Writes the next migration from the difference between models and migrations."""
    result: str | None = _router(db).create(name, auto=_models())
    return result
