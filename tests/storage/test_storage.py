"""Storage contract: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import peewee as pw
import pytest

from server.app import Application
from server.domain.leads import LeadFilter, LeadOutcome, LeadStatus, Page
from server.domain.validation import validate_lead
from server.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from server.storage import models
from server.storage.db import open_database
from server.storage.leads import LeadRepository
from server.storage.migrate import apply_migrations, pending_migrations
from support.backends import postgres_database


def _valid(email: str = "maria.lopez@example.com", phone: str = "(312) 555-0182"):  # type: ignore[no-untyped-def]
    from server.transport.converters import lead_input
    from support.data import example_message

    message = example_message(email=email, phone=phone)
    return validate_lead(lead_input(message.lead))


@pytest.fixture()
def repo(application: Application) -> LeadRepository:
    return LeadRepository(application.db)


def _schema(
    db: pw.Database,
) -> dict[str, tuple[set[tuple[str, str, bool]], set[tuple[tuple[str, ...], bool]]]]:
    out = {}
    for table in db.get_tables():
        if table == "migratehistory":
            continue
        columns = {(c.name, c.data_type.lower(), c.null) for c in db.get_columns(table)}
        indexes = {(tuple(i.columns), i.unique) for i in db.get_indexes(table)}
        out[table] = (columns, indexes)
    return out


def test_migrations_are_applied_and_idempotent(application: Application) -> None:
    assert pending_migrations(application.db.db) == []
    assert apply_migrations(application.db.db) == []


def test_migrated_schema_matches_the_models(
    application: Application, backend: str, tmp_path: Path
) -> None:
    """What the migrations built equals what peewee would create from the models today."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            scratch_url = f"sqlite:///{tmp_path / 'scratch.db'}"
        else:
            scratch_url = stack.enter_context(postgres_database())
        scratch = open_database(scratch_url)
        stack.callback(scratch.close)
        with _bound(scratch):
            scratch.create_tables(models.ALL_MODELS)
        fresh = _schema(scratch)
    migrated = _schema(application.db.db)
    assert set(migrated) == set(fresh)
    for table in fresh:
        assert migrated[table][0] == fresh[table][0], f"columns of {table} differ"
        assert migrated[table][1] == fresh[table][1], f"indexes of {table} differ"


class _bound:
    """Temporarily binds every model to another database."""

    def __init__(self, db: pw.Database) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.ctx = self.db.bind_ctx(models.ALL_MODELS, bind_refs=False, bind_backrefs=False)
        self.ctx.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.ctx.__exit__(*exc)


def test_lead_round_trip_and_encryption_at_rest(
    repo: LeadRepository, application: Application
) -> None:
    stored = repo.create(
        _valid(), scope="internal", idempotency_key="", request_hash="h", source_dealer_id=None
    )
    lead = repo.get(stored.lead_id)
    assert lead.status is LeadStatus.RECEIVED
    assert lead.outcome is LeadOutcome.ACCEPTED
    assert lead.applicant.phone == "+13125550182"
    assert lead.applicant.date_of_birth == "1990-04-12"
    assert lead.applicant.monthly_income_cents == 420000
    assert lead.applicant.consent is not None and lead.applicant.consent.tcpa
    raw = application.db.db.execute_sql(
        "SELECT date_of_birth, monthly_income_cents FROM lead WHERE id = %s"
        if application.db.backend == "postgresql"
        else "SELECT date_of_birth, monthly_income_cents FROM lead WHERE id = ?",
        (stored.lead_id,),
    ).fetchone()
    assert "1990" not in raw[0] and "420000" not in raw[1]
    assert raw[0].startswith("gAAAA")  # a Fernet token


def test_consent_evidence_is_stored_per_kind(repo: LeadRepository) -> None:
    stored = repo.create(
        _valid("consent@example.com", "(312) 555-0100"),
        scope="internal",
        idempotency_key="",
        request_hash="h",
        source_dealer_id=None,
    )
    rows = {
        c.kind: c
        for c in models.LeadConsent.select().where(models.LeadConsent.lead == stored.lead_id)
    }
    assert set(rows) == {"tcpa", "fcra_soft_pull"}
    assert rows["tcpa"].ip_address == "203.0.113.9"
    assert rows["tcpa"].page_url == "https://completecarloans.com/apply"
    assert rows["fcra_soft_pull"].granted is True


def test_idempotency_returns_first_result_and_rejects_changed_request(repo: LeadRepository) -> None:
    before = models.Lead.select().count()
    first = repo.create(
        _valid(), scope="internal", idempotency_key="k-1", request_hash="aaa", source_dealer_id=None
    )
    again = repo.create(
        _valid(), scope="internal", idempotency_key="k-1", request_hash="aaa", source_dealer_id=None
    )
    assert again.lead_id == first.lead_id and again.replay and not first.replay
    assert models.Lead.select().count() == before + 1
    with pytest.raises(AlreadyExistsError) as e:
        repo.create(
            _valid(),
            scope="internal",
            idempotency_key="k-1",
            request_hash="bbb",
            source_dealer_id=None,
        )
    assert e.value.reason == "IDEMPOTENCY_KEY_REUSED"
    other_scope = repo.create(
        _valid(), scope="dealer:x", idempotency_key="k-1", request_hash="aaa", source_dealer_id=None
    )
    assert other_scope.lead_id != first.lead_id


