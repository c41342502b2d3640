"""The earlier benchmark (`make bench` now runs bench/harness.py, with in-run baselines):
ProcessLead throughput and latency, over gRPC and over REST through Envoy, and `ccl import` of
a --import-rows CSV (10,000 by default: the volume the test suite leaves here).

Starts `ccl serve` as its own process (SQLite in a temp dir by default, or
--database-url) with real Envoy in front, then drives it from this process
with grpc.aio and httpx at a fixed concurrency. Every request is a distinct
valid lead with its own idempotency key, so each one is a full
validate-encrypt-insert transaction (lead + 2 consents + 2 activity rows +
idempotency record).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
from cryptography.fernet import Fernet
from google.protobuf import json_format

from ccl.agent.v1 import agent_service_pb2, agent_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2, lead_service_pb2_grpc
from server.ops import envoy

CCL = str(Path(sys.executable).with_name("ccl"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lead_json(i: int, run: str) -> dict:  # type: ignore[type-arg]
    return {
        "idempotency_key": f"bench-{run}-{i}",
        "lead": {
            "first_name": "Bench",
            "last_name": f"Person{i}",
            "email": f"bench.{run}.{i}@example.com",
            "phone": f"(312) {200 + (i // 10000) % 700}-{i % 10000:04d}",
            "date_of_birth": "1988-06-01",
            "address": {
                "street": "1 Main St",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
            "monthly_income_cents": 400000,
            "down_payment_cents": 50000,
            "vehicle": {"year": 2020, "make": "Honda", "model": "Civic"},
            "consent": {"tcpa": True, "fcra_soft_pull": True, "consent_text": "I agree"},
            "source": "website",
        },
    }


def run_import(grpc_port: int, key: str, rows: int, tmp: str) -> None:
    """`ccl import` of `rows` distinct leads (1% with a bad email), timed end to end."""
    import csv

    path = Path(tmp, "import.csv")
    columns = ["first_name", "last_name", "email", "phone", "date_of_birth", "street", "city"]
    columns += ["state", "zip_code", "monthly_income_cents", "tcpa", "fcra_soft_pull"]
    columns += ["consent_text"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for i in range(rows):
            email = "not-an-email" if i % 100 == 99 else f"import.{i}@example.com"
            phone = f"(217) {200 + i // 10000:03d}-{i % 10000:04d}"
            address = ["1 Main St", "Springfield", "IL", "62701"]
            consent = ["true", "true", "I agree"]
            writer.writerow(
                ["Import", f"Row{i}", email, phone, "1985-03-02", *address, "350000", *consent]
            )
    env = {**os.environ, "CCL_API_KEY": key}
    start = time.perf_counter()
    done = subprocess.run(
        [CCL, "import", str(path), "--target", f"127.0.0.1:{grpc_port}", "--no-progress"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
    print(f"import    {rows} rows in {wall:.1f} s = {rows / wall:,.0f} rows/s  ({summary})")


def report(name: str, latencies: list[float], wall: float) -> None:
    latencies.sort()
    n = len(latencies)
    p = lambda q: latencies[min(n - 1, int(q * n))] * 1000  # noqa: E731
    print(
        f"{name:<34} {n:>6} req  {n / wall:>8.0f} req/s   p50 {p(0.50):6.2f} ms"
        f"   p99 {p(0.99):7.2f} ms   mean {statistics.fmean(latencies) * 1000:6.2f} ms"
    )


async def run_grpc(port: int, key: str, n: int, concurrency: int, run: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = lead_service_pb2_grpc.LeadServiceStub(channel)
        metadata = (("authorization", f"Bearer {key}"),)
        requests = [
            json_format.ParseDict(lead_json(i, run), lead_service_pb2.ProcessLeadRequest())
            for i in range(n)
        ]
        latencies: list[float] = []
        queue = iter(requests)

        async def worker() -> None:
            for request in queue:
                t = time.perf_counter()
                await stub.ProcessLead(request, metadata=metadata, timeout=30)
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report(f"gRPC ProcessLead (c={concurrency})", latencies, time.perf_counter() - start)

        stats_stub = agent_service_pb2_grpc.AgentServiceStub(channel)
        latencies = []
        start = time.perf_counter()
        for _ in range(200):
            t = time.perf_counter()
            await stats_stub.GetSystemStats(
                agent_service_pb2.GetSystemStatsRequest(), metadata=metadata
            )
            latencies.append(time.perf_counter() - t)
        report("gRPC GetSystemStats (c=1)", latencies, time.perf_counter() - start)


async def run_rest(base_url: str, key: str, n: int, concurrency: int, run: str) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30, headers=headers
    ) as http:
        bodies = iter([lead_json(i, run) for i in range(n)])
        latencies: list[float] = []

        async def worker() -> None:
            for body in bodies:
                t = time.perf_counter()
                r = await http.post("/api/leads/process", json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        report(
            f"REST via Envoy ProcessLead (c={concurrency})", latencies, time.perf_counter() - start
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--import-rows", type=int, default=10_000, help="0 skips the import")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
        key = "bench-" + secrets.token_urlsafe(24)
        env = {
            **os.environ,
            "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
            "CCL_DATA_KEYS": Fernet.generate_key().decode(),
            "CCL_ADMIN_API_KEY": key,
            "CCL_GRPC_PORT": str(grpc_port),
            "CCL_LOG_LEVEL": "WARNING",
            "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0",
        }
        server = subprocess.Popen([CCL, "serve", "--migrate"], env=env)
        config = envoy.write_config(
            envoy.EnvoyConfig(
                http_port=http_port,
                admin_port=admin_port,
                upstreams=[("127.0.0.1", grpc_port)],
                cors_origins=["https://completecarloans.com"],
                rate_limit_per_second=1_000_000,
            ),
            Path(tmp, "envoy.yaml"),
        )
        proxy = envoy.start(config, Path(tmp, "envoy.log"))
        try:
            base = f"http://127.0.0.1:{http_port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if (
                        httpx.get(
                            f"{base}/api/system/stats", headers={"x-api-key": key}
                        ).status_code
                        == 200
                    ):
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("stack did not come up")
                time.sleep(0.2)
            backend = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
            print(
                f"backend: {backend}; {os.cpu_count()} cores;"
                " server and Envoy run as separate processes"
            )
            asyncio.run(run_grpc(grpc_port, key, 200, 8, "warm"))
            asyncio.run(run_grpc(grpc_port, key, args.requests, args.concurrency, "grpc"))
            asyncio.run(run_rest(base, key, args.requests, args.concurrency, "rest"))
            if args.import_rows:
                run_import(grpc_port, key, args.import_rows, tmp)
        finally:
            proxy.terminate()
            server.terminate()
            proxy.wait(10)
            server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
