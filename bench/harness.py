"""`make bench`: the lead pipeline measured against in-run baselines (issue 9).

Starts, on loopback: `ccl serve` on SQLite (and on a temp PostgreSQL database when one
answers), a trivial echo server of the same server type, options and process count
(bench/echo_server.py), and an Envoy in front of each (the product's template; the echo's
with a descriptor built at bench time). Servers are pinned to one core, the load generators
(this process, wrk) to another. Every figure is the median of --repeats runs, interleaved
with its baseline's runs so drift hits both alike. Prints the table and writes
docs/BENCHMARKS.md and docs/benchmarks-latency.png.

Beyond the issue's figures (part `core`), four more parts, each off-able (--no-uvloop,
--no-reuseport, --no-scaleout, --no-campaign) or run alone (--only, with --output):
- uvloop: echo and ProcessLead (SQLite) at 32 in flight on `CCL_EVENT_LOOP=uvloop` and
  `bench/echo_server.py --uvloop`, against the same on asyncio;
- reuseport: two echo processes sharing one port (`--reuseport`: grpc.so_reuseport=1, bench
  only) against one, one process per core;
- scaleout (PostgreSQL): ProcessLead over REST (wrk) through one Envoy in front of two
  `ccl serve` processes on the same database against one, with the CPU of every process;
- campaign (issue 10): a campaign of 100,000 recipients (leads seeded straight into storage)
  from BulkSend to SENT and the last batch answered by a fake Mailgun taking 20 ms a call
  (bench/campaign.py), on SQLite and PostgreSQL, with the server's peak RSS.
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
    server_cpu: float = float("nan")  # share of one core the server process(es) used, summed
    procs_cpu: list[float] = field(default_factory=list)  # the same, per server process
    extra: dict[str, float] = field(default_factory=dict)  # probes: a counter's rise per second

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

    def med_extra(self, key: str) -> float:
        values = [r.extra[key] for r in self.runs if key in r.extra]
        return statistics.median(values) if values else float("nan")

    def med_procs(self) -> list[float]:
        """Median CPU share of each server process (in the order they were given)."""
        n = min((len(r.procs_cpu) for r in self.runs), default=0)
        return [statistics.median(r.procs_cpu[i] for r in self.runs) for i in range(n)]


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
    channels: int = 1,
) -> Run:
    """`concurrency` calls in flight for `seconds`, from one grpc.aio channel (as the issue's
    figures were taken); bodies are pre-serialized so the client does the same work for every
    RPC. `channels` > 1: that many channels, each with its own TCP connection, the workers
    spread over them (so the kernel can hand the connections to several processes sharing a
    port)."""
    options = [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []
    async with contextlib.AsyncExitStack() as stack:
        calls = []
        for _ in range(channels):
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(target, options=options)
            )
            calls.append(
                channel.unary_unary(
                    method, request_serializer=identity, response_deserializer=identity
                )
            )
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds

        async def worker(call: Any) -> None:
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
        await asyncio.gather(*(worker(calls[i % channels]) for i in range(concurrency)))
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


def start_envoy(
    tmp: str,
    name: str,
    upstream_ports: list[int],
    descriptor: Path | None = None,
    services: list[str] | None = None,
) -> tuple[subprocess.Popen[bytes], int, int]:
    """The product's Envoy template in front of `upstream_ports` (round robin, active gRPC health
    checks): (process, http port, admin port)."""
    http_port, admin_port = free_port(), free_port()
    config = envoy.EnvoyConfig(
        http_port=http_port,
        admin_port=admin_port,
        upstreams=[("127.0.0.1", p) for p in upstream_ports],
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
    return envoy.start(path, Path(tmp, f"{name}-envoy.log")), http_port, admin_port


def wait_envoy_healthy(admin_port: int, upstream_ports: list[int], seconds: float = 30) -> None:
    """Until Envoy's active health checks have found every upstream healthy."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(httpx.HTTPError):
            text = httpx.get(f"http://127.0.0.1:{admin_port}/clusters").text
            flags = {
                line.split("::")[1]: line.rsplit("::", 1)[1]
                for line in text.splitlines()
                if "::health_flags::" in line
            }
            if all(flags.get(f"127.0.0.1:{p}") == "healthy" for p in upstream_ports):
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"Envoy (admin {admin_port}) did not find {upstream_ports} healthy")
        time.sleep(0.3)


class Stack:
    """One server process (pinned to the server core unless told otherwise), with its own Envoy
    unless `with_envoy` is false."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        tmp: str,
        name: str,
        descriptor: Path | None = None,
        services: list[str] | None = None,
        *,
        with_envoy: bool = True,
        port_arg: bool = False,
        port: int | None = None,
        pin: Callable[[], None] | bool | None = True,
    ) -> None:
        self.port = port or free_port()
        env = {**env, "CCL_GRPC_PORT": str(self.port)}
        log = open(Path(tmp, f"{name}.log"), "ab")
        self.server = subprocess.Popen(
            [*command, *([str(self.port)] if services or port_arg else [])],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=SERVER_PIN if pin is True else (pin or None),
        )
        self.envoy: subprocess.Popen[bytes] | None = None
        self.http_port = self.admin_port = 0
        if with_envoy:
            self.envoy, self.http_port, self.admin_port = start_envoy(
                tmp, name, [self.port], descriptor, services
            )
        wait_grpc(self.port)

    def stop(self) -> None:
        procs = [p for p in (self.envoy, self.server) if p is not None]
        for p in procs:
            p.terminate()
        for p in procs:
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


def measured(
    pid: int | list[int],
    load: Callable[[], Run],
    probes: dict[str, Callable[[], float]] | None = None,
) -> Run:
    """`load`, with the share of one core each server process in `pid` used meanwhile (summed in
    `server_cpu`), and how fast each probe's counter rose (per second) in `extra`."""
    pids = [pid] if isinstance(pid, int) else pid
    probes = probes or {}
    cpus = [cpu_seconds(p) for p in pids]
    before = {k: f() for k, f in probes.items()}
    start = time.perf_counter()
    run = load()
    wall = time.perf_counter() - start
    run.procs_cpu = [(cpu_seconds(p) - c) / wall for p, c in zip(pids, cpus, strict=True)]
    run.server_cpu = sum(run.procs_cpu)
    run.extra = {k: (f() - before[k]) / wall for k, f in probes.items()}
    return run


