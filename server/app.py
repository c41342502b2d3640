"""The composition root: builds the object graph from settings and serves it."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass

from server.adapters.dealer_crm import DealerCrmClient
from server.adapters.flexpath import FlexPathClient
from server.adapters.mailgun import MailgunClient
from server.adapters.openai_copy import OpenAICopywriter
from server.agents.credit_check import CreditCheckAgent
from server.agents.email_reengagement import EmailDispatcher, NoticeDetails
from server.agents.email_reengagement.campaigns import CampaignLifecycle
from server.agents.lead_packaging import LeadPackaging
from server.agents.orchestrator import Orchestrator
from server.agents.visitor_identifier import VisitorIdentifier
from server.outbox.dealer_delivery import dealer_delivery_worker
from server.outbox.worker import OutboxWorker
from server.services.auth import ApiKeyService
from server.services.campaigns import (
    CampaignTemplateService,
    MailgunWebhookService,
    Sender,
    SuppressionService,
    UnsubscribeService,
)
from server.services.dealer_deliveries import DealerDeliveryService
from server.services.dealer_webhook import DealerWebhookService
from server.services.dealers import DealerService
from server.services.leads import LeadService
from server.services.stats import StatsService
from server.settings import VERSION, Settings
from server.storage.campaigns import CampaignRepository, TemplateRepository
from server.storage.crypto import FieldCipher, configure_cipher, load_or_create_key_file
from server.storage.db import Database, open_database
from server.storage.deliveries import DeliveryRepository, DueDelivery
from server.storage.leads import LeadRepository
from server.storage.migrate import apply_migrations
from server.storage.pipeline import PipelineRepository
from server.transport.server import ServerParts

log = logging.getLogger("ccl.server")


@dataclass
class Application:
    settings: Settings
    db: Database
    api_keys: ApiKeyService
    leads: LeadService
    stats: StatsService
    dealers: DealerService
    dealer_deliveries: DealerDeliveryService
    orchestrator: Orchestrator
    dealer_webhook: DealerWebhookService
    credit: CreditCheckAgent
    delivery_worker: OutboxWorker[DueDelivery]
    deliveries: DeliveryRepository
    crm: DealerCrmClient
    campaign_templates: CampaignTemplateService
    mailgun_webhook: MailgunWebhookService
    unsubscribe: UnsubscribeService
    suppressions: SuppressionService
    campaigns: CampaignLifecycle
    email_dispatcher: EmailDispatcher
    mailgun: MailgunClient | None
    copywriter: OpenAICopywriter | None = None

    async def run_background(self, stop: asyncio.Event) -> None:
        """The in-process workers: dealer delivery outbox, the stopped-pipeline sweep, the
        email dispatcher (and the campaign lifecycle's turn), and the pruning of Mailgun webhook
        tokens too old to be replayed."""
        if self.mailgun is None:
            log.info(
                "no CCL_MAILGUN_API_KEY: campaign email and ADF email to dealers are simulated "
                "(recorded, not sent)"
            )
        await asyncio.gather(
            self.delivery_worker.run(stop),
            self.email_dispatcher.run(stop),
            self.orchestrator.run_sweeper(stop, self.settings.pipeline_sweep_seconds),
            self.mailgun_webhook.run_pruner(stop),
        )

    async def aclose(self) -> None:
        await self.orchestrator.aclose()  # batches still running finish before the rest
        await self.crm.aclose()
        await self.credit.aclose()
        if self.mailgun is not None:
            await self.mailgun.aclose()
        if self.copywriter is not None:
            await self.copywriter.aclose()

    def close(self) -> None:
        self.db.close()

    def server_parts(self) -> ServerParts:
        """What the gRPC transport serves (`server.transport.server.create_server`)."""
        return ServerParts(
            api_keys=self.api_keys,
            leads=self.leads,
            orchestrator=self.orchestrator,
            dealer_webhook=self.dealer_webhook,
            dealers=self.dealers,
            dealer_deliveries=self.dealer_deliveries,
            stats=self.stats,
            campaign_templates=self.campaign_templates,
            mailgun_webhook=self.mailgun_webhook,
            unsubscribe=self.unsubscribe,
            suppressions=self.suppressions,
            campaigns=self.campaigns,
            max_request_bytes=self.settings.max_request_bytes,
            request_message_timeout_seconds=self.settings.request_message_timeout_seconds,
        )


class ConfigurationError(Exception):
    """Settings the server refuses to start with. The message is one line for the operator
    (`ccl` prints it as `error: ...`) and never contains a secret."""


ENVIRONMENTS = ("development", "production")
GENERATE_KEY_HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
GENERATE_DATA_KEY_HINT = (
    "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)

# CCL_ADMIN_API_KEY's rule (README, "Configuration"). A key made by GENERATE_KEY_HINT (43
# characters, 256 bits) passes; so do 32 hex digits (`openssl rand -hex 16`).
ADMIN_KEY_MIN_LENGTH = 32
# Length x Shannon entropy of the key's character frequencies: an estimate from the key alone,
# below the true entropy of a random key (32 random hex digits score about 90 to 125 bits).
ADMIN_KEY_MIN_ENTROPY_BITS = 80
# No stretch this long may occur twice (`password...password`) or step through neighbouring
# characters (`aaaaaaaa`, `abcdefgh`, `87654321`). A random key has either with a chance of
# about one in a million (64 hex digits) or far less (base64).
ADMIN_KEY_PATTERN_LENGTH = 8


def admin_key_weakness(key: str) -> str | None:
    """Why `key` does not look random enough for CCL_ADMIN_API_KEY, or None if it does."""
    if len(key) < ADMIN_KEY_MIN_LENGTH:
        return f"it is shorter than {ADMIN_KEY_MIN_LENGTH} characters"
    bits = -sum(n * math.log2(n / len(key)) for n in Counter(key).values())
    if bits < ADMIN_KEY_MIN_ENTROPY_BITS:
        return "it uses too few different characters"
    size = ADMIN_KEY_PATTERN_LENGTH
    stretches = [key[i : i + size] for i in range(len(key) - size + 1)]
    if len(set(stretches)) < len(stretches):
        return f"a stretch of {size} characters occurs twice"
    for stretch in stretches:
        steps = {ord(b) - ord(a) for a, b in itertools.pairwise(stretch)}
        if len(steps) == 1 and steps <= {-1, 0, 1}:
            return f"it has a run of {size} characters like aaaaaaaa, abcdefgh or 87654321"
    return None


def check_settings(settings: Settings) -> None:
    """Refuses unsafe settings before anything is read or created: an unknown CCL_ENV; in
    production, no CCL_DATA_KEYS (the development key file is never read or created there) or
    a SQLite database (production state lives in PostgreSQL, and a forgotten DATABASE_URL
    would otherwise fill a fresh local file); a CCL_ADMIN_API_KEY that does not look random;
    a Mailgun key without its domain or without an https public URL for unsubscribe links."""
    if settings.environment not in ENVIRONMENTS:
        raise ConfigurationError("CCL_ENV must be development or production")
    if settings.environment == "production":
        if not settings.data_key_list():
            raise ConfigurationError(
                "CCL_ENV=production needs CCL_DATA_KEYS (the development key file is not "
                f"used in production); generate a key with: {GENERATE_DATA_KEY_HINT}"
            )
        if not settings.database_url.startswith(("postgres://", "postgresql://")):
            raise ConfigurationError(
                "CCL_ENV=production needs DATABASE_URL=postgresql://... (SQLite is for development)"
            )
    short = [k for k in settings.unsubscribe_key_list() if len(k.encode()) < UNSUBSCRIBE_KEY_MIN]
    if short:
        raise ConfigurationError(
            f"CCL_UNSUBSCRIBE_KEYS must hold keys of at least {UNSUBSCRIBE_KEY_MIN} characters; "
            f"generate one with: {GENERATE_KEY_HINT}"
        )
    if settings.mailgun_api_key and not settings.mailgun_domain:
        raise ConfigurationError(
            "CCL_MAILGUN_API_KEY needs CCL_MAILGUN_DOMAIN (the sending domain)"
        )
    if settings.mailgun_api_key and not settings.public_base_url.startswith("https://"):
        raise ConfigurationError(
            "CCL_MAILGUN_API_KEY needs an https:// CCL_PUBLIC_BASE_URL: one-click unsubscribe "
            "(RFC 8058, which Gmail and Yahoo require of bulk senders) posts only to https links"
        )
    if settings.admin_api_key:
        weakness = admin_key_weakness(settings.admin_api_key)
        if weakness:
            raise ConfigurationError(
                f"CCL_ADMIN_API_KEY is not a strong random key: {weakness}; "
                f"generate one with: {GENERATE_KEY_HINT}"
            )


UNSUBSCRIBE_KEY_MIN = 16


def unsubscribe_keys(settings: Settings, data_keys: list[str]) -> list[bytes]:
    """CCL_UNSUBSCRIBE_KEYS, or else one key derived from each data key (HMAC-SHA256 with a
    label of its own, so the data key itself never signs anything), in the same order: every
    replica with the same data keys signs and verifies the same links."""
    given = settings.unsubscribe_key_list()
    if given:
        return [k.encode() for k in given]
    label = b"ccl unsubscribe links v1"
    return [hmac.new(k.encode(), label, hashlib.sha256).digest() for k in data_keys]


def data_keys(settings: Settings) -> list[str]:
    return settings.data_key_list() or [load_or_create_key_file(settings.data_key_file)]


def build_cipher(settings: Settings, keys: list[str] | None = None) -> FieldCipher:
    keys = keys or data_keys(settings)
    try:
        return FieldCipher(keys)
    except ValueError as e:  # not Fernet keys (binascii.Error is a ValueError too)
        source = "CCL_DATA_KEYS" if settings.data_key_list() else str(settings.data_key_file)
        raise ConfigurationError(
            f"{source} must hold Fernet keys (32 url-safe base64-encoded bytes); "
            f"generate one with: {GENERATE_DATA_KEY_HINT}"
        ) from e


def build_application(settings: Settings) -> Application:
    """The object graph, from settings `check_settings` accepts. Nothing here connects or
    starts anything."""
    from server.transport.converters import lead_input_from_json

    check_settings(settings)
    keys = data_keys(settings)
    configure_cipher(build_cipher(settings, keys))
    try:
        database = open_database(settings.database_url)
    except ValueError as e:
        raise ConfigurationError(str(e)) from e
    db = Database(database, settings.db_threads)
    lead_repo = LeadRepository(db)
    delivery_repo = DeliveryRepository(db)
    identifier = VisitorIdentifier(
        region=settings.default_region,
        lookback_days=settings.duplicate_lookback_days,
        max_emails=settings.identity_max_emails,
        max_phones=settings.identity_max_phones,
    )
    flexpath = (
        FlexPathClient(settings.flexpath_base_url, settings.flexpath_api_key)
        if settings.flexpath_api_key
        else None
    )
    credit = CreditCheckAgent(flexpath)
    crm = DealerCrmClient(
        timeout_seconds=settings.delivery_timeout_seconds,
        max_connections=max(100, settings.delivery_concurrency),
    )
    api_keys = ApiKeyService(db, settings.admin_api_key, settings.api_key_cache_seconds)
    sender = Sender(
        company_name=settings.company_name,
        company_address=settings.company_postal_address,
        public_base_url=settings.public_base_url,
    )
    mailgun = (
        MailgunClient(
            api_key=settings.mailgun_api_key,
            domain=settings.mailgun_domain,
            base_url=settings.mailgun_base_url,
            timeout_seconds=settings.mailgun_timeout_seconds,
        )
        if settings.mailgun_api_key
        else None
    )
    worker = dealer_delivery_worker(
        db,
        crm,
        max_attempts=settings.delivery_max_attempts,
        backoff_base_seconds=settings.delivery_backoff_base_seconds,
        backoff_max_seconds=settings.delivery_backoff_max_seconds,
        poll_seconds=settings.worker_poll_seconds,
        concurrency=settings.delivery_concurrency,
        # Dealers whose channel is email get their ADF through the same Mailgun client.
        mailgun=mailgun,
        from_address=settings.mail_from_address(),
    )
    campaign_repo, template_repo = CampaignRepository(db), TemplateRepository(db)
    signing_keys = unsubscribe_keys(settings, keys)
    # Personalised opening lines only with a key (the client cannot be built without one).
    copywriter = (
        OpenAICopywriter(
            settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.openai_model,
            timeout_seconds=settings.openai_timeout_seconds,
        )
        if settings.openai_api_key
        else None
    )
    lifecycle = CampaignLifecycle(
        db, campaign_repo, template_repo, sender, enrol_seconds=settings.drip_enrol_seconds
    )
    dispatcher = EmailDispatcher(
        campaign_repo,
        template_repo,
        mailgun,
        sender,
        signing_keys,
        db,
        from_address=settings.mail_from_address(),
        # Longer than a call can take: a `sending` batch whose lease ends becomes `unknown`.
        lease=dt.timedelta(seconds=max(120.0, 4 * settings.mailgun_timeout_seconds)),
        rate_per_second=settings.email_send_rate,
        poll_seconds=settings.worker_poll_seconds,
        default_time_zone=settings.email_default_time_zone,
        quiet_hours=settings.email_quiet_hours,
        hooks=lifecycle,
        frequency_cap=dt.timedelta(hours=settings.email_frequency_cap_hours),
        notices=NoticeDetails(
            company_name=settings.company_name,
            company_address=settings.company_postal_address,
            bureau_name=settings.credit_bureau_name,
            bureau_address=settings.credit_bureau_address,
            bureau_phone=settings.credit_bureau_phone,
            bureau_website=settings.credit_bureau_website,
        ),
        copywriter=copywriter,
        unknown_grace=dt.timedelta(minutes=settings.email_unknown_grace_minutes),
    )
    orchestrator = Orchestrator(
        db,
        lead_repo,
        PipelineRepository(db),
        identifier,
        credit,
        LeadPackaging(db.backend),
        region=settings.default_region,
        on_delivery_queued=worker.notify,
    )
    return Application(
        settings=settings,
        db=db,
        api_keys=api_keys,
        leads=LeadService(db, lead_repo, delivery_repo, identifier),
        stats=StatsService(db, VERSION, credit, worker, dispatcher),
        dealers=DealerService(db, on_deactivated=api_keys.forget_dealer),
        dealer_deliveries=DealerDeliveryService(db, crm),
        orchestrator=orchestrator,
        dealer_webhook=DealerWebhookService(
            db, orchestrator, lead_input_from_json, settings.webhook_tolerance_seconds
        ),
        credit=credit,
        delivery_worker=worker,
        deliveries=delivery_repo,
        crm=crm,
        campaign_templates=CampaignTemplateService(db, sender),
        mailgun_webhook=MailgunWebhookService(db, settings.mailgun_webhook_signing_key),
        unsubscribe=UnsubscribeService(db, signing_keys, sender),
        suppressions=SuppressionService(db),
        campaigns=lifecycle,
        email_dispatcher=dispatcher,
        mailgun=mailgun,
        copywriter=copywriter,
    )


def migrate(settings: Settings) -> list[str]:
    """Applies pending migrations to the configured database; returns their names."""
    app = build_application(settings)
    try:
        return apply_migrations(app.db.db)
    finally:
        app.close()
