"""Statements compiled once: the SQL text of the pipeline's hot INSERTs, SELECTs and UPDATEs,
built by peewee the first time (per database, and per row count or IN-list size) and reused, so
the hot path does not build the same SQL text for every lead (the profile's largest share,
issue 9: `Context.sql`, `Insert._generate_insert`).

Each value goes through its field's `db_value`, exactly as peewee's own query converts it
(encrypted fields encrypt, foreign keys take ids, datetimes their storage form), and each
selected column through its field's `python_value`, as peewee's cursor wrappers do; an insert's
column a row does not give takes the field's default. Statements still go through
`Database.execute_sql`, one per call, like any other (the statement-count test sees them).

A compiled SELECT or UPDATE is written as a peewee query over `Param`s, the values bound per
call: a list value is an IN list (`field.in_(param)`), its size part of the compiled shape, so
sizes above `_EXACT_SIZES` are padded to a power of two with the list's last value (an IN list
means the same with a repeated value) and a batch of any size compiles a handful of
statements. A param stands for a value, never for NULL: test NULLs with `.is_null()` in the
query itself (peewee's `field == None` would compile to `IS NULL`)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

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
        self._sql: dict[tuple[Any, int], str] = {}
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
        key = (_dialect(database), count)
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


def _dialect(database: pw.Database) -> tuple[type, Any]:
    """What the SQL text depends on: the database's class (placeholders, quoting, operators)
    and its server version. Not the object's id: a database closed and collected may leave its
    id to another of a different backend (the test suite opens many)."""
    db = database.obj if isinstance(database, pw.DatabaseProxy) else database
    return type(db), getattr(db, "server_version", None)


def _default(field: pw.Field) -> Any:
    default = field.default
    return default() if callable(default) else default


# --- SELECT and UPDATE ------------------------------------------------------------------------

_EXACT_SIZES = 8  # IN lists up to this size compile exactly; longer ones pad to a power of 2
M = TypeVar("M", bound=pw.Model)


class _Bound:
    """A placeholder of the compiled SQL: the call's value `name` (its item `index` for an IN
    list), converted with `converter` (the field's `db_value`, as peewee would)."""

    __slots__ = ("converter", "index", "name")

    def __init__(self, name: str, index: int | None, converter: Callable[[Any], Any] | None):
        self.name, self.index, self.converter = name, index, converter


class Param(pw.Node):  # type: ignore[misc]
    """A value bound per call in a compiled query: one placeholder, or `size` in parentheses
    for an IN list. Its converter is the compared field's `db_value` (what peewee applies to
    `field == value`), or `field`'s for a SET of an UPDATE."""

    def __init__(self, name: str, size: int | None = None, field: pw.Field | None = None):
        super().__init__()
        self.name, self.size, self.field = name, size, field

    def __sql__(self, ctx: pw.Context) -> pw.Context:
        converter = self.field.db_value if self.field is not None else ctx.state.converter
        if not callable(converter):
            converter = None
        # converter=False: the placeholder object goes into the parameters as it is.
        if self.size is None:
            ctx.value(_Bound(self.name, None, converter), False)
            return ctx
        ctx.literal("(")
        for i in range(self.size):
            if i:
                ctx.literal(", ")
            ctx.value(_Bound(self.name, i, converter), False)
        return ctx.literal(")")


class _Statement:
    """A compiled statement: its SQL, what each placeholder takes (a `_Bound`, or a constant
    of the query that peewee already converted), and per selected column its field's name and
    `python_value` (None for a column that is not a field)."""

    __slots__ = ("binds", "columns", "converters", "sql")

    def __init__(self, sql: str, binds: list[Any], selected: list[Any]) -> None:
        self.sql = sql
        self.binds = binds
        self.columns: list[str | None] = []
        self.converters: list[Callable[[Any], Any] | None] = []
        for raw in selected:
            node = raw.unwrap()
            field = node if isinstance(node, pw.Field) else None
            self.columns.append(field.name if field is not None else None)
            coerce = field is not None and raw._coerce
            self.converters.append(field.python_value if coerce else None)  # type: ignore[union-attr]


class CompiledQuery:
    """A SELECT or UPDATE of `model` whose SQL peewee builds once per database and shape:
    `build` takes a `Param` per keyword of the call and returns the peewee query."""

    def __init__(self, model: type[pw.Model], build: Callable[..., Any]) -> None:
        self._model = model
        self._build = build
        self._cache: dict[tuple[Any, ...], _Statement] = {}
        self._lock = threading.Lock()

    def execute(self, **values: Any) -> Any:
        """Runs the statement; the driver's cursor."""
        return self._run(*self._prepared(values))

    def rows(self, **values: Any) -> list[tuple[Any, ...]]:
        """A SELECT's rows, each column converted by its field's `python_value` (as peewee's
        `.tuples()` would)."""
        statement, values = self._prepared(values)
        converters = statement.converters
        return [
            tuple(v if c is None else c(v) for v, c in zip(row, converters, strict=True))
            for row in self._run(statement, values).fetchall()
        ]

    def rowcount(self, **values: Any) -> int:
        """An UPDATE's count of rows changed (what peewee's `.execute()` returns)."""
        return int(self.execute(**values).rowcount)

    def _run(self, statement: _Statement, values: dict[str, Any]) -> Any:
        params = []
        for bind in statement.binds:
            if type(bind) is _Bound:
                value = values[bind.name] if bind.index is None else values[bind.name][bind.index]
                params.append(value if bind.converter is None else bind.converter(value))
            else:
                params.append(bind)
        return self._model._meta.database.execute_sql(statement.sql, params)

    def _prepared(self, values: dict[str, Any]) -> tuple[_Statement, dict[str, Any]]:
        database = self._model._meta.database
        shape: list[Any] = [_dialect(database)]
        for name, value in values.items():
            if isinstance(value, (list, tuple)):
                size = len(value)
                if not size:
                    raise ValueError(f"{name}: an empty IN list (skip the statement instead)")
                if size > _EXACT_SIZES:
                    padded = 1 << (size - 1).bit_length()
                    values[name] = [*value, *[value[-1]] * (padded - size)]
                    size = padded
                shape.append((name, size))
            else:
                shape.append((name, None))
        key = tuple(shape)
        statement = self._cache.get(key)
        if statement is None:
            with self._lock:
                statement = self._cache.get(key)
                if statement is None:
                    statement = self._compile(key[1:])
                    self._cache[key] = statement
        return statement, values

    def _compile(self, shape: tuple[tuple[str, int | None], ...]) -> _Statement:
        query = self._build(**{name: Param(name, size) for name, size in shape})
        sql, params = query.sql()
        columns = list(getattr(query, "_returning", [])) if isinstance(query, pw.Select) else []
        return _Statement(str(sql), list(params), columns)


class CompiledSelect(CompiledQuery, Generic[M]):
    """A compiled SELECT of `model` rows; `objects` answers model instances, as iterating
    peewee's query would."""

    def __init__(self, model: type[M], build: Callable[..., Any]) -> None:
        super().__init__(model, build)

    def objects(self, **values: Any) -> list[M]:
        """The rows as `model` instances (only the selected fields set), like peewee's."""
        statement, values = self._prepared(values)
        names, converters = statement.columns, statement.converters
        if None in names:
            raise ValueError("objects() needs every selected column to be a field")
        model = self._model
        out = []
        for row in self._run(statement, values).fetchall():
            obj = model.__new__(model)  # what Model(__no_default__=1, **data) leaves behind
            obj.__data__ = {
                n: v if c is None else c(v) for n, v, c in zip(names, row, converters, strict=True)
            }
            obj._dirty = set()  # type: ignore[attr-defined]
            obj.__rel__ = {}
            out.append(obj)  # type: ignore[arg-type]
        return out  # type: ignore[return-value]


class CompiledUpdate(CompiledQuery):
    """A compiled `UPDATE model SET <columns> WHERE <where(**params)>`: each column takes the
    call's keyword of its name, converted by its field's `db_value`; the other keywords go to
    `where`."""

    def __init__(
        self, model: type[pw.Model], columns: Sequence[str], where: Callable[..., Any]
    ) -> None:
        fields = model._meta.fields
        unknown = [c for c in columns if c not in fields]
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {unknown}")
        names = frozenset(columns)

        def build(**params: Param) -> Any:
            changes = {fields[c]: Param(c, None, fields[c]) for c in columns}
            rest = {k: v for k, v in params.items() if k not in names}
            return model.update(changes).where(where(**rest))

        super().__init__(model, build)
