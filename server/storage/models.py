"""peewee models: every entity of the platform.

All times are naive UTC datetimes. Ids are UUID strings except for append-only
logs (auto-increment). Date of birth, income, the credit limits computed from
income, dealer packages (whole documents with the applicant's contact details
and income), what dealers answered to a delivery (it may echo the package),
dealer signing secrets and dealer endpoint credentials are encrypted at rest (`EncryptedTextField`,
`EncryptedIntegerField`). Outbox tables (deliveries, email
messages) carry `state`, `next_attempt_at` and a lease (`locked_by`,
`locked_until`) so several processes can share the work.
"""

from __future__ import annotations

import uuid
from typing import Any

import peewee as pw

from server.domain.clock import utcnow as utcnow  # models.utcnow, as storage uses it
from server.storage.crypto import current_cipher
from server.storage.db import database_proxy


def new_id() -> str:
    return str(uuid.uuid4())


class EncryptedTextField(pw.TextField):
    """Text encrypted with the configured field cipher before it reaches the database.

    The empty string is stored as is: it holds nothing to hide, and outbox columns that are
    usually empty (a delivery's last error) cost no encryption. Reading a value that no
    configured key decrypts raises `UndecryptableError` (FAILED_PRECONDITION to a caller)."""

    def db_value(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        return current_cipher().encrypt(str(value))

    def python_value(self, value: Any) -> Any:
        if value is None or value == "":
            return value
        return current_cipher().decrypt(value)


class EncryptedIntegerField(EncryptedTextField):
    """An integer encrypted at rest like `EncryptedTextField` (a text column), read back as an
    int: for amounts computed from the applicant's income, which would give it away."""

    def python_value(self, value: Any) -> Any:
        text = super().python_value(value)
        return None if text is None else int(text)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Dealer(BaseModel):
    """A dealer that buys leads: where it serves, what it takes, how it receives packages."""

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    name = pw.CharField(max_length=200)
    states_json = pw.TextField(default="[]")
    zip_prefixes_json = pw.TextField(default="[]")
    accepted_tiers_json = pw.TextField(default="[]")
    daily_cap = pw.IntegerField(default=0)
    priority = pw.IntegerField(default=100)
    weight = pw.IntegerField(default=1)
    endpoint_url = pw.TextField(default="")
    delivery_format = pw.CharField(max_length=8, default="json")
    contact_email = pw.CharField(max_length=320, default="")
    contact_phone = pw.CharField(max_length=32, default="")
    signing_secret = EncryptedTextField(null=True)
    # During a secret rotation: the secret replaced, which still signs and verifies until then.
    previous_signing_secret = EncryptedTextField(null=True)
    previous_secret_expires_at = pw.DateTimeField(null=True)
    # Credentials for the dealer's endpoint (HTTP Basic or one header), one encrypted JSON
    # object (`storage.dealers`); NULL when the endpoint needs none.
    endpoint_auth = EncryptedTextField(null=True)
    # "https" (POST to `endpoint_url`) or "email" (plain-text ADF to `intake_email`).
    delivery_channel = pw.CharField(max_length=8, default="https")
    intake_email = pw.CharField(max_length=320, default="")
    active = pw.BooleanField(default=True, index=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)


class ApiKey(BaseModel):
    """An API key. Only a SHA-256 of the secret is kept; the key is shown once at creation."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    dealer_id: str | None

    id = pw.CharField(primary_key=True, max_length=32)
    name = pw.CharField(max_length=200, default="")
    role = pw.CharField(max_length=16)
    dealer = pw.ForeignKeyField(Dealer, null=True, backref="api_keys", on_delete="CASCADE")
    secret_hash = pw.CharField(max_length=64)
    created_at = pw.DateTimeField(default=utcnow)
    revoked_at = pw.DateTimeField(null=True)
    last_used_at = pw.DateTimeField(null=True)


class Identity(BaseModel):
    """One person, stitched together from visitors and leads that share an email or phone."""

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)


class IdentityIdentifier(BaseModel):
    """A normalised email or E.164 phone that belongs to an identity."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    identity_id: str

    identity = pw.ForeignKeyField(Identity, backref="identifiers", on_delete="CASCADE")
    kind = pw.CharField(max_length=8)
    value = pw.CharField(max_length=320)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("kind", "value"), True),)


