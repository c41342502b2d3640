"""The composition root: builds the object graph from settings and serves it."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from server.services.auth import ApiKeyService
from server.services.leads import LeadService
from server.services.stats import StatsService
from server.settings import VERSION, Settings
from server.storage.crypto import FieldCipher, configure_cipher, load_or_create_key_file
from server.storage.db import Database, open_database
from server.storage.leads import LeadRepository
from server.storage.migrate import apply_migrations, pending_migrations

log = logging.getLogger("ccl.server")


@dataclass
class Application:
    settings: Settings
    db: Database
    api_keys: ApiKeyService
    leads: LeadService
    stats: StatsService

    def close(self) -> None:
        self.db.close()


def build_cipher(settings: Settings) -> FieldCipher:
    keys = settings.data_key_list() or [load_or_create_key_file(settings.data_key_file)]
    return FieldCipher(keys)


def build_application(settings: Settings) -> Application:
    configure_cipher(build_cipher(settings))
    db = Database(open_database(settings.database_url), settings.db_threads)
    return Application(
        settings=settings,
        db=db,
        api_keys=ApiKeyService(db, settings.admin_api_key, settings.api_key_cache_seconds),
        leads=LeadService(db, LeadRepository(db), settings.default_region),
        stats=StatsService(db, VERSION),
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
        if on_started is not None:
            await on_started(grpc_server.port)
        await stop.wait()
        log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
        await grpc_server.stop(
            settings.shutdown_grace_seconds, settings.shutdown_drain_delay_seconds
        )
    finally:
        app.close()
    log.info("stopped")
