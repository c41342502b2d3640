"""Inserts compiled once: the SQL of an INSERT of n rows of a model into a fixed list of
columns, built by peewee the first time and reused, so the hot path does not build the same
SQL text for every lead (the profile's largest share, issue 9: `Context.sql`,
`Insert._generate_insert`).

Each value goes through its field's `db_value`, exactly as peewee's own insert converts it
(encrypted fields encrypt, foreign keys take ids, datetimes their storage form); a column a row
does not give takes the field's default. Statements still go through `Database.execute_sql`,
one per call, like any other (the statement-count test sees them)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import peewee as pw

# Batches are at most this many rows per statement, and at most `MAX_PARAMETERS` values: the
# host-parameter limit of SQLite before 3.32 (999; 32,766 since), the lowest of the backends.
MAX_ROWS = 256
MAX_PARAMETERS = 999 if sqlite3.sqlite_version_info < (3, 32, 0) else 32_766


class CompiledInsert:
    """INSERTs of `model` rows into `columns` (field names), their SQL compiled once per
    database and row count."""

    def __init__(self, model: type[pw.Model], columns: Sequence[str]) -> None:
        fields = model._meta.fields
        unknown = [c for c in columns if c not in fields]
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {unknown}")
        self._model = model
        self._columns = tuple(columns)
        self._fields: tuple[pw.Field, ...] = tuple(fields[c] for c in columns)
        self._sql: dict[tuple[int, int], str] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, model: type[pw.Model]) -> CompiledInsert:
        """Inserts into every column of `model` but an auto-incremented key."""
        return cls(
            model,
            [
                name
                for name, field in model._meta.fields.items()
                if not isinstance(field, pw.AutoField)  # BigAutoField is one too
            ],
        )

    def create(self, **values: Any) -> Any:
        """`Model.create` for a model whose key the application assigns: the instance (its
        defaults applied as peewee applies them), inserted."""
        row = self._model(**values)
        self.execute([row.__data__])
        return row

    def execute(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts `rows` (field name -> value; a missing field takes its default)."""
        per_statement = max(1, min(MAX_ROWS, MAX_PARAMETERS // len(self._fields)))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for row in chunk:
                for name, field in zip(self._columns, self._fields, strict=True):
                    value = row[name] if name in row else _default(field)
                    params.append(field.db_value(value))  # type: ignore[no-untyped-call]
            database = self._model._meta.database
            database.execute_sql(self._statement(database, len(chunk)), params)

    def _statement(self, database: pw.Database, count: int) -> str:
        key = (id(database.obj if isinstance(database, pw.DatabaseProxy) else database), count)
        sql = self._sql.get(key)
        if sql is None:
            with self._lock:
                sql = self._sql.get(key)
                if sql is None:
                    sql = self._compile(count)
                    self._sql[key] = sql
        return sql

    def _compile(self, count: int) -> str:
        # Placeholder rows: peewee builds the SQL text; the values are discarded.
        sample = {field: None for field in self._fields}
        sql, params = self._model.insert_many([sample] * count).sql()
        if len(params) != count * len(self._fields):
            raise RuntimeError(f"unexpected SQL for {self._model.__name__}: {sql}")
        return str(sql)


def _default(field: pw.Field) -> Any:
    default = field.default
    return default() if callable(default) else default
