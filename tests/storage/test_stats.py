"""Stats repository contract: every figure equals its own plain count (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import peewee as pw
import pytest

from server.app import Application
from server.storage import models as m
from server.storage.stats import StatsRepository
from support.builders import dealer, received_lead


def _by(model: Any, column: Any) -> dict[str, int]:
    rows = model.select(column, pw.fn.COUNT(pw.SQL("*"))).group_by(column).tuples()
    return {str(k): int(n) for k, n in rows}


@pytest.fixture(scope="module")
def data(application: Application) -> None:
    application.db.db.connect(reuse_if_open=True)
    dealer()
    dealer(active=False)
    for _ in range(3):
        received_lead(application)
    lead_id = received_lead(application, state="TX", zip_code="75001")
    m.Lead.update(outcome="duplicate", source="web").where(m.Lead.id == lead_id).execute()


def test_empty_and_grouped_figures_match_plain_counts(application: Application, data: None) -> None:
    f = StatsRepository(application.db).system_figures()
    day_ago = f.computed_at - dt.timedelta(hours=24)
    assert f.leads_last_24h == m.Lead.select().where(m.Lead.created_at >= day_ago).count() >= 4
    assert f.leads_by_status == _by(m.Lead, m.Lead.status)
    assert sum(f.leads_by_status.values()) == m.Lead.select().count()
    assert f.leads_by_source == _by(m.Lead, m.Lead.source)
    assert f.visitors_total == m.Visitor.select().count()
    assert f.credit_checks_total == m.CreditCheck.select().count()
    assert f.deliveries_by_state == _by(m.Delivery, m.Delivery.state)
    assert f.emails_by_state == _by(m.EmailMessage, m.EmailMessage.state) == {}
    assert f.suppressions_total == 0
    assert f.chat_sessions_open == 0
    active = m.Dealer.select().where(m.Dealer.active == True).count()  # noqa: E712
    assert f.dealers_active == active < m.Dealer.select().count()


def test_agent_figures_match_plain_counts(application: Application, data: None) -> None:
    f = StatsRepository(application.db).agent_figures()
    assert f.visitors == m.Visitor.select().count()
    assert f.visitor_events == m.VisitorEvent.select().count()
    assert f.identities == m.Identity.select().count()
    assert f.duplicate_leads == m.Lead.select().where(m.Lead.outcome == "duplicate").count() >= 1
    assert f.credit_checks == m.CreditCheck.select().count()
    assert f.credit_checks_by_source == _by(m.CreditCheck, m.CreditCheck.source)
    assert f.packages == m.LeadPackage.select().count()
    assert f.deliveries_by_state == _by(m.Delivery, m.Delivery.state)
    assert (f.campaigns, f.suppressions, f.chat_sessions, f.chat_messages) == (0, 0, 0, 0)
    assert f.emails_by_state == {}
    last = m.Activity.select(pw.fn.MAX(m.Activity.created_at)).scalar()
    assert last is not None and f.last_activity
    assert all(isinstance(at, dt.datetime) for at in f.last_activity.values())
    assert max(f.last_activity.values()) == (
        dt.datetime.fromisoformat(last) if isinstance(last, str) else last
    )
