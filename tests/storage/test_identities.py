"""IdentityRepository contract, on SQLite and PostgreSQL: visitors and their events, identities
and their identifiers (links, lost races, counts, merges), and the recent-lead lookup."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import pytest

from server.app import Application
from server.domain.identity import VisitorEventInput
from server.domain.validation import validate_lead
from server.storage import models as m
from server.storage.identities import IdentityRepository
from server.storage.leads import LeadRepository
from server.transport.converters import lead_input
from support.data import example_message

_n = itertools.count()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture()
def repo(application: Application) -> IdentityRepository:
    return IdentityRepository()


def test_visitor_is_created_once(application: Application, repo: IdentityRepository) -> None:
    anon, now = _unique("anon"), _now()
    with application.db.transaction():
        first = repo.visitor(anon, now)
        again = repo.visitor(anon, now)
    assert first.id == again.id
    assert first.identity_id is None and first.event_count == 0
    assert m.Visitor.select().where(m.Visitor.anonymous_id == anon).count() == 1


def test_event_is_recorded_once_per_event_id(
    application: Application, repo: IdentityRepository
) -> None:
    anon, now = _unique("anon"), _now()
    event = VisitorEventInput(anonymous_id=anon, event_type="page_view", event_id=_unique("e"))
    outcomes = []
    for _ in range(3):
        with application.db.transaction():
            visitor = repo.visitor(anon, now)
            outcomes.append(
                repo.record_event(
                    visitor.id,
                    event,
                    ip_address="198.51.100.0",
                    occurred_at=now,
                    received_at=now,
                    privacy_opt_out=True,
                )
            )
    assert outcomes == [True, False, False]
    assert repo.visitor(anon, now).event_count == 1
    stored = m.VisitorEvent.get(m.VisitorEvent.event_id == event.event_id)
    assert stored.ip_address == "198.51.100.0" and stored.privacy_opt_out


def test_links_owners_counts_and_lost_races(
    application: Application, repo: IdentityRepository
) -> None:
    now = _now()
    email = ("email", f"{_unique('a')}@example.com")
    phone = ("phone", f"+1415{next(_n) % 10_000_000:07d}")
    with application.db.transaction():
        a = repo.create_identity(now)
        b = repo.create_identity(now)
        assert repo.owners([email, phone]) == {}
        assert repo.link_to_new(a.id, email)
        assert not repo.link_to_new(b.id, email), "the identifier belongs to a"
        assert repo.link(a.id, phone)
        assert not repo.link(b.id, phone), "a lost race is a value, the transaction goes on"
        assert repo.owners([email, phone]) == {email: a.id, phone: a.id}
        owners, counts = repo.link_state(b.id, [email, phone])
        assert owners == {email: a.id, phone: a.id} and counts == {}
        owners, counts = repo.link_state(a.id, [email])
        assert owners == {email: a.id} and counts == {"email": 1, "phone": 1}
        assert repo.identifier_counts([a.id, b.id]) == {"email": 1, "phone": 1}
        assert repo.has_identifiers(a.id) and not repo.has_identifiers(b.id)
        assert {i.id for i in repo.identities([a.id, b.id])} == {a.id, b.id}
        repo.delete_identity(b.id)
        assert [i.id for i in repo.identities([a.id, b.id])] == [a.id]


def test_merge_moves_identifiers_and_visitors(
    application: Application, repo: IdentityRepository
) -> None:
    now = _now()
    value = ("email", f"{_unique('m')}@example.com")
    with application.db.transaction():
        keep, drop = repo.create_identity(now), repo.create_identity(now)
        repo.link(drop.id, value)
        visitor = repo.visitor(_unique("anon"), now)
        repo.set_visitor_identity(visitor.id, drop.id)
        repo.merge(keep.id, drop.id)
        repo.touch_identity(keep.id, now + dt.timedelta(seconds=1))
    assert repo.owners([value]) == {value: keep.id}
    assert m.Visitor.get_by_id(visitor.id).identity_id == keep.id
    assert repo.identities([drop.id]) == []
    assert m.Identity.get_by_id(keep.id).updated_at == now + dt.timedelta(seconds=1)


def test_earliest_recent_lead_is_the_original(application: Application) -> None:
    repo, leads = IdentityRepository(), LeadRepository(application.db)
    email = f"{_unique('dup')}@example.com"
    phone = f"(415) 555-{7000 + next(_n) % 1000:04d}"

    def store(lead_email: str, lead_phone: str) -> str:
        message = example_message(email=lead_email, phone=lead_phone)
        valid = validate_lead(lead_input(message.lead))
        return leads.create(
            valid, scope="internal", idempotency_key="", request_hash="h", source_dealer_id=None
        ).lead_id

    before = _now() - dt.timedelta(seconds=1)
    original = store(email, phone)
    normalized = m.Lead.get_by_id(original)
    with application.db.transaction():
        assert repo.earliest_recent_lead(normalized.email_normalized, None, before) == original
        assert repo.earliest_recent_lead(None, normalized.phone_e164, before) == original
        assert repo.earliest_recent_lead(None, None, before) is None
        later = _now() + dt.timedelta(days=1)
        assert repo.earliest_recent_lead(normalized.email_normalized, None, later) is None
