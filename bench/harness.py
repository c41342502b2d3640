"""`make bench`: the lead pipeline measured against in-run baselines (issue 9).

Starts, on loopback: `ccl serve` on SQLite (and on a temp PostgreSQL database when one
answers), a trivial echo server of the same server type, options and process count
(bench/echo_server.py), and an Envoy in front of each (the product's template; the echo's
with a descriptor built at bench time). Servers are pinned to one core, the load generators
(this process, wrk) to another. Every figure is the median of --repeats runs, interleaved
with its baseline's runs so drift hits both alike. Prints the table and writes
docs/BENCHMARKS.md and docs/benchmarks-latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml
from cryptography.fernet import Fernet

from ccl.lead.v1 import lead_service_pb2
from server.ops import envoy

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
CCL = str(Path(sys.executable).with_name("ccl"))
PY_SPY = Path(sys.executable).with_name("py-spy")
ECHO = "/bench.echo.v1.EchoService/Echo"
ECHO_STREAM = "/bench.echo.v1.EchoService/EchoStream"
PROCESS_LEAD = "/ccl.lead.v1.LeadService/ProcessLead"
IMPORT_LEADS = "/ccl.lead.v1.LeadService/ImportLeads"
SWEEP = (1, 4, 16, 32, 64)
CHUNK = 500  # records per ImportLeads stream, as `ccl import` sends them
ECHO_PROTO = """syntax = "proto3";
package bench.echo.v1;
import "google/api/annotations.proto";
service EchoService {
  rpc Echo(EchoMessage) returns (EchoMessage) {
    option (google.api.http) = {post: "/bench/echo" body: "*"};
  }
  rpc EchoStream(stream EchoMessage) returns (EchoCount);
}
message EchoMessage { string text = 1; }
message EchoCount { int64 count = 1; }
"""


# ---------------------------------------------------------------- requests


class Ids:
    """One counter for the whole run: every lead sent is distinct (key, email, phone)."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, n: int = 1) -> int:
        first = self.next
        self.next += n
        return first


IDS = Ids()