class Visitor(BaseModel):
    """An anonymous website visitor (one browser's anonymous id)."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    identity_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    anonymous_id = pw.CharField(max_length=128, unique=True)
    identity = pw.ForeignKeyField(Identity, null=True, backref="visitors", on_delete="SET NULL")
    first_seen_at = pw.DateTimeField(default=utcnow)
    last_seen_at = pw.DateTimeField(default=utcnow)
    event_count = pw.IntegerField(default=0)


class VisitorEvent(BaseModel):
    """One tracked website event."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    visitor_id: str

    id = pw.BigAutoField()
    visitor = pw.ForeignKeyField(Visitor, backref="events", on_delete="CASCADE")
    event_id = pw.CharField(max_length=128, null=True)
    event_type = pw.CharField(max_length=32)
    page_url = pw.TextField(default="")
    page_path = pw.TextField(default="")
    referrer = pw.TextField(default="")
    page_title = pw.TextField(default="")
    utm_source = pw.CharField(max_length=200, default="")
    utm_medium = pw.CharField(max_length=200, default="")
    utm_campaign = pw.CharField(max_length=200, default="")
    utm_term = pw.CharField(max_length=200, default="")
    utm_content = pw.CharField(max_length=200, default="")
    user_agent = pw.TextField(default="")
    ip_address = pw.CharField(max_length=64, default="")
    step = pw.CharField(max_length=64, default="")
    client_time = pw.DateTimeField(null=True)
    occurred_at = pw.DateTimeField(default=utcnow)
    received_at = pw.DateTimeField(default=utcnow, index=True)
    privacy_opt_out = pw.BooleanField(default=False)

    class Meta:
        indexes = ((("visitor", "event_id"), True),)


