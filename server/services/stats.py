"""System statistics and per-agent status, computed from the database on each call."""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import peewee as pw

from server.agents.credit_check import CreditCheckAgent
from server.agents.dealer_delivery import DeliveryWorker
from server.domain.leads import AgentName
from server.storage import models as m
from server.storage.db import Database


@dataclass(frozen=True)
class SystemStats:
    version: str
    uptime_seconds: int
    database_backend: str
    computed_at: dt.datetime
    leads_total: int
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


class AgentState(enum.StrEnum):
    READY = "ready"
    DEGRADED = "degraded"
    DISABLED = "disabled"


@dataclass(frozen=True)
class AgentStatus:
    name: str
    description: str
    state: AgentState
    detail: str
    metrics: dict[str, int] = field(default_factory=dict)
    last_activity_at: dt.datetime | None = None


@dataclass(frozen=True)
class AgentInfo:
    """What the status page says of an agent that is not running yet, or is."""

    name: str
    agent: AgentName
    description: str
    built: bool


AGENTS: tuple[AgentInfo, ...] = (
    AgentInfo(
        "VisitorIdentifier",
        AgentName.VISITOR_IDENTIFIER,
        "Records website visitors, stitches them to known applicants and finds duplicate leads.",
        built=True,
    ),
    AgentInfo(
        "CreditCheck",
        AgentName.CREDIT_CHECK,
        "Soft-pull pre-qualification through FlexPath, with a deterministic simulation fallback.",
        built=True,
    ),
    AgentInfo(
        "LeadPackaging",
        AgentName.LEAD_PACKAGING,
        "Scores leads, routes them to dealers and delivers ADF or JSON packages.",
        built=True,
    ),
    AgentInfo(
        "EmailReengagement",
        AgentName.EMAIL_REENGAGEMENT,
        "Bulk campaigns and drip sequences for abandoned applications, through Mailgun.",
        built=False,
    ),
    AgentInfo(
        "RealtimeChat",
        AgentName.REALTIME_CHAT,
        "Customer support chat with streamed AI replies, lead capture and human hand-off.",
        built=False,
    ),
)


def _count_by(model: type[m.BaseModel], column: pw.Field) -> dict[str, int]:
    query = model.select(column, pw.fn.COUNT(pw.SQL("*")).alias("n")).group_by(column)
    rows = cast(Iterable[tuple[Any, Any]], query.tuples())
    return {str(k): int(n) for k, n in rows}


class StatsService:
    def __init__(
        self,
        db: Database,
        version: str,
        credit: CreditCheckAgent | None = None,
        delivery: DeliveryWorker | None = None,
    ) -> None:
        self._db = db
        self._version = version
        self._credit = credit
        self._delivery = delivery
        self._started = time.monotonic()

    async def system_stats(self) -> SystemStats:
        return await self._db.run(self._system_stats)

    def _system_stats(self) -> SystemStats:
        now = m.utcnow()
        by_status = _count_by(m.Lead, m.Lead.status)
        return SystemStats(
            version=self._version,
            uptime_seconds=int(time.monotonic() - self._started),
            database_backend=self._db.backend,
            computed_at=now,
            leads_total=sum(by_status.values()),
            leads_last_24h=m.Lead.select()
            .where(m.Lead.created_at >= now - dt.timedelta(hours=24))
            .count(),
            leads_by_status=by_status,
            leads_by_source=_count_by(m.Lead, m.Lead.source),
            visitors_total=m.Visitor.select().count(),
            credit_checks_total=m.CreditCheck.select().count(),
            deliveries_by_state=_count_by(m.Delivery, m.Delivery.state),
            emails_by_state=_count_by(m.EmailMessage, m.EmailMessage.state),
            suppressions_total=m.Suppression.select().count(),
            chat_sessions_open=m.ChatSession.select().where(m.ChatSession.state == "open").count(),
            dealers_active=m.Dealer.select().where(m.Dealer.active == True).count(),  # noqa: E712
        )

    async def agent_statuses(self) -> list[AgentStatus]:
        return await self._db.run(self._agent_statuses)

    def _agent_statuses(self) -> list[AgentStatus]:
        metrics = {
            AgentName.VISITOR_IDENTIFIER: {
                "visitors": m.Visitor.select().count(),
                "visitor_events": m.VisitorEvent.select().count(),
                "identities": m.Identity.select().count(),
                "duplicate_leads": m.Lead.select().where(m.Lead.outcome == "duplicate").count(),
            },
            AgentName.CREDIT_CHECK: {
                "checks": m.CreditCheck.select().count(),
                **{
                    f"checks_{k}": v
                    for k, v in _count_by(m.CreditCheck, m.CreditCheck.source).items()
                },
            },
            AgentName.LEAD_PACKAGING: {
                "packages": m.LeadPackage.select().count(),
                **{
                    f"deliveries_{k}": v for k, v in _count_by(m.Delivery, m.Delivery.state).items()
                },
            },
            AgentName.EMAIL_REENGAGEMENT: {
                "campaigns": m.Campaign.select().count(),
                **{
                    f"emails_{k}": v
                    for k, v in _count_by(m.EmailMessage, m.EmailMessage.state).items()
                },
                "suppressions": m.Suppression.select().count(),
            },
            AgentName.REALTIME_CHAT: {
                "sessions": m.ChatSession.select().count(),
                "sessions_open": m.ChatSession.select()
                .where(m.ChatSession.state == "open")
                .count(),
                "messages": m.ChatMessage.select().count(),
            },
        }
        last_activity: dict[str, Any] = dict(
            cast(
                Iterable[tuple[str, Any]],
                m.Activity.select(m.Activity.agent, pw.fn.MAX(m.Activity.created_at))
                .group_by(m.Activity.agent)
                .tuples(),
            )
        )
        if self._credit is not None:
            metrics[AgentName.CREDIT_CHECK].update(
                {f"process_{k}": v for k, v in self._credit.metrics().items()}
            )
        if self._delivery is not None:
            metrics[AgentName.LEAD_PACKAGING].update(
                {
                    "process_delivered": self._delivery.delivered,
                    "process_delivery_failures": self._delivery.failed,
                }
            )
        out = []
        for info in AGENTS:
            last = last_activity.get(info.agent.value)
            if isinstance(last, str):  # SQLite returns MAX() of a datetime column as text
                last = dt.datetime.fromisoformat(last)
            state, detail = self._state(info)
            out.append(
                AgentStatus(
                    name=info.name,
                    description=info.description,
                    state=state,
                    detail=detail,
                    metrics=metrics[info.agent],
                    last_activity_at=last,
                )
            )
        return out

    def _state(self, info: AgentInfo) -> tuple[AgentState, str]:
        if not info.built:
            return AgentState.DISABLED, "not built yet: its RPCs answer UNIMPLEMENTED"
        if info.agent is AgentName.CREDIT_CHECK and self._credit is not None:
            state, detail = self._credit.status()
            return (AgentState.READY if state == "ready" else AgentState.DEGRADED), detail
        return AgentState.READY, ""
