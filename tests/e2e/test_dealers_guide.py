"""docs/dealers.md runs as written: every example, in order, against a live server behind Envoy.

The convention of the guide's fenced blocks is in `support/guide.py`: ```sh and ```python
blocks run (bash -euo pipefail; the venv's Python) in one working directory, exported shell
variables carrying over; ```python file=NAME blocks are saved as NAME; ```json response blocks
give the shape of the output of the block before them (same keys unless abbreviated with
"...", enum names and booleans equal, `http=NNN` the status); ```json package and ```xml
package blocks are compared with packages the fake CRM really received; ```text is not code.
`<!-- guide-test: NAME -->` comments are steps the test takes for the reader at that point.

The reader's environment is what the guide tells them to set: CCL_URL (Envoy), CCL_DEALER_KEY,
CCL_DEALER_ID, WEBHOOK_SECRET (the dealer's generated `whsec_` secret) and, for the steps a CCL
admin runs, CCL_ADMIN_KEY. The dealer's endpoint is a fake CRM (`support/fake_crm.py`) that
verifies every signature with the `standardwebhooks` library, as a dealer would.

Also checked: every ErrorInfo reason raised in server/ (and Envoy's) is in the guide's error
table, every webhook event reason in its event table, every REST path a dealer key may call is
documented, and the retry table is the one the outbox's backoff and the settings' defaults
give.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.api import annotations_pb2

from ccl.dealer.v1 import dealer_service_pb2
from ccl.lead.v1 import lead_service_pb2
from server.domain.principal import Role
from server.outbox.worker import backoff_strategy
from server.settings import Settings
from server.transport.policy import ROLES
from support.fake_crm import FakeCrm, Received, running
from support.guide import (
    Block,
    Runner,
    base_env,
    parse,
    response_of,
    shape_errors,
    unknown_blocks,
    xml_paths,
)
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "dealers.md"
_REASON = re.compile(r"""reason(?:\s*:\s*str)?\s*=\s*["']([A-Z][A-Z0-9_]{2,})["']""")
_REASON_CONSTANT = re.compile(r"""\bREASON_\w+\s*=\s*["']([A-Z][A-Z0-9_]+)["']""")
_ENVOY_REASON = re.compile(r"\breason:\s*([A-Z][A-Z0-9_]+)")
_EVENT_REASON = re.compile(r"""f?["']([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)(?::|["'])""")


def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text of the `## ...` section whose heading contains `heading`."""
    start = text.index(heading)
    end = text.find("\n## ", start)
    return text[start : end if end != -1 else len(text)]


def table_first_cells(text: str) -> set[str]:
    """The backquoted names in the first cell of each Markdown table row."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| "):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


# --- the live stack: a JSON dealer (the reader), an ADF dealer, their fake CRMs -------------


class Dealer:
    def __init__(self, dealer_id: str, secret: str, key: str, crm: FakeCrm) -> None:
        self.dealer_id, self.secret, self.key, self.crm = dealer_id, secret, key, crm


