"""Database backends for tests: SQLite in a temp dir, PostgreSQL in a throwaway database.

Each test run creates its own PostgreSQL database (`ccl_test_<random>`) on the
server at CCL_TEST_POSTGRES_URL and drops it afterwards, so parallel runs never
share state. With CCL_TEST_REQUIRE_POSTGRES=1 (CI), an unreachable PostgreSQL
fails the run; it is never skipped there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

ADMIN_URL = os.environ.get("CCL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("CCL_TEST_REQUIRE_POSTGRES") == "1" or bool(os.environ.get("CI"))
BACKENDS = [b for b in os.environ.get("CCL_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]


def _pg_base(url: str) -> str:
    return url.rsplit("/", 1)[0]


@contextmanager
def postgres_database() -> Iterator[str]:
    """Creates a fresh database and yields its URL; drops it afterwards."""
    try:
        admin = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as e:
        message = f"PostgreSQL at {ADMIN_URL} is not reachable: {e}"
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message + " (set CCL_TEST_BACKENDS=sqlite to run without it)")
    admin.autocommit = True
    name = f"ccl_test_{secrets.token_hex(6)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{_pg_base(ADMIN_URL)}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


@contextmanager
def database_url(backend: str, tmp_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / 'ccl.db'}"
    elif backend == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend}")
