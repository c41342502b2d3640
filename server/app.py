"""The composition root: builds the object graph from settings and serves it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.adapters.dealer_crm import DealerCrmClient
from server.adapters.flexpath import FlexPathClient
from server.agents.credit_check import CreditCheckAgent
from server.agents.dealer_delivery import DeliveryWorker
from server.agents.lead_packaging import LeadPackaging
from server.agents.orchestrator import Orchestrator
from server.agents.visitor_identifier import VisitorIdentifier
from server.services.auth import ApiKeyService
from server.services.dealer_webhook import DealerWebhookService
from server.services.dealers import DealerService
from server.services.leads import LeadService
from server.services.stats import StatsService
from server.settings import VERSION, Settings
from server.storage.crypto import FieldCipher, configure_cipher, load_or_create_key_file
from server.storage.db import Database, open_database
from server.storage.deliveries import DeliveryRepository
from server.storage.leads import LeadRepository
from server.storage.migrate import apply_migrations, pending_migrations
from server.storage.pipeline import PipelineRepository

log = logging.getLogger("ccl.server")


@dataclass
class Application:
    settings: Settings
    db: Database
    api_keys: ApiKeyService
    leads: LeadService
    stats: StatsService
    dealers: DealerService
    orchestrator: Orchestrator
    dealer_webhook: DealerWebhookService
    credit: CreditCheckAgent
    delivery_worker: DeliveryWorker
    deliveries: DeliveryRepository
    crm: DealerCrmClient

    async def run_background(self, stop: asyncio.Event) -> None:
        """The in-process workers: dealer delivery outbox and the stopped-pipeline sweep."""
        await asyncio.gather(
            self.delivery_worker.run(stop),
            self.orchestrator.run_sweeper(stop, self.settings.pipeline_sweep_seconds),
        )

    async def aclose(self) -> None:
        await self.crm.aclose()
        await self.credit.aclose()

    def close(self) -> None:
        self.db.close()


def build_cipher(settings: Settings) -> FieldCipher:
    keys = settings.data_key_list() or [load_or_create_key_file(settings.data_key_file)]
    return FieldCipher(keys)


def build_application(settings: Settings) -> Application:
    """The object graph. Nothing here connects or starts anything."""
    from server.transport.converters import lead_input_from_json

    configure_cipher(build_cipher(settings))
    db = Database(open_database(settings.database_url), settings.db_threads)
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
    crm = DealerCrmClient(timeout_seconds=settings.delivery_timeout_seconds)
    worker = DeliveryWorker(
        db,
        delivery_repo,
        crm,
        max_attempts=settings.delivery_max_attempts,
        backoff_base_seconds=settings.delivery_backoff_base_seconds,
        backoff_max_seconds=settings.delivery_backoff_max_seconds,
        poll_seconds=settings.worker_poll_seconds,
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
        api_keys=ApiKeyService(db, settings.admin_api_key, settings.api_key_cache_seconds),
        leads=LeadService(db, lead_repo, delivery_repo, identifier),
        stats=StatsService(db, VERSION, credit, worker),
        dealers=DealerService(db),
        orchestrator=orchestrator,
        dealer_webhook=DealerWebhookService(
            db, orchestrator, lead_input_from_json, settings.webhook_tolerance_seconds
        ),
        credit=credit,
        delivery_worker=worker,
        deliveries=delivery_repo,
        crm=crm,
    )


def migrate(settings: Settings) -> list[str]:
    """Applies pending migrations to the configured database; returns their names."""
    app = build_application(settings)
    try:
        return apply_migrations(app.db.db)
    finally:
        app.close()


async def serve(
    settings: Settings,
    *,
    migrate_first: bool = False,
    on_started: Callable[[int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serves until SIGTERM/SIGINT (or `stop` is set), then shuts down gracefully: health to
    NOT_SERVING, in-flight calls drained for `shutdown_grace_seconds`, database closed."""
    from server.transport.server import create_server  # transport depends on app, not back

    app = build_application(settings)
    try:
        if migrate_first:
            applied = await app.db.run(apply_migrations, app.db.db)
            if applied:
                log.info("migrations applied", extra={"migrations": applied})
        pending = await app.db.run(pending_migrations, app.db.db)
        if pending:
            raise SystemExit(f"database has pending migrations {pending}: run `ccl migrate`")
        grpc_server = create_server(app, settings.grpc_host, settings.grpc_port)
        await grpc_server.start()
        log.info(
            "serving",
            extra={"address": f"{settings.grpc_host}:{grpc_server.port}", "db": app.db.backend},
        )
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        workers_stop = asyncio.Event()
        workers = asyncio.create_task(app.run_background(workers_stop))
        if on_started is not None:
            await on_started(grpc_server.port)
        await stop.wait()
        log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
        await grpc_server.stop(
            settings.shutdown_grace_seconds, settings.shutdown_drain_delay_seconds
        )
        workers_stop.set()
        await workers
        await app.aclose()
    finally:
        app.close()
    log.info("stopped")