def make_dealer(
    envoy: EnvoyProcess, admin_key: str, stack: ServerThread, crm: FakeCrm, url: str, **fields: Any
) -> Dealer:
    r = httpx.post(
        f"{envoy.base_url}/api/dealers",
        json={"states": ["IL"], "endpoint_url": url, **fields},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    secret = body["generated_signing_secret"]
    assert secret.startswith("whsec_")
    crm.secret = secret
    dealer_id = body["dealer"]["dealer_id"]
    return Dealer(dealer_id, secret, stack.create_key(Role.DEALER, dealer_id), crm)


@pytest.fixture(scope="module")
def reader(envoy_proxy: EnvoyProcess, admin_key: str, stack: ServerThread) -> Iterator[Dealer]:
    crm = FakeCrm()
    with running(crm) as url:
        yield make_dealer(
            envoy_proxy,
            admin_key,
            stack,
            crm,
            url,
            name="Springfield Auto",
            delivery_format="DELIVERY_FORMAT_JSON",
            contact_email="leads@springfield-auto.example",
        )


@pytest.fixture(scope="module")
def adf_package(envoy_proxy: EnvoyProcess, admin_key: str, stack: ServerThread) -> Iterator[str]:
    """A real ADF package, for the guide's ADF sample: a lead like the guide's, from an ADF
    dealer's own key, as its CRM received it."""
    crm = FakeCrm()
    with running(crm) as url:
        dealer = make_dealer(
            envoy_proxy,
            admin_key,
            stack,
            crm,
            url,
            name="Springfield Auto ADF",
            delivery_format="DELIVERY_FORMAT_ADF",
            contact_email="leads@springfield-auto.example",
        )
        lead = {
            "first_name": "Maria",
            "last_name": "Prequalified",
            "email": "maria.adf@example.com",
            "phone": "(312) 555-0183",
            "date_of_birth": "1990-04-12",
            "address": {
                "street": "100 Main St",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
            "monthly_income_cents": 420000,
            "down_payment_cents": 100000,
            "vehicle": {"year": 2021, "make": "Toyota", "model": "Camry"},
            "vehicle_status": "VEHICLE_STATUS_USED",
            "purchase_timeframe": "PURCHASE_TIMEFRAME_WITHIN_MONTH",
            "employment_status": "full_time",
            "months_employed": 30,
            "months_at_address": 24,
            "consent": {"tcpa": True, "fcra_soft_pull": True, "consent_text": "I agree ..."},
        }
        r = httpx.post(
            f"{envoy_proxy.base_url}/api/leads/process",
            json={"idempotency_key": "guide-adf-1", "lead": lead},
            headers={"Authorization": f"Bearer {dealer.key}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        crm.wait_for(1)
        assert crm.received[0].signature_ok
        yield crm.received[0].body.decode()


class GuideRun:
    """Runs the guide's blocks for the reader, and takes its `guide-test` steps."""

    def __init__(
        self, envoy: EnvoyProcess, admin_key: str, reader: Dealer, adf: str, workdir: Path
    ) -> None:
        self.envoy, self.admin_key, self.reader, self.adf = envoy, admin_key, reader, adf
        self.runner = Runner(
            workdir,
            base_env(
                CCL_URL=envoy.base_url,
                CCL_DEALER_KEY=reader.key,
                CCL_DEALER_ID=reader.dealer_id,
                WEBHOOK_SECRET=reader.secret,
                CCL_ADMIN_KEY=admin_key,
            ),
        )
        self.delivery: Received | None = None
        self.failures: list[str] = []
        self.last_runnable: Block | None = None
        self.last_ok = False

    def run_all(self, blocks: list[Block]) -> None:
        for block in blocks:
            try:
                self.step(block)
            except (AssertionError, ValueError, KeyError, TimeoutError) as e:
                self.failures.append(f"{block}: {type(e).__name__}: {e}")

    def step(self, block: Block) -> None:
        if block.directive:
            getattr(self, "directive_" + block.directive.replace("-", "_"))()
        elif "file" in block.attrs:
            self.runner.save(block)
        elif block.runnable:
            self.last_runnable = block
            result = self.runner.run(block)
            self.last_ok = result.returncode == 0
            assert self.last_ok, (
                f"exit {result.returncode}\nstdout: {result.stdout[-1500:]}\n"
                f"stderr: {result.stderr[-1500:]}"
            )
        elif block.attrs.keys() >= {"response"}:
            assert self.last_runnable is not None, "a response before any command"
            if not self.last_ok:
                raise AssertionError(f"not compared: {self.last_runnable} failed")
            real = response_of(self.runner.outputs[-1], block.attrs.get("http", ""))
            errors = shape_errors(json.loads(block.code), real)
            assert not errors, (
                f"differs from the output of {self.last_runnable}: "
                + "; ".join(errors)
                + f"\nreal output: {json.dumps(real)[:1500]}"
            )
        elif block.lang == "json" and "package" in block.attrs:
            assert self.delivery is not None, "no delivery captured before the JSON sample"
            errors = shape_errors(json.loads(block.code), json.loads(self.delivery.body))
            assert not errors, "JSON package differs: " + "; ".join(errors)
        elif block.lang == "xml" and "package" in block.attrs:
            shown, real = xml_paths(block.code), xml_paths(self.adf)
            assert shown == real, (
                f"ADF sample differs: shown only {sorted(shown - real)}, "
                f"sent only {sorted(real - shown)}\nreal package:\n{self.adf}"
            )

    def directive_wait_for_delivery(self) -> None:
        """The reader's endpoint receives the package of $LEAD_ID and we record it delivered."""
        lead_id = self.runner.env.get("LEAD_ID", "")
        assert lead_id, "LEAD_ID is not set by the blocks before"
        crm = self.reader.crm
        deadline = time.monotonic() + 30
        while True:
            for r in crm.received:
                if r.status == 200 and json.loads(r.body).get("lead_id") == lead_id:
                    self.delivery = r
            state = httpx.get(
                f"{self.envoy.base_url}/api/leads/{lead_id}",
                headers={"Authorization": f"Bearer {self.admin_key}"},
            ).json()["lead"]["delivery_state"]
            if self.delivery is not None and state == "DELIVERY_STATE_DELIVERED":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"no delivery of {lead_id} recorded (state {state})")
            time.sleep(0.1)
        assert self.delivery.signature_ok, "the fake CRM could not verify our signature"

    def directive_save_delivery(self) -> None:
        """The reader saves the delivery their endpoint received, byte for byte."""
        assert self.delivery is not None, "no delivery captured"
        workdir = self.runner.workdir
        (workdir / "delivery.body").write_bytes(self.delivery.body)
        names = ("webhook-id", "webhook-timestamp", "webhook-signature")
        headers = {n: self.delivery.headers[n] for n in names}
        (workdir / "delivery.headers.json").write_text(json.dumps(headers))


def test_every_block_follows_the_convention() -> None:
    blocks = parse(guide_text())
    assert not unknown_blocks(blocks)
    assert sum(b.runnable for b in blocks) >= 15
    directives = {b.directive for b in blocks if b.directive}
    assert directives <= {"wait-for-delivery", "save-delivery"}


def test_every_example_runs_as_written(
    envoy_proxy: EnvoyProcess,
    admin_key: str,
    reader: Dealer,
    adf_package: str,
    tmp_path: Path,
) -> None:
    run = GuideRun(envoy_proxy, admin_key, reader, adf_package, tmp_path)
    run.run_all(parse(guide_text()))
    received = reader.crm.received
    # Every package the reader's endpoint received verified with the secret we gave it.
    if not received or not all(r.signature_ok for r in received):
        run.failures.append("a delivery to the reader's endpoint did not verify")
    # The test delivery came with the endpoint credentials the guide's admin step set.
    tests = [r for r in received if r.headers.get("webhook-id", "").startswith("test_")]
    if not tests or any(r.headers.get("x-api-key") != "crm-key-1234" for r in tests):
        run.failures.append("no test delivery reached the endpoint with its X-Api-Key header")
    assert not run.failures, f"{len(run.failures)} example(s) failed:\n\n" + "\n\n".join(
        run.failures
    )


# --- the guide covers the whole surface a dealer meets ---------------------------------------


def raised_reasons() -> set[str]:
    """Every ErrorInfo reason the server raises (literal `reason=`/`reason: str =` values and
    `REASON_* =` constants in server/**/*.py), and Envoy's own."""
    reasons: set[str] = set()
    for path in (ROOT / "server").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        reasons.update(_REASON.findall(text))
        reasons.update(_REASON_CONSTANT.findall(text))
    reasons.update(_ENVOY_REASON.findall((ROOT / "envoy" / "envoy.yaml.tmpl").read_text()))
    return reasons


def test_every_error_reason_is_in_the_error_table() -> None:
    reasons = raised_reasons()
    assert {"INVALID_LEAD", "SIGNATURE_INVALID", "REQUEST_TOO_LARGE"} <= reasons  # the scan works
    documented = table_first_cells(section(guide_text(), "## 5. Errors"))
    assert not reasons - documented, f"reasons missing from the error table: {reasons - documented}"


def test_every_webhook_event_reason_is_in_the_event_table() -> None:
    source = (ROOT / "server" / "services" / "dealer_webhook.py").read_text()
    # Event results' reasons: string literals opening with an UPPER_SNAKE word and a colon, or
    # only that word (the request-level `reason=` ones are the other test's).
    results = set(_EVENT_REASON.findall(source)) - set(_REASON.findall(source))
    assert {"INVALID_EVENT", "REASON_REQUIRED", "INVALID_TRANSITION"} <= results
    documented = table_first_cells(section(guide_text(), "## 5. Errors"))
    assert not results - documented, f"missing from the event table: {results - documented}"


def dealer_paths() -> set[str]:
    """`METHOD /path` of every RPC a dealer key may call, from the policy and the protos."""
    found: set[str] = set()
    for file in (lead_service_pb2.DESCRIPTOR, dealer_service_pb2.DESCRIPTOR):
        for service in file.services_by_name.values():
            for method in service.methods:
                if Role.DEALER not in ROLES.get(f"/{service.full_name}/{method.name}", ()):
                    continue
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                kind = rule.WhichOneof("pattern")
                if kind is None:
                    continue  # gRPC only (ImportLeads is not a dealer's anyway)
                path = re.sub(r"\{dealer\.dealer_id\}", "{dealer_id}", getattr(rule, kind))
                found.add(f"{kind.upper()} {path}")
    return found


def test_every_rest_path_a_dealer_key_may_call_is_documented() -> None:
    paths = dealer_paths()
    assert "POST /api/webhook/dealer-leads" in paths and len(paths) >= 8
    text = guide_text()
    missing = {p for p in paths if f"`{p}`" not in text}
    assert not missing, f"not documented (as `METHOD /path`): {sorted(missing)}"


def test_the_retry_table_is_the_outbox_backoff_with_the_default_settings() -> None:
    defaults = Settings.model_fields
    base = defaults["delivery_backoff_base_seconds"].default
    cap = defaults["delivery_backoff_max_seconds"].default
    attempts = defaults["delivery_max_attempts"].default
    wait = backoff_strategy(base, cap)
    text = section(guide_text(), "## 9. Our retry schedule")
    rows = dict(re.findall(r"^\| (\d+) \| ([^|]+?) \|$", text, re.MULTILINE))
    assert len(rows) == attempts, rows
    for retry in range(1, attempts):
        full = min(base * 2 ** (retry - 1), cap)
        assert rows[str(retry + 1)] == f"{_num(full / 2)} to {_num(full)} s"
        # The strategy itself draws within those bounds.
        state = type("S", (), {"attempt_number": retry})()
        for _ in range(20):
            assert full / 2 <= wait(state) <= full  # type: ignore[arg-type]
    assert f"`CCL_DELIVERY_MAX_ATTEMPTS={attempts}`" in text
    assert f"`CCL_DELIVERY_BACKOFF_BASE_SECONDS={_num(base)}`" in text
    assert f"`CCL_DELIVERY_BACKOFF_MAX_SECONDS={_num(cap)}`" in text


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def test_the_transition_table_has_its_place() -> None:
    text = guide_text()
    start, end = text.find("<!-- transition-table -->"), text.find("<!-- /transition-table -->")
    assert 0 <= start < end
    assert "## 12. Status transitions" in text[:start]
