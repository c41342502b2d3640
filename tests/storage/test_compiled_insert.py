"""Inserts compiled once write exactly what peewee's own inserts write: every value through
its field (encrypted fields encrypted at rest), defaults for what a row leaves out, batches of
any size, one statement per call (per 256 rows)."""

from __future__ import annotations

import json

from server.app import Application
from server.storage import compiled
from server.storage import models as m
from server.storage.compiled import CompiledInsert
from support.builders import received_lead


def test_a_created_row_reads_back_as_peewee_writes_it(application: Application) -> None:
    lead_id = received_lead(application)
    source = m.Lead.get_by_id(lead_id)
    values = {
        name: getattr(source, name)
        for name in m.Lead._meta.fields
        if name not in ("id", "created_at", "updated_at")
    }
    values["date_of_birth"] = "1977-07-07"
    row = CompiledInsert.of(m.Lead).create(**values)
    assert row.id and row.id != lead_id, "the key's default applies"
    copy = m.Lead.get_by_id(row.id)
    for name in values:
        assert getattr(copy, name) == values[name], name
    raw = (
        m.Lead.select(m.Lead.date_of_birth.coerce(False))
        .where(m.Lead.id == row.id)
        .tuples()
        .get()[0]
    )
    assert str(raw).startswith("gAAAAA") and "1977" not in str(raw), "encrypted at rest"


def test_many_rows_in_statements_of_at_most_max_rows(application: Application, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lead_id = received_lead(application)
    monkeypatch.setattr(compiled, "MAX_ROWS", 4)
    statements: list[str] = []
    db = application.db.db
    original = db.execute_sql

    def counting(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", counting)
    rows = [
        {
            "lead": lead_id,
            "agent": "orchestrator",
            "kind": f"compiled.{i}",
            "summary": "s",
            "details_json": json.dumps({"i": i}),
        }
        for i in range(10)
    ]
    CompiledInsert.of(m.Activity).execute(rows)
    assert len(statements) == 3, "10 rows in statements of 4, 4 and 2"
    monkeypatch.undo()
    kinds = [
        a.kind
        for a in m.Activity.select()
        .where((m.Activity.lead == lead_id) & m.Activity.kind.startswith("compiled."))
        .order_by(m.Activity.id)
    ]
    assert kinds == [f"compiled.{i}" for i in range(10)], "in order, created_at defaulted"


def test_statements_stay_under_the_host_parameter_limit(
    application: Application, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """An old SQLite takes at most 999 values a statement: rows are split to fit."""
    lead_id = received_lead(application)
    monkeypatch.setattr(compiled, "MAX_PARAMETERS", 999)
    sizes: list[int] = []
    db = application.db.db
    original = db.execute_sql

    def counting(sql, params=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(params or ()))
        return original(sql, params, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", counting)
    rows = [
        {"lead": lead_id, "agent": "orchestrator", "kind": "limit", "summary": "s"}
        for _ in range(200)
    ]
    CompiledInsert.of(m.Activity).execute(rows)  # 6 columns: 166 rows, then 34
    assert sizes == [996, 204]


def test_an_unknown_column_is_refused_at_once() -> None:
    try:
        CompiledInsert(m.Activity, ["lead", "no_such_column"])
    except ValueError as e:
        assert "no_such_column" in str(e)
    else:
        raise AssertionError("expected ValueError")