class Lead(BaseModel):
    """An applicant's submission and its state in the pipeline."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    identity_id: str | None
    visitor_id: str | None
    duplicate_of_id: str | None
    dealer_id: str | None
    source_dealer_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    status = pw.CharField(max_length=32, index=True)
    outcome = pw.CharField(max_length=16)
    reason = pw.TextField(default="")
    source = pw.CharField(max_length=64, index=True)
    identity = pw.ForeignKeyField(Identity, null=True, backref="leads", on_delete="SET NULL")
    visitor = pw.ForeignKeyField(Visitor, null=True, backref="leads", on_delete="SET NULL")
    visitor_anonymous_id = pw.CharField(max_length=128, default="")
    duplicate_of = pw.ForeignKeyField("self", null=True, backref="duplicates", on_delete="SET NULL")
    dealer = pw.ForeignKeyField(Dealer, null=True, backref="leads", on_delete="SET NULL")
    source_dealer = pw.ForeignKeyField(
        Dealer, null=True, backref="sourced_leads", on_delete="SET NULL"
    )
    score = pw.IntegerField(default=0)
    delivery_state = pw.CharField(max_length=16, default="")
    first_name = pw.CharField(max_length=100)
    last_name = pw.CharField(max_length=100)
    email = pw.CharField(max_length=320)
    email_normalized = pw.CharField(max_length=320, index=True)
    phone_e164 = pw.CharField(max_length=20, index=True)
    date_of_birth = EncryptedTextField()
    monthly_income_cents = EncryptedTextField()
    down_payment_cents = pw.BigIntegerField(default=0)
    street = pw.CharField(max_length=200)
    street2 = pw.CharField(max_length=200, default="")
    city = pw.CharField(max_length=100)
    state = pw.CharField(max_length=2)
    zip_code = pw.CharField(max_length=10)
    vehicle_year = pw.IntegerField(default=0)
    vehicle_make = pw.CharField(max_length=64, default="")
    vehicle_model = pw.CharField(max_length=64, default="")
    vehicle_trim = pw.CharField(max_length=64, default="")
    vehicle_vin = pw.CharField(max_length=17, default="")
    vehicle_price_cents = pw.BigIntegerField(default=0)
    employment_status = pw.CharField(max_length=32, default="")
    months_employed = pw.IntegerField(default=0)
    months_at_address = pw.IntegerField(default=0)
    # "new" or "used" ("" not given), a PurchaseTimeframe value ("" not given), the trade-in.
    vehicle_status = pw.CharField(max_length=8, default="")
    purchase_timeframe = pw.CharField(max_length=16, default="")
    trade_in_year = pw.IntegerField(default=0)
    trade_in_make = pw.CharField(max_length=64, default="")
    trade_in_model = pw.CharField(max_length=64, default="")
    trade_in_mileage = pw.IntegerField(default=0)
    # Lease of the process running this lead's pipeline steps (credit check, routing), so a
    # resumed pipeline (retry, crash sweep) never runs twice at once.
    pipeline_locked_until = pw.DateTimeField(null=True)
    pipeline_owner = pw.CharField(max_length=32, default="")
    # Which pipeline step comes next: "intake" (credit check), "credit_checked" (routing), "done".
    pipeline_stage = pw.CharField(max_length=16, default="intake", index=True)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    updated_at = pw.DateTimeField(default=utcnow)


class LeadConsent(BaseModel):
    """Compliance evidence: one row per consent kind (`tcpa`, `fcra_soft_pull`) of a lead."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str

    lead = pw.ForeignKeyField(Lead, backref="consents", on_delete="CASCADE")
    kind = pw.CharField(max_length=16)
    granted = pw.BooleanField()
    consent_text = pw.TextField()
    consented_at = pw.DateTimeField()
    ip_address = pw.CharField(max_length=64, default="")
    user_agent = pw.TextField(default="")
    page_url = pw.TextField(default="")
    certificate_id = pw.CharField(max_length=200, default="")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("lead", "kind"), True),)


class Activity(BaseModel):
    """One step of a lead's life, appended by an agent. No personal data in it."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str

    id = pw.BigAutoField()
    lead = pw.ForeignKeyField(Lead, backref="activities", on_delete="CASCADE")
    agent = pw.CharField(max_length=32)
    kind = pw.CharField(max_length=64)
    summary = pw.TextField(default="")
    details_json = pw.TextField(default="{}")
    created_at = pw.DateTimeField(default=utcnow, index=True)


class CreditCheck(BaseModel):
    """A soft-pull pre-qualification of a lead."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    lead = pw.ForeignKeyField(Lead, backref="credit_checks", on_delete="CASCADE")
    source = pw.CharField(max_length=16)
    decision = pw.CharField(max_length=16)
    tier = pw.CharField(max_length=8, default="")
    score_band = pw.CharField(max_length=16, default="")
    # A share of the applicant's monthly income (per tier): encrypted like the income.
    max_payment_cents = EncryptedIntegerField(default=0)
    max_amount_cents = EncryptedIntegerField(default=0)
    reference_id = pw.CharField(max_length=128, default="")
    created_at = pw.DateTimeField(default=utcnow, index=True)


