"""Shared fixtures. Module-scoped fixtures are parametrised over the database backends
(SQLite and PostgreSQL), so every module that uses them runs once per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from server.app import Application, build_application
from server.domain.principal import Role
from server.storage import models
from server.storage.migrate import apply_migrations
from support.backends import BACKENDS, database_url
from support.stack import EnvoyProcess, ServerThread, make_settings


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with database_url(backend, tmp_path_factory.mktemp(backend)) as url:
        yield url


@pytest.fixture(scope="module")
def application(db_url: str) -> Iterator[Application]:
    """A migrated application without a server (storage and service tests)."""
    app = build_application(make_settings(db_url))
    app.db.db.connect(reuse_if_open=True)
    apply_migrations(app.db.db)
    yield app
    app.db.db.close()
    app.close()


@pytest.fixture(scope="module")
def stack(db_url: str) -> Iterator[ServerThread]:
    server = ServerThread(make_settings(db_url)).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_key(stack: ServerThread) -> str:
    return stack.create_key(Role.ADMIN)


def create_dealer(name: str) -> str:
    return str(models.Dealer.create(name=name, states_json='["IL"]').id)


@pytest.fixture(scope="module")
def dealer_keys(stack: ServerThread) -> dict[str, tuple[str, str]]:
    """Two dealers, A and B: name -> (dealer id, dealer API key)."""
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        ids = {name: create_dealer(f"Dealer {name}") for name in ("A", "B")}
    finally:
        stack.app.db.db.close()
    return {name: (i, stack.create_key(Role.DEALER, i)) for name, i in ids.items()}


@pytest.fixture(scope="module")
def envoy_proxy(
    stack: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProcess]:
    proxy = EnvoyProcess([stack.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    yield proxy
    proxy.stop()
