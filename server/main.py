"""The server process: builds the application, serves gRPC, runs the background workers, and
shuts down gracefully on SIGTERM/SIGINT. `app.py` only builds the object graph; the transport
receives its collaborators from here and imports no application."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from server.app import build_application
from server.logs import install_url_redaction
from server.settings import Settings
from server.storage.migrate import apply_migrations, pending_migrations
from server.transport.server import create_server

log = logging.getLogger("ccl.server")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], event_loop: str = "asyncio") -> T:
    """`asyncio.run(main)` on the event loop `settings.event_loop` names: the standard
    library's, or uvloop's (an error if uvloop is not installed)."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            main.close()
            raise SystemExit(
                "CCL_EVENT_LOOP=uvloop but uvloop is not installed (pip install uvloop)"
            ) from None
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


async def serve(
    settings: Settings,
    *,
    migrate_first: bool = False,
    on_started: Callable[[int], Awaitable[None]] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serves until SIGTERM/SIGINT (or `stop` is set), then shuts down gracefully: health to
    NOT_SERVING, in-flight calls drained for `shutdown_grace_seconds`, database closed."""
    install_url_redaction()  # whoever configured logging: no URL credentials in any record
    app = build_application(settings)
    try:
        if migrate_first:
            applied = await app.db.run(apply_migrations, app.db.db)
            if applied:
                log.info("migrations applied", extra={"migrations": applied})
        pending = await app.db.run(pending_migrations, app.db.db)
        if pending:
            raise SystemExit(f"database has pending migrations {pending}: run `ccl migrate`")
        grpc_server = create_server(app.server_parts(), settings.grpc_host, settings.grpc_port)
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
