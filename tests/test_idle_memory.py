"""What an idle server imports (issue 9: idle RSS after start-up at most 70 MB).

Not a measure of bytes (`make bench` reports the RSS): a guard that heavy libraries needed only
when a feature is used stay out of a freshly built server, in a fresh interpreter:
- lxml (about 5 MB), loaded by the first ADF render;
- cryptography (about 9 MB), loaded by the first field encryption or decryption;
- phonenumbers and email-validator (about 1 MB), loaded by the first validation;
- httpx (about 6 MB, with click, rich and pygments from its command line), loaded by the first
  dealer delivery, FlexPath call or dealer endpoint check;
- psycopg2 (about 6.5 MB of bundled libraries), never loaded by `ccl serve` on SQLite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Builds the application the way `ccl serve` does (server.main imported, settings read, object
# graph built) and prints which of the given top-level modules got imported.
PROBE = """
import json, sys
import server.cli, server.main
from server.app import build_application
from server.settings import Settings

app = build_application(Settings(database_url=sys.argv[1], data_keys=sys.argv[2]))
app.close()
print(json.dumps([name for name in sys.argv[3:] if name in sys.modules]))
"""

DEFERRED = ["lxml", "cryptography", "phonenumbers", "email_validator"]
DEFERRED_LATER = ["httpx", "click", "rich", "pygments"]


def imported_by_idle_server(tmp_path: Path, names: list[str]) -> list[str]:
    key = "A" * 43 + "="  # a well-formed Fernet key (32 bytes, url-safe base64)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, f"sqlite:///{tmp_path}/idle.db", key, *names],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_idle_server_defers_feature_libraries(tmp_path: Path) -> None:
    assert imported_by_idle_server(tmp_path, DEFERRED) == []


def test_idle_server_does_not_import_httpx(tmp_path: Path) -> None:
    assert imported_by_idle_server(tmp_path, DEFERRED_LATER) == []


# `ccl serve`'s start on a given database URL: the PostgreSQL driver kept out on SQLite, then the
# server built and a query run; prints whether psycopg2 got loaded.
SERVE_PROBE = """
import json, sys
from server.cli import _without_postgresql_driver
_without_postgresql_driver(sys.argv[1])
import server.main
from server.app import build_application
from server.settings import Settings
from server.storage.migrate import apply_migrations

app = build_application(Settings(database_url=sys.argv[1], data_keys=sys.argv[2]))
apply_migrations(app.db.db)
app.db.db.execute_sql("SELECT COUNT(*) FROM lead").fetchone()
app.close()
print(json.dumps(sys.modules.get("psycopg2") is not None))
"""


def test_a_sqlite_server_never_loads_the_postgresql_driver(tmp_path: Path) -> None:
    key = "A" * 43 + "="
    out = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE, f"sqlite:///{tmp_path}/serve.db", key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