def busy_cores() -> float:
    """Seconds of CPU the whole machine has spent busy (all cores; /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds of every local `postgres` process (the server and its backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
    return total


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk runs)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def own_cpu() -> float:
    """CPU seconds of this process (the Python load generator)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# Where a lead's Python CPU goes: each GIL sample goes to the first layer (in this order) that
# matches its stack, by the files on it (`layer_of`).
LAYERS = (
    "database thread: peewee building SQL",
    "database thread: executing statements and commits (Python side)",
    "database thread: our storage and agents, rows to records, encryption",
    "event loop: gRPC aio and asyncio machinery",
    "event loop: transport (interceptors, reading the request, auth, converters)",
    "event loop: validation (email-validator, phonenumbers, our checks)",
    "event loop: orchestrator, batcher, credit simulation",
    "other threads",
)


def layer_of(thread: str, files: list[str], names: list[str]) -> str:
    """The layer (of `LAYERS`) of a sample: by its thread (py-spy names each profile after its
    thread: the event loop runs on "MainThread", the database on "ccl-db_N", see
    server/storage/db.py), then by the files and functions on its stack, outermost first."""
    ours = [f for f in files if "server/" in f and "site-packages" not in f]
    innermost = ours[-1] if ours else ""
    if "ccl-db" in thread:
        leaf_file, leaf = files[-1], names[-1]
        if "peewee" in leaf_file and any(
            k in leaf for k in ("sql", "Context", "Entity", "NodeList", "_generate")
        ):
            return LAYERS[0]
        if "peewee" in leaf_file and any(k in leaf for k in ("_execute_cursor", "commit")):
            return LAYERS[1]
        return LAYERS[2]
    if "MainThread" not in thread:
        return LAYERS[7]
    if not ours or all(f.endswith(("server/cli.py", "server/main.py")) for f in ours):
        return LAYERS[3]
    if "server/transport/" in innermost:
        return LAYERS[4]
    if innermost.endswith("validation.py"):
        return LAYERS[5]
    return LAYERS[6]


def profile(
    pid: int,
    seconds: float,
    tmp: str,
    load: Callable[[], object],
    gil: bool,
    layers: dict[str, float] | None = None,
) -> list[tuple[str, float, float]]:
    """py-spy on the server while `load` runs: (function, self share, inclusive share), top 15.
    `gil`: only samples of the thread holding the GIL (where Python spends CPU). `layers`, if
    given, receives each layer's share of the samples (`layer_of`) and, under "[GIL held]",
    the share of the recording's wall time the GIL was held."""
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
    started = time.perf_counter()
    load()
    loaded = time.perf_counter() - started  # the samples that count come from this stretch
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
            if layers is not None:
                paths = [frames[i].get("file", "") for i in stack]
                name = layer_of(prof.get("name", ""), paths, [frames[i]["name"] for i in stack])
                layers[name] = layers.get(name, 0.0) + weight
            db = any(k in files for k in ("peewee", "sqlite3", "psycopg2", "server/storage"))
            incl_w["[any database work: peewee/sqlite3/psycopg2]"] = incl_w.get(
                "[any database work: peewee/sqlite3/psycopg2]", 0
            ) + (weight if db else 0)
    if not total:
        return []
    if layers is not None:
        for name in list(layers):
            layers[name] /= total
        unit = doc["profiles"][0].get("unit", "none")
        span = total if unit == "seconds" else total / 200  # samples at 200 Hz
        layers["[GIL held]"] = min(span / max(loaded, 1e-9), 1.0)
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
    layers: dict[str, float] = field(default_factory=dict)
    idle_cpu: dict[str, float] = field(default_factory=dict)  # share of a core, idle process
    pinning: dict[str, str] = field(default_factory=dict)  # part -> how its processes ran
    campaigns: dict[str, Any] = field(default_factory=dict)  # backend -> campaign.CampaignRun

    def add(self, name: str, run: Run) -> None:
        self.figures.setdefault(name, Figure()).runs.append(run)
        print(
            f"  {name:<40} {run.rate:9.1f}/s  p50 {run.p50_ms:8.2f} ms  p99 {run.p99_ms:8.2f} ms"
            f"  server CPU {run.server_cpu:4.0%} ({run.cpu_ms:.3f} ms each)  errors {run.errors}",
            flush=True,
        )


PARTS = ("core", "uvloop", "reuseport", "scaleout", "campaign")
# The campaign targets (issue 10): seconds from BulkSend to SENT, by backend.
CAMPAIGN_TARGETS = {"sqlite": ("SQLite", 20.0), "postgresql": ("PostgreSQL", 30.0)}
SCALE_ONE = "ProcessLead REST pg c=32, 1 process"
SCALE_TWO = "ProcessLead REST pg c=32, 2 processes"
UV_SERIES = (
    "echo unary c=32 (uvloop phase, asyncio)",
    "echo unary uvloop c=32",
    "ProcessLead sqlite c=32 (uvloop phase, asyncio)",
    "ProcessLead sqlite uvloop c=32",
)
REUSE_CHANNELS = 8
REUSE_ONE = f"echo unary c=32, {REUSE_CHANNELS} channels, 1 process"
REUSE_TWO = f"echo unary c=32, {REUSE_CHANNELS} channels, 2 processes (so_reuseport)"


