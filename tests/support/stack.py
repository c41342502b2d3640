"""A real server for tests: migrated database, gRPC server on a free port in its own thread
(with its own event loop, so sync tests, grpcurl and Envoy can call it), and real Envoy."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from cryptography.fernet import Fernet

from server.app import Application, build_application
from server.domain.principal import Role
from server.ops import envoy
from server.settings import Settings
from server.storage.migrate import apply_migrations
from server.transport.server import GrpcServer, create_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "data_keys": Fernet.generate_key().decode(),
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "api_key_cache_seconds": 0,
        "db_threads": 4,
        "shutdown_grace_seconds": 2,
        "shutdown_drain_delay_seconds": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class ServerThread:
    """Runs the gRPC server for `settings` in a background thread until `stop()`."""

    settings: Settings
    customize: Callable[[Application], None] | None = None
    app: Application = field(init=False)
    port: int = field(init=False, default=0)
    grpc_server: GrpcServer = field(init=False)
    _loop: asyncio.AbstractEventLoop = field(init=False)
    _stop: asyncio.Event = field(init=False)
    _ready: threading.Event = field(init=False, default_factory=threading.Event)
    _error: BaseException | None = field(init=False, default=None)

    def start(self) -> ServerThread:
        self.app = build_application(self.settings)
        self.app.db.db.connect(reuse_if_open=True)
        apply_migrations(self.app.db.db)
        self.app.db.db.close()
        if self.customize:
            self.customize(self.app)
        self._thread = threading.Thread(target=self._run, name="ccl-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("server did not start")
        if self._error:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.grpc_server = create_server(self.app.server_parts(), "127.0.0.1", 0)
        await self.grpc_server.start()
        self.port = self.grpc_server.port
        workers_stop = asyncio.Event()
        workers = asyncio.create_task(self.app.run_background(workers_stop))
        self._ready.set()
        await self._stop.wait()
        await self.grpc_server.stop(
            self.settings.shutdown_grace_seconds, self.settings.shutdown_drain_delay_seconds
        )
        workers_stop.set()
        await workers
        await self.app.aclose()

    def request_stop(self) -> None:
        with suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)

    def stop(self) -> None:
        self.request_stop()
        self._thread.join(30)
        self.app.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def create_key(self, role: Role, dealer_id: str | None = None) -> str:
        self.app.db.db.connect(reuse_if_open=True)
        try:
            return self.app.api_keys.create_sync(role, dealer_id).api_key
        finally:
            self.app.db.db.close()

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.address)


@dataclass
class EnvoyProcess:
    """Real Envoy in front of the given upstream gRPC ports."""

    upstream_ports: list[int]
    work_dir: Path
    cors_origins: list[str] = field(default_factory=lambda: ["https://completecarloans.com"])
    rate_limit_per_second: int = 100_000
    max_drain_bytes: int = envoy.EnvoyConfig.max_drain_bytes
    http_port: int = field(init=False, default=0)
    admin_port: int = field(init=False, default=0)
    config_path: Path = field(init=False)

    def start(self) -> EnvoyProcess:
        self.http_port, self.admin_port = free_port(), free_port()
        self.config_path = envoy.write_config(
            envoy.EnvoyConfig(
                http_port=self.http_port,
                admin_port=self.admin_port,
                upstreams=[("127.0.0.1", p) for p in self.upstream_ports],
                cors_origins=self.cors_origins,
                rate_limit_per_second=self.rate_limit_per_second,
                max_drain_bytes=self.max_drain_bytes,
            ),
            self.work_dir / "envoy.yaml",
        )
        self.log_path = self.work_dir / "envoy.log"
        self.process = envoy.start(self.config_path, self.log_path)
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout: float = 30) -> None:
        """Ready, and the upstream passed an active health check (no 503 on first calls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"envoy exited: {self.log_path.read_text()[-2000:]}")
            with suppress(OSError):
                url = f"http://127.0.0.1:{self.admin_port}/clusters"
                with urllib.request.urlopen(url, timeout=1) as r:
                    body = r.read().decode()
                    if "health_flags::healthy" in body:
                        return
            time.sleep(0.1)
        raise RuntimeError("envoy did not see a healthy upstream")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"
