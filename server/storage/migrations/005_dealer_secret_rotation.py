"""Peewee migrations -- 005_dealer_secret_rotation.py.

Adds what a dealer's signing-secret rotation keeps: the secret replaced (encrypted like the
current one, `EncryptedTextField`) and when it stops signing deliveries and verifying the
dealer's webhooks. Both empty outside a rotation. Existing secrets are left as they are: one
stored before secrets were `whsec_` keeps signing with its own bytes.
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "dealer",
        previous_signing_secret=pw.TextField(null=True),
        previous_secret_expires_at=pw.DateTimeField(null=True),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("dealer", "previous_signing_secret", "previous_secret_expires_at")
