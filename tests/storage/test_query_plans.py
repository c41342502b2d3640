"""The lookups intake makes for every lead use their indexes, so intake does not slow down as
leads accumulate (issue 9: an OR seeded with a constant FALSE made SQLite scan the identifier
and lead tables for every lead). Checked with SQLite's EXPLAIN QUERY PLAN on the statements the
repository really sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from server.app import Application
from server.storage.identities import IdentityRepository


@contextmanager
def plans(application: Application) -> Iterator[list[str]]:
    """The query plan of every SELECT executed meanwhile, one text per statement."""
    db = application.db.db
    original = db.execute_sql
    found: list[str] = []

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT"):
            rows = original("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            found.append(" | ".join(str(r[-1]) for r in rows))
        return original(sql, params, *args, **kwargs)

    db.execute_sql = execute_sql  # type: ignore[method-assign]
    try:
        yield found
    finally:
        del db.execute_sql


@pytest.fixture()
def sqlite_only(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL plans depend on its statistics")


def test_identifier_owners_are_looked_up_in_the_index(
    application: Application, sqlite_only: None
) -> None:
    with plans(application) as found:
        IdentityRepository().owners([("email", "a@example.com"), ("phone", "+13125550100")])
    assert found and all("SCAN" not in plan for plan in found), found


def test_recent_leads_by_email_or_phone_are_looked_up_in_the_indexes(
    application: Application, sqlite_only: None
) -> None:
    since = dt.datetime(2026, 1, 1)
    with plans(application) as found:
        IdentityRepository().earliest_recent_lead("a@example.com", "+13125550100", since)
        IdentityRepository().earliest_recent_lead(None, "+13125550100", since)
    assert len(found) == 2
    both, phone_only = found
    # Not a range over every recent lead (the created_at index), nor a scan.
    assert "lead_email_normalized" in both and "lead_phone_e164" in both, both
    assert "lead_phone_e164" in phone_only, phone_only
    for plan in found:
        assert "SCAN" not in plan and "created_at>" not in plan, plan


def test_a_batch_lookup_uses_the_indexes(application: Application, sqlite_only: None) -> None:
    """Set-based intake's one lookup of a whole batch: owners, visitors, recent leads."""
    values = [("email", f"b{i}@example.com") for i in range(50)]
    values += [("phone", f"+1312555{i:04d}") for i in range(50)]
    with plans(application) as found:
        IdentityRepository().lookup(values, ["anon-1", "anon-2"], dt.datetime(2026, 1, 1))
    assert len(found) == 3, found
    for plan in found:
        assert "SCAN" not in plan and "created_at>" not in plan, plan
    assert any("lead_email_normalized" in p and "lead_phone_e164" in p for p in found), found
