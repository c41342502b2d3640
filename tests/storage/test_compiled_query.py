"""SELECTs and UPDATEs compiled once answer and write exactly what peewee's own queries do for
the same inputs: encrypted fields, datetimes, booleans, NULLs and foreign keys converted both
ways, IN lists of any size (padded ones included), one statement per call through
`Database.execute_sql`, on both backends."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pytest

from server.app import Application
from server.storage import models as m
from server.storage.compiled import CompiledQuery, CompiledSelect, CompiledUpdate
from server.storage.identities import IdentityRepository
from support.builders import dealer, received_lead

_LEADS = CompiledSelect(m.Lead, lambda ids: m.Lead.select().where(m.Lead.id.in_(ids)))
_SOME_COLUMNS = CompiledQuery(
    m.Lead,
    lambda ids, since: m.Lead.select(
        m.Lead.id,
        m.Lead.monthly_income_cents,
        m.Lead.identity,
        m.Lead.pipeline_locked_until,
        m.Lead.created_at,
    ).where(m.Lead.id.in_(ids) & (m.Lead.created_at >= since)),
)
_DEALERS = CompiledSelect(
    m.Dealer,
    lambda active, ids: m.Dealer.select().where((m.Dealer.active == active) & m.Dealer.id.in_(ids)),
)
_UPDATE = CompiledUpdate(
    m.Lead,
    ["monthly_income_cents", "pipeline_locked_until", "pipeline_owner", "score", "updated_at"],
    lambda ids, stage: m.Lead.id.in_(ids) & (m.Lead.pipeline_stage == stage),
)


@pytest.fixture(scope="module")
def leads(application: Application) -> list[str]:
    """25 leads after intake: some with a lease, one with an identity gone (NULL)."""
    ids = [received_lead(application) for _ in range(25)]
    until = dt.datetime(2030, 1, 2, 3, 4, 5, 678000)
    m.Lead.update(pipeline_locked_until=until, pipeline_owner="o").where(
        m.Lead.id.in_(ids[::3])
    ).execute()
    m.Lead.update(identity=None).where(m.Lead.id == ids[1]).execute()
    return ids


def _data(rows: Iterable[Any]) -> dict[str, dict[str, Any]]:
    return {r.id: dict(r.__data__) for r in rows}


@pytest.mark.parametrize("size", [1, 2, 3, 8, 9, 13, 16, 25])
def test_whole_rows_as_peewee_reads_them(leads: list[str], size: int) -> None:
    ids = leads[:size]
    ours = _LEADS.objects(ids=ids)
    theirs = list(m.Lead.select().where(m.Lead.id.in_(ids)))
    assert len(ours) == size
    assert _data(ours) == _data(theirs)
    for row in ours:  # attribute access works as on peewee's own instances
        assert row.identity_id == m.Lead.get_by_id(row.id).identity_id
        assert int(row.monthly_income_cents) > 0, "decrypted"
        assert isinstance(row.created_at, dt.datetime)
        assert not row.is_dirty()


@pytest.mark.parametrize("size", [1, 5, 11])
def test_chosen_columns_as_peewee_tuples(leads: list[str], size: int) -> None:
    ids = leads[-size:]
    since = m.Lead.get_by_id(ids[0]).created_at - dt.timedelta(seconds=1)
    ours = _SOME_COLUMNS.rows(ids=ids, since=since)
    theirs: list[Any] = list(
        m.Lead.select(
            m.Lead.id,
            m.Lead.monthly_income_cents,
            m.Lead.identity,
            m.Lead.pipeline_locked_until,
            m.Lead.created_at,
        )
        .where(m.Lead.id.in_(ids) & (m.Lead.created_at >= since))
        .tuples()
    )
    assert sorted(ours) == sorted(theirs)
    assert any(r[3] is None for r in ours) or size == 1, "NULL datetimes read as None"
    later = max(r[4] for r in ours) + dt.timedelta(seconds=1)
    assert _SOME_COLUMNS.rows(ids=ids, since=later) == [], "the datetime bound is applied"


def test_nulls_and_leases_read_back(leads: list[str]) -> None:
    (row,) = _SOME_COLUMNS.rows(ids=[leads[1]], since=dt.datetime(2000, 1, 1))
    assert row[2] is None, "a NULL foreign key"
    (held,) = _SOME_COLUMNS.rows(ids=[leads[0]], since=dt.datetime(2000, 1, 1))
    assert held[3] == dt.datetime(2030, 1, 2, 3, 4, 5, 678000)


def test_booleans_and_encrypted_columns_of_dealers(application: Application) -> None:
    active = [dealer(signing_secret="s1"), dealer()]
    inactive = [dealer(active=False)]
    ids = active + inactive
    for flag, expected in ((True, active), (False, inactive)):
        ours = _DEALERS.objects(active=flag, ids=ids)
        theirs = list(m.Dealer.select().where((m.Dealer.active == flag) & m.Dealer.id.in_(ids)))
        assert sorted(r.id for r in ours) == sorted(expected)
        assert _data(ours) == _data(theirs)


def test_an_update_writes_what_peewees_writes(leads: list[str]) -> None:
    ours_ids, theirs_ids = leads[3:6], leads[6:9]
    now = dt.datetime(2031, 5, 6, 7, 8, 9, 123000)
    values: dict[str, Any] = {
        "monthly_income_cents": "777700",
        "pipeline_locked_until": None,
        "pipeline_owner": "",
        "score": 42,
        "updated_at": now,
    }
    changed = _UPDATE.rowcount(**values, ids=ours_ids, stage="intake")
    expected = (
        m.Lead.update(**values)
        .where(m.Lead.id.in_(theirs_ids) & (m.Lead.pipeline_stage == "intake"))
        .execute()
    )
    assert changed == expected == 3
    ours = sorted(_data(m.Lead.select().where(m.Lead.id.in_(ours_ids))).values(), key=str)
    theirs = sorted(_data(m.Lead.select().where(m.Lead.id.in_(theirs_ids))).values(), key=str)
    skip = {"id", "identity", "visitor", "visitor_anonymous_id", "first_name", "last_name"}
    skip |= {"email", "email_normalized", "phone_e164", "created_at"}
    for a, b in zip(ours, theirs, strict=True):
        assert {k: v for k, v in a.items() if k not in skip} == {
            k: v for k, v in b.items() if k not in skip
        }
        assert a["monthly_income_cents"] == "777700" and a["updated_at"] == now
        assert a["pipeline_locked_until"] is None
    raw = (
        m.Lead.select(m.Lead.monthly_income_cents.coerce(False))
        .where(m.Lead.id == ours_ids[0])
        .tuples()
        .get()[0]
    )
    assert "777700" not in str(raw), "encrypted at rest"
    assert _UPDATE.rowcount(**values, ids=ours_ids, stage="done") == 0, "the WHERE holds"


def test_identity_owners_as_a_peewee_query_finds_them(application: Application) -> None:
    repo = IdentityRepository()
    now = m.utcnow()
    people = [repo.create_identity(now).id for _ in range(3)]
    values = [("email", f"cq{i}@example.com") for i in range(10)]
    values += [("phone", f"+1217555{i:04d}") for i in range(10)]
    for i, identifier in enumerate(values):
        repo.link(people[i % 3], identifier)
    unknown = [("email", "nobody@example.com"), ("phone", "+12175559999")]
    for wanted in (values[:1], values[10:12], values[:12], values + unknown, unknown):
        expected = {
            (r.kind, r.value): r.identity_id
            for r in m.IdentityIdentifier.select()
            if (r.kind, r.value) in wanted
        }
        assert repo.owners(wanted) == expected


def test_one_statement_per_call_compiled_once_per_shape(
    application: Application, leads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    query = CompiledSelect(m.Lead, lambda ids: m.Lead.select(m.Lead.id).where(m.Lead.id.in_(ids)))
    statements: list[str] = []
    db = application.db.db
    original = db.execute_sql

    def counting(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return original(sql, params, *args, **kwargs)

    monkeypatch.setattr(db, "execute_sql", counting)
    for size in (9, 12, 16, 9, 3):
        assert sorted(r.id for r in query.objects(ids=leads[:size])) == sorted(leads[:size])
    assert len(statements) == 5
    assert len(set(statements)) == 2, "9, 12 and 16 ids share one statement (padded to 16)"
    assert len(query._cache) == 2


def test_an_empty_in_list_is_refused() -> None:
    with pytest.raises(ValueError, match="empty IN list"):
        _LEADS.objects(ids=[])


def test_an_unknown_update_column_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="no field"):
        CompiledUpdate(m.Lead, ["nope"], lambda: m.Lead.id == "x")