class LeadPackage(BaseModel):
    """The package rendered for a dealer (ADF XML or JSON), encrypted at rest: it is decrypted
    only to send it and for a reader allowed to see it (`ListLeadPackages`)."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str
    dealer_id: str

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    lead = pw.ForeignKeyField(Lead, backref="packages", on_delete="CASCADE")
    dealer = pw.ForeignKeyField(Dealer, backref="packages", on_delete="CASCADE")
    format = pw.CharField(max_length=8)
    content_type = pw.CharField(max_length=64)
    body = EncryptedTextField()
    created_at = pw.DateTimeField(default=utcnow)


class Delivery(BaseModel):
    """Outbox entry: one package to deliver to one dealer, with its retry state and lease."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    package_id: str
    lead_id: str
    dealer_id: str

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    event_id = pw.CharField(max_length=64, unique=True)
    package = pw.ForeignKeyField(LeadPackage, backref="deliveries", on_delete="CASCADE")
    lead = pw.ForeignKeyField(Lead, backref="deliveries", on_delete="CASCADE")
    dealer = pw.ForeignKeyField(Dealer, backref="deliveries", on_delete="CASCADE")
    state = pw.CharField(max_length=16)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    locked_by = pw.CharField(max_length=64, default="")
    locked_until = pw.DateTimeField(null=True)
    last_status_code = pw.IntegerField(default=0)
    # The dealer's reply to a failed attempt may echo the package: encrypted like it.
    last_error = EncryptedTextField(default="")
    delivered_at = pw.DateTimeField(null=True)
    # The mail provider's id of an email delivery once it accepted it ("" for HTTP ones).
    provider_message_id = pw.CharField(max_length=255, default="")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("state", "next_attempt_at"), False),)


class DeliveryAttempt(BaseModel):
    """The history of a delivery's attempts."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    delivery_id: str

    id = pw.BigAutoField()
    delivery = pw.ForeignKeyField(Delivery, backref="attempt_log", on_delete="CASCADE")
    attempted_at = pw.DateTimeField(default=utcnow)
    status_code = pw.IntegerField(default=0)
    error = EncryptedTextField(default="")  # as `Delivery.last_error`
    duration_ms = pw.IntegerField(default=0)


class DealerEvent(BaseModel):
    """An inbound dealer webhook event, kept so each event id is processed once."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    dealer_id: str
    lead_id: str | None

    id = pw.BigAutoField()
    dealer = pw.ForeignKeyField(Dealer, backref="events", on_delete="CASCADE")
    event_id = pw.CharField(max_length=128)
    event_type = pw.CharField(max_length=16)
    result = pw.CharField(max_length=16)
    reason = pw.TextField(default="")
    lead = pw.ForeignKeyField(Lead, null=True, backref="dealer_events", on_delete="SET NULL")
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("dealer", "event_id"), True),)


class EmailTemplate(BaseModel):
    """A sandboxed Jinja2 email template. Templates are versioned (`EmailTemplateVersion`); a
    campaign pins the version it sends. `subject`, `html_body` and `text_body` here are a copy
    of the current version's parts, written in the same transaction as the version row (so
    reading the current template is one row, and the table other tables refer to is not rebuilt
    on SQLite to drop them)."""

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    name = pw.CharField(max_length=200)
    subject = pw.TextField()
    html_body = pw.TextField(default="")
    text_body = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow, index=True)
    current_version = pw.IntegerField(default=1)
    updated_at = pw.DateTimeField(default=utcnow)


