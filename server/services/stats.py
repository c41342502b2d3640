"""System statistics and per-agent status, computed from the database on each call."""

from __future__ import annotations

import datetime as dt
import enum
import time
from dataclasses import dataclass, field
from typing import Any

from server.agents.credit_check import CreditCheckAgent
from server.agents.email_reengagement import EmailDispatcher
from server.domain.leads import AgentName
from server.outbox.worker import OutboxWorker
from server.storage.db import Database
from server.storage.stats import StatsRepository


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
        built=True,
    ),
    AgentInfo(
        "RealtimeChat",
        AgentName.REALTIME_CHAT,
        "Customer support chat with streamed AI replies, lead capture and human hand-off.",
        built=False,
    ),
)


class StatsService:
    def __init__(
        self,
        db: Database,
        version: str,
        credit: CreditCheckAgent | None = None,
        delivery: OutboxWorker[Any] | None = None,
        email: EmailDispatcher | None = None,
    ) -> None:
        self._email = email
        self._db = db
        self._figures = StatsRepository(db)
        self._version = version
        self._credit = credit
        self._delivery = delivery
        self._started = time.monotonic()

    async def system_stats(self) -> SystemStats:
        f = await self._db.run(self._figures.system_figures)
        return SystemStats(
            version=self._version,
            uptime_seconds=int(time.monotonic() - self._started),
            database_backend=self._db.backend,
            computed_at=f.computed_at,
            leads_total=sum(f.leads_by_status.values()),
            leads_last_24h=f.leads_last_24h,
            leads_by_status=f.leads_by_status,
            leads_by_source=f.leads_by_source,
            visitors_total=f.visitors_total,
            credit_checks_total=f.credit_checks_total,
            deliveries_by_state=f.deliveries_by_state,
            emails_by_state=f.emails_by_state,
            suppressions_total=f.suppressions_total,
            chat_sessions_open=f.chat_sessions_open,
            dealers_active=f.dealers_active,
        )

    async def agent_statuses(self) -> list[AgentStatus]:
        f = await self._db.run(self._figures.agent_figures)
        metrics = {
            AgentName.VISITOR_IDENTIFIER: {
                "visitors": f.visitors,
                "visitor_events": f.visitor_events,
                "identities": f.identities,
                "duplicate_leads": f.duplicate_leads,
            },
            AgentName.CREDIT_CHECK: {
                "checks": f.credit_checks,
                **{f"checks_{k}": v for k, v in f.credit_checks_by_source.items()},
            },
            AgentName.LEAD_PACKAGING: {
                "packages": f.packages,
                **{f"deliveries_{k}": v for k, v in f.deliveries_by_state.items()},
            },
            AgentName.EMAIL_REENGAGEMENT: {
                "campaigns": f.campaigns,
                **{f"emails_{k}": v for k, v in f.emails_by_state.items()},
                "suppressions": f.suppressions,
            },
            AgentName.REALTIME_CHAT: {
                "sessions": f.chat_sessions,
                "sessions_open": f.chat_sessions_open,
                "messages": f.chat_messages,
            },
        }
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
            state, detail = self._state(info)
            out.append(
                AgentStatus(
                    name=info.name,
                    description=info.description,
                    state=state,
                    detail=detail,
                    metrics=metrics[info.agent],
                    last_activity_at=f.last_activity.get(info.agent.value),
                )
            )
        return out

    def _state(self, info: AgentInfo) -> tuple[AgentState, str]:
        if not info.built:
            return AgentState.DISABLED, "not built yet: its RPCs answer UNIMPLEMENTED"
        if info.agent is AgentName.CREDIT_CHECK and self._credit is not None:
            state, detail = self._credit.status()
            return (AgentState.READY if state == "ready" else AgentState.DEGRADED), detail
        if info.agent is AgentName.EMAIL_REENGAGEMENT:
            if self._email is None or self._email.simulating:
                return AgentState.DEGRADED, (
                    "no Mailgun API key configured; campaign, drip and transactional email is "
                    "simulated (recorded, not sent)"
                )
            return AgentState.READY, "sending through Mailgun"
        return AgentState.READY, ""