@dataclass
class Bench:
    """What the extra series (uvloop, reuseport, scale-out) share."""

    res: Results
    env: dict[str, str]
    tmp: str
    key: str
    meta: tuple[tuple[str, str], ...]
    repeats: int
    seconds: float  # length of one run of these series
    wrk: str | None

    def grpc(
        self,
        pid: int | list[int],
        target: str,
        method: str,
        make: Callable[[int], bytes],
        channels: int = 1,
        probes: dict[str, Callable[[], float]] | None = None,
        in_flight: int = 32,
    ) -> Run:
        """`in_flight` calls at a time (32 unless told) over direct gRPC."""
        return measured(
            pid,
            lambda: asyncio.run(
                unary_load(target, method, make, self.meta, in_flight, self.seconds, channels)
            ),
            probes,
        )

    def rest(self, pid: int | list[int], port: int, probes: dict[str, Callable[[], float]]) -> Run:
        """ProcessLead over REST through Envoy on `port`, 32 connections, wrk as in the core
        REST series (httpx when wrk is absent)."""
        path, body = "/api/leads/process", rest_body("__N__")
        if self.wrk:
            return measured(
                pid,
                lambda: wrk_load(port, path, body, self.key, 32, self.seconds, self.tmp),
                {**probes, "load generator": children_cpu},
            )
        return measured(
            pid,
            lambda: asyncio.run(httpx_load(port, path, body, self.key, 32, self.seconds)),
            {**probes, "load generator": own_cpu},
        )


FLOOR_MODES = {
    "canned": "ProcessLead canned answer",
    "validated": "ProcessLead canned answer + validation",
}


def floor_phase(b: Bench, echo_t: str, echo_pid: int) -> None:
    """What a ProcessLead costs with no pipeline work: `ccl serve` whose pipeline answers every
    call with its first result (bench/canned_server.py), with and without the validation that
    runs before storage; at 32 and at 1 in flight, interleaved with the echo, no Envoy."""
    print("the floor: ProcessLead with the pipeline taken away (bench/canned_server.py)")
    stacks: list[Stack] = []
    try:
        plan = []
        for mode, series in FLOOR_MODES.items():
            st = Stack(
                [sys.executable, str(BENCH / "canned_server.py"), mode, "serve", "--migrate"],
                {**b.env, "DATABASE_URL": f"sqlite:///{b.tmp}/floor-{mode}.db"},
                b.tmp,
                f"floor-{mode}",
                with_envoy=False,
            )
            stacks.append(st)
            plan.append((series, st.server.pid, f"127.0.0.1:{st.port}", PROCESS_LEAD))
        plan.insert(0, ("echo unary", echo_pid, echo_t, ECHO))
        for _, _, target, method in plan:  # warm-up (and each canned answer's first call)
            make = echo_bytes if method == ECHO else process_lead_bytes
            asyncio.run(unary_load(target, method, make, b.meta, 8, 1))
        for _ in range(b.repeats):
            for in_flight in (32, 1):
                for series, pid, target, method in plan:
                    make = echo_bytes if method == ECHO else process_lead_bytes
                    name = f"{series} c={in_flight}" + (" (floor phase)" if method == ECHO else "")
                    b.res.add(name, b.grpc(pid, target, method, make, in_flight=in_flight))
    finally:
        for st in stacks:
            st.stop()


def floor_section(res: Results) -> list[str]:
    """The floor series against the full ProcessLead and the echo, in numbers from this run."""
    full = res.figures.get("ProcessLead sqlite c=32")
    rows = []
    for label, key in (
        ("echo", "echo unary c={c} (floor phase)"),
        (
            "ProcessLead, canned answer (gRPC, interceptors, servicer, converters)",
            FLOOR_MODES["canned"] + " c={c}",
        ),
        (
            "ProcessLead, canned answer + validation and fingerprint",
            FLOOR_MODES["validated"] + " c={c}",
        ),
        ("ProcessLead, the whole pipeline (the series above)", "ProcessLead sqlite c={c}"),
    ):
        f32, f1 = res.figures.get(key.format(c=32)), res.figures.get(key.format(c=1))
        if not f32 or not f1:
            continue
        rows.append(
            [
                label,
                f"{f32.med('rate'):,.0f}",
                f"{f32.med('cpu_ms'):.3f}",
                f"{f1.med('p50_ms'):.2f}",
            ]
        )
    if not rows or not full:
        return []
    head = ("server", "rate/s at 32 in flight", "server CPU ms per call", "p50 ms at 1 in flight")
    text = (
        "The same `ccl serve` with its pipeline taken away (bench/canned_server.py answers every"
        " ProcessLead with the result of the first one), so what is left is what any call of the"
        " product pays: gRPC, the four interceptors (request id and logging, error mapping,"
        " API-key authentication, reading the request with its deadline and the NUL check), the"
        " servicer and the converters; then with the validation and fingerprint that run before"
        " storage. Runs of the trials' length, interleaved with the echo, server pinned as above."
    )
    return ["## What a call costs with no pipeline work", "", text, "", *_md_table(head, rows)]