def lead_dict(n: Any) -> dict[str, Any]:
    """A valid lead; `n` is a number, or the wrk placeholders."""
    if isinstance(n, int):
        mid, last = str(200 + (n // 10000) % 700), f"{n % 10000:04d}"
    else:
        mid, last = "__MID__", "__LAST__"
    return {
        "first_name": "Bench",
        "last_name": f"Person{n}",
        "email": f"bench.{n}@example.com",
        "phone": f"(312) {mid}-{last}",
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
    }


def rest_body(n: Any) -> str:
    return json.dumps({"idempotency_key": f"bench-{n}", "lead": lead_dict(n)})


def _lead_message(n: int) -> Any:
    from google.protobuf import json_format

    return json_format.ParseDict(lead_dict(n), lead_service_pb2.ProcessLeadRequest().lead)


_BASE_LEAD = _lead_message(0)


def _lead(n: int) -> Any:
    """Lead number `n`: a distinct consumer (its own name, email and phone)."""
    lead = _BASE_LEAD.__class__()
    lead.CopyFrom(_BASE_LEAD)
    lead.last_name = f"Person{n}"
    lead.email = f"bench.{n}@example.com"
    lead.phone = f"(312) {200 + (n // 10000) % 700}-{n % 10000:04d}"
    return lead


def process_lead_bytes(n: int) -> bytes:
    request = lead_service_pb2.ProcessLeadRequest(idempotency_key=f"bench-{n}", lead=_lead(n))
    return bytes(request.SerializeToString())


def import_bytes(n: int) -> bytes:
    request = lead_service_pb2.ImportLeadsRequest(
        idempotency_key=f"bench-{n}", lead=_lead(n), record_ref=str(n)
    )
    return bytes(request.SerializeToString())


ECHO_TEXT = "x" * len(process_lead_bytes(10**6))  # the echo carries a lead-sized payload


def echo_bytes(n: int) -> bytes:
    text = ECHO_TEXT.encode()
    return b"\x0a" + _varint(len(text)) + text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


# ---------------------------------------------------------------- measuring


@dataclass
class Run:
    rate: float  # requests (or messages) per second
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    errors: int = 0
    server_cpu: float = float("nan")  # share of one core the server process used

    @property
    def cpu_ms(self) -> float:
        """Server CPU per request (or message), in ms."""
        return self.server_cpu * 1000 / self.rate if self.rate else float("nan")


@dataclass
class Figure:
    runs: list[Run] = field(default_factory=list)

    def med(self, attr: str) -> float:
        values = [getattr(r, attr) for r in self.runs]
        return statistics.median(values) if values else float("nan")

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000


def identity(b: bytes) -> bytes:
    return b


async def unary_load(
    target: str,
    method: str,
    make: Callable[[int], bytes],
    metadata: tuple[tuple[str, str], ...],
    concurrency: int,
    seconds: float,
) -> Run:
    """`concurrency` calls in flight for `seconds`, from one grpc.aio channel (as the issue's
    figures were taken); bodies are pre-serialized so the client does the same work for every
    RPC."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(
            method, request_serializer=identity, response_deserializer=identity
        )
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                body = make(IDS.take())
                t = time.perf_counter()
                try:
                    await call(body, metadata=metadata, timeout=60)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return Run(len(latencies) / wall, pct(latencies, 0.50), pct(latencies, 0.99), errors)


async def stream_load(
    target: str,
    method: str,
    make: Callable[[int], bytes],
    metadata: tuple[tuple[str, str], ...],
    total: int,
    seconds: float,
) -> Run:
    """Client streams of CHUNK messages, one after another, until `total` messages are sent or
    `seconds` have passed; msg/s counts from the first message to the last answer."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_unary(
            method, request_serializer=identity, response_deserializer=identity
        )
        sent = errors = 0
        start = time.perf_counter()
        stop = start + seconds
        while sent < total and time.perf_counter() < stop:
            size = min(CHUNK, total - sent)
            first = IDS.take(size)

            async def messages(first: int = first, size: int = size) -> AsyncIterator[bytes]:
                for i in range(first, first + size):
                    yield make(i)

            try:
                await call(messages(), metadata=metadata, timeout=600)
            except grpc.aio.AioRpcError:
                errors += 1
            sent += size
        wall = time.perf_counter() - start
    return Run(sent / wall, errors=errors)


def wrk_load(
    port: int, path: str, body: str, key: str, concurrency: int, seconds: float, tmp: str
) -> Run:
    body_file = Path(tmp, f"body-{secrets.token_hex(4)}.json")
    body_file.write_text(body)
    first = IDS.take(10_000_000)  # wrk numbers its own requests from here
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(BENCH / "wrk_post.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        path,
        str(body_file),
        str(first),
        key,
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=False, preexec_fn=CLIENT_PIN
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line.removeprefix("BENCH_RESULT "))
    ok = r["requests"] - r["status_errors"]
    return Run(
        ok / (r["duration_us"] / 1e6),
        r["p50_us"] / 1000,
        r["p99_us"] / 1000,
        r["errors"] + r["status_errors"],
    )


async def httpx_load(
    port: int, path: str, body: str, key: str, concurrency: int, seconds: float
) -> Run:
    """The fallback HTTP load generator when wrk is not installed (slower: figures through
    Envoy are then client-bound much earlier)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30, headers=headers
    ) as http:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                n = IDS.take()
                content = (
                    body.replace("__N__", str(n))
                    .replace("__MID__", str(200 + (n // 10000) % 700))
                    .replace("__LAST__", f"{n % 10000:04d}")
                )
                t = time.perf_counter()
                r = await http.post(path, content=content)
                if r.status_code != 200:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    latencies.sort()
    return Run(len(latencies) / wall, pct(latencies, 0.5), pct(latencies, 0.99), errors)


# ---------------------------------------------------------------- processes


def _pin(core: int | None) -> Callable[[], None] | None:
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


_cores = sorted(os.sched_getaffinity(0))
SERVER_CORE, CLIENT_CORE = (_cores[0], _cores[1]) if len(_cores) >= 2 else (None, None)
SERVER_PIN, CLIENT_PIN = _pin(SERVER_CORE), _pin(CLIENT_CORE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_grpc(port: int, seconds: float = 60) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                r = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if r.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server on port {port} did not come up")
            time.sleep(0.2)


def wait_http(port: int, path: str, body: str, key: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.post(
                f"http://127.0.0.1:{port}{path}",
                content=body,
                headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            )
            if r.status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"Envoy on port {port} did not answer {path}")
        time.sleep(0.3)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Stack:
    """One server process (pinned to the server core) with its own Envoy."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        tmp: str,
        name: str,
        descriptor: Path | None = None,
        services: list[str] | None = None,
    ) -> None:
        self.port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        env = {**env, "CCL_GRPC_PORT": str(self.port)}
        log = open(Path(tmp, f"{name}.log"), "ab")
        self.server = subprocess.Popen(
            [*command, *([str(self.port)] if services else [])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=SERVER_PIN,
        )
        config = envoy.EnvoyConfig(
            http_port=self.http_port,
            admin_port=self.admin_port,
            upstreams=[("127.0.0.1", self.port)],
            cors_origins=["https://completecarloans.com"],
            rate_limit_per_second=1_000_000,
        )
        if descriptor is not None:
            config.descriptor = descriptor
        path = envoy.write_config(config, Path(tmp, f"{name}-envoy.yaml"))
        if services:  # the same template, serving another descriptor's services
            doc = yaml.safe_load(path.read_text())
            manager = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
            for f in manager["typed_config"]["http_filters"]:
                if f["name"] == "envoy.filters.http.grpc_json_transcoder":
                    f["typed_config"]["services"] = services
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.envoy = envoy.start(path, Path(tmp, f"{name}-envoy.log"))
        wait_grpc(self.port)

    def stop(self) -> None:
        for p in (self.envoy, self.server):
            p.terminate()
        for p in (self.envoy, self.server):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def build_echo_descriptor(tmp: str) -> Path:
    import google.api
    import grpc_tools

    proto_dir = Path(tmp, "proto")
    (proto_dir / "bench").mkdir(parents=True)
    (proto_dir / "bench" / "echo.proto").write_text(ECHO_PROTO)
    out = Path(tmp, "echo.binpb")
    api_root = Path(next(iter(google.api.__path__))).parents[1]
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"-I{api_root}",
        f"-I{Path(grpc_tools.__file__).parent / '_proto'}",
        "--include_imports",
        f"--descriptor_set_out={out}",
        "bench/echo.proto",
    ]
    subprocess.run(command, check=True)
    return out


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[str | None]:
    """A temp database `ccl_bench_*` on the given server (or 127.0.0.1:5432), dropped after."""
    import psycopg2

    admin = url or "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        conn = psycopg2.connect(admin, connect_timeout=3)
    except psycopg2.Error as e:
        print(f"PostgreSQL: not measured ({type(e).__name__}: no server answers at the admin URL)")
        yield None
        return
    conn.autocommit = True
    name = f"ccl_bench_{secrets.token_hex(4)}"
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, _ = admin.rpartition("/")
        yield f"{base}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


