"""The campaign series of `make bench` (issue 10): one campaign of `RECIPIENTS` recipients, from
the BulkSend call to the campaign being SENT and Mailgun's last answer, through a real `ccl
serve` and a fake Mailgun (tests/support/fake_mailgun.py: real HTTP on 127.0.0.1, Mailgun's
checks) that takes `LATENCY` seconds a call.

The leads are seeded straight into storage, 1,000 rows an insert (what intake would have
stored: `tests/support/campaign_leads.py`), not through the pipeline: the series measures the
dispatch, not intake. Quiet hours are off and the send rate is far above what the server can do,
so neither is the limit."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from ccl.campaign.v1 import campaign_service_pb2 as pb
from ccl.campaign.v1 import campaign_service_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # the fake Mailgun of the tests

from support.campaign_leads import seed_campaign_leads  # noqa: E402
from support.fake_mailgun import DEFAULT_SIGNING_KEY, FakeMailgun  # noqa: E402

RECIPIENTS = 100_000
LATENCY = 0.020  # seconds Mailgun takes to answer a call
STATE = "WY"
CHUNK = 1_000
TEMPLATE = pb.Template(
    name="Finish your application",
    subject="{{ first_name }}, your {{ vehicle }} is waiting",
    html_body="<p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>",
    text_body="Hi {{ first_name }}, finish here: {{ application_url }}",
)
TIMEOUT_SECONDS = 600.0  # a hang guard only
SENT = pb.CampaignState.Value("CAMPAIGN_STATE_SENT")


@dataclass(frozen=True)
class CampaignRun:
    backend: str
    recipients: int
    seconds: float  # BulkSend called -> SENT and the last call answered
    bulk_send_seconds: float  # the BulkSend call alone (the recipient snapshot)
    calls: int
    peak_rss_mb: float  # VmHWM of ccl serve at the end (its peak since start-up)
    rss_before_mb: float  # VmRSS just before BulkSend (seeded, idle)
    server_cpu_seconds: float
    seed_seconds: float
    duplicates: int  # addresses Mailgun got more than once (0, or the run is wrong)


def proc_status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed(database_url: str, data_keys: str, n: int) -> float:
    """Migrates the database and stores `n` leads in `STATE` with a granted TCPA consent. Seconds
    taken."""
    from server.app import build_application
    from server.settings import Settings
    from server.storage.migrate import apply_migrations

    started = time.perf_counter()
    app = build_application(Settings(database_url=database_url, data_keys=data_keys))
    db = app.db.db
    db.connect(reuse_if_open=True)
    try:
        apply_migrations(db)
        addresses = [f"person{i}@campaign.example.com" for i in range(n)]
        seed_campaign_leads(db, addresses, STATE, per_insert=CHUNK)
    finally:
        db.close()
        app.close()
    return time.perf_counter() - started


def mailgun_env(fake: FakeMailgun) -> dict[str, str]:
    return {
        "CCL_MAILGUN_API_KEY": fake.api_key,
        "CCL_MAILGUN_DOMAIN": fake.domain,
        "CCL_MAILGUN_BASE_URL": fake.url,
        "CCL_MAILGUN_WEBHOOK_SIGNING_KEY": DEFAULT_SIGNING_KEY,
        "CCL_COMPANY_NAME": "Bench Lending LLC",
        "CCL_COMPANY_POSTAL_ADDRESS": "1 Bench St, Springfield, IL 62701",
        "CCL_PUBLIC_BASE_URL": "https://apply.example.test",
        "CCL_EMAIL_SEND_RATE": "1000000",
        "CCL_EMAIL_QUIET_HOURS": "false",
        "CCL_WORKER_POLL_SECONDS": "0.05",
    }


def run_campaign(
    backend: str,
    server: subprocess.Popen[bytes],
    port: int,
    fake: FakeMailgun,
    meta: tuple[tuple[str, str], ...],
    cpu_seconds: Callable[[int], float],
    seed_seconds: float,
    recipients: int = RECIPIENTS,
) -> CampaignRun:
    """Creates a template, sends a campaign to everyone seeded and waits for it to be SENT and
    for Mailgun's answer to the last call."""
    calls_needed = -(-recipients // CHUNK)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
        template = stub.CreateTemplate(
            pb.CreateTemplateRequest(template=TEMPLATE), metadata=meta, timeout=30
        ).template
        campaign = pb.Campaign(name="Bench", template_id=template.template_id)
        campaign.audience.states.append(STATE)
        fake.reset()
        fake.latency = LATENCY
        rss_before = proc_status_mb(server.pid, "VmRSS")
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        answer = stub.BulkSend(
            pb.BulkSendRequest(idempotency_key=f"bench-{backend}", campaign=campaign),
            metadata=meta,
            timeout=300,
        )
        bulk_send = time.perf_counter() - started
        if answer.queued_count != recipients:
            raise SystemExit(
                f"campaign ({backend}): {answer.queued_count} queued, not {recipients}"
            )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        state = None
        while True:
            # GetCampaign counts the campaign's messages (a scan of its snapshot): asked only once
            # Mailgun has answered every call, so that the polling does not load the server.
            answered = sum(1 for status, _ in list(fake.attempts) if status == 200)
            if state != SENT and answered >= calls_needed:
                state = stub.GetCampaign(
                    pb.GetCampaignRequest(campaign_id=answer.campaign.campaign_id),
                    metadata=meta,
                    timeout=30,
                ).campaign.state
            if state == SENT and answered >= calls_needed:
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"campaign ({backend}): not sent ({answered} calls answered)")
            time.sleep(0.02)
        seconds = time.perf_counter() - started
    counts = fake.recipient_counts()
    return CampaignRun(
        backend=backend,
        recipients=len(counts),
        seconds=seconds,
        bulk_send_seconds=bulk_send,
        calls=len(fake.calls),
        peak_rss_mb=proc_status_mb(server.pid, "VmHWM"),
        rss_before_mb=rss_before,
        server_cpu_seconds=cpu_seconds(server.pid) - cpu_before,
        seed_seconds=seed_seconds,
        duplicates=sum(1 for n in counts.values() if n != 1),
    )
