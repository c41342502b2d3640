"""Peewee migrations -- 007_dealer_contact.py.

Adds who at a dealer receives our leads: the ADF `<vendor><contact>` needs an email or a phone
(the public ADF 1.0 DTD). Empty for dealers created before: their packages keep an empty
`<email/>` there until an admin sets one.
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "dealer",
        contact_email=pw.CharField(max_length=320, default=""),
        contact_phone=pw.CharField(max_length=32, default=""),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("dealer", "contact_email", "contact_phone")
