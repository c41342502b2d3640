"""Peewee migrations -- 002_lead_pipeline_lease.py.

Adds the lease that keeps a lead's pipeline steps from running twice at once, and the stage
that says which step comes next (leads stored before this migration start at "intake", so
the pipeline sweep runs their credit check and routing).
"""

from contextlib import suppress

import peewee as pw
from peewee_migrate import Migrator


with suppress(ImportError):
    import playhouse.postgres_ext as pw_pext


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "lead",
        pipeline_locked_until=pw.DateTimeField(null=True),
        pipeline_stage=pw.CharField(max_length=16, default="intake", index=True),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("lead", "pipeline_locked_until", "pipeline_stage")