class EmailTemplateVersion(BaseModel):
    """One immutable version of a template: what a campaign that pinned it sends."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    template_id: str

    id = pw.BigAutoField()
    template = pw.ForeignKeyField(EmailTemplate, backref="versions", on_delete="CASCADE")
    version = pw.IntegerField()
    subject = pw.TextField()
    html_body = pw.TextField(default="")
    text_body = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("template", "version"), True),)


class Campaign(BaseModel):
    """A one-off or drip email campaign. `idempotency_scope`/`idempotency_key` (NULL when the
    request had no key) make a retried BulkSend return the campaign the first one created;
    `request_hash` tells a retry from a different request with the same key."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    template_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    name = pw.CharField(max_length=200)
    kind = pw.CharField(max_length=16)
    template = pw.ForeignKeyField(EmailTemplate, null=True, backref="campaigns")
    steps_json = pw.TextField(default="[]")
    audience_json = pw.TextField(default="{}")
    state = pw.CharField(max_length=16)
    created_at = pw.DateTimeField(default=utcnow, index=True)
    sent_at = pw.DateTimeField(null=True)
    template_version = pw.IntegerField(default=0)
    send_at = pw.DateTimeField(null=True)
    paused_reason = pw.CharField(max_length=64, default="")
    idempotency_scope = pw.CharField(max_length=128, null=True)
    idempotency_key = pw.CharField(max_length=128, null=True)
    request_hash = pw.CharField(max_length=64, default="")
    # Set when the recipients are materialised: messages queued, and addresses suppressed.
    recipients = pw.IntegerField(default=0)
    suppressed_count = pw.IntegerField(default=0)
    # Sends that failed in a row (reset by a send Mailgun accepted): the auto-pause rule's input.
    consecutive_failures = pw.IntegerField(default=0)
    updated_at = pw.DateTimeField(default=utcnow)
    # When it started running (a drip campaign enrols leads that abandon from then on).
    started_at = pw.DateTimeField(null=True)
    # A drip campaign: applications abandoned up to this time were looked at for enrolment.
    enrolled_through = pw.DateTimeField(null=True)

    class Meta:
        indexes = ((("idempotency_scope", "idempotency_key"), True),)


