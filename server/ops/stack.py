"""`ccl run` (what `make run` calls): migrate, then the gRPC server and Envoy together.

Prints the REST base URL, the gRPC address, a development admin key and
copy-paste examples. Ctrl-C stops both: the server drains, Envoy is stopped.
This is the only place an admin key is printed: one it generated and stored in
var/dev-admin.key, never the operator's own CCL_ADMIN_API_KEY. It is a
development tool, so it refuses to run with CCL_ENV=production.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import urllib.request
from pathlib import Path

from server import app as app_module
from server.domain.principal import Role
from server.errors import UnauthenticatedError
from server.logs import configure_logging
from server.main import run, serve
from server.ops import envoy
from server.redact import redact_url
from server.settings import Settings
from server.storage.crypto import create_private_file, make_private_dirs

VAR = Path("var")
DEV_ADMIN_KEY_FILE = VAR / "dev-admin.key"


def ensure_dev_admin_key(settings: Settings) -> str | None:
    """The development admin key the banner prints: None when CCL_ADMIN_API_KEY is set (the
    operator's key is never echoed); else a stored admin key kept in var/dev-admin.key (0600),
    created on first run and again if it stopped working."""
    if settings.admin_api_key:
        return None
    application = app_module.build_application(settings)
    try:
        make_private_dirs(DEV_ADMIN_KEY_FILE.parent)
        create_private_file(DEV_ADMIN_KEY_FILE)  # or restricts an older one to its owner
        key = DEV_ADMIN_KEY_FILE.read_text().strip()
        if key:
            with contextlib.suppress(UnauthenticatedError):
                asyncio.run(application.api_keys.authenticate(key))
                return key
        application.db.db.connect(reuse_if_open=True)
        created = application.api_keys.create_sync(Role.ADMIN, name="dev admin (make run)")
        DEV_ADMIN_KEY_FILE.write_text(created.api_key + "\n")
        return created.api_key
    finally:
        application.close()


def wait_for_envoy(admin_port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{admin_port}/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with {process.returncode}; see var/envoy.log")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    raise RuntimeError("envoy did not become ready; see var/envoy.log")


def banner(settings: Settings, grpc_port: int, dev_admin_key: str | None) -> str:
    """What `ccl run` prints once the stack is up. With `dev_admin_key` None (the operator set
    CCL_ADMIN_API_KEY), the examples read the key from that variable instead of showing it."""
    rest = f"http://127.0.0.1:{settings.http_port}"
    if dev_admin_key is None:
        key_line = "Admin key:        the configured CCL_ADMIN_API_KEY (not shown)"
        admin_key = "$CCL_ADMIN_API_KEY"
    else:
        key_line = f"Dev admin key:    {dev_admin_key}   (kept in {DEV_ADMIN_KEY_FILE})"
        admin_key = dev_admin_key
    grpc_addr = f"{settings.grpc_host}:{grpc_port}"
    example = (
        '{"idempotency_key":"web-7f1c2a","lead":{"first_name":"Maria","last_name":"Lopez",'
        '"email":"maria.lopez@example.com","phone":"(312) 555-0182","date_of_birth":"1990-04-12",'
        '"address":{"street":"100 Main St","city":"Springfield","state":"IL","zip_code":"62701"},'
        '"monthly_income_cents":420000,"down_payment_cents":100000,'
        '"vehicle":{"year":2021,"make":"Toyota","model":"Camry"},'
        '"consent":{"tcpa":true,"fcra_soft_pull":true,"consent_text":"I agree to be contacted ...",'
        '"ip_address":"203.0.113.9","user_agent":"Mozilla/5.0",'
        '"page_url":"https://completecarloans.com/apply"},"source":"website","visitor_id":"anon-5d1e"}}'
    )
    return f"""
CCL Lead Platform is up.
  REST (Envoy):     {rest}
  gRPC (server):    {grpc_addr}   (also through Envoy on 127.0.0.1:{settings.http_port})
  Envoy admin:      http://127.0.0.1:{settings.envoy_admin_port}
  Database:         {redact_url(settings.database_url)}
  {key_line}

Try:
  curl -s -H "Authorization: Bearer {admin_key}" {rest}/api/system/stats
  curl -s -H "Authorization: Bearer {admin_key}" {rest}/api/agents/status
  curl -s -H "Authorization: Bearer {admin_key}" -H 'content-type: application/json' \\
       -d '{example}' {rest}/api/leads/process
  .venv/bin/grpcurl -plaintext {grpc_addr} grpc.health.v1.Health/Check
  .venv/bin/grpcurl -plaintext 127.0.0.1:{settings.http_port} list
  .venv/bin/grpcurl -plaintext -H "authorization: Bearer {admin_key}" \\
       {grpc_addr} ccl.agent.v1.AgentService/ListAgentStatus

Ctrl-C stops the server and Envoy.
"""


def run_stack(settings: Settings) -> int:
    if settings.environment == "production":
        raise app_module.ConfigurationError(
            "ccl run is the development stack (it creates and prints an admin key); "
            "in production run ccl serve"
        )
    configure_logging(settings.log_level)
    make_private_dirs(VAR)
    applied = app_module.migrate(settings)
    if applied:
        print(f"migrations applied: {', '.join(applied)}")
    admin_key = ensure_dev_admin_key(settings)
    if not envoy.DESCRIPTOR.exists():
        raise SystemExit("envoy/ccl.binpb is missing: run `make generate`")
    config_path = envoy.write_config(
        envoy.EnvoyConfig(
            http_port=settings.http_port,
            admin_port=settings.envoy_admin_port,
            upstreams=[(settings.grpc_host, settings.grpc_port)],
            cors_origins=settings.cors_origin_list(),
            listen_host=settings.http_host,
            max_request_bytes=settings.max_request_bytes,
            rate_limit_per_second=settings.rate_limit_per_second,
        ),
        VAR / "envoy.yaml",
    )
    processes: list[subprocess.Popen[bytes]] = []

    async def started(grpc_port: int) -> None:
        process = envoy.start(config_path, VAR / "envoy.log")
        processes.append(process)
        await asyncio.to_thread(wait_for_envoy, settings.envoy_admin_port, process, 20.0)
        print(banner(settings, grpc_port, admin_key), flush=True)

    try:
        run(serve(settings, on_started=started), settings.event_loop)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
    return 0
