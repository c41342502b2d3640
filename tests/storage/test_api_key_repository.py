"""API key repository contract (SQLite and PostgreSQL): stored hashed, listed without the hash,
revoked once, usable only while the key is active and its dealer too."""

from __future__ import annotations

import uuid

import pytest

from server.app import Application
from server.domain.principal import Role
from server.errors import NotFoundError
from server.storage import models as m
from server.storage.api_keys import ApiKeyRepository
from support.builders import dealer


@pytest.fixture(scope="module")
def repo(application: Application) -> ApiKeyRepository:
    application.db.db.connect(reuse_if_open=True)
    return ApiKeyRepository(application.db)


def _key_id() -> str:
    return uuid.uuid4().hex[:16]


def test_a_stored_key_is_usable_and_listed_without_its_hash(repo: ApiKeyRepository) -> None:
    key_id = _key_id()
    repo.create(key_id, "website", Role.SERVICE, None, "h" * 64)
    usable = repo.usable(key_id)
    assert usable is not None
    assert (usable.role, usable.dealer_id, usable.secret_hash) == ("service", None, "h" * 64)
    listed = [r for r in repo.list() if r.id == key_id]
    assert len(listed) == 1 and listed[0].revoked_at is None
    assert not hasattr(listed[0], "secret_hash")


def test_a_key_is_revoked_once(repo: ApiKeyRepository) -> None:
    key_id = _key_id()
    repo.create(key_id, "ops", Role.OPS, None, "x" * 64)
    assert repo.revoke(key_id) is True
    assert repo.revoke(key_id) is False, "already revoked"
    assert repo.revoke("no-such-key") is False
    assert repo.usable(key_id) is None


def test_a_dealer_key_follows_its_dealer(repo: ApiKeyRepository) -> None:
    dealer_id, key_id = dealer(), _key_id()
    repo.create(key_id, "crm", Role.DEALER, dealer_id, "d" * 64)
    usable = repo.usable(key_id)
    assert usable is not None and usable.dealer_id == dealer_id
    m.Dealer.update(active=False).where(m.Dealer.id == dealer_id).execute()
    assert repo.usable(key_id) is None, "a deactivated dealer's keys stop working"
    with pytest.raises(NotFoundError):
        repo.create(_key_id(), "crm", Role.DEALER, str(uuid.uuid4()), "d" * 64)
