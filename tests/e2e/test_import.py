"""`ccl import` as a real subprocess against a real server: CSV in, leads processed through the
whole pipeline, rejects file out, safe to re-run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.domain.principal import Role
from support.stack import ServerThread, make_settings

pytestmark = pytest.mark.e2e
CCL = str(Path(sys.executable).with_name("ccl"))
COLUMNS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "street",
    "city",
    "state",
    "zip_code",
    "monthly_income_cents",
    "down_payment_cents",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "tcpa",
    "fcra_soft_pull",
    "consent_text",
    "source",
]


def write_csv(path: Path, rows: int, bad_every: int = 50, area: int = 312) -> int:
    """`rows` distinct applicants; every `bad_every`-th has a bad email. Returns the bad count."""
    bad = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(rows):
            email = f"import{i}.{path.stem}@example.com"
            if i % bad_every == 0:
                email, bad = "not-an-email", bad + 1
            w.writerow(
                [
                    "Ana",
                    f"Import{i}",
                    email,
                    f"({area}) {200 + i // 10000:03d}-{i % 10000:04d}",
                    "1985-03-02",
                    "1 Main St",
                    "Springfield",
                    "IL",
                    "62701",
                    380000,
                    50000,
                    2019,
                    "Honda",
                    "Civic",
                    "true",
                    "true",
                    "I agree",
                    "import",
                ]
            )
    return bad


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    stack = ServerThread(make_settings(db_url)).start()
    yield stack
    stack.stop()


def run_import(
    server: ServerThread, key: str, path: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CCL_API_KEY": key}
    return subprocess.run(
        [CCL, "import", str(path), "--target", server.address, "--no-progress", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_import_writes_rejects_and_is_safe_to_rerun(server: ServerThread, tmp_path: Path) -> None:
    key = server.create_key(Role.SERVICE)
    path = tmp_path / "leads.csv"
    bad = write_csv(path, 400)
    first = run_import(server, key, path)
    assert first.returncode == 1, first.stdout + first.stderr  # some rows were rejected
    assert f"{400 - bad} accepted, 0 duplicate, {bad} rejected" in first.stdout
    rejects = list(csv.DictReader((tmp_path / "leads.rejects.csv").open()))
    assert len(rejects) == bad
    assert all(r["reason"] == "lead.email: is not a valid email address" for r in rejects)
    assert rejects[0]["row"] == "1" and rejects[0]["last_name"] == "Import0"

    again = run_import(server, key, path)
    assert f"({400 - bad} already imported by an earlier run)" in again.stdout
    server.app.db.db.connect(reuse_if_open=True)
    try:
        from server.storage import models

        assert models.Lead.select().where(models.Lead.source == "import").count() == 400 - bad
        credit_checked = (
            models.CreditCheck.select().join(models.Lead).where(models.Lead.source == "import")
        )
        assert credit_checked.count() == 400 - bad, "every imported lead went through the pipeline"
    finally:
        server.app.db.db.close()


def test_many_chunks(server: ServerThread, tmp_path: Path, backend: str) -> None:
    """Chunking end to end: twelve ImportLeads streams, their counts and rejects added up.
    Volume (10,000 rows and rows/s) is measured by `make bench`, never in a timed test."""
    if backend != "sqlite":
        pytest.skip("run once: the chunking, not the backend, is what this test is about")
    key = server.create_key(Role.SERVICE)
    path = tmp_path / "big.csv"
    bad = write_csv(path, 1_200, bad_every=100, area=217)
    result = run_import(server, key, path, "--chunk-size", "100")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1200 rows in" in result.stdout
    assert f"{1_200 - bad} accepted, 0 duplicate, {bad} rejected" in result.stdout
    assert sum(1 for _ in (tmp_path / "big.rejects.csv").open()) == bad + 1
