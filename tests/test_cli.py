"""The `ccl` command, run as a real subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from server.app import build_application
from server.domain.principal import Role
from server.errors import UnauthenticatedError
from support.stack import make_settings

CCL = str(Path(sys.executable).with_name("ccl"))
DATA_KEY = Fernet.generate_key().decode()


def ccl(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "CCL_DATA_KEYS": DATA_KEY}
    return subprocess.run(
        [CCL, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_migrate_then_up_to_date(db_url: str) -> None:
    first = ccl(db_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert "001_initial" in first.stdout
    again = ccl(db_url, "migrate")
    assert again.returncode == 0 and "up to date" in again.stdout


def test_keys_create_authenticates_and_revoke_stops_it(db_url: str) -> None:
    ccl(db_url, "migrate")
    created = ccl(db_url, "keys", "create", "--role", "ops", "--name", "oncall")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ccl_") and len(created.stdout.splitlines()) == 1
    app = build_application(make_settings(db_url, data_keys=DATA_KEY))
    try:
        principal = asyncio.run(app.api_keys.authenticate(key))
        assert principal.role is Role.OPS
        listed = ccl(db_url, "keys", "list")
        assert principal.key_id in listed.stdout and key not in listed.stdout
        revoked = ccl(db_url, "keys", "revoke", principal.key_id)
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(UnauthenticatedError):
            asyncio.run(app.api_keys.authenticate(key))
        assert ccl(db_url, "keys", "revoke", principal.key_id).returncode == 2
    finally:
        app.close()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--role", "wizard"], "INVALID_ROLE"),
        (["--role", "dealer"], "DEALER_REQUIRED"),
        (["--role", "admin", "--dealer", "d-1"], "DEALER_NOT_ALLOWED"),
        (["--role", "dealer", "--dealer", "no-such-dealer"], "DEALER_NOT_FOUND"),
    ],
)
def test_keys_create_refuses_bad_input(db_url: str, args: list[str], reason: str) -> None:
    ccl(db_url, "migrate")
    result = ccl(db_url, "keys", "create", *args)
    assert result.returncode == 2
    assert reason in result.stderr
    assert result.stdout == ""


def test_dealers_create_list_update(db_url: str) -> None:
    ccl(db_url, "migrate")
    created = ccl(
        db_url,
        "dealers",
        "create",
        "--name",
        "CLI Motors",
        "--states",
        "IL,in",
        "--tiers",
        "A,B",
        "--endpoint",
        "https://crm.example/leads",
        "--format",
        "adf",
        "--contact-email",
        "leads@cli-motors.example",
    )
    assert created.returncode == 0, created.stderr
    dealer_id = created.stdout.strip()
    assert "signing secret (shown once" in created.stderr
    listed = ccl(db_url, "dealers", "list")
    assert dealer_id in listed.stdout and "IL,IN" in listed.stdout and "adf" in listed.stdout
    updated = ccl(db_url, "dealers", "update", dealer_id, "--daily-cap", "5", "--no-active")
    assert updated.returncode == 0, updated.stderr
    assert "inactive" in ccl(db_url, "dealers", "list").stdout
    bad = ccl(db_url, "dealers", "create", "--name", "Bad", "--states", "ZZ")
    assert bad.returncode == 2 and "INVALID_DEALER" in bad.stderr
    missing = ccl(db_url, "dealers", "update", "no-such-dealer", "--weight", "2")
    assert missing.returncode == 2 and "DEALER_NOT_FOUND" in missing.stderr


def test_dealers_with_an_email_channel(db_url: str) -> None:
    ccl(db_url, "migrate")
    created = ccl(
        db_url,
        "dealers",
        "create",
        "--name",
        "Mail Motors",
        "--states",
        "IL",
        "--format",
        "adf",
        "--channel",
        "email",
        "--intake-email",
        "Leads@CRM.example",
        "--contact-phone",
        "(312) 555-0100",
    )
    assert created.returncode == 0, created.stderr
    dealer_id = created.stdout.strip()
    # An email dealer keeps its intake address: clearing it is refused.
    cleared = ccl(db_url, "dealers", "update", dealer_id, "--intake-email", "")
    assert cleared.returncode == 2 and "dealer.intake_email" in cleared.stderr
    moved = ccl(db_url, "dealers", "update", dealer_id, "--intake-email", "new@crm.example")
    assert moved.returncode == 0, moved.stderr
    no_address = ccl(
        db_url, "dealers", "create", "--name", "No Address", "--states", "IL", "--channel", "email"
    )
    assert no_address.returncode == 2 and "INVALID_DEALER" in no_address.stderr


def test_deliveries_retry_reports_what_it_queued(db_url: str) -> None:
    ccl(db_url, "migrate")
    result = ccl(db_url, "deliveries", "retry", "--all-failed")
    assert result.returncode == 0, result.stderr
    assert "queued again: 0 deliveries" in result.stdout
    unknown = ccl(db_url, "deliveries", "retry", "no-such-delivery")
    assert unknown.returncode == 2 and "DELIVERY_NOT_FOUND" in unknown.stderr
