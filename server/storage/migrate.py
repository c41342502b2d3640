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
import re
from pathlib import Path
from typing import TYPE_CHECKING

import peewee as pw

from server.storage import models

# peewee-migrate costs about 6 MB with what it imports (unittest.mock among them): it is loaded
# only to migrate, not by a server that checks its schema at start-up.
if TYPE_CHECKING:
    from peewee_migrate import Router

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_IGNORED = ["basemodel"]
# peewee-migrate's own: its migration files, and the table of those applied.
_MIGRATION_FILE = re.compile(r"[\d]{3}_[^\.]+\.py$")
_HISTORY_TABLE = "migratehistory"


def _router(db: pw.Database) -> Router:
    from peewee_migrate import Router

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
    """The migrations not applied yet, as peewee-migrate's `Router.diff` lists them (the files
    in `MIGRATIONS_DIR` not named in its history table), read without importing it: a server
    checks this at every start."""
    todo = sorted(f.stem for f in MIGRATIONS_DIR.iterdir() if _MIGRATION_FILE.match(f.name))
    if not db.table_exists(_HISTORY_TABLE):
        return todo
    rows = db.execute_sql(f"SELECT name FROM {_HISTORY_TABLE}")  # type: ignore[no-untyped-call]  # noqa: S608
    done = {row[0] for row in rows}
    return [name for name in todo if name not in done]


def _models() -> list[type[pw.Model]]:
    return [m for m in models.ALL_MODELS if m._meta.name not in _IGNORED]


def create_migration(db: pw.Database, name: str) -> str | None:
    """Writes the next migration from the difference between models and migrations."""
    result: str | None = _router(db).create(name, auto=_models())
    return result
