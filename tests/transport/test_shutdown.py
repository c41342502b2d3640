"""Graceful shutdown: NOT_SERVING first, in-flight calls drained, SIGTERM handled by `ccl serve`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from cryptography.fernet import Fernet
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.agent.v1 import agent_service_pb2_grpc
from server.app import Application
from server.domain.principal import Role
from support.rpc import auth
from support.stack import ServerThread, free_port, make_settings


def test_in_flight_call_finishes_and_health_goes_not_serving(tmp_path: Path) -> None:
    started = threading.Event()

    def slow_stats(app: Application) -> None:
        original = app.stats.system_stats

        async def slow():  # type: ignore[no-untyped-def]
            started.set()
            await asyncio.sleep(1.5)
            return await original()

        app.stats.system_stats = slow  # type: ignore[method-assign]

    settings = make_settings(
        f"sqlite:///{tmp_path / 'shutdown.db'}",
        shutdown_grace_seconds=10,
        shutdown_drain_delay_seconds=1.0,
    )
    server = ServerThread(settings, customize=slow_stats).start()
    key = server.create_key(Role.ADMIN)
    result: dict[str, object] = {}

    def call() -> None:
        with server.channel() as ch:
            stub = agent_service_pb2_grpc.AgentServiceStub(ch)
            result["stats"] = stub.GetSystemStats(
                agent_pb.GetSystemStatsRequest(), metadata=auth(key)
            )

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    server.request_stop()
    time.sleep(0.3)  # inside the drain delay: still answering, but NOT_SERVING
    with server.channel() as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
    caller.join(15)
    server.stop()
    assert "stats" in result, "the in-flight call was cut"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ccl_serve_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "CCL_DATA_KEYS": Fernet.generate_key().decode(),
        "CCL_GRPC_PORT": str(port),
        "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0.2",
    }
    ccl = str(Path(sys.executable).with_name("ccl"))
    process = subprocess.Popen(
        [ccl, "serve", "--migrate"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
                    reply = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.1)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert '"message": "shutting down"' in stderr
    assert '"message": "stopped"' in stderr
