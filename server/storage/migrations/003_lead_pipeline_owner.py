"""Peewee migrations -- 003_lead_pipeline_owner.py.

Adds the token of the run that holds a lead's pipeline lease, so that only one run at a time
can take it and only the holder can write its steps or release it.
"""

from contextlib import suppress

import peewee as pw
from peewee_migrate import Migrator


with suppress(ImportError):
    import playhouse.postgres_ext as pw_pext


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "lead",
        pipeline_owner=pw.CharField(max_length=32, default=""),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("lead", "pipeline_owner")
