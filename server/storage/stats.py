"""Figures for the system stats and the agent status page, each read in one statement.

Every count, plain or grouped, is one branch of a single `UNION ALL` of `(figure, key, n)`
rows, so the figures of one call come from one statement (and one snapshot) instead of one
query per figure. The agents' last activity is a second statement (its value is a time)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import peewee as pw

from server.storage import models as m
from server.storage.db import Database


@dataclass(frozen=True)
class SystemFigures:
    computed_at: dt.datetime
    leads_last_24h: int
    leads_by_status: dict[str, int]
    leads_by_source: dict[str, int]
    visitors_total: int
    credit_checks_total: int
    deliveries_by_state: dict[str, int]
    emails_by_state: dict[str, int]
    suppressions_total: int
    chat_sessions_open: int
    dealers_active: int


@dataclass(frozen=True)
class AgentFigures:
    visitors: int
    visitor_events: int
    identities: int
    duplicate_leads: int
    credit_checks: int
    credit_checks_by_source: dict[str, int]
    packages: int
    deliveries_by_state: dict[str, int]
    campaigns: int
    emails_by_state: dict[str, int]
    suppressions: int
    chat_sessions: int
    chat_sessions_open: int
    chat_messages: int
    last_activity: dict[str, dt.datetime]  # by agent name


def _count(figure: str, model: type[m.BaseModel], where: Any = None) -> pw.Select:
    query = model.select(
        pw.Value(figure).alias("figure"), pw.Value("").alias("k"), pw.fn.COUNT(pw.SQL("*"))
    )
    return query if where is None else query.where(where)


def _count_by(figure: str, model: type[m.BaseModel], column: pw.Field) -> pw.Select:
    return model.select(
        pw.Value(figure).alias("figure"), column.alias("k"), pw.fn.COUNT(pw.SQL("*"))
    ).group_by(column)


def _read(branches: list[pw.Select]) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Runs the branches as one statement: plain counts by figure, grouped counts by figure."""
    query: pw.SelectBase = branches[0]
    for branch in branches[1:]:
        query = query + branch  # UNION ALL
    counts: dict[str, int] = {}
    groups: dict[str, dict[str, int]] = defaultdict(dict)
    for figure, key, n in cast(Iterable[tuple[str, Any, Any]], query.tuples()):
        counts[figure] = counts.get(figure, 0) + int(n)
        groups[figure][str(key)] = int(n)
    return counts, groups


class StatsRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def system_figures() -> SystemFigures:
        now = m.utcnow()
        counts, groups = _read(
            [
                _count("leads_24h", m.Lead, m.Lead.created_at >= now - dt.timedelta(hours=24)),
                _count_by("status", m.Lead, m.Lead.status),
                _count_by("source", m.Lead, m.Lead.source),
                _count("visitors", m.Visitor),
                _count("checks", m.CreditCheck),
                _count_by("deliveries", m.Delivery, m.Delivery.state),
                _count_by("emails", m.EmailMessage, m.EmailMessage.state),
                _count("suppressions", m.Suppression),
                _count("chats_open", m.ChatSession, m.ChatSession.state == "open"),
                _count("dealers_active", m.Dealer, m.Dealer.active == True),  # noqa: E712
            ]
        )
        return SystemFigures(
            computed_at=now,
            leads_last_24h=counts.get("leads_24h", 0),
            leads_by_status=groups.get("status", {}),
            leads_by_source=groups.get("source", {}),
            visitors_total=counts.get("visitors", 0),
            credit_checks_total=counts.get("checks", 0),
            deliveries_by_state=groups.get("deliveries", {}),
            emails_by_state=groups.get("emails", {}),
            suppressions_total=counts.get("suppressions", 0),
            chat_sessions_open=counts.get("chats_open", 0),
            dealers_active=counts.get("dealers_active", 0),
        )

    @staticmethod
    def agent_figures() -> AgentFigures:
        counts, groups = _read(
            [
                _count("visitors", m.Visitor),
                _count("visitor_events", m.VisitorEvent),
                _count("identities", m.Identity),
                _count("duplicates", m.Lead, m.Lead.outcome == "duplicate"),
                _count_by("checks", m.CreditCheck, m.CreditCheck.source),
                _count("packages", m.LeadPackage),
                _count_by("deliveries", m.Delivery, m.Delivery.state),
                _count("campaigns", m.Campaign),
                _count_by("emails", m.EmailMessage, m.EmailMessage.state),
                _count("suppressions", m.Suppression),
                _count("chats", m.ChatSession),
                _count("chats_open", m.ChatSession, m.ChatSession.state == "open"),
                _count("chat_messages", m.ChatMessage),
            ]
        )
        last = m.Activity.select(m.Activity.agent, pw.fn.MAX(m.Activity.created_at)).group_by(
            m.Activity.agent
        )
        last_activity: dict[str, dt.datetime] = {}
        for agent, at in cast(Iterable[tuple[str, Any]], last.tuples()):
            if isinstance(at, str):  # SQLite returns MAX() of a datetime column as text
                at = dt.datetime.fromisoformat(at)
            last_activity[agent] = at
        return AgentFigures(
            visitors=counts.get("visitors", 0),
            visitor_events=counts.get("visitor_events", 0),
            identities=counts.get("identities", 0),
            duplicate_leads=counts.get("duplicates", 0),
            credit_checks=counts.get("checks", 0),
            credit_checks_by_source=groups.get("checks", {}),
            packages=counts.get("packages", 0),
            deliveries_by_state=groups.get("deliveries", {}),
            campaigns=counts.get("campaigns", 0),
            emails_by_state=groups.get("emails", {}),
            suppressions=counts.get("suppressions", 0),
            chat_sessions=counts.get("chats", 0),
            chat_sessions_open=counts.get("chats_open", 0),
            chat_messages=counts.get("chat_messages", 0),
            last_activity=last_activity,
        )
