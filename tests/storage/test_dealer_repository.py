"""Dealer repository contract (SQLite and PostgreSQL): stored as given, read, paged by name then
id with tokens that resume, updated field by field, NOT_FOUND for an unknown dealer."""

from __future__ import annotations

import uuid

import pytest

from server.app import Application
from server.domain.dealers import DealerInput
from server.errors import NotFoundError
from server.storage.dealers import DealerRepository


@pytest.fixture(scope="module")
def repo(application: Application) -> DealerRepository:
    application.db.db.connect(reuse_if_open=True)
    return DealerRepository(application.db)


def test_create_get_and_update(repo: DealerRepository) -> None:
    created = repo.create(
        DealerInput(
            name="Repo Motors", states=["IL"], zip_prefixes=["627"], signing_secret="s" * 20
        )
    )
    assert repo.get(created.dealer_id) == created
    assert created.signing_secret_set and created.states == ["IL"]
    updated = repo.update(
        created.dealer_id, DealerInput(name="Renamed", daily_cap=7), frozenset({"name"})
    )
    assert (updated.name, updated.daily_cap, updated.states) == (
        "Renamed",
        created.daily_cap,
        ["IL"],
    )


def test_unknown_dealers_are_not_found(repo: DealerRepository) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        repo.get(unknown)
    with pytest.raises(NotFoundError):
        repo.update(unknown, DealerInput(name="x"), frozenset({"name"}))


def test_pages_resume_where_the_token_ends(repo: DealerRepository) -> None:
    prefix = f"Page {uuid.uuid4().hex[:6]}"
    for i in range(5):
        repo.create(DealerInput(name=f"{prefix} {i % 2}"))  # names repeat: ids break ties
    seen: list[str] = []
    token = ""
    while True:
        page = repo.page(2, token)
        seen += [d.dealer_id for d in page.items if d.name.startswith(prefix)]
        token = page.next_page_token
        if not token:
            break
    mine = [repo.get(i) for i in seen]
    assert len(seen) == len(set(seen)) == 5
    assert [(d.name, d.dealer_id) for d in mine] == sorted((d.name, d.dealer_id) for d in mine)
