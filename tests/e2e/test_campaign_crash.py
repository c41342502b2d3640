"""Issue 10's crash test, on both backends: a real `ccl serve` process sending a campaign to a
fake Mailgun (a real HTTP server in this process) is SIGKILLed mid-campaign, twice, and started
again on the same database; every recipient is mailed exactly once and the campaign is SENT.

The first kill lands in the worst place: Mailgun took a batch (the fake records it as accepted)
but never answered, so the server died with the batch `sending`. A `sending` batch whose lease
runs out becomes `unknown` and is never sent again by itself; Mailgun's events for it (they
carry our `ccl_message` variable) prove it went out and settle it as `sent`. The lease is at
least two minutes, so while a server is down the test moves the leases it left behind into the
past (what two minutes of downtime would do) instead of waiting; the server then expires them
itself. The second kill lands wherever the third call happens to be.

The leads are seeded straight into storage (as in test_bulk_send.py); the campaign and the
events go through the public gRPC API only."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import peewee as pw
import pytest
from cryptography.fernet import Fernet
from google.api import httpbody_pb2
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ccl.campaign.v1 import campaign_service_pb2 as pb
from ccl.campaign.v1 import campaign_service_pb2_grpc
from server.app import Application, build_application
from server.storage import models as m
from server.storage.migrate import apply_migrations
from support.campaign_leads import seed_campaign_leads
from support.fake_mailgun import DEFAULT_SIGNING_KEY, FakeMailgun, webhook_bytes
from support.rpc import auth
from support.stack import free_port, make_settings

pytestmark = pytest.mark.e2e

T = TypeVar("T")
RECIPIENTS = 5_000  # five Mailgun calls of 1,000
STATE = "WY"
TIMEOUT_SECONDS = 60.0  # a hang guard for each wait, not a timing assertion
CCL = str(Path(sys.executable).with_name("ccl"))
TEMPLATE = {
    "name": "Finish your application",
    "subject": "{{ first_name }}, your {{ vehicle }} is waiting",
    "html_body": "<p>Hi {{ first_name }}, <a href='{{ application_url }}'>resume</a></p>",
    "text_body": "Hi {{ first_name }}, finish here: {{ application_url }}",
}
DATA_KEYS = Fernet.generate_key().decode()  # the test's storage and every server share them
SENT = pb.CampaignState.Value("CAMPAIGN_STATE_SENT")


def wait_for(check: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class ServeProcess:
    """`ccl serve` as a child process on a fixed port, so a restart answers at the same
    address."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [CCL, "serve", "--migrate"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        address = f"127.0.0.1:{self.env['CCL_GRPC_PORT']}"

        def serving() -> bool:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                with grpc.insecure_channel(address) as ch:
                    reply = health_pb2_grpc.HealthStub(ch).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

        wait_for(serving, "ccl serve to answer")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun(latency=0.1, hang_seconds=60.0) as server:
        yield server


@pytest.fixture(scope="module")
def storage(db_url: str) -> Iterator[Application]:
    """This process's view of the server's database: seeding and inspection."""
    app = build_application(make_settings(db_url, data_keys=DATA_KEYS))
    app.db.db.connect(reuse_if_open=True)
    apply_migrations(app.db.db)
    app.db.db.close()
    yield app
    app.close()


def in_db(app: Application, fn: Callable[[], T]) -> T:
    app.db.db.connect(reuse_if_open=True)
    try:
        with app.db.db.atomic():
            return fn()
    finally:
        app.db.db.close()


def seed_leads(app: Application, addresses: list[str]) -> None:
    in_db(app, lambda: seed_campaign_leads(app.db.db, addresses, STATE))


def states(app: Application) -> dict[str, int]:
    e = m.EmailMessage

    def count() -> dict[str, int]:
        rows: Any = e.select(e.state, pw.fn.COUNT(e.id)).group_by(e.state).tuples()
        return {str(s): int(n) for s, n in rows}

    return in_db(app, count)


def leases_run_out(app: Application) -> int:
    """What the server's downtime would do, two minutes at a time: every lease it held ends."""
    e = m.EmailMessage
    past = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    return in_db(
        app,
        lambda: int(e.update(locked_until=past).where(e.locked_until.is_null(False)).execute()),
    )


def deliver_events(stub: Any, fake: FakeMailgun) -> int:
    """Mailgun's `delivered` event for the first recipient of every accepted call, signed, with
    the user variables the call set (`ccl_batch`, and that recipient's `ccl_message`), through
    ReceiveMailgunEvent. One event of a batch settles the whole batch when it is `unknown`; for
    a batch already `sent` it only records the delivery. The number applied."""
    applied = 0
    for call in list(fake.calls):
        address = call.to[0]
        variables = {
            "ccl_batch": call.get("v:ccl_batch"),
            "ccl_message": call.recipient_variables[address]["ccl_message"],
        }
        body = webhook_bytes(
            "delivered",
            address,
            message_id=call.message_id.strip("<>"),
            user_variables=variables,
        )
        reply = stub.ReceiveMailgunEvent(
            pb.ReceiveMailgunEventRequest(
                body=httpbody_pb2.HttpBody(content_type="application/json", data=body)
            ),
            timeout=10,
        )
        applied += bool(reply.applied)
    return applied


