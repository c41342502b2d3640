"""Peewee migrations -- 010_dealer_email_channel.py.

ADF by email for dealers (issue 10):
- `dealer.delivery_channel`: how its packages travel, `https` (POSTed to `endpoint_url`, what
  every dealer did before: the default) or `email` (mailed as plain-text ADF XML to
  `dealer.intake_email`, the dealer CRM's lead intake address; "" for dealers created before).
- `delivery.provider_message_id`: the mail provider's (Mailgun's) id of an email delivery,
  recorded when it accepts the email, matched against the events it sends later ("" for HTTP
  deliveries).
"""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "dealer",
        delivery_channel=pw.CharField(max_length=8, default="https"),
        intake_email=pw.CharField(max_length=320, default=""),
    )
    migrator.add_fields(
        "delivery",
        provider_message_id=pw.CharField(max_length=255, default=""),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("delivery", "provider_message_id")
    migrator.remove_fields("dealer", "delivery_channel", "intake_email")