# ---------------------------------------------------------------- profile


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, load: Callable[[], Run]) -> Run:
    """`load`, with the share of one core the server process `pid` used meanwhile."""
    cpu, start = cpu_seconds(pid), time.perf_counter()
    run = load()
    run.server_cpu = (cpu_seconds(pid) - cpu) / (time.perf_counter() - start)
    return run


def profile(
    pid: int, seconds: float, tmp: str, load: Callable[[], object], gil: bool
) -> list[tuple[str, float, float]]:
    """py-spy on the server while `load` runs: (function, self share, inclusive share), top 15.
    `gil`: only samples of the thread holding the GIL (where Python spends CPU)."""
    if not PY_SPY.exists():
        print("py-spy not installed: no profile (pip install py-spy)")
        return []
    out = Path(tmp, f"profile-{'gil' if gil else 'all'}.json")
    spy = subprocess.Popen(
        [
            str(PY_SPY),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(round(seconds)),
            "--rate",
            "200",
            "--format",
            "speedscope",
            "--output",
            str(out),
            "--nonblocking",
            *(["--gil"] if gil else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=CLIENT_PIN,
    )
    time.sleep(1)
    load()
    spy.wait(seconds + 30)
    if not out.exists():
        print("py-spy produced no profile")
        return []
    doc = json.loads(out.read_text())
    frames = doc["shared"]["frames"]
    self_w: dict[str, float] = {}
    incl_w: dict[str, float] = {}
    total = 0.0
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"], strict=True):
            names = [
                f"{frames[i]['name']} ({Path(frames[i].get('file', '?')).name})" for i in stack
            ]
            files = "".join(frames[i].get("file", "") for i in stack)
            if not names:
                continue
            total += weight
            self_w[names[-1]] = self_w.get(names[-1], 0) + weight
            for name in set(names):
                incl_w[name] = incl_w.get(name, 0) + weight
            db = any(k in files for k in ("peewee", "sqlite3", "psycopg2", "server/storage"))
            incl_w["[any database work: peewee/sqlite3/psycopg2]"] = incl_w.get(
                "[any database work: peewee/sqlite3/psycopg2]", 0
            ) + (weight if db else 0)
    if not total:
        return []
    top = sorted(self_w, key=lambda k: -self_w[k])[:15]
    rows = [(k, self_w[k] / total, incl_w[k] / total) for k in top]
    key = "[any database work: peewee/sqlite3/psycopg2]"
    return [(key, float("nan"), incl_w.get(key, 0) / total), *rows]


# ---------------------------------------------------------------- the run


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rss_mb: float = float("nan")
    profiles: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)

    def add(self, name: str, run: Run) -> None:
        self.figures.setdefault(name, Figure()).runs.append(run)
        print(
            f"  {name:<40} {run.rate:9.1f}/s  p50 {run.p50_ms:8.2f} ms  p99 {run.p99_ms:8.2f} ms"
            f"  server CPU {run.server_cpu:4.0%} ({run.cpu_ms:.3f} ms each)  errors {run.errors}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 repeat, 2 s runs, 2,000 imported leads; prints only (unless --write)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="length of one run (default 5)")
    parser.add_argument(
        "--import-leads", type=int, default=None, help="leads per ImportLeads run (100,000)"
    )
    parser.add_argument(
        "--import-seconds",
        type=float,
        default=None,
        help="cap of one ImportLeads run; the rate counts what was sent (default 20)",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="admin URL of a PostgreSQL server (default: 127.0.0.1:5432 if it answers)",
    )
    parser.add_argument(
        "--database-url", default=None, help="alias of --postgres-url (older BENCH_ARGS)"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--write", action="store_true", help="write docs/ even with --quick")
    parser.add_argument("--output", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "benchmarks-latency.png"))
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    import_leads = args.import_leads or (2_000 if args.quick else 100_000)
    import_seconds = args.import_seconds or (10.0 if args.quick else 20.0)
    pg_admin = args.postgres_url or (
        args.database_url if (args.database_url or "").startswith("postgres") else None
    )
    command = "make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "")
    started = time.monotonic()
    if CLIENT_PIN:
        os.sched_setaffinity(0, {CLIENT_CORE})  # type: ignore[arg-type]
        print(f"server processes on core {SERVER_CORE}, load generators on core {CLIENT_CORE}")
    else:
        print("one core: no pinning (server and load generator share it)")
    wrk = shutil.which("wrk")
    if not wrk:
        print(
            "wrk not found: REST figures use a Python (httpx) load generator instead "
            "(apt-get install -y wrk for the real figures)"
        )
    res = Results()
    res.notes.append(
        "REST load generator: " + ("wrk (1 thread)" if wrk else "httpx fallback (wrk absent)")
    )
    key = "bench-" + secrets.token_urlsafe(24)
    meta = (("authorization", f"Bearer {key}"),)

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CCL_DATA_KEYS": Fernet.generate_key().decode(),
            "CCL_ADMIN_API_KEY": key,
            "CCL_LOG_LEVEL": "WARNING",
            "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0",
            "CCL_FLEXPATH_API_KEY": "",
        }
        echo = Stack(
            [sys.executable, str(BENCH / "echo_server.py")],
            env,
            tmp,
            "echo",
            descriptor=build_echo_descriptor(tmp),
            services=["bench.echo.v1.EchoService"],
        )
        stacks = [echo]
        try:
            lite = Stack(
                [CCL, "serve", "--migrate"],
                {**env, "DATABASE_URL": f"sqlite:///{tmp}/bench.db"},
                tmp,
                "sqlite",
            )
            stacks.append(lite)
            time.sleep(2)
            res.rss_mb = rss_mb(lite.server.pid)
            print(f"idle RSS of ccl serve after start-up: {res.rss_mb:.1f} MB")
            echo_t, lite_t = f"127.0.0.1:{echo.port}", f"127.0.0.1:{lite.port}"
            wait_http(echo.http_port, "/bench/echo", '{"text":"hi"}', key)
            wait_http(
                lite.http_port,
                "/api/leads/process",
                rest_body(IDS.take()),
                key,
            )

            pids = {echo_t: echo.server.pid, lite_t: lite.server.pid}
            pids |= {echo.http_port: echo.server.pid, lite.http_port: lite.server.pid}

            def grpc_run(target: str, method: str, make: Callable[[int], bytes], c: int) -> Run:
                return measured(
                    pids[target],
                    lambda: asyncio.run(unary_load(target, method, make, meta, c, seconds)),
                )

            def stream_run(target: str, method: str, make: Callable[[int], bytes]) -> Run:
                return measured(
                    pids[target],
                    lambda: asyncio.run(
                        stream_load(target, method, make, meta, import_leads, import_seconds)
                    ),
                )

            def http_run(port: int, path: str, body: str) -> Run:
                if wrk:
                    return measured(
                        pids[port], lambda: wrk_load(port, path, body, key, 32, seconds, tmp)
                    )
                return measured(
                    pids[port],
                    lambda: asyncio.run(httpx_load(port, path, body, key, 32, seconds)),
                )

            print("warm-up")
            asyncio.run(unary_load(echo_t, ECHO, echo_bytes, meta, 8, 1))
            asyncio.run(unary_load(lite_t, PROCESS_LEAD, process_lead_bytes, meta, 8, 2))
            print("direct gRPC, by concurrency (echo unary vs ProcessLead on SQLite)")
            for _ in range(repeats):
                for c in SWEEP:
                    res.add(f"echo unary c={c}", grpc_run(echo_t, ECHO, echo_bytes, c))
                    res.add(
                        f"ProcessLead sqlite c={c}",
                        grpc_run(lite_t, PROCESS_LEAD, process_lead_bytes, c),
                    )
            print("REST through Envoy, 32 connections")
            echo_body = json.dumps({"text": ECHO_TEXT})
            for _ in range(repeats):
                res.add("echo REST c=32", http_run(echo.http_port, "/bench/echo", echo_body))
                res.add(
                    "ProcessLead REST sqlite c=32",
                    http_run(lite.http_port, "/api/leads/process", rest_body("__N__")),
                )
            print(
                f"client streaming: streams of {CHUNK}, up to {import_leads:,} messages"
                f" or {import_seconds:.0f} s"
            )
            for _ in range(repeats):
                res.add("echo client-stream", stream_run(echo_t, ECHO_STREAM, echo_bytes))
                res.add("ImportLeads sqlite", stream_run(lite_t, IMPORT_LEADS, import_bytes))
            if not args.no_profile:
                print("profiling ccl serve (SQLite) under ProcessLead at 32 in flight")
                prof_s = max(seconds * 2, 8.0)
                for gil, title in ((False, "all threads"), (True, "GIL holder only")):
                    res.profiles[title] = profile(
                        lite.server.pid,
                        prof_s,
                        tmp,
                        lambda: asyncio.run(
                            unary_load(
                                lite_t, PROCESS_LEAD, process_lead_bytes, meta, 32, prof_s - 2
                            )
                        ),
                        gil,
                    )
            lite.stop()
            stacks.remove(lite)
            if not args.no_postgres:
                with postgres_database(pg_admin) as pg_url:
                    if pg_url:
                        pg = Stack(
                            [CCL, "serve", "--migrate"], {**env, "DATABASE_URL": pg_url}, tmp, "pg"
                        )
                        stacks.append(pg)
                        pg_t = f"127.0.0.1:{pg.port}"
                        pids[pg_t] = pg.server.pid
                        print("PostgreSQL")
                        asyncio.run(unary_load(pg_t, PROCESS_LEAD, process_lead_bytes, meta, 8, 2))
                        for _ in range(repeats):
                            res.add(
                                "echo unary c=32 (pg phase)", grpc_run(echo_t, ECHO, echo_bytes, 32)
                            )
                            res.add(
                                "ProcessLead pg c=32",
                                grpc_run(pg_t, PROCESS_LEAD, process_lead_bytes, 32),
                            )
                        for _ in range(repeats):
                            res.add(
                                "echo client-stream (pg phase)",
                                stream_run(echo_t, ECHO_STREAM, echo_bytes),
                            )
                            res.add("ImportLeads pg", stream_run(pg_t, IMPORT_LEADS, import_bytes))
                        pg.stop()
                        stacks.remove(pg)
        finally:
            for s in stacks:
                s.stop()

    elapsed = time.monotonic() - started
    table = build_table(res)
    print()
    print(render_text(table))
    print(f"\n{elapsed / 60:.1f} min")
    if not args.no_write and (args.write or not args.quick):
        plot(res, Path(args.plot))
        Path(args.output).write_text(
            render_markdown(
                res,
                table,
                command,
                elapsed,
                import_leads,
                import_seconds,
                repeats,
                seconds,
                Path(args.plot),
                changes=kept_changes(Path(args.output)),
            )
        )
        print(f"wrote {args.output} and {args.plot}")
    return 0


# ---------------------------------------------------------------- reporting


@dataclass
class Row:
    figure: str
    value: str
    baseline: str
    ratio: float
    target: str
    met: bool | None


def build_table(res: Results) -> list[Row]:
    f = res.figures
    rows: list[Row] = []

    def get(name: str) -> Figure | None:
        return f.get(name) if name in f and f[name].runs else None

    def rate_row(label: str, name: str, base: str, need: float, extra: str = "") -> None:
        fig, b = get(name), get(base)
        if fig is None or b is None:
            rows.append(
                Row(
                    label, "not measured", "", float("nan"), f"≥ {need:.2f} x baseline{extra}", None
                )
            )
            return
        ratio = fig.med("rate") / b.med("rate")
        value = f"{fig.med('rate'):,.1f}/s"
        if fig.med("p50_ms") == fig.med("p50_ms"):  # not NaN: a unary figure
            value += f" (p50 {fig.med('p50_ms'):.1f} ms, p99 {fig.med('p99_ms'):.1f} ms)"
        if fig.errors:
            value += f", {fig.errors} errors"
        rows.append(
            Row(
                label,
                value,
                f"{base}: {b.med('rate'):,.0f}/s",
                ratio,
                f"≥ {need:.2f} x baseline",
                ratio >= need,
            )
        )

    rate_row(
        "ProcessLead, SQLite, direct gRPC, 32 in flight",
        "ProcessLead sqlite c=32",
        "echo unary c=32",
        0.50,
    )
    pl = get("ProcessLead sqlite c=32")
    if pl:
        tail = pl.med("p99_ms") / pl.med("p50_ms")
        rows.append(Row("  its p99 / p50", f"{tail:.2f}", "", float("nan"), "≤ 2", tail <= 2))
    rate_row("the same through Envoy REST", "ProcessLead REST sqlite c=32", "echo REST c=32", 0.45)
    rate_row("the same on PostgreSQL", "ProcessLead pg c=32", "echo unary c=32 (pg phase)", 0.35)
    one = get("ProcessLead sqlite c=1")
    echo_one = get("echo unary c=1")
    if one and echo_one:
        rows.append(
            Row(
                "ProcessLead at 1 in flight, p50",
                f"{one.med('p50_ms'):.2f} ms",
                f"echo unary c=1: p50 {echo_one.med('p50_ms'):.2f} ms",
                echo_one.med("p50_ms") / one.med("p50_ms"),
                "≤ 2 ms",
                one.med("p50_ms") <= 2,
            )
        )
    rate_row("ImportLeads, SQLite (msg/s)", "ImportLeads sqlite", "echo client-stream", 0.40)
    rate_row(
        "ImportLeads, PostgreSQL (msg/s)", "ImportLeads pg", "echo client-stream (pg phase)", 0.40
    )
    rows.append(
        Row(
            "idle server RSS after start-up",
            f"{res.rss_mb:.1f} MB",
            "",
            float("nan"),
            "≤ 70 MB",
            res.rss_mb <= 70,
        )
    )
    return rows


def _ratio(r: float) -> str:
    return "" if r != r else f"{r:.3f}"


def _ms(v: float) -> str:
    return "" if v != v else f"{v:.2f}"


def _met(m: bool | None) -> str:
    return "n/a" if m is None else ("met" if m else "NOT met")


def render_text(rows: list[Row]) -> str:
    lines = [f"{'figure':<48} {'value':<52} {'ratio':>7}  {'target':<22} result"]
    for r in rows:
        lines.append(
            f"{r.figure:<48} {r.value:<52} {_ratio(r.ratio):>7}  {r.target:<22} {_met(r.met)}"
        )
        if r.baseline:
            lines.append(f"{'':<48}   vs {r.baseline}")
    return "\n".join(lines)


def machine() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for mod in ("grpc", "peewee", "google.protobuf"):
        with contextlib.suppress(Exception):
            versions.append(f"{mod} {__import__(mod, fromlist=['__version__']).__version__}")
    return [
        f"- cores (nproc): {os.cpu_count()}, usable: {len(_cores)}; CPU: {model}",
        f"- Python {platform.python_version()}; {', '.join(versions)}; {platform.platform()}",
        f"- pinning: servers on core {SERVER_CORE}, load generators (the bench process, wrk,"
        f" py-spy) on core {CLIENT_CORE}; Envoy unpinned (its default worker count)"
        if SERVER_CORE is not None
        else "- pinning: none (one core)",
    ]


SERIES_COLUMNS = ("series", "runs", "rate/s", "p50 ms", "p99 ms", "server CPU (of a core)")
SERIES_COLUMNS += ("server CPU ms per request", "errors")
COLUMNS = ("figure", "value (median)", "baseline (same run)", "ratio", "target", "result")
INTRO = """# Benchmarks

Written by `make bench` (bench/harness.py) on {now}, in {minutes:.1f} minutes. Command:

    {command}

Every figure is the median of {repeats} run(s) of {seconds:g} s, interleaved with its
baseline's runs, all on loopback. The baselines run in the same invocation: a trivial echo RPC
served by bench/echo_server.py with the product's server type (grpc.aio), server options and process
count (one), driven by the same load generator (one grpc.aio channel from the bench process,
pre-serialized bodies of the size of a ProcessLead request), and the same echo through Envoy's
transcoder (the product's Envoy template, with a descriptor built at bench time). Every
ProcessLead is a distinct new lead with its own idempotency key; credit checks use the
deterministic simulation; no dealers are seeded, so routing finds none (leads end `unrouted`).
"""
NOTES = """ImportLeads runs send streams of {chunk} records (as `ccl import` does), up to {leads:,}
leads or {cap:g} s per run, whichever comes first; the rate counts the leads sent from the
first message to the last answer. The echo client-stream baseline is driven the same way. In
the 1-in-flight row the ratio is echo p50 / ProcessLead p50. The PostgreSQL rows are compared
with echo runs taken during the PostgreSQL phase (the SQLite server is stopped by then)."""
PROFILE = """## Profile of the server under ProcessLead (SQLite, 32 in flight)

py-spy (`py-spy record --format speedscope`, 200 Hz, all threads, idle samples dropped) on
`ccl serve` during a separate run of the same load. *self* is the share of samples whose
innermost frame is that function, *inclusive* the share with it anywhere on the stack; the
first row sums every sample with peewee, sqlite3, psycopg2 or server/storage on its stack.
The *all threads* view counts a thread whenever py-spy does not see it idle, so threads
waiting for the GIL or for SQLite's writer lock count too; the *GIL holder* view is where the
server's Python CPU goes.
"""
CHANGES_HEADING = "## What each change bought"
CHANGES = f"""{CHANGES_HEADING}

Nothing yet: this is the baseline the optimisation work of issue 9 is measured against.
"""


def kept_changes(path: Path) -> str:
    """The hand-written "What each change bought" section of the document `make bench` last
    wrote (kept from run to run: it is the record of before and after); the default if none."""
    if path.exists():
        text = path.read_text()
        at = text.find(CHANGES_HEADING)
        if at >= 0:
            return text[at:].rstrip("\n") + "\n"
    return CHANGES


def reading(res: Results) -> list[str]:
    """What the figures say about where the limit is, in numbers from this run."""
    pl, echo = res.figures.get("ProcessLead sqlite c=32"), res.figures.get("echo unary c=32")
    if not pl or not echo:
        return []
    ms, echo_ms = pl.med("cpu_ms"), echo.med("cpu_ms")
    text = (
        f"At 32 in flight `ccl serve` used {pl.med('server_cpu'):.0%} of its core and"
        f" {ms:.1f} ms of CPU per ProcessLead, against {echo_ms:.2f} ms per echo"
        f" ({ms / echo_ms:.0f} times as much): the rate is bounded by server CPU per lead (at"
        f" most {1000 / ms:.0f} leads/s on one core), not by the load generator, which drives"
        f" the echo at {echo.med('rate'):,.0f}/s with the same settings."
    )
    gil = res.profiles.get("GIL holder only") or []
    db = next((i for name, _, i in gil if name.startswith("[any database")), None)
    if db is not None:
        text += (
            f" {db:.0%} of the samples holding the GIL have database code on the stack, most of"
            " it peewee compiling SQL per statement (`Context.sql` and the `__sql__` methods)."
        )
    return ["## Reading", "", text, ""]


def render_markdown(
    res: Results,
    rows: list[Row],
    command: str,
    elapsed: float,
    import_leads: int,
    import_seconds: float,
    repeats: int,
    seconds: float,
    plot_path: Path,
    changes: str = CHANGES,
) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    intro = INTRO.format(
        now=now,
        minutes=elapsed / 60,
        command=command,
        repeats=repeats,
        seconds=seconds,
        chunk=CHUNK,
        leads=import_leads,
        cap=import_seconds,
    )
    out = [intro, "## Machine", "", *machine(), *[f"- {n}" for n in res.notes], ""]
    out += ["## Figures against the targets", "", "| " + " | ".join(COLUMNS) + " |"]
    out += ["|---" * len(COLUMNS) + "|"]
    for r in rows:
        cells = [r.figure.strip(), r.value, r.baseline, _ratio(r.ratio), r.target, _met(r.met)]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", NOTES.format(chunk=CHUNK, leads=import_leads, cap=import_seconds), ""]
    out += ["## Every series", "", "| " + " | ".join(SERIES_COLUMNS) + " |"]
    out += ["|---" * len(SERIES_COLUMNS) + "|"]
    for name, fig in res.figures.items():
        cells = [name, str(len(fig.runs)), f"{fig.med('rate'):,.1f}", _ms(fig.med("p50_ms"))]
        cells += [_ms(fig.med("p99_ms")), f"{fig.med('server_cpu'):.0%}"]
        cells += [f"{fig.med('cpu_ms'):.3f}", str(fig.errors)]
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "## Latency against concurrency", ""]
    out += [f"![ProcessLead and echo latency against concurrency]({plot_path.name})", ""]
    if any(res.profiles.values()):
        out += [PROFILE, ""]
        for title, rows_ in res.profiles.items():
            out += [f"### {title}", "", "| function (file) | self | inclusive |", "|---|---|---|"]
            for name, own, incl in rows_:
                out.append(f"| `{name}` | {'' if own != own else f'{own:.1%}'} | {incl:.1%} |")
            out.append("")
    out += reading(res)
    out += [changes]
    return "\n".join(out)


def plot(res: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for series, color in (("ProcessLead sqlite", "tab:red"), ("echo unary", "tab:blue")):
        xs = [c for c in SWEEP if f"{series} c={c}" in res.figures]
        if not xs:
            continue
        for q, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            ys = [res.figures[f"{series} c={c}"].med(q) for c in xs]
            ax.plot(xs, ys, style, color=color, label=f"{series} {q.removesuffix('_ms')}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(SWEEP), [str(c) for c in SWEEP])
    ax.set_xlabel("requests in flight (direct gRPC)")
    ax.set_ylabel("latency (ms, log)")
    ax.set_title("ProcessLead (SQLite) and echo unary latency, before optimisation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
