"""`ccl dealers create/update` with endpoint credentials, run as a real subprocess on SQLite and
PostgreSQL: secrets come from the environment variables the flags name (never the command
line), are stored encrypted, never printed, and `--clear-endpoint-auth` removes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from server.app import build_application
from server.storage.dealers import DealerRepository
from server.storage.models import utcnow
from support.stack import make_settings

CCL = str(Path(sys.executable).with_name("ccl"))
DATA_KEY = Fernet.generate_key().decode()
PASSWORD = "cli-Pa55word-e1f2"
TOKEN = "Bearer cli-token-a9b8c7"


def ccl(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "DATABASE_URL": db_url, "CCL_DATA_KEYS": DATA_KEY, **env}
    return subprocess.run(
        [CCL, *args], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def credentials(db_url: str, dealer_id: str):  # type: ignore[no-untyped-def]
    app = build_application(make_settings(db_url, data_keys=DATA_KEY))
    try:
        app.db.db.connect(reuse_if_open=True)
        target = DealerRepository(app.db).delivery_target(dealer_id, utcnow())
        assert target is not None
        return target.credentials
    finally:
        app.db.db.close()
        app.close()


def raw_column(db_url: str, dealer_id: str) -> str | None:
    app = build_application(make_settings(db_url, data_keys=DATA_KEY))
    try:
        row = app.db.db.execute_sql(
            "SELECT endpoint_auth FROM dealer WHERE id = "  # noqa: S608 (constant text)
            + ("%s" if db_url.startswith("postgres") else "?"),
            (dealer_id,),
        ).fetchone()
        return None if row[0] is None else str(row[0])
    finally:
        app.db.db.close()
        app.close()


def test_create_update_and_clear_endpoint_credentials(db_url: str) -> None:
    assert ccl(db_url, "migrate").returncode == 0
    created = ccl(
        db_url,
        "dealers",
        "create",
        "--name",
        "CLI Motors",
        "--endpoint",
        "https://crm.example.com/leads",
        "--basic-auth-user",
        "cli-user",
        "--basic-auth-password-env",
        "CRM_PASSWORD",
        CRM_PASSWORD=PASSWORD,
    )
    assert created.returncode == 0, created.stderr
    dealer_id = created.stdout.strip()
    assert PASSWORD not in created.stdout + created.stderr
    got = credentials(db_url, dealer_id)
    assert (got.kind, got.username, got.password) == ("basic", "cli-user", PASSWORD)
    raw = raw_column(db_url, dealer_id)
    assert raw is not None and PASSWORD not in raw and "cli-user" not in raw

    updated = ccl(
        db_url,
        "dealers",
        "update",
        dealer_id,
        "--auth-header",
        "Authorization",
        "--auth-header-value-env",
        "CRM_TOKEN",
        CRM_TOKEN=TOKEN,
    )
    assert updated.returncode == 0, updated.stderr
    assert "endpoint_auth" in updated.stdout and TOKEN not in updated.stdout + updated.stderr
    got = credentials(db_url, dealer_id)
    assert (got.kind, got.name, got.value) == ("header", "Authorization", TOKEN)

    kept = ccl(db_url, "dealers", "update", dealer_id, "--weight", "3")
    assert kept.returncode == 0, kept.stderr
    assert credentials(db_url, dealer_id).kind == "header"

    cleared = ccl(db_url, "dealers", "update", dealer_id, "--clear-endpoint-auth")
    assert cleared.returncode == 0, cleared.stderr
    assert credentials(db_url, dealer_id) is None
    assert raw_column(db_url, dealer_id) is None


@pytest.mark.parametrize(
    ("args", "env", "error"),
    [
        (["--basic-auth-user", "u"], {}, "--basic-auth-password-env is required"),
        (
            ["--basic-auth-user", "u", "--basic-auth-password-env", "NOT_SET_ANYWHERE_42"],
            {},
            "NOT_SET_ANYWHERE_42 is not set",
        ),
        (["--auth-header", "X-Api-Key"], {}, "--auth-header-value-env is required"),
        (["--auth-header-value-env", "V"], {"V": "x"}, "goes with"),
        (
            ["--basic-auth-user", "u", "--basic-auth-password-env", "P", "--auth-header", "X-A"],
            {"P": "x"},
            "not both",
        ),
        (
            ["--auth-header", "Host", "--auth-header-value-env", "V"],
            {"V": "x"},
            "INVALID_DEALER",
        ),
        (
            ["--basic-auth-user", "a:b", "--basic-auth-password-env", "P"],
            {"P": PASSWORD},
            "INVALID_DEALER",
        ),
    ],
)
def test_bad_credential_flags_are_refused(
    db_url: str, args: list[str], env: dict[str, str], error: str
) -> None:
    ccl(db_url, "migrate")
    result = ccl(db_url, "dealers", "create", "--name", "Bad CLI Motors", *args, **env)
    assert result.returncode == 2
    assert error in result.stderr and result.stdout == ""
    assert PASSWORD not in result.stderr


def test_clear_with_new_credentials_is_refused(db_url: str) -> None:
    ccl(db_url, "migrate")
    created = ccl(db_url, "dealers", "create", "--name", "Clear CLI Motors")
    dealer_id = created.stdout.strip()
    both = ccl(
        db_url,
        "dealers",
        "update",
        dealer_id,
        "--clear-endpoint-auth",
        "--auth-header",
        "X-Api-Key",
        "--auth-header-value-env",
        "V",
        V="x",
    )
    assert both.returncode == 2 and "--clear-endpoint-auth" in both.stderr


def test_a_password_on_the_command_line_is_not_taken(db_url: str) -> None:
    """Not even as an abbreviation of `--basic-auth-password-env` (argparse's default)."""
    ccl(db_url, "migrate")
    for flag in ("--basic-auth-password", "--basic-auth-password-e", "--auth-header-value"):
        result = ccl(
            db_url,
            "dealers",
            "create",
            "--name",
            "Typed Motors",
            "--basic-auth-user",
            "u",
            flag,
            PASSWORD,
        )
        assert result.returncode == 2 and result.stdout == ""
        assert "unrecognized arguments" in result.stderr
    assert "Typed Motors" not in ccl(db_url, "dealers", "list").stdout
