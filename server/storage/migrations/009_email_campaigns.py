"""Peewee migrations -- 009_email_campaigns.py.

Email campaigns (issue 10):
- templates are versioned: `email_template_version` holds each version's parts, unique per
  (template, version); `email_template` keeps its current version's number (and a copy of its
  parts, as before). A template stored before gets its parts as version 1.
- a campaign pins its template version, may be scheduled (`send_at`), says why it paused, carries
  the idempotency key of the BulkSend that created it (unique per scope; NULL without one), and
  counts its recipients, suppressed addresses and consecutive failed sends.
- an email message belongs to a claimed batch (`batch_id`, indexed with the state), pins the template version, has a
  kind (marketing, transactional, adf) and the times it bounced, was complained about or
  unsubscribed; a claim reads a campaign's queued rows by (campaign, state, next_attempt_at).
- a suppression says where it came from and which campaign and message led to it.
- `mailgun_webhook_token`: the webhook tokens seen (replay protection).
"""

import datetime as dt

import peewee as pw
from peewee_migrate import Migrator


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _first_versions(database: pw.Database) -> None:
    """Version 1 of every template stored before: its parts as they are."""
    templates = pw.Table(
        "email_template", ("id", "subject", "html_body", "text_body", "created_at")
    ).bind(database)
    versions = pw.Table(
        "email_template_version",
        ("template_id", "version", "subject", "html_body", "text_body", "created_at"),
    ).bind(database)
    versions.insert(
        templates.select(
            templates.id,
            pw.Value(1),
            templates.subject,
            templates.html_body,
            templates.text_body,
            templates.created_at,
        ),
        columns=[
            versions.template_id,
            versions.version,
            versions.subject,
            versions.html_body,
            versions.text_body,
            versions.created_at,
        ],
    ).execute()


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "email_template",
        current_version=pw.IntegerField(default=1),
        updated_at=pw.DateTimeField(default=_utcnow),
    )

    @migrator.create_model
    class EmailTemplateVersion(pw.Model):
        id = pw.BigAutoField()
        template = pw.ForeignKeyField(
            column_name="template_id",
            field="id",
            model=migrator.orm["email_template"],
            on_delete="CASCADE",
        )
        version = pw.IntegerField()
        subject = pw.TextField()
        html_body = pw.TextField(default="")
        text_body = pw.TextField()
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "email_template_version"
            indexes = [(("template", "version"), True)]

    migrator.run(_first_versions, database)

    migrator.add_fields(
        "campaign",
        template_version=pw.IntegerField(default=0),
        send_at=pw.DateTimeField(null=True),
        paused_reason=pw.CharField(max_length=64, default=""),
        idempotency_scope=pw.CharField(max_length=128, null=True),
        idempotency_key=pw.CharField(max_length=128, null=True),
        request_hash=pw.CharField(max_length=64, default=""),
        recipients=pw.IntegerField(default=0),
        suppressed_count=pw.IntegerField(default=0),
        consecutive_failures=pw.IntegerField(default=0),
        updated_at=pw.DateTimeField(default=_utcnow),
    )
    migrator.add_index("campaign", "idempotency_scope", "idempotency_key", unique=True)

    migrator.add_fields(
        "email_message",
        batch_id=pw.CharField(max_length=36, default=""),
        template_version=pw.IntegerField(default=0),
        kind=pw.CharField(max_length=16, default="marketing"),
        bounced_at=pw.DateTimeField(null=True),
        complained_at=pw.DateTimeField(null=True),
        unsubscribed_at=pw.DateTimeField(null=True),
    )
    migrator.add_index("email_message", "campaign", "state", "next_attempt_at", unique=False)
    migrator.add_index("email_message", "batch_id", "state", unique=False)
    # Covered by (campaign, lead, step_index) and (campaign, state, next_attempt_at); templates
    # are never deleted. Each index less makes a message's updates cheaper.
    # (Named as 001 made them, after the model class.)
    migrator.sql("DROP INDEX IF EXISTS emailmessage_campaign_id")
    migrator.sql("DROP INDEX IF EXISTS emailmessage_template_id")

    migrator.add_fields(
        "suppression",
        source=pw.CharField(max_length=16, default="admin"),
        campaign_ref=pw.CharField(max_length=36, default=""),
        message_ref=pw.CharField(max_length=36, default=""),
    )

    @migrator.create_model
    class MailgunWebhookToken(pw.Model):
        token = pw.CharField(max_length=256, primary_key=True)
        received_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "mailgun_webhook_token"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("mailgun_webhook_token")
    migrator.remove_fields("suppression", "source", "campaign_ref", "message_ref")
    migrator.sql("CREATE INDEX emailmessage_template_id ON email_message (template_id)")
    migrator.sql("CREATE INDEX emailmessage_campaign_id ON email_message (campaign_id)")
    migrator.drop_index("email_message", "batch_id", "state")
    migrator.drop_index("email_message", "campaign", "state", "next_attempt_at")
    migrator.remove_fields(
        "email_message",
        "batch_id",
        "template_version",
        "kind",
        "bounced_at",
        "complained_at",
        "unsubscribed_at",
    )
    migrator.drop_index("campaign", "idempotency_scope", "idempotency_key")
    migrator.remove_fields(
        "campaign",
        "template_version",
        "send_at",
        "paused_reason",
        "idempotency_scope",
        "idempotency_key",
        "request_hash",
        "recipients",
        "suppressed_count",
        "consecutive_failures",
        "updated_at",
    )
    migrator.remove_model("email_template_version")
    migrator.remove_fields("email_template", "current_version", "updated_at")