def uvloop_phase(b: Bench, echo_t: str, echo_pid: int) -> None:
    """Echo and ProcessLead (SQLite, fresh databases) at 32 in flight, each on asyncio and on
    uvloop, interleaved; servers on the server core, no Envoy."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        b.res.notes.append("uvloop not installed: no uvloop series (pip install uvloop)")
        print("uvloop not installed: no uvloop series")
        return
    print("uvloop: echo and ProcessLead (SQLite) at 32 in flight, asyncio vs uvloop")
    stacks: list[Stack] = []
    try:
        echo_uv = Stack(
            [sys.executable, str(BENCH / "echo_server.py"), "--uvloop"],
            b.env,
            b.tmp,
            "echo-uvloop",
            with_envoy=False,
            port_arg=True,
        )
        stacks.append(echo_uv)
        servers = []
        for loop in ("asyncio", "uvloop"):
            st = Stack(
                [CCL, "serve", "--migrate"],
                {
                    **b.env,
                    "DATABASE_URL": f"sqlite:///{b.tmp}/bench-{loop}.db",
                    "CCL_EVENT_LOOP": loop,
                },
                b.tmp,
                f"sqlite-{loop}",
                with_envoy=False,
            )
            stacks.append(st)
            servers.append(st)
        plan = [
            (UV_SERIES[0], echo_pid, echo_t, ECHO, echo_bytes),
            (UV_SERIES[1], echo_uv.server.pid, f"127.0.0.1:{echo_uv.port}", ECHO, echo_bytes),
        ]
        for name, st in zip(UV_SERIES[2:], servers, strict=True):
            plan.append(
                (name, st.server.pid, f"127.0.0.1:{st.port}", PROCESS_LEAD, process_lead_bytes)
            )
        for _, _, target, method, make in plan:  # warm-up
            asyncio.run(unary_load(target, method, make, b.meta, 8, 1))
        for _ in range(b.repeats):
            for name, pid, target, method, make in plan:
                b.res.add(name, b.grpc(pid, target, method, make))
    finally:
        for st in stacks:
            st.stop()


def reuseport_phase(b: Bench) -> None:
    """Echo at 32 in flight over REUSE_CHANNELS connections: one echo process against two
    sharing one port (grpc.so_reuseport=1, bench only). One process per core: the first on the
    server core, the second on the load generator's."""
    print(f"so_reuseport: echo, 1 process vs 2 processes on one port ({REUSE_CHANNELS} channels)")
    command = [sys.executable, str(BENCH / "echo_server.py"), "--reuseport"]
    stacks: list[Stack] = []
    try:
        one = Stack(command, b.env, b.tmp, "echo-1proc", with_envoy=False, port_arg=True)
        stacks.append(one)
        port = free_port()
        two = []
        for i in range(2):
            st = Stack(
                command,
                b.env,
                b.tmp,
                f"echo-2proc-{i}",
                with_envoy=False,
                port_arg=True,
                port=port,
                pin=(SERVER_PIN, CLIENT_PIN)[i] or None,
            )
            stacks.append(st)
            two.append(st)
        time.sleep(0.5)
        if any(st.server.poll() is not None for st in two):
            raise SystemExit("so_reuseport: a second echo process could not share the port")
        probes = {"load generator": own_cpu, "machine": busy_cores}
        plan = [
            (REUSE_ONE, [one.server.pid], f"127.0.0.1:{one.port}"),
            (REUSE_TWO, [st.server.pid for st in two], f"127.0.0.1:{port}"),
        ]
        for _, _, target in plan:
            asyncio.run(unary_load(target, ECHO, echo_bytes, b.meta, 8, 1, REUSE_CHANNELS))
        for _ in range(b.repeats):
            for name, pids, target in plan:
                b.res.add(name, b.grpc(pids, target, ECHO, echo_bytes, REUSE_CHANNELS, probes))
        b.res.pinning["reuseport"] = (
            f"the single process on core {SERVER_CORE}; of the two, one on core {SERVER_CORE} and"
            f" one on core {CLIENT_CORE}, the core of the load generator"
            if CLIENT_CORE is not None
            else "no pinning (one core)"
        )
    finally:
        for st in stacks:
            st.stop()


def scaleout_phase(b: Bench, pg: Stack, pg_url: str) -> None:
    """ProcessLead over REST through Envoy on PostgreSQL: `pg` alone behind its Envoy, against
    `pg` and a second `ccl serve` on the same database behind another Envoy of the same
    template, interleaved."""
    import psycopg2

    print("scale-out: ProcessLead REST on PostgreSQL, 1 vs 2 ccl serve processes behind Envoy")
    second = Stack(
        [CCL, "serve"],
        {**b.env, "DATABASE_URL": pg_url},
        b.tmp,
        "pg-2",
        with_envoy=False,
        pin=CLIENT_PIN or None,
    )
    # Two Envoys of the same template, both started now that the servers answer (a host found
    # unhealthy before it listened is checked again only after Envoy's no-traffic interval).
    proxy_one, http_one, admin_one = start_envoy(b.tmp, "pg-1proc", [pg.port])
    proxy, http_port, admin_port = start_envoy(b.tmp, "pg-2proc", [pg.port, second.port])
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True

    def commits() -> float:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            )
            row = cur.fetchone()
        return float(row[0]) if row else float("nan")

    try:
        wait_envoy_healthy(admin_port, [pg.port, second.port])
        wait_envoy_healthy(admin_one, [pg.port])
        wait_http(http_one, "/api/leads/process", rest_body(IDS.take()), b.key)
        wait_http(http_port, "/api/leads/process", rest_body(IDS.take()), b.key)
        asyncio.run(
            unary_load(f"127.0.0.1:{second.port}", PROCESS_LEAD, process_lead_bytes, b.meta, 8, 2)
        )
        time.sleep(1)
        procs = {"1 of 2": pg.server.pid, "2 of 2": second.server.pid}
        before = {k: cpu_seconds(v) for k, v in procs.items()}
        t0 = time.perf_counter()
        time.sleep(2)
        wall = time.perf_counter() - t0
        for k, v in procs.items():
            b.res.idle_cpu[k] = (cpu_seconds(v) - before[k]) / wall
        common = {"postgres": postgres_cpu, "machine": busy_cores, "commits": commits}
        envoy_one, envoy_two = proxy_one.pid, proxy.pid
        for _ in range(b.repeats):
            b.res.add(
                SCALE_ONE,
                b.rest(
                    [pg.server.pid],
                    http_one,
                    {**common, "envoy": lambda: cpu_seconds(envoy_one)},
                ),
            )
            b.res.add(
                SCALE_TWO,
                b.rest(
                    [pg.server.pid, second.server.pid],
                    http_port,
                    {**common, "envoy": lambda: cpu_seconds(envoy_two)},
                ),
            )
        b.res.pinning["scaleout"] = (
            f"the first ccl serve on core {SERVER_CORE} (as in every series), the second on core"
            f" {CLIENT_CORE}, the core wrk runs on; Envoy and PostgreSQL unpinned"
            if CLIENT_CORE is not None
            else "no pinning (one core)"
        )
    finally:
        conn.close()
        for process in (proxy_one, proxy):
            process.terminate()
        second.stop()
        for process in (proxy_one, proxy):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)


