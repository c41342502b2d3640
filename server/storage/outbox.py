"""The generic outbox table access: claim due rows under a lease, and record results only as the
lease holder. Every kind of outbox work (dealer deliveries today; email sends and drip steps
next) keeps its rows in a table of its own with the same lease columns: `id`, `state`,
`attempts`, `next_attempt_at`, `locked_by`, `locked_until` (see `models.Delivery`,
`models.EmailMessage`). A kind's repository (`storage/deliveries.py`) says which of its rows
are due and what a claim reads and a result writes besides; the lease rules live here, once.

Claiming sets `locked_by`/`locked_until` (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so workers in
several processes take disjoint rows; SQLite serialises writers). A worker that dies leaves a
lease that expires, and the row is claimed again: delivery is at least once. A claim can be
capped per partition (a dealer, a recipient domain), so one partition's backlog never takes
every slot of a worker. Both functions run inside the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import peewee as pw

# The states in which a row waits for an attempt.
DUE_STATES = ("pending", "retrying")


@dataclass(frozen=True)
class OutboxTable:
    """An outbox table and the column its claims are capped by (None: no partitions)."""

    model: Any  # a peewee model with the lease columns
    partition: pw.Field | None = None


def due_condition(table: OutboxTable, now: dt.datetime) -> pw.Expression:
    """Rows waiting for an attempt that is due, leased to no one (or under an expired lease)."""
    t = table.model
    due: pw.Expression = (
        t.state.in_(DUE_STATES)
        & (t.next_attempt_at <= now)
        & (t.locked_until.is_null() | (t.locked_until < now))
    )
    return due


def _within_partition_allowance(
    table: OutboxTable, due: pw.Expression, per_partition: int, busy: Mapping[str, int]
) -> pw.Select:
    """The ids of due rows that rank, oldest first within their partition, inside what the
    partition may still have in flight (`per_partition` minus its rows already `busy`)."""
    t, partition = table.model, table.partition
    assert partition is not None
    rank = (
        pw.fn.ROW_NUMBER()
        .over(partition_by=[partition], order_by=[t.next_attempt_at, t.id])
        .alias("partition_rank")
    )
    ranked = t.select(t.id, partition.alias("partition_key"), rank).where(due).alias("ranked")
    allowance: pw.Node = pw.Value(per_partition)
    if busy:
        allowance = pw.Case(
            ranked.c.partition_key,
            [(key, per_partition - count) for key, count in busy.items()],
            per_partition,
        )
    return pw.Select([ranked], [ranked.c.id]).where(ranked.c.partition_rank <= allowance)


def lease_due(
    table: OutboxTable,
    *,
    backend: str,
    worker_id: str,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    also: pw.Expression | None = None,
    per_partition: int | None = None,
    busy: Mapping[str, int] | None = None,
) -> list[str]:
    """Leases up to `limit` due rows (and `also`) to `worker_id`, oldest due first; returns
    their ids. With `per_partition`, at most `per_partition - busy[key]` rows of one partition
    are leased (`busy`: the partition's rows the worker already has in flight). Two statements
    (select, update), or one when nothing is due. Call it inside a transaction."""
    t = table.model
    due = due_condition(table, now)
    if also is not None:
        due &= also
    if per_partition is not None:
        due &= t.id.in_(_within_partition_allowance(table, due, per_partition, busy or {}))
    query = t.select(t.id).where(due).order_by(t.next_attempt_at).limit(limit)
    if backend == "postgresql":
        query = query.for_update(skip_locked=True)
    ids = [row.id for row in query]
    if ids:
        t.update(locked_by=worker_id, locked_until=now + lease).where(t.id.in_(ids)).execute()
    return ids


def settle(table: OutboxTable, row_id: str, worker_id: str, **fields: Any) -> bool:
    """Writes an attempt's result and releases the lease, only if `worker_id` still holds it;
    False when the lease was lost (someone else owns the row now). Counts the attempt."""
    t = table.model
    updated = (
        t.update(attempts=t.attempts + 1, locked_by="", locked_until=None, **fields)
        .where((t.id == row_id) & (t.locked_by == worker_id))
        .execute()
    )
    return bool(updated)
