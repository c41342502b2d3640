"""VisitorIdentifier on SQLite and PostgreSQL: stitching, its guards, duplicates, privacy."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.agents.visitor_identifier.agent import (
    VisitorEventInput,
    VisitorIdentifier,
    clean_email,
    clean_phone,
    corrected_time,
    is_junk_email,
    is_junk_phone,
    truncate_ip,
)
from server.app import Application
from server.domain.leads import LeadOutcome
from server.domain.validation import validate_lead
from server.storage import models as m
from server.transport.converters import lead_input
from support.data import example_message

_n = itertools.count()


def unique_lead(email: str | None = None, phone: str | None = None, visitor: str = ""):  # type: ignore[no-untyped-def]
    i = next(_n)
    message = example_message(
        email=email or f"vi{i}@example.com",
        phone=phone or f"(415) 555-{1000 + i:04d}",
        visitor_id=visitor or None,
    )
    return validate_lead(lead_input(message.lead))


@pytest.fixture()
def vi(application: Application) -> VisitorIdentifier:
    return VisitorIdentifier(region="US", lookback_days=30, max_emails=2, max_phones=2)


def resolve(application: Application, vi: VisitorIdentifier, lead, now=None):  # type: ignore[no-untyped-def]
    """Resolves and stores a lead row the way intake does, in one transaction."""
    from server.storage.leads import LeadRepository

    stored = LeadRepository(application.db).create(
        lead,
        scope="internal",
        idempotency_key="",
        request_hash="h",
        source_dealer_id=None,
        resolve=lambda v, t: vi.resolve_lead(v, now or t),
    )
    return stored


@pytest.mark.parametrize(
    "value",
    [
        "test@test.com",
        "null",
        "anonymous",
        "noemail@gmail.com",
        "aaaa@yahoo.com",
        "someone@mailinator.com",
        "",
        "no at sign",
    ],
)
def test_junk_emails(value: str) -> None:
    assert is_junk_email(value)
    assert clean_email(value) is None


@pytest.mark.parametrize(
    "value", ["000-000-0000", "(111) 111-1111", "123-456-7890", "null", "555-555-5555"]
)
def test_junk_phones(value: str) -> None:
    assert clean_phone(value, "US") is None


def test_real_values_are_kept() -> None:
    assert clean_email("Maria.Lopez@Example.com") == "maria.lopez@example.com"
    assert clean_phone("(312) 555-0182", "US") == "+13125550182"
    assert not is_junk_phone("+13125550182")


@given(st.sampled_from("0123456789"))
def test_any_repeated_digit_phone_is_junk(d: str) -> None:
    assert is_junk_phone("+1" + d * 10)


def test_truncate_ip() -> None:
    assert truncate_ip("203.0.113.9") == "203.0.113.0"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::"
    assert truncate_ip("garbage") == ""


def test_skew_correction() -> None:
    received = dt.datetime(2026, 11, 24, 12, 0, 0)
    # The browser's clock is 2 hours fast: event at its 13:59:50, sent at its 14:00:00.
    event, sent = dt.datetime(2026, 11, 24, 13, 59, 50), dt.datetime(2026, 11, 24, 14, 0, 0)
    assert corrected_time(received, event, sent) == dt.datetime(2026, 11, 24, 11, 59, 50)
    assert corrected_time(received, None, None) == received
    assert corrected_time(received, dt.datetime(2020, 1, 1), None) == received  # absurd clock
    assert corrected_time(
        received, received - dt.timedelta(minutes=5), None
    ) == received - dt.timedelta(minutes=5)


def test_new_then_returning_by_email_and_by_phone(
    application: Application, vi: VisitorIdentifier
) -> None:
    first = resolve(
        application, vi, unique_lead(email="same.person@example.com", phone="(415) 555-2001")
    )
    assert first.identity.new_identity and first.outcome is LeadOutcome.ACCEPTED
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(
        days=45
    )  # past the lookback
    by_phone = resolve(
        application, vi, unique_lead(email="other.addr@example.com", phone="(415) 555-2001"), later
    )
    assert by_phone.identity.identity_id == first.identity.identity_id
    assert by_phone.identity.matched_by == "phone"
    assert by_phone.outcome is LeadOutcome.ACCEPTED  # 45 days later: not a duplicate
    assert by_phone.returning_applicant


def test_duplicate_within_lookback_links_to_the_original(
    application: Application, vi: VisitorIdentifier
) -> None:
    original = resolve(application, vi, unique_lead(email="dup.check@example.com"))
    dup1 = resolve(application, vi, unique_lead(email="dup.check@example.com"))
    dup2 = resolve(application, vi, unique_lead(email="dup.check@example.com"))
    assert dup1.outcome is LeadOutcome.DUPLICATE and dup2.outcome is LeadOutcome.DUPLICATE
    rows = m.Lead.select().where(m.Lead.id.in_([dup1.lead_id, dup2.lead_id]))
    assert {r.duplicate_of_id for r in rows} == {original.lead_id}, "always linked to the original"
    assert {r.pipeline_stage for r in rows} == {"done"}, "never credit checked or delivered"


def test_junk_values_never_stitch_strangers(
    application: Application, vi: VisitorIdentifier
) -> None:
    a = resolve(application, vi, unique_lead(email="test@test.com", phone="(415) 555-3001"))
    b = resolve(application, vi, unique_lead(email="test@test.com", phone="(415) 555-3002"))
    assert a.identity.identity_id != b.identity.identity_id
    assert b.outcome is LeadOutcome.ACCEPTED, "a shared junk email does not make a duplicate"


def test_identifier_cap_stops_runaway_stitching(
    application: Application, vi: VisitorIdentifier
) -> None:
    far = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    phone = "(415) 555-4001"
    ids = set()
    for i in range(4):  # one phone shared with four emails: the identity keeps at most two
        stored = resolve(
            application,
            vi,
            unique_lead(email=f"cap{i}@example.com", phone=phone),
            far + dt.timedelta(days=40 * i),
        )
        ids.add(stored.identity.identity_id)
    assert len(ids) == 1
    emails = m.IdentityIdentifier.select().where(
        (m.IdentityIdentifier.identity == ids.pop()) & (m.IdentityIdentifier.kind == "email")
    )
    assert emails.count() == 2
    assert m.Activity.select().where(m.Activity.kind == "identity.cap_reached").exists()


def test_visitor_events_stitch_and_merge_identities(
    application: Application, vi: VisitorIdentifier
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def track(anon: str, **kw: str):  # type: ignore[no-untyped-def]
        with application.db.transaction():
            return vi.track(
                VisitorEventInput(anonymous_id=anon, event_type="identify", **kw), False, now
            )

    a = track("anon-merge-a", email="merge.me@example.com")
    b = track("anon-merge-b", phone="(415) 555-5001")
    assert a.identity_id != b.identity_id
    joined = track("anon-merge-a", phone="(415) 555-5001")  # the same person, on both
    assert joined.identity_id == a.identity_id
    assert m.Identity.get_or_none(m.Identity.id == b.identity_id) is None, "merged into the older"
    visitor_b = m.Visitor.get(m.Visitor.anonymous_id == "anon-merge-b")
    assert visitor_b.identity_id == a.identity_id


def test_opt_out_event_is_recorded_without_stitching(
    application: Application, vi: VisitorIdentifier
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    event = VisitorEventInput(
        anonymous_id="anon-dnt",
        event_type="identify",
        email="dnt.person@example.com",
        ip_address="198.51.100.77",
    )
    with application.db.transaction():
        result = vi.track(event, True, now)
    assert result.privacy_opt_out and result.identity_id == ""
    stored = (
        m.VisitorEvent.select().join(m.Visitor).where(m.Visitor.anonymous_id == "anon-dnt").get()
    )
    assert stored.ip_address == "198.51.100.0" and stored.privacy_opt_out
    assert (
        not m.IdentityIdentifier.select()
        .where(m.IdentityIdentifier.value == "dnt.person@example.com")
        .exists()
    )


def test_retried_event_is_recorded_once(application: Application, vi: VisitorIdentifier) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    event = VisitorEventInput(anonymous_id="anon-retry", event_type="page_view", event_id="e-1")
    for _ in range(3):
        with application.db.transaction():
            vi.track(event, False, now)
    visitor = m.Visitor.get(m.Visitor.anonymous_id == "anon-retry")
    assert visitor.event_count == 1
