"""The database: opened from `DATABASE_URL`, used only from a bounded thread pool.

peewee is synchronous, so every piece of database work runs through
`Database.run()` in a fixed pool of threads, never on the event loop. Each
thread keeps its own connection (peewee connections are thread-local), so the
pool size is also the connection count of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlparse

import peewee as pw
from playhouse.shortcuts import ReconnectMixin

from server.storage.crypto import create_private_file, make_private_dirs, restrict_to_owner

P = ParamSpec("P")
T = TypeVar("T")

# Every model binds to this proxy; `Database` initialises it.
database_proxy = pw.DatabaseProxy()

# peewee logs each statement with its parameters (names, emails, phones) at DEBUG. Capped here,
# where the database is built, so no log configuration (even root at DEBUG) can print them.
logging.getLogger("peewee").setLevel(logging.INFO)


class _ReconnectingPostgresqlDatabase(ReconnectMixin, pw.PostgresqlDatabase):  # type: ignore[misc]
    """Reconnects once, outside a transaction, when the server dropped the connection."""

    reconnect_errors = (
        (pw.OperationalError, "server closed the connection"),
        (pw.OperationalError, "terminating connection"),
        (pw.InterfaceError, "connection already closed"),
        (pw.OperationalError, "SSL connection has been closed"),
    )


SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "cache_size": -32_000,
}


# Files SQLite keeps beside the database; it creates them with the database file's mode.
SQLITE_SIBLING_SUFFIXES = ("-wal", "-shm", "-journal")


def open_database(url: str) -> pw.Database:
    """Builds the peewee database for `url` (sqlite:///… or postgresql://…) without connecting.

    A SQLite database file is created here, empty, with mode 0600 (its directories 0700), so
    the `-wal` and `-shm` files SQLite makes beside it get 0600 too; an existing one that other
    users can read is restricted to its owner."""
    if url.startswith("sqlite:"):
        path = parse_url(url)["database"]
        if path not in ("", ":memory:"):
            _prepare_sqlite_file(Path(path))
        return pw.SqliteDatabase(path, pragmas=SQLITE_PRAGMAS)
    if url.startswith(("postgres://", "postgresql://")):
        params = parse_url(url)
        return _ReconnectingPostgresqlDatabase(params.pop("database"), **params)
    raise ValueError("DATABASE_URL must start with sqlite:/// or postgresql://")


def parse_url(url: str) -> dict[str, Any]:
    """The connection parameters of a database URL, as `playhouse.db_url.parse` gives them
    (database, user, password as written, host, port; query parameters with `true`/`false`,
    integers, decimals and `null`/`none` converted), without importing `playhouse.db_url`, which
    loads every backend peewee has (about 1 MB in a server that uses one)."""
    parsed = urlparse(url)
    database, _, query = parsed.path[1:].partition("?")
    params: dict[str, Any] = {"database": database}
    if parsed.username:
        params["user"] = parsed.username
    if parsed.password:
        params["password"] = parsed.password
    if parsed.hostname:
        params["host"] = parsed.hostname
    if parsed.port:
        params["port"] = parsed.port
    for key, text in parse_qsl(query or parsed.query, keep_blank_values=True):
        value: Any = text
        low = text.lower()
        if low == "false":
            value = False
        elif low == "true":
            value = True
        elif text.isdigit():
            value = int(text)
        elif "." in text and all(p.isdigit() for p in text.split(".", 1)):
            value = float(text)
        elif low in ("null", "none"):
            value = None
        params[key] = value
    return params


def _prepare_sqlite_file(path: Path) -> None:
    make_private_dirs(path.parent)
    create_private_file(path)
    for suffix in SQLITE_SIBLING_SUFFIXES:
        restrict_to_owner(path.with_name(path.name + suffix))


def backend_name(db: pw.Database) -> str:
    return "sqlite" if isinstance(db, pw.SqliteDatabase) else "postgresql"


class Database:
    """Runs synchronous database work in a bounded thread pool and owns its connections."""

    def __init__(self, db: pw.Database, threads: int) -> None:
        self.db = db
        self.backend = backend_name(db)
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ccl-db")
        # SQLite has one writer at a time. Queueing this process's writers on a lock avoids
        # SQLite's busy handler, which sleeps in steps of up to 100 ms when writers collide.
        self._sqlite_write_lock = threading.Lock()
        database_proxy.initialize(db)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn(*args, **kwargs)` on a database thread and returns its result."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self._call, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def run_atomic(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `fn(*args, **kwargs)` on a database thread inside one write transaction: a unit
        of work asked of storage, so that the caller (an agent or a service) holds no
        transaction object of its own."""

        def atomic() -> T:
            with self.transaction():
                return fn(*args, **kwargs)

        return await self.run(atomic)

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.db.connect(reuse_if_open=True)
        return fn(*args, **kwargs)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction. On SQLite it takes the write lock at BEGIN (IMMEDIATE), so two
        writers queue on busy_timeout instead of failing when a read lock cannot be upgraded."""
        if self.backend == "sqlite":
            with self._sqlite_write_lock, self.db.atomic("IMMEDIATE") as tx:
                yield tx
        else:
            with self.db.atomic() as tx:
                yield tx

    def close(self) -> None:
        """Closes every thread's connection, then stops the pool.

        A barrier makes each of the pool's threads run exactly one close task."""
        workers = self._executor._max_workers
        barrier = threading.Barrier(workers, timeout=5)

        def close_on_this_thread() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            if not self.db.is_closed():
                self.db.close()

        futures = [self._executor.submit(close_on_this_thread) for _ in range(workers)]
        for f in futures:
            with contextlib.suppress(Exception):
                f.result(timeout=10)
        self._executor.shutdown(wait=True)