def test_a_campaign_killed_mid_send_finishes_exactly_once(
    db_url: str, storage: Application, fake: FakeMailgun, tmp_path: Path
) -> None:
    fake.reset()
    fake.latency = 0.1  # each call takes a while: the kills land mid-campaign
    key = "crash-" + secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CCL_DATA_KEYS": DATA_KEYS,
        "CCL_GRPC_PORT": str(free_port()),
        "CCL_ADMIN_API_KEY": key,
        "CCL_LOG_LEVEL": "WARNING",
        "CCL_SHUTDOWN_DRAIN_DELAY_SECONDS": "0",
        "CCL_FLEXPATH_API_KEY": "",
        "CCL_MAILGUN_API_KEY": fake.api_key,
        "CCL_MAILGUN_DOMAIN": fake.domain,
        "CCL_MAILGUN_BASE_URL": fake.url,
        "CCL_MAILGUN_WEBHOOK_SIGNING_KEY": DEFAULT_SIGNING_KEY,
        "CCL_COMPANY_NAME": "Test Lending LLC",
        "CCL_COMPANY_POSTAL_ADDRESS": "1 Test St, Springfield, IL 62701",
        "CCL_PUBLIC_BASE_URL": "https://apply.example.test",
        "CCL_EMAIL_SEND_RATE": "2000",
        "CCL_EMAIL_QUIET_HOURS": "false",  # the test runs at any hour
        "CCL_WORKER_POLL_SECONDS": "0.05",
    }
    addresses = [f"crash{i}@bulk.example.com" for i in range(RECIPIENTS)]
    seed_leads(storage, addresses)
    server = ServeProcess(env, tmp_path / "serve.log")
    channel = grpc.insecure_channel(f"127.0.0.1:{env['CCL_GRPC_PORT']}")
    stub = campaign_service_pb2_grpc.CampaignServiceStub(channel)
    try:
        server.start()
        template = stub.CreateTemplate(
            pb.CreateTemplateRequest(template=json_format.ParseDict(TEMPLATE, pb.Template())),
            metadata=auth(key),
            timeout=10,
        ).template
        campaign = json_format.ParseDict(
            {"name": "Come back", "template_id": template.template_id},
            pb.Campaign(),
        )
        campaign.audience.states.append(STATE)
        answer = stub.BulkSend(
            pb.BulkSendRequest(idempotency_key="crash-e2e", campaign=campaign),
            metadata=auth(key),
            timeout=30,
        )
        assert answer.queued_count == RECIPIENTS, answer
        campaign_id = answer.campaign.campaign_id

        # Kill 1, the worst place: Mailgun accepts the second call and never answers.
        wait_for(lambda: len(fake.calls) >= 1, "the first call")
        fake.hang(1, accepted=True)
        wait_for(lambda: any(status == 0 for status, _ in fake.attempts), "a call to hang")
        server.kill()
        assert len(fake.calls) == 2
        assert states(storage).get("sending") == 1_000, states(storage)  # in flight at death
        leases_run_out(storage)

        # Kill 2, wherever the third call happens to be.
        server.start()
        wait_for(lambda: len(fake.calls) >= 3, "the third call")
        server.kill()
        assert len(fake.calls) < RECIPIENTS // 1000
        leases_run_out(storage)

        # Last start: it expires the `sending` leases left behind (-> `unknown`, never sent
        # again), sends the rest, and Mailgun's events settle the unknown batches.
        server.start()
        wait_for(lambda: not states(storage).get("sending"), "the dead servers' sends to expire")
        assert states(storage).get("unknown", 0) >= 1_000, states(storage)
        deliver_events(stub, fake)

        def sent() -> Any:
            found = stub.GetCampaign(
                pb.GetCampaignRequest(campaign_id=campaign_id), metadata=auth(key), timeout=10
            ).campaign
            if found.state != SENT:
                if states(storage).get("unknown"):
                    deliver_events(stub, fake)  # a batch that went unknown after the last round
                return None
            return found

        done = wait_for(sent, "the campaign to be sent")
        counts = fake.recipient_counts()
        assert set(counts) == set(addresses), "every recipient mailed"
        assert {a: n for a, n in counts.items() if n != 1} == {}, "none mailed twice"
        assert states(storage) == {"sent": RECIPIENTS}
        assert done.stats.sent_count == RECIPIENTS
    finally:
        channel.close()
        server.stop()