class EmailMessage(BaseModel):
    """Outbox entry: one email to one recipient, with its delivery events.

    `state`: `queued` messages wait for a claim (`storage.campaigns`); a claim leases a batch
    of them (`batch_id`, `locked_by`, `locked_until`); `sending` once the worker is about to
    call Mailgun; then `sent` (`provider_message_id`), `unknown` (the call may have been
    accepted: resolved through the events before any resend), `failed`, `bounced`,
    `suppressed` (excluded when materialised) or `simulated` (no Mailgun key). `to_email` is
    the normalised address."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    campaign_id: str | None
    lead_id: str | None
    template_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    # Not indexed alone: the indexes below start with the campaign, and templates are never
    # deleted (fewer indexes make the three updates of a sent message cheaper).
    campaign = pw.ForeignKeyField(
        Campaign, null=True, backref="messages", on_delete="CASCADE", index=False
    )
    lead = pw.ForeignKeyField(Lead, null=True, backref="emails", on_delete="SET NULL")
    template = pw.ForeignKeyField(EmailTemplate, null=True, backref="messages", index=False)
    step_index = pw.IntegerField(default=0)
    to_email = pw.CharField(max_length=320)
    state = pw.CharField(max_length=16, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = pw.DateTimeField(default=utcnow)
    locked_by = pw.CharField(max_length=64, default="")
    locked_until = pw.DateTimeField(null=True)
    provider_message_id = pw.CharField(max_length=255, default="", index=True)
    last_error = pw.TextField(default="")
    sent_at = pw.DateTimeField(null=True)
    delivered_at = pw.DateTimeField(null=True)
    opened_at = pw.DateTimeField(null=True)
    clicked_at = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    batch_id = pw.CharField(max_length=36, default="")
    template_version = pw.IntegerField(default=0)
    # "marketing", "transactional" or "adf".
    kind = pw.CharField(max_length=16, default="marketing")
    bounced_at = pw.DateTimeField(null=True)
    complained_at = pw.DateTimeField(null=True)
    unsubscribed_at = pw.DateTimeField(null=True)
    # Who wrote its personalised opening line: "openai", or "template" (the fallback).
    copy_engine = pw.CharField(max_length=16, default="template")

    class Meta:
        indexes = (
            (("campaign", "lead", "step_index"), True),
            (("campaign", "state", "next_attempt_at"), False),
            (("batch_id", "state"), False),
            # The frequency cap: an address's last marketing send (issue 10, migration 011).
            (("to_email", "sent_at"), False),
        )


class Suppression(BaseModel):
    """An address that must never be mailed again (unsubscribe, bounce, complaint), where the
    suppression came from (`webhook`, `unsubscribe`, `admin`), and the campaign and message
    that led to it when known (plain ids: the suppression outlives them)."""

    id = pw.AutoField()
    email_normalized = pw.CharField(max_length=320, unique=True)
    reason = pw.CharField(max_length=16)
    created_at = pw.DateTimeField(default=utcnow)
    source = pw.CharField(max_length=16, default="admin")
    campaign_ref = pw.CharField(max_length=36, default="")
    message_ref = pw.CharField(max_length=36, default="")


class DripEnrollment(BaseModel):
    """A lead in a drip campaign's sequence: the outbox item of its next step.

    `next_step` is the index of the step to queue next, due at `next_due_at`; `state` is
    `active` until the lead leaves (`exited`, with `exit_reason`: converted, finished,
    unsubscribed, completed, lead_gone). One enrolment per campaign and address: the same person
    is not walked through a sequence twice. `entered_at` is when the application was abandoned
    (the lead's last move); the steps fall due from it."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    campaign_id: str
    lead_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    campaign = pw.ForeignKeyField(Campaign, backref="enrollments", on_delete="CASCADE", index=False)
    lead = pw.ForeignKeyField(Lead, null=True, backref="drip_enrollments", on_delete="SET NULL")
    address = pw.CharField(max_length=320)
    entered_at = pw.DateTimeField()
    next_step = pw.IntegerField(default=0)
    next_due_at = pw.DateTimeField()
    state = pw.CharField(max_length=16, default="active")
    exit_reason = pw.CharField(max_length=32, default="")
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "drip_enrollment"
        indexes = (
            (("campaign", "address"), True),
            (("state", "next_due_at"), False),
        )


class MailgunWebhookToken(BaseModel):
    """A Mailgun webhook signature token seen, kept for replay protection until it is older
    than a webhook may be (`server.domain.email.WEBHOOK_MAX_AGE_SECONDS`)."""

    token = pw.CharField(primary_key=True, max_length=256)
    received_at = pw.DateTimeField(default=utcnow, index=True)


class ChatSession(BaseModel):
    """A customer chat conversation."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str | None

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    visitor_anonymous_id = pw.CharField(max_length=128, default="")
    lead = pw.ForeignKeyField(Lead, null=True, backref="chat_sessions", on_delete="SET NULL")
    state = pw.CharField(max_length=16, index=True)
    handoff_reason = pw.TextField(default="")
    started_at = pw.DateTimeField(default=utcnow)
    ended_at = pw.DateTimeField(null=True)


class ChatMessage(BaseModel):
    """One message of a chat conversation."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    session_id: str

    id = pw.CharField(primary_key=True, max_length=36, default=new_id)
    session = pw.ForeignKeyField(ChatSession, backref="messages", on_delete="CASCADE")
    sender = pw.CharField(max_length=16)
    text = pw.TextField()
    created_at = pw.DateTimeField(default=utcnow)


class IdempotencyRecord(BaseModel):
    """The first result of a request sent with an idempotency key, per caller scope."""

    # Foreign-key id accessors peewee adds (declared for type checkers).
    lead_id: str | None

    scope = pw.CharField(max_length=128)
    key = pw.CharField(max_length=128)
    request_hash = pw.CharField(max_length=64)
    response_json = pw.TextField()
    lead = pw.ForeignKeyField(Lead, null=True, backref="idempotency_records", on_delete="CASCADE")
    created_at = pw.DateTimeField(default=utcnow, index=True)

    class Meta:
        indexes = ((("scope", "key"), True),)


ALL_MODELS: list[type[BaseModel]] = [
    Dealer,
    ApiKey,
    Identity,
    IdentityIdentifier,
    Visitor,
    VisitorEvent,
    Lead,
    LeadConsent,
    Activity,
    CreditCheck,
    LeadPackage,
    Delivery,
    DeliveryAttempt,
    DealerEvent,
    EmailTemplate,
    EmailTemplateVersion,
    Campaign,
    EmailMessage,
    DripEnrollment,
    Suppression,
    MailgunWebhookToken,
    ChatSession,
    ChatMessage,
    IdempotencyRecord,
]
