"""Start-up security: private files, production keys and the admin key's strength.

File modes are checked under umask 022 (the usual default), which left every file 0644
before they were created private. `ccl serve` and `ccl run` run as real subprocesses; the
admin key is used over gRPC and REST through Envoy, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.fernet import Fernet
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.agent.v1 import agent_service_pb2_grpc
from server.app import ConfigurationError, admin_key_weakness, build_application
from server.domain.principal import Role
from server.ops import stack as run_stack
from server.services.auth import ENV_ADMIN_KEY_ID
from server.settings import Settings
from server.storage.migrate import apply_migrations
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread, free_port, make_settings

CCL = str(Path(sys.executable).with_name("ccl"))
# Fixed keys made once by secrets.token_urlsafe(32), secrets.token_hex(16) and uuid.uuid4():
# fixed, so the tests do not depend on chance.
STRONG_KEYS = [
    "poN_9AWY_j-azNdXW8eYEmZbO56G5KT83nHpX6Q9WdI",
    "d379f314ab36bf6c51459e72fc2ed6fd",
    "25742d33-0601-4216-b415-c37b1740c8b3",
]
STRONG_KEY = STRONG_KEYS[0]
WEAK_KEYS = [
    "a",
    "short-but-random-Zq3vN7pL2m",  # 27 characters
    "a" * 40,
    "password" * 4,
    "P@ssw0rd!" * 4,
    "Password123!Password123!Password",
    "abcdefghijklmnopqrstuvwxyz012345",
    "acgtacctgaagtccatggcattcgaccgtatgc",  # four letters: about 68 bits
    "Zq3vN7pL2mR9kT4wB6yH1jF5dC8sG0aE" + "x" * 8,
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def child_env(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without its CCL_* settings, plus `settings`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CCL_") and k != "DATABASE_URL"}
    return {**base, **settings}


def ccl(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Runs `ccl` with only the given settings (none inherited from this process)."""
    return subprocess.run(
        [CCL, *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard: refusals return at once
        check=False,
    )


def refused_with(result: subprocess.CompletedProcess[str], start: str) -> None:
    """`ccl` exited non-zero with exactly one line on stderr (no traceback) and nothing else."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {start}"), lines[0]
    assert result.stdout == ""


# --- files are private ------------------------------------------------------------------------


def test_fresh_sqlite_database_wal_shm_key_file_and_directories_are_private(
    tmp_path: Path, umask_022: None
) -> None:
    var = tmp_path / "var"
    settings = make_settings(
        f"sqlite:///{var / 'db' / 'ccl.db'}", data_keys="", data_key_file=var / "keys" / "data.key"
    )
    app = build_application(settings)
    try:
        app.db.db.connect(reuse_if_open=True)
        apply_migrations(app.db.db)  # writes, so SQLite has its -wal and -shm files open
        files = [var / "db" / name for name in ("ccl.db", "ccl.db-wal", "ccl.db-shm")]
        files.append(var / "keys" / "data.key")
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
        dirs = [var, var / "db", var / "keys"]
        assert {str(d): mode(d) for d in dirs} == {str(d): 0o700 for d in dirs}
    finally:
        app.db.db.close()
        app.close()


def test_existing_readable_key_file_and_database_are_restricted_to_their_owner(
    tmp_path: Path, umask_022: None
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    key = Fernet.generate_key().decode()
    key_file = shared / "data.key"
    key_file.write_text(key + "\n")
    database = shared / "ccl.db"
    database.write_bytes(b"")
    wal = shared / "ccl.db-wal"
    wal.write_bytes(b"")
    for f in (key_file, database, wal):
        f.chmod(0o644)
    settings = make_settings(f"sqlite:///{database}", data_keys="", data_key_file=key_file)
    app = build_application(settings)
    try:
        assert [mode(f) for f in (key_file, database, wal)] == [0o600, 0o600, 0o600]
        assert key_file.read_text().strip() == key  # the existing key is kept
        assert mode(shared) == 0o755  # a directory that existed is left alone
    finally:
        app.close()


# --- production needs its own data keys (and PostgreSQL) ---------------------------------------


def test_production_without_data_keys_refuses_to_start_and_touches_no_file(
    db_url: str, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    result = ccl(
        "serve",
        CCL_ENV="production",
        DATABASE_URL=db_url,
        CCL_DATA_KEY_FILE=str(key_dir / "data.key"),
        CCL_GRPC_PORT=str(free_port()),
    )
    refused_with(result, "CCL_ENV=production needs CCL_DATA_KEYS")
    assert not key_dir.exists()


def test_production_with_data_keys_serves_on_postgresql_and_refuses_sqlite(
    backend: str, db_url: str
) -> None:
    port = free_port()
    settings = {
        "CCL_ENV": "production",
        "DATABASE_URL": db_url,
        "CCL_DATA_KEYS": Fernet.generate_key().decode(),
        "CCL_ADMIN_API_KEY": STRONG_KEY,
        "CCL_GRPC_PORT": str(port),
        "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0",
    }
    if backend == "sqlite":
        result = ccl("serve", **settings)
        refused_with(result, "CCL_ENV=production needs DATABASE_URL=postgresql://")
        return
    process = subprocess.Popen(
        [CCL, "serve", "--migrate"], env=child_env(settings), stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60  # a hang guard
        while True:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                    reply = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    stats = agent_service_pb2_grpc.AgentServiceStub(ch).GetSystemStats(
                        agent_pb.GetSystemStatsRequest(), metadata=auth(STRONG_KEY), timeout=10
                    )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stats.database_backend == "postgresql"
    assert STRONG_KEY not in stderr


def test_unknown_environment_refuses_to_start(tmp_path: Path) -> None:
    result = ccl("serve", CCL_ENV="prod", DATABASE_URL=f"sqlite:///{tmp_path / 'ccl.db'}")
    refused_with(result, "CCL_ENV must be development or production")
    assert not list(tmp_path.iterdir())


def test_invalid_data_key_refuses_to_start_without_echoing_it(tmp_path: Path) -> None:
    bad = "not-a-fernet-key-but-a-secret"
    result = ccl("migrate", DATABASE_URL=f"sqlite:///{tmp_path / 'ccl.db'}", CCL_DATA_KEYS=bad)
    refused_with(result, "CCL_DATA_KEYS must hold Fernet keys")
    assert bad not in result.stderr


def test_a_live_mailgun_key_needs_https_unsubscribe_links(db_url: str) -> None:
    settings = make_settings(
        db_url, mailgun_api_key="key-x", mailgun_domain="mg.example.test"
    )  # the public base URL stays the development default, http://127.0.0.1:8080
    with pytest.raises(ConfigurationError, match="https:// CCL_PUBLIC_BASE_URL"):
        build_application(settings)


# --- the admin key must look random -------------------------------------------------------------


@pytest.mark.parametrize("key", WEAK_KEYS)
def test_weak_admin_key_is_refused(db_url: str, key: str) -> None:
    assert admin_key_weakness(key) is not None
    with pytest.raises(ConfigurationError, match=r"^CCL_ADMIN_API_KEY is not a strong") as e:
        build_application(make_settings(db_url, admin_api_key=key))
    assert len(key) < 8 or key not in str(e.value)  # never echoed ("a" is in any text)


@pytest.mark.parametrize("key", STRONG_KEYS)
def test_random_keys_of_the_usual_generators_are_accepted(key: str) -> None:
    assert admin_key_weakness(key) is None


def test_ccl_serve_with_weak_admin_key_prints_one_line_without_the_key(db_url: str) -> None:
    weak = "password" * 4
    result = ccl(
        "serve",
        DATABASE_URL=db_url,
        CCL_DATA_KEYS=Fernet.generate_key().decode(),
        CCL_ADMIN_API_KEY=weak,
        CCL_GRPC_PORT=str(free_port()),
    )
    refused_with(result, "CCL_ADMIN_API_KEY is not a strong random key: a stretch of 8")
    assert weak not in result.stderr


@pytest.fixture(scope="module")
def strong_settings(db_url: str) -> Settings:
    return make_settings(db_url, admin_api_key=STRONG_KEY)


@pytest.fixture(scope="module")
def strong_stack(strong_settings: Settings) -> Iterator[ServerThread]:
    server = ServerThread(strong_settings).start()
    yield server
    server.stop()


def test_strong_admin_key_works_over_grpc(strong_stack: ServerThread) -> None:
    with strong_stack.channel() as ch:
        stub = agent_service_pb2_grpc.AgentServiceStub(ch)
        stats = stub.GetSystemStats(
            agent_pb.GetSystemStatsRequest(), metadata=auth(STRONG_KEY), timeout=10
        )
        assert stats.database_backend == strong_stack.app.db.backend
        with pytest.raises(grpc.RpcError) as e:
            stub.GetSystemStats(
                agent_pb.GetSystemStatsRequest(), metadata=auth(STRONG_KEY[:-1]), timeout=10
            )
    assert rich_error(e.value).reason == "API_KEY_INVALID"
    principal = asyncio.run(strong_stack.app.api_keys.authenticate(STRONG_KEY))
    assert principal.role is Role.ADMIN and principal.key_id == ENV_ADMIN_KEY_ID


def test_strong_admin_key_works_over_rest(strong_stack: ServerThread, tmp_path: Path) -> None:
    proxy = EnvoyProcess([strong_stack.port], tmp_path).start()
    try:
        with httpx.Client(base_url=proxy.base_url, timeout=10) as http:
            ok = http.get("/api/system/stats", headers={"x-api-key": STRONG_KEY})
            denied = http.get("/api/system/stats", headers={"x-api-key": "a"})
    finally:
        proxy.stop()
    assert ok.status_code == 200, ok.text
    assert denied.status_code == 401, denied.text


# --- `ccl run` (make run) ------------------------------------------------------------------------


def test_ccl_run_prints_a_generated_key_only_and_never_the_configured_one(
    strong_stack: ServerThread,
    strong_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    umask_022: None,
) -> None:
    monkeypatch.chdir(tmp_path)  # var/dev-admin.key is relative to the working directory
    configured = run_stack.ensure_dev_admin_key(strong_settings)
    assert configured is None and not (tmp_path / "var").exists()
    text = run_stack.banner(strong_settings, 50051, configured)
    assert STRONG_KEY not in text
    assert "the configured CCL_ADMIN_API_KEY (not shown)" in text
    assert 'Bearer $CCL_ADMIN_API_KEY"' in text

    dev_settings = strong_settings.model_copy(update={"admin_api_key": ""})
    generated = run_stack.ensure_dev_admin_key(dev_settings)
    assert generated is not None
    key_file = tmp_path / "var" / "dev-admin.key"
    assert (mode(tmp_path / "var"), mode(key_file)) == (0o700, 0o600)
    assert key_file.read_text().strip() == generated
    principal = asyncio.run(strong_stack.app.api_keys.authenticate(generated))
    assert principal.role is Role.ADMIN
    assert run_stack.ensure_dev_admin_key(dev_settings) == generated  # kept across runs
    assert f"Dev admin key:    {generated}" in run_stack.banner(dev_settings, 50051, generated)


def test_ccl_run_refuses_production(tmp_path: Path) -> None:
    result = ccl(
        "run",
        CCL_ENV="production",
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/never",
        CCL_DATA_KEYS=Fernet.generate_key().decode(),
    )
    refused_with(result, "ccl run is the development stack")