def campaign_phase(b: Bench, backend: str, database_url: str) -> None:
    """One campaign of `campaign.RECIPIENTS` on a fresh database of `backend`: seeded through
    storage, sent by a `ccl serve` (pinned to the server core) to a fake Mailgun in this
    process (on the load generator's core)."""
    sys.path.insert(0, str(BENCH))
    import campaign

    print(f"campaign: {campaign.RECIPIENTS:,} recipients on {backend}, seeding")
    seed_seconds = campaign.seed(database_url, b.env["CCL_DATA_KEYS"], campaign.RECIPIENTS)
    with campaign.FakeMailgun() as fake:
        stack = Stack(
            [CCL, "serve"],
            {**b.env, "DATABASE_URL": database_url, **campaign.mailgun_env(fake)},
            b.tmp,
            f"campaign-{backend}",
            with_envoy=False,
        )
        try:
            run = campaign.run_campaign(
                backend, stack.server, stack.port, fake, b.meta, cpu_seconds, seed_seconds
            )
        finally:
            stack.stop()
    b.res.campaigns[backend] = run
    print(
        f"  {backend}: {run.seconds:.2f} s for {run.recipients:,} recipients in {run.calls} calls"
        f" (BulkSend {run.bulk_send_seconds:.2f} s), peak RSS {run.peak_rss_mb:.1f} MB,"
        f" server CPU {run.server_cpu_seconds:.1f} s, duplicates {run.duplicates}"
        f" (seeded in {run.seed_seconds:.1f} s)",
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
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated parts to run, of: core (the issue's figures), uvloop, reuseport,"
        " scaleout, campaign (default: all); with --output, e.g. to try the new series alone",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="skip the uvloop series")
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the floor series (ProcessLead with the pipeline taken away)",
    )
    parser.add_argument(
        "--no-reuseport", action="store_true", help="skip the so_reuseport echo series"
    )
    parser.add_argument(
        "--no-scaleout", action="store_true", help="skip the 2-process scale-out (PostgreSQL)"
    )
    parser.add_argument(
        "--no-campaign",
        action="store_true",
        help="skip the 100,000-recipient campaign (SQLite, and PostgreSQL unless --no-postgres)",
    )
    parser.add_argument(
        "--extra-seconds",
        type=float,
        default=None,
        help="length of one run of the floor, uvloop, reuseport and scale-out series (default 2)",
    )
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    parser.add_argument("--write", action="store_true", help="write docs/ even with --quick")
    parser.add_argument("--output", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "benchmarks-latency.png"))
    args = parser.parse_args()
    parts = set(PARTS) if not args.only else {x.strip() for x in args.only.split(",") if x}
    if parts - set(PARTS):
        parser.error(f"--only: unknown {sorted(parts - set(PARTS))}; parts are {', '.join(PARTS)}")
    parts -= {x for x in PARTS if getattr(args, f"no_{x}", False)}
    core = "core" in parts
    repeats = args.repeats or (1 if args.quick else 3)
    extra_seconds = args.extra_seconds or (1.5 if args.quick else 2.0)
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
    if parts - {"core"}:
        res.notes.append(
            f"uvloop, so_reuseport and scale-out series: runs of {extra_seconds:g} s"
            " (--extra-seconds)"
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
        echo_t = f"127.0.0.1:{echo.port}"
        pids: dict[str | int, int] = {echo_t: echo.server.pid, echo.http_port: echo.server.pid}

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

        def core_sqlite(lite: Stack, lite_t: str) -> None:
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
                        res.layers if gil else None,
                    )

        def core_postgres(pg_t: str) -> None:
            for _ in range(repeats):
                res.add("echo unary c=32 (pg phase)", grpc_run(echo_t, ECHO, echo_bytes, 32))
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

        bench = Bench(res, env, tmp, key, meta, repeats, extra_seconds, wrk)
        try:
            wait_http(echo.http_port, "/bench/echo", '{"text":"hi"}', key)
            if core:
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
                lite_t = f"127.0.0.1:{lite.port}"
                wait_http(
                    lite.http_port,
                    "/api/leads/process",
                    rest_body(IDS.take()),
                    key,
                )
                pids[lite_t] = lite.server.pid
                pids[lite.http_port] = lite.server.pid
                core_sqlite(lite, lite_t)
                lite.stop()
                stacks.remove(lite)
                if not args.no_floor:
                    floor_phase(bench, echo_t, echo.server.pid)
            if "uvloop" in parts:
                uvloop_phase(bench, echo_t, echo.server.pid)
            if "reuseport" in parts:
                reuseport_phase(bench)
            if args.no_postgres and "scaleout" in parts:
                res.notes.append("scale-out not measured: it needs PostgreSQL (--no-postgres)")
                print("--no-postgres: no scale-out figure (it runs on PostgreSQL)")
            if not args.no_postgres and ({"core", "scaleout"} & parts):
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
                        if core:
                            core_postgres(pg_t)
                        if "scaleout" in parts:
                            scaleout_phase(bench, pg, pg_url)
                        pg.stop()
                        stacks.remove(pg)
            if "campaign" in parts:
                campaign_phase(bench, "sqlite", f"sqlite:///{tmp}/campaign.db")
                if args.no_postgres:
                    res.notes.append("campaign on PostgreSQL not measured (--no-postgres)")
                else:
                    with postgres_database(pg_admin) as pg_url:
                        if pg_url:
                            campaign_phase(bench, "postgresql", pg_url)
        finally:
            for s in stacks:
                s.stop()

    elapsed = time.monotonic() - started
    table = build_table(res)
    print()
    print(render_text(table))
    extra = extra_sections(res)
    if extra:
        print()
        print("\n".join(extra))
    print(f"\n{elapsed / 60:.1f} min")
    default_output = args.output == parser.get_default("output")
    if args.only and default_output and not args.write:
        print(f"--only: partial run, {args.output} left alone (give --output, or --write)")
    elif not args.no_write and (args.write or not args.quick):
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
    if get(UV_SERIES[3]):
        rate_row("  the same on uvloop (server and echo)", UV_SERIES[3], UV_SERIES[1], 0.50)
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
    for backend, (label, limit) in CAMPAIGN_TARGETS.items():
        run = res.campaigns.get(backend)
        name = f"campaign of 100,000 recipients, {label}"
        if run is None:
            rows.append(Row(name, "not measured", "", float("nan"), f"≤ {limit:g} s", None))
            continue
        ok = run.seconds <= limit and run.duplicates == 0
        value = f"{run.seconds:.1f} s, peak RSS {run.peak_rss_mb:.0f} MB"
        if run.duplicates:
            value += f", {run.duplicates} addresses mailed twice"
        rows.append(Row(name, value, "", float("nan"), f"≤ {limit:g} s", ok))
    measured_rss = res.rss_mb == res.rss_mb
    rows.append(
        Row(
            "idle server RSS after start-up",
            f"{res.rss_mb:.1f} MB" if measured_rss else "not measured",
            "",
            float("nan"),
            "≤ 70 MB",
            res.rss_mb <= 70 if measured_rss else None,
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
    out = ["## Reading", "", text, ""]
    held = res.layers.get("[GIL held]")
    shares = [(k, v) for k, v in res.layers.items() if not k.startswith("[")]
    if held and shares:
        cpu = pl.med("server_cpu")
        out += [
            "Where a ProcessLead's CPU goes (the GIL profile above, by layer: each sample goes"
            " to the layer of its stack, see `layer_of` in bench/harness.py). The GIL was held"
            f" {held:.0%} of the recording's time while the server used {cpu:.0%} of a core:"
            f" about {max(cpu - held, 0) / cpu:.0%} of its CPU ran outside the GIL (SQLite's"
            " C code, gRPC's core, system calls), the rest is split below.",
            "",
            "| layer | share of GIL samples | ms of CPU per lead |",
            "|---|---|---|",
        ]
        python_ms = ms * min(held / cpu, 1.0) if cpu else float("nan")
        for name, share in sorted(shares, key=lambda kv: -kv[1]):
            out.append(f"| {name} | {share:.0%} | {share * python_ms:.2f} |")
        out.append(
            f"| outside the GIL (SQLite, gRPC core, system) |  | {max(ms - python_ms, 0):.2f} |"
        )
        out.append(f"| echo, the whole call, for comparison |  | {echo_ms:.2f} |")
        out.append("")
    return out


def _md_table(head: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _pcts(values: list[float]) -> str:
    return " + ".join(f"{v:.0%}" for v in values)


def extra_sections(res: Results) -> list[str]:
    return (
        uvloop_section(res) + reuseport_section(res) + scaleout_section(res) + campaign_section(res)
    )


def campaign_section(res: Results) -> list[str]:
    if not res.campaigns:
        return []
    head = (
        "backend",
        "recipients",
        "Mailgun calls",
        "BulkSend to SENT, s",
        "of which the BulkSend call, s",
        "messages/s",
        "server CPU, s",
        "peak RSS, MB",
        "RSS before BulkSend, MB",
        "mailed twice",
    )
    rows = [
        [
            backend,
            f"{r.recipients:,}",
            str(r.calls),
            f"{r.seconds:.2f}",
            f"{r.bulk_send_seconds:.2f}",
            f"{r.recipients / r.seconds:,.0f}",
            f"{r.server_cpu_seconds:.1f}",
            f"{r.peak_rss_mb:.1f}",
            f"{r.rss_before_mb:.1f}",
            str(r.duplicates),
        ]
        for backend, r in res.campaigns.items()
    ]
    text = (
        "One campaign of 100,000 leads (seeded straight into storage, not through the pipeline)"
        " per backend, sent by one `ccl serve` to a fake Mailgun (tests/support/fake_mailgun.py,"
        " real HTTP on loopback, in the harness process) that answers each call of up to 1,000"
        " recipients after 20 ms; quiet hours off, a send rate far above what is reached. The"
        " time runs from the BulkSend call (which takes the recipient snapshot) until the"
        " campaign reads SENT and Mailgun has answered the last call; the peak RSS is the"
        " server's VmHWM at the end (its peak since start-up). One run per backend."
    )
    return [
        "## Campaign (100,000 recipients, issue 10)",
        "",
        *_md_table(head, rows),
        text,
        "",
    ]


def uvloop_section(res: Results) -> list[str]:
    figs = [res.figures.get(n) for n in UV_SERIES]
    if not all(f and f.runs for f in figs):
        return []
    e_a, e_u, p_a, p_u = (f for f in figs if f)
    head = ("series", "event loop", "rate/s", "p50 ms", "p99 ms", "server CPU ms per request")
    rows = [
        [
            name,
            loop,
            f"{f.med('rate'):,.1f}",
            _ms(f.med("p50_ms")),
            _ms(f.med("p99_ms")),
            f"{f.med('cpu_ms'):.3f}",
        ]
        for name, loop, f in (
            ("echo unary c=32", "asyncio", e_a),
            ("echo unary c=32", "uvloop", e_u),
            ("ProcessLead SQLite c=32", "asyncio", p_a),
            ("ProcessLead SQLite c=32", "uvloop", p_u),
        )
    ]
    echo_gain = e_u.med("rate") / e_a.med("rate")
    lead_gain = p_u.med("rate") / p_a.med("rate")
    lead_cpu = p_u.med("cpu_ms") / p_a.med("cpu_ms")
    rates = [[r.rate for r in f.runs] for f in (p_a, p_u)]
    spread = max((max(x) - min(x)) / statistics.median(x) for x in rates)
    noise = max(spread, 0.05)
    if p_u.errors:
        verdict = f"uvloop had {p_u.errors} failed ProcessLead calls: keep asyncio."
    elif len(p_u.runs) < 3:
        verdict = f"With {len(p_u.runs)} run(s) per series this is no verdict on ProcessLead."
    elif abs(lead_gain - 1) <= noise:
        verdict = (
            f"ProcessLead's rate moved {lead_gain - 1:+.1%}, within the noise of this comparison"
            f" (the runs of one series spread by up to {spread:.0%}; 5% at least): the event"
            " loop is not where ProcessLead's time goes."
        )
    elif lead_gain > 1:
        verdict = (
            f"ProcessLead ran {lead_gain - 1:.1%} faster on uvloop, more than the runs of one"
            f" series spread ({spread:.0%}): uvloop pays here."
        )
    else:
        verdict = (
            f"ProcessLead ran {1 - lead_gain:.1%} slower on uvloop, more than the runs of one"
            f" series spread ({spread:.0%}): keep asyncio."
        )
    text = (
        f"Each figure is the median of {len(p_u.runs)} interleaved runs at 32 in flight over"
        " direct gRPC, servers on the server core, no Envoy; both `ccl serve` processes"
        " (`CCL_EVENT_LOOP=asyncio` and `uvloop`) started on fresh SQLite databases in this"
        " phase, the echo on uvloop is `bench/echo_server.py --uvloop`. On uvloop the echo"
        f" rate was {echo_gain:.2f} x asyncio's ({e_a.med('cpu_ms'):.3f} to"
        f" {e_u.med('cpu_ms'):.3f} ms of server CPU per call) and ProcessLead's"
        f" {lead_gain:.2f} x ({p_a.med('cpu_ms'):.2f} to {p_u.med('cpu_ms'):.2f} ms per lead,"
        f" {lead_cpu:.2f} x). ProcessLead / echo: {p_a.med('rate') / e_a.med('rate'):.3f} on"
        f" asyncio, {p_u.med('rate') / e_u.med('rate'):.3f} on uvloop. {verdict}"
    )
    return ["## Event loop: asyncio and uvloop", "", *_md_table(head, rows), text, ""]


def reuseport_section(res: Results) -> list[str]:
    one, two = res.figures.get(REUSE_ONE), res.figures.get(REUSE_TWO)
    if not one or not two or not one.runs or not two.runs:
        return []
    head = ("echo processes", "rate/s", "p50 ms", "p99 ms", "CPU per echo process")
    head += ("load generator CPU", "machine busy (cores)")
    rows = [
        [
            str(n),
            f"{f.med('rate'):,.1f}",
            _ms(f.med("p50_ms")),
            _ms(f.med("p99_ms")),
            _pcts(f.med_procs()),
            f"{f.med_extra('load generator'):.0%}",
            f"{f.med_extra('machine'):.2f} of {len(_cores)}",
        ]
        for n, f in ((1, one), (2, two))
    ]
    gain = two.med("rate") / one.med("rate")
    client = two.med_extra("load generator")
    procs = two.med_procs()
    busy = two.med_extra("machine")
    text = (
        f"Two echo processes sharing one port with `grpc.so_reuseport=1` (a bench-only flag of"
        " `bench/echo_server.py`; the product keeps 0, so a taken port is an error) served"
        f" {two.med('rate'):,.0f} calls/s against {one.med('rate'):,.0f} for one process with"
        f" the same option and load: {gain:.2f} x. The load is one Python grpc.aio process with"
        f" {REUSE_CHANNELS} channels (one connection each, which the kernel spreads over the"
        f" listening processes) and 32 calls in flight; {res.pinning.get('reuseport', '')}."
        f" With two processes they used {_pcts(procs)} of a core and the load generator"
        f" {client:.0%}; the machine was busy {busy:.2f} of its {len(_cores)} cores."
    )
    if client >= 0.85:
        text += (
            " The load generator is at its core's limit, so the echo figure is bound by the"
            " client, and a second server process cannot show more than the client sends."
        )
    elif busy >= 0.85 * len(_cores):
        text += (
            " The machine's cores are nearly all busy: a second server process competes with"
            " the load generator for them."
        )
    if procs and min(procs) < 0.05:
        text += (
            " One process got (nearly) no connection: the kernel gives each of the"
            f" {REUSE_CHANNELS} connections to one process by a hash, and here they landed on"
            " one; the median over runs with new connections each time evens this out only"
            " partly."
        )
    elif procs and min(procs) < 0.5 * max(procs):
        text += (
            f" The two processes' shares were uneven ({_pcts(procs)}): the kernel gives each of"
            f" the {REUSE_CHANNELS} connections to one process, and the second process shares its"
            " core with the load generator."
        )
    return [
        "## Several processes on one port (so_reuseport, echo only)",
        "",
        *_md_table(head, rows),
        text,
        "",
    ]


def scaleout_section(res: Results) -> list[str]:
    one, two = res.figures.get(SCALE_ONE), res.figures.get(SCALE_TWO)
    if not one or not two or not one.runs or not two.runs:
        return []
    cores = len(_cores)
    head = ("ccl serve processes", "leads/s", "p50 ms", "p99 ms", "CPU per ccl serve process")
    head += ("ccl serve CPU ms per lead", "Envoy CPU", "PostgreSQL CPU", "wrk CPU")
    head += ("machine busy (cores)", "commits/s (per lead)", "errors")
    rows = []
    for n, f in ((1, one), (2, two)):
        rate = f.med("rate")
        commits = f.med_extra("commits")
        rows.append(
            [
                str(n),
                f"{rate:,.1f}",
                _ms(f.med("p50_ms")),
                _ms(f.med("p99_ms")),
                _pcts(f.med_procs()),
                f"{f.med('cpu_ms'):.2f}",
                f"{f.med_extra('envoy'):.0%}",
                f"{f.med_extra('postgres'):.0%}",
                f"{f.med_extra('load generator'):.0%}",
                f"{f.med_extra('machine'):.2f} of {cores}",
                f"{commits:,.0f} ({commits / rate:.2f})" if rate else "",
                str(f.errors),
            ]
        )
    r1, r2 = one.med("rate"), two.med("rate")
    procs = two.med_procs()
    busy, envoy_cpu = two.med_extra("machine"), two.med_extra("envoy")
    pg_cpu, client = two.med_extra("postgres"), two.med_extra("load generator")
    per_lead = {  # ms of CPU per lead, with two processes
        "the ccl serve processes": two.med("cpu_ms"),
        "Envoy": envoy_cpu * 1000 / r2,
        "PostgreSQL": pg_cpu * 1000 / r2,
        "wrk": client * 1000 / r2,
    }
    busy_one = one.med_extra("machine")
    c1, c2 = one.med_extra("commits") / r1, two.med_extra("commits") / r2
    text = [
        f"`ProcessLead` over REST through one Envoy (the product's template, round robin over"
        f" its upstreams), 32 wrk connections, PostgreSQL: {r2:,.1f} leads/s with two `ccl serve`"
        f" processes on the same database against {r1:,.1f} with one, {r2 / r1:.2f} x (2 x would"
        f" be linear). Medians of {len(two.runs)} interleaved runs of each; pinning:"
        f" {res.pinning.get('scaleout', '')}. With two processes they used {_pcts(procs)} of a"
        f" core, Envoy {envoy_cpu:.0%}, PostgreSQL {pg_cpu:.0%}, wrk {client:.0%}: the machine"
        f" was busy {busy:.2f} of its {cores} cores ({busy / cores:.0%}).",
        "",
        "Per lead, with two processes: "
        + ", ".join(f"{k} {v:.2f} ms of CPU" for k, v in per_lead.items())
        + f"; {c2:.2f} PostgreSQL commits (group commit shares them between the leads of a"
        f" batch). With one process: {one.med('cpu_ms'):.2f} ms of ccl serve CPU and {c1:.2f}"
        " commits per lead.",
    ]
    if c2 > 1.1 * c1 and two.med("cpu_ms") > 1.1 * one.med("cpu_ms"):
        text[-1] += (
            f" Two processes cost more per lead ({one.med('cpu_ms'):.2f} to"
            f" {two.med('cpu_ms'):.2f} ms, {c1:.2f} to {c2:.2f} commits): each process batches"
            " only the leads it receives, so with the load split in two its group-commit"
            " batches are smaller and each commit is shared by fewer leads."
        )
    if busy >= 0.85 * cores:
        limit = (
            f"The limit on this machine is its {cores} cores: they were {busy / cores:.0%} busy"
            f" with two processes ({busy_one / cores:.0%} already with one: ccl serve"
            f" {one.med('server_cpu'):.0%}, PostgreSQL {one.med_extra('postgres'):.0%}, Envoy"
            f" {one.med_extra('envoy'):.0%} of a core), shared by the server processes with"
            " Envoy, PostgreSQL and the load generator, so another process takes CPU from them"
            " rather than adding rate."
        )
    elif procs and max(procs) >= 0.85:
        limit = (
            "The next limit is the server processes' own CPU: a process is near a full core,"
            " so the rate grows only with more processes on more cores."
        )
    else:
        limit = (
            f"Neither the cores ({busy / cores:.0%} busy) nor any process (at most"
            f" {max(procs, default=0):.0%} of a core) was saturated: the rate is bounded by"
            f" latency (p50 {two.med('p50_ms'):.1f} ms with 32 in flight), i.e. by the waits"
            " for commits and the group-commit batches, not by CPU."
        )
    outside = {k: v for k, v in per_lead.items() if k in ("Envoy", "PostgreSQL")}
    first = max(outside, key=lambda k: outside[k])
    limit += (
        f" Past this machine, with a core per replica, the shared parts set the ceiling:"
        f" {first} costs the most per lead ({outside[first]:.2f} ms of CPU, about"
        f" {1000 / outside[first]:,.0f} leads/s per core it is given) and would saturate first;"
        f" {two.med_extra('commits'):,.0f} commits/s is the PostgreSQL commit rate at this load."
    )
    idle = res.idle_cpu
    if idle:
        limit += (
            " The outbox workers do no delivery work here (no dealers are seeded, so no lead"
            " is routed); idle, each process's background workers used"
            f" {' + '.join(f'{v:.1%}' for v in idle.values())} of a core, so they were no limit"
            " in this figure."
        )
    text += ["", limit]
    return [
        "## Scale-out (PostgreSQL, 1 and 2 processes behind Envoy)",
        "",
        *_md_table(head, rows),
        *text,
        "",
    ]


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
        procs = fig.med_procs()
        cpu = f"{fig.med('server_cpu'):.0%}"
        if len(procs) > 1:
            cpu += " (" + " + ".join(f"{x:.0%}" for x in procs) + ")"
        cells += [_ms(fig.med("p99_ms")), cpu]
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
    out += floor_section(res)
    out += extra_sections(res)
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
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