def test_activity_is_written_with_the_lead(repo: LeadRepository) -> None:
    stored = repo.create(
        _valid(), scope="internal", idempotency_key="", request_hash="h", source_dealer_id=None
    )
    page = repo.list_activity(stored.lead_id, Page(size=10))
    assert [a.kind for a in page.items] == ["lead.received", "lead.validated"]
    for a in page.items:
        assert "maria" not in (a.summary + a.details_json).lower()


def test_list_paginates_newest_first_without_gaps(repo: LeadRepository) -> None:
    ids = {
        repo.create(
            _valid(f"page{i}@example.com", f"(312) 555-01{i:02d}"),
            scope="internal",
            idempotency_key="",
            request_hash="h",
            source_dealer_id=None,
        ).lead_id
        for i in range(7)
    }
    seen: list[str] = []
    token = ""
    while True:
        page = repo.list(LeadFilter(source="website"), Page(size=3, token=token))
        seen.extend(r.lead_id for r in page.items)
        token = page.next_page_token
        if not token:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen))
    created = [repo.get(i).created_at for i in seen]
    assert created == sorted(created, reverse=True)


def test_bad_page_token_is_invalid_argument(repo: LeadRepository) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        repo.list(LeadFilter(), Page(size=3, token="not-a-token"))
    assert e.value.reason == "INVALID_PAGE_TOKEN"


def test_dealer_sees_only_its_own_leads(repo: LeadRepository) -> None:
    a = models.Dealer.create(name="A")
    b = models.Dealer.create(name="B")
    lead = repo.create(
        _valid("own@example.com", "(312) 555-0142"),
        scope=f"dealer:{a.id}",
        idempotency_key="",
        request_hash="h",
        source_dealer_id=a.id,
    )
    assert repo.get(lead.lead_id, dealer_id=a.id).source_dealer_id == a.id
    with pytest.raises(NotFoundError):
        repo.get(lead.lead_id, dealer_id=b.id)
    assert lead.lead_id not in {
        r.lead_id for r in repo.list(LeadFilter(), Page(size=500), dealer_id=b.id).items
    }


def test_created_filters(repo: LeadRepository) -> None:
    future = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(days=1)
    assert repo.list(LeadFilter(created_after=future), Page(size=10)).items == []


def test_upgrade_in_place_keeps_data(backend: str, tmp_path: Path) -> None:
    """A database at migration 001 with a lead in it upgrades to the latest schema in place."""
    from peewee_migrate import Router

    from server.storage.migrate import MIGRATIONS_DIR

    with contextlib.ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'old.db'}"
            if backend == "sqlite"
            else stack.enter_context(postgres_database())
        )
        db = open_database(url)
        stack.callback(db.close)
        Router(db, migrate_dir=MIGRATIONS_DIR, ignore=["basemodel"]).run("001_initial")
        assert "pipeline_stage" not in {c.name for c in db.get_columns("lead")}
        columns = {
            "id": "old-lead-1",
            "status": "received",
            "outcome": "accepted",
            "reason": "",
            "source": "website",
            "visitor_anonymous_id": "",
            "score": 0,
            "delivery_state": "",
            "first_name": "Old",
            "last_name": "Lead",
            "email": "old@example.com",
            "email_normalized": "old@example.com",
            "phone_e164": "+13125550100",
            "date_of_birth": "x",
            "monthly_income_cents": "x",
            "down_payment_cents": 0,
            "street": "1 A St",
            "street2": "",
            "city": "X",
            "state": "IL",
            "zip_code": "62701",
            "vehicle_year": 0,
            "vehicle_make": "",
            "vehicle_model": "",
            "vehicle_trim": "",
            "vehicle_vin": "",
            "vehicle_price_cents": 0,
            "employment_status": "",
            "months_employed": 0,
            "months_at_address": 0,
            "created_at": "2026-11-01 10:00:00",
            "updated_at": "2026-11-01 10:00:00",
        }
        mark = "%s" if backend == "postgresql" else "?"
        db.execute_sql(
            f"INSERT INTO lead ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",  # noqa: S608 (constant names)
            tuple(columns.values()),
        )
        with _bound(db):
            assert apply_migrations(db) == [
                "002_lead_pipeline_lease",
                "003_lead_pipeline_owner",
                "004_encrypt_packages_at_rest",
                "005_dealer_secret_rotation",
                "006_lead_vehicle_details",
                "007_dealer_contact",
                "008_dealer_endpoint_auth",
                "009_email_campaigns",
                "010_dealer_email_channel",
                "011_drips_and_frequency_cap",
            ]
            row = db.execute_sql("SELECT first_name, pipeline_stage FROM lead").fetchone()
        assert row == ("Old", "intake"), "kept, and queued for the pipeline sweep"
