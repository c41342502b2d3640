"""Peewee migrations -- 011_drips_and_frequency_cap.py.

Drip sequences and the cross-campaign frequency cap (issue 10):
- `drip_enrollment`: a lead in a drip campaign's sequence, the outbox item of its next step
  (`next_step`, due at `next_due_at`); unique per (campaign, address); claimed by
  (state, next_due_at).
- `campaign.started_at`: when a campaign started running (a drip enrols the applications
  abandoned from then on); `campaign.enrolled_through`: how far a drip's enrolment has looked.
- an index on `email_message (to_email, sent_at)`: an address's last marketing send, which the
  frequency cap looks up for every batch; `email_message.copy_engine`: who wrote the message's
  personalised opening line (`openai`, or the `template` fallback).
"""

import datetime as dt

import peewee as pw
from peewee_migrate import Migrator


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.add_fields(
        "campaign",
        started_at=pw.DateTimeField(null=True),
        enrolled_through=pw.DateTimeField(null=True),
    )
    migrator.add_index("email_message", "to_email", "sent_at", unique=False)
    migrator.add_fields("email_message", copy_engine=pw.CharField(max_length=16, default="template"))

    @migrator.create_model
    class DripEnrollment(pw.Model):
        id = pw.CharField(max_length=36, primary_key=True)
        campaign = pw.ForeignKeyField(
            column_name="campaign_id",
            field="id",
            model=migrator.orm["campaign"],
            on_delete="CASCADE",
            index=False,
        )
        lead = pw.ForeignKeyField(
            column_name="lead_id",
            field="id",
            model=migrator.orm["lead"],
            null=True,
            on_delete="SET NULL",
        )
        address = pw.CharField(max_length=320)
        entered_at = pw.DateTimeField()
        next_step = pw.IntegerField(default=0)
        next_due_at = pw.DateTimeField()
        state = pw.CharField(max_length=16, default="active")
        exit_reason = pw.CharField(max_length=32, default="")
        created_at = pw.DateTimeField(default=_utcnow)
        updated_at = pw.DateTimeField(default=_utcnow)

        class Meta:
            table_name = "drip_enrollment"
            indexes = [(("campaign", "address"), True), (("state", "next_due_at"), False)]


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("drip_enrollment")
    migrator.remove_fields("email_message", "copy_engine")
    migrator.drop_index("email_message", "to_email", "sent_at")
    migrator.remove_fields("campaign", "started_at", "enrolled_through")
