"""What an idle server imports (issue 9: idle RSS after start-up at most 70 MB).

Not a measure of bytes (`make bench` reports the RSS): a guard that heavy libraries needed only
when a feature is used stay out of a freshly built server, in a fresh interpreter:
- lxml (about 5 MB), loaded by the first ADF render;
- cryptography (about 9 MB), loaded by the first field encryption or decryption;
- phonenumbers and email-validator (about 1 MB), loaded by the first validation;
- httpx (about 6 MB, with click, rich and pygments from its command line), loaded by the first
  dealer delivery, FlexPath call or dealer endpoint check;
- psycopg2 (about 6.5 MB of bundled libraries), never loaded by `ccl serve` on SQLite;
- peewee-migrate (about 6 MB with the unittest.mock it imports), loaded only to migrate (`ccl
  serve --migrate` migrates in a child process), and playhouse.db_url (every peewee backend).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.backends import database_url
from support.stack import free_port

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

DEFERRED = [
    "lxml",
    "cryptography",
    "phonenumbers",
    "email_validator",
    "peewee_migrate",  # about 6 MB with unittest.mock: only to migrate
    "unittest",
    "playhouse.db_url",  # every peewee backend: about 1 MB
]
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


def _maps_of_a_running_server(tmp_path: Path, database_url: str) -> str:
    """`/proc/<pid>/maps` of a real `ccl serve` once it answers health checks."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CCL_DATA_KEYS": "A" * 43 + "=",
        "CCL_GRPC_PORT": str(port),
        "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0",
    }
    ccl = str(Path(sys.executable).with_name("ccl"))
    process = subprocess.Popen(
        [ccl, "serve", "--migrate"], env=env, cwd=tmp_path, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a timing
        while True:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert process.poll() is None, "ccl serve exited"
            assert time.monotonic() < deadline, "ccl serve did not come up"
            time.sleep(0.1)
        return Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_sqlite_server_never_loads_the_postgresql_driver(tmp_path: Path) -> None:
    maps = _maps_of_a_running_server(tmp_path, f"sqlite:///{tmp_path}/serve.db")
    assert "_sqlite3" in maps, "the probe sees the server's libraries"
    assert "psycopg2" not in maps


def test_a_postgresql_server_loads_its_driver(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        maps = _maps_of_a_running_server(tmp_path, url)
    assert "psycopg2" in maps
