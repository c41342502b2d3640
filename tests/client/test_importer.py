"""`ccl import`: the importer against a fake LeadService gRPC server that only imports."""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from rich.console import Console

from ccl.lead.v1 import lead_pb2, lead_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl_client import CclClient, importer
from support.data import EXAMPLE_REQUEST, example_message, example_request

API_KEY = "importer-test-key"
BAD_EMAIL_REASON = "lead.email: is not a valid email address"


class FakeLeadService(lead_service_pb2_grpc.LeadServiceServicer):  # type: ignore[misc]
    """ImportLeads only: rejects an email without "@", answers DUPLICATE for an idempotency key
    it has seen, accepts the rest, and keeps every stream it received."""

    def __init__(self) -> None:
        self.target = ""
        self.streams: list[list[lead_pb.ImportLeadsRequest]] = []
        self.fail_on_stream = 0
        self.failure: Callable[[grpc.ServicerContext], None] = lambda context: context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "import quota used up"
        )
        self.delay_seconds = 0.0
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @property
    def received(self) -> list[lead_pb.ImportLeadsRequest]:
        return [request for stream in self.streams for request in stream]

    def ImportLeads(  # type: ignore[no-untyped-def]
        self, request_iterator, context: grpc.ServicerContext
    ) -> lead_pb.ImportLeadsResponse:
        if ("authorization", f"Bearer {API_KEY}") not in context.invocation_metadata():
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "API key invalid")
        records = list(request_iterator)
        time.sleep(self.delay_seconds)
        response = lead_pb.ImportLeadsResponse(received_count=len(records))
        with self._lock:
            self.streams.append(records)
            if len(self.streams) == self.fail_on_stream:
                self.failure(context)
            for record in records:
                result = response.results.add(record_ref=record.record_ref)
                if "@" not in record.lead.email:
                    result.outcome = lead_pb2.LEAD_OUTCOME_REJECTED
                    result.reason = BAD_EMAIL_REASON
                    response.rejected_count += 1
                elif record.idempotency_key in self._keys:
                    result.outcome = lead_pb2.LEAD_OUTCOME_DUPLICATE
                    response.duplicate_count += 1
                else:
                    self._keys.add(record.idempotency_key)
                    result.outcome = lead_pb2.LEAD_OUTCOME_ACCEPTED
                    result.lead_id = f"lead-{len(self._keys)}"
                    response.accepted_count += 1
        return response


@pytest.fixture
def fake() -> Iterator[FakeLeadService]:
    service = FakeLeadService()
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    lead_service_pb2_grpc.add_LeadServiceServicer_to_server(service, server)
    service.target = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()
    yield service
    server.stop(None)


@pytest.fixture
def client(fake: FakeLeadService) -> Iterator[CclClient]:
    with CclClient(fake.target, API_KEY) as ccl:
        yield ccl


def example_row(**changes: str) -> dict[str, str]:
    """The example lead as one flat CSV row."""
    lead = EXAMPLE_REQUEST["lead"]
    address, vehicle, consent = lead["address"], lead["vehicle"], lead["consent"]
    row = {
        "first_name": lead["first_name"],
        "last_name": lead["last_name"],
        "email": lead["email"],
        "phone": lead["phone"],
        "date_of_birth": lead["date_of_birth"],
        "street": address["street"],
        "city": address["city"],
        "state": address["state"],
        "zip_code": address["zip_code"],
        "monthly_income_cents": str(lead["monthly_income_cents"]),
        "down_payment_cents": str(lead["down_payment_cents"]),
        "vehicle_year": str(vehicle["year"]),
        "vehicle_make": vehicle["make"],
        "vehicle_model": vehicle["model"],
        "tcpa": "true",
        "fcra_soft_pull": "yes",
        "consent_text": consent["consent_text"],
        "ip_address": consent["ip_address"],
        "user_agent": consent["user_agent"],
        "page_url": consent["page_url"],
        "source": lead["source"],
        "visitor_id": lead["visitor_id"],
    }
    return row | changes


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(name for row in rows for name in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def many_rows(count: int) -> list[dict[str, str]]:
    return [example_row(email=f"buyer{i}@example.com") for i in range(count)]


def read_rejects(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def run(path: Path, client: CclClient, **options: Any) -> tuple[importer.ImportSummary, str]:
    console = Console(file=io.StringIO(), width=200)
    summary = importer.run_import(path, client, show_progress=False, console=console, **options)
    return summary, console.file.getvalue()  # type: ignore[attr-defined]


def derived_key(path: Path, row: int) -> str:
    return f"imp-{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}-{row}"


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ccl import")
    importer.add_arguments(parser)
    return parser.parse_args(argv)


# --- parsing -------------------------------------------------------------------------------------


def test_a_csv_row_becomes_the_example_lead(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row(idempotency_key="web-7f1c2a")])

    summary, output = run(path, client)

    (sent,) = fake.received
    assert sent.lead == example_message().lead
    assert (sent.idempotency_key, sent.record_ref) == ("web-7f1c2a", "1")
    assert (summary.received, summary.accepted, summary.rejected) == (1, 1, 0)
    assert summary.exit_code == 0
    assert summary.rejects_path is None
    assert not importer.default_rejects_path(path).exists()
    assert "1 accepted, 0 duplicate, 0 rejected" in output


def test_csv_headers_are_case_and_space_insensitive_and_blank_rows_skipped(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    row = example_row()
    path = tmp_path / "leads.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # with a BOM, as Excel writes
        writer = csv.writer(f)
        writer.writerow([f" {name.upper()} " for name in row])
        writer.writerow(row.values())
        writer.writerow([""] * len(row))  # a spreadsheet's trailing empty row
        f.write("\n")
        writer.writerow(row.values())

    summary, _ = run(path, client)

    assert [r.record_ref for r in fake.received] == ["1", "4"]
    assert all(r.lead == example_message().lead for r in fake.received)
    assert summary.received == 2


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("true", True), ("TRUE", True), ("Yes", True), ("1", True)],
        *[("false", False), ("No", False), ("0", False), ("", False)],
    ],
)
def test_csv_booleans(
    tmp_path: Path, fake: FakeLeadService, client: CclClient, text: str, value: bool
) -> None:
    run(write_csv(tmp_path / "leads.csv", [example_row(tcpa=text)]), client)

    assert fake.received[0].lead.consent.tcpa is value


def test_jsonl_takes_process_lead_requests_and_bare_leads(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    bare = example_request(email="other@example.com")["lead"]
    camel = {"firstName": "Ana", "email": "ana@example.com", "monthlyIncomeCents": "310000"}
    path = tmp_path / "leads.jsonl"
    lines = [json.dumps(EXAMPLE_REQUEST), "", json.dumps(bare), json.dumps({"lead": camel})]
    path.write_text("\n".join(lines) + "\n")

    summary, _ = run(path, client)

    first, second, third = fake.received
    assert first.lead == example_message().lead
    assert (first.idempotency_key, first.record_ref) == ("web-7f1c2a", "1")
    # JSONL rows are line numbers; a blank line is skipped but counted.
    assert second.lead == example_message(email="other@example.com").lead
    assert (second.idempotency_key, second.record_ref) == (derived_key(path, 3), "3")
    assert (third.lead.first_name, third.lead.monthly_income_cents) == ("Ana", 310000)
    assert third.record_ref == "4"
    assert summary.accepted == 3


# --- idempotency and chunking --------------------------------------------------------------------


def test_derived_keys_are_stable_across_runs_and_differ_between_files(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "a.csv", many_rows(3))

    first, _ = run(path, client)
    again, _ = run(path, client)

    first_keys, again_keys = ([r.idempotency_key for r in s] for s in fake.streams)
    assert first_keys == again_keys == [derived_key(path, row) for row in (1, 2, 3)]
    assert (first.accepted, again.accepted, again.duplicate) == (3, 0, 3)
    assert again.exit_code == 0

    other = write_csv(tmp_path / "b.csv", [*many_rows(2), example_row(email="x@example.com")])
    run(other, client)
    assert not set(first_keys) & {r.idempotency_key for r in fake.streams[2]}


def test_a_given_idempotency_key_wins_and_an_empty_one_is_derived(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    rows = [example_row(idempotency_key="crm-1"), example_row(idempotency_key="")]
    path = write_csv(tmp_path / "leads.csv", rows)

    run(path, client)

    assert [r.idempotency_key for r in fake.received] == ["crm-1", derived_key(path, 2)]


def test_rows_are_sent_in_chunks_of_one_stream_each(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", many_rows(1050))

    summary, _ = run(path, client, chunk_size=500)

    assert [len(stream) for stream in fake.streams] == [500, 500, 50]
    assert [r.record_ref for r in fake.received] == [str(i) for i in range(1, 1051)]
    assert (summary.received, summary.accepted) == (1050, 1050)


def test_ten_thousand_rows(tmp_path: Path, fake: FakeLeadService, client: CclClient) -> None:
    path = write_csv(tmp_path / "leads.csv", many_rows(10_000))

    summary, output = run(path, client)

    assert (summary.received, summary.accepted, summary.rejected) == (10_000, 10_000, 0)
    assert len(fake.streams) == 20
    assert "10000 rows" in output


def test_the_progress_bar_renders_on_a_terminal(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", many_rows(30))
    console = Console(file=io.StringIO(), width=120, force_terminal=True)

    importer.run_import(path, client, console=console, chunk_size=10)

    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert "30/30" in output
    assert "rows/s" in output


# --- rejects -------------------------------------------------------------------------------------


def test_csv_rejects_keep_the_original_columns_with_row_and_reason(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    good = example_row()
    columns = list(good)
    rows = [
        list(good.values()),
        list(example_row(email="maria.example.com").values()),  # the server rejects it
        list(example_row(monthly_income_cents="4200.50").values()),
        list(example_row(tcpa="maybe", vehicle_year="99999999999").values()),
        list(good.values()),
        [*good.values(), "one field too many"],
    ]
    path = tmp_path / "leads.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([columns, *rows])

    summary, output = run(path, client)

    # Rows that cannot be parsed are not sent.
    assert [r.record_ref for r in fake.received] == ["1", "2", "5"]
    assert (summary.received, summary.accepted, summary.rejected) == (6, 2, 4)
    assert summary.exit_code == 1
    assert summary.rejects_path == tmp_path / "leads.rejects.csv"
    header, *rejected = read_rejects(summary.rejects_path)
    assert header == [*columns, "row", "reason"]
    assert rejected == [
        [*rows[1], "2", BAD_EMAIL_REASON],
        [*rows[2], "3", "monthly_income_cents: is not a whole number"],
        [*rows[3], "4", "vehicle_year: is out of range; tcpa: is not true/false, 1/0 or yes/no"],
        [*rows[5][: len(columns)], "6", f"row has {len(columns) + 1} fields; the header has 22"],
    ]
    assert f"row 2 rejected: {BAD_EMAIL_REASON}" in output
    assert "row 3 rejected: monthly_income_cents: is not a whole number" in output
    # Row numbers and reasons only: no personal data on the console.
    for private in ("Maria", "maria", "4200.50", "555", "99999999999"):
        assert private not in output


def test_jsonl_rejects_keep_the_original_line(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    lines = [
        json.dumps(EXAMPLE_REQUEST),
        '{"lead": {"first_name": "Maria", ',
        json.dumps(example_request(email="maria.example.com")),
        json.dumps({"first_name": "Maria", "favourite_colour": "red"}),
        json.dumps(example_request(monthly_income_cents="12.5x")),
        json.dumps({"lead": "Maria Lopez"}),
        json.dumps(["Maria"]),
    ]
    path = tmp_path / "leads.jsonl"
    path.write_text("\n".join(lines) + "\n")

    summary, output = run(path, client)

    assert [r.record_ref for r in fake.received] == ["1", "3"]
    assert summary.rejected == 6
    header, *rejected = read_rejects(tmp_path / "leads.rejects.csv")
    assert header == ["line", "row", "reason"]
    assert [r[:2] for r in rejected] == [[lines[i - 1], str(i)] for i in (2, 3, 4, 5, 6, 7)]
    reasons = [r[2] for r in rejected]
    assert reasons[0].startswith("line is not valid JSON (")
    assert reasons[1:] == [
        BAD_EMAIL_REASON,
        "lead.favourite_colour: unknown field",
        "lead.monthly_income_cents: has the wrong type or is out of range",
        "lead: must be a JSON object",
        "line is not a JSON object",
    ]
    for private in ("Maria", "maria", "12.5x", "red"):
        assert private not in output


def test_a_custom_rejects_path(tmp_path: Path, fake: FakeLeadService, client: CclClient) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row(email="nope")])
    target = tmp_path / "out" / "bad.csv"
    target.parent.mkdir()

    summary, _ = run(path, client, rejects_path=target)

    assert summary.rejects_path == target
    assert read_rejects(target)[1][-2:] == ["1", BAD_EMAIL_REASON]
    assert not importer.default_rejects_path(path).exists()
    assert [p.name for p in target.parent.iterdir()] == ["bad.csv"]  # no temporary file left


def test_a_clean_run_removes_a_stale_rejects_file(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row()])
    stale = importer.default_rejects_path(path)
    stale.write_text("row,reason\n1,from an earlier run\n")

    summary, _ = run(path, client)

    assert summary.rejects_path is None
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


def test_a_corrected_rejects_file_imports_as_it_is(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row(), example_row(email="nope")])
    rejects = run(path, client)[0].rejects_path
    assert rejects is not None
    header, row = read_rejects(rejects)
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="") as f:
        csv.writer(f).writerows([header, [v.replace("nope", "ok@example.com") for v in row]])

    summary, _ = run(fixed, client)

    assert (summary.accepted, summary.rejected) == (1, 0)
    assert fake.received[-1].lead.email == "ok@example.com"


# --- file errors ---------------------------------------------------------------------------------


def test_an_unknown_column_is_an_error_before_anything_is_sent(
    tmp_path: Path, fake: FakeLeadService, client: CclClient
) -> None:
    path = write_csv(tmp_path / "leads.csv", [*many_rows(3), example_row(favourite_colour="red")])

    with pytest.raises(importer.ImportFileError, match="unknown column\\(s\\): favourite_colour"):
        run(path, client)

    assert fake.streams == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["leads.csv"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("leads.csv", "first_name,email,EMAIL\n", "repeated column"),
        ("leads.csv", "", "no header row"),
        ("leads.csv", b"first_name\n\xff\xfe\n", "not UTF-8"),
        ("leads.txt", "first_name\n", "cannot tell the format"),
        ("missing.csv", None, "not found"),
    ],
)
def test_file_errors(
    tmp_path: Path,
    fake: FakeLeadService,
    client: CclClient,
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)

    with pytest.raises(importer.ImportFileError, match=message):
        run(path, client)

    assert fake.streams == []


def test_the_rejects_file_cannot_be_the_input(tmp_path: Path, client: CclClient) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row()])

    with pytest.raises(importer.ImportFileError, match="must not be the input"):
        run(path, client, rejects_path=tmp_path / "." / "leads.csv")


# --- the command ---------------------------------------------------------------------------------


def test_exit_code_0_when_everything_was_accepted_or_duplicate(
    tmp_path: Path, fake: FakeLeadService, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "leads.csv", many_rows(2))
    args = cli_args(str(path), "--target", fake.target, "--api-key", API_KEY)

    assert importer.main_from_args(args) == 0
    assert importer.main_from_args(args) == 0  # the re-run: all duplicates
    assert "0 accepted, 2 duplicate, 0 rejected" in capsys.readouterr().out


def test_exit_code_1_when_some_were_rejected(
    tmp_path: Path, fake: FakeLeadService, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_csv(tmp_path / "leads.csv", [example_row(), example_row(email="nope")])
    rejects = tmp_path / "r.csv"
    args = cli_args(
        str(path), "--target", fake.target, "--api-key", API_KEY, "--rejects", str(rejects)
    )

    assert importer.main_from_args(args) == 1
    assert f"rejects in {rejects}" in capsys.readouterr().out


def test_target_and_key_come_from_the_environment_and_format_from_the_option(
    tmp_path: Path,
    fake: FakeLeadService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "leads.txt"
    path.write_text(json.dumps(EXAMPLE_REQUEST) + "\n")
    monkeypatch.setenv("CCL_TARGET", fake.target)
    monkeypatch.setenv("CCL_API_KEY", API_KEY)
    made: list[tuple[str, str]] = []

    def factory(target: str, api_key: str) -> CclClient:
        made.append((target, api_key))
        return CclClient(target, api_key, timeout=5)

    args = cli_args(str(path), "--format", "jsonl", "--no-progress")

    assert importer.main_from_args(args, factory) == 0
    assert made == [(fake.target, API_KEY)]
    assert len(fake.received) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--api-key", "wrong"], "the server refused the API key"),
        (["--api-key", ""], "no API key was given"),
        (["--chunk-size", "0"], "chunk size"),
        (["--format", "csv", "--rejects", "{dir}/nowhere/r.csv"], "cannot write the rejects"),
    ],
)
def test_exit_code_2_for_usage_and_server_errors(
    tmp_path: Path,
    fake: FakeLeadService,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    path = write_csv(tmp_path / "leads.csv", many_rows(2))
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    args = cli_args(str(path), "--target", fake.target, "--api-key", API_KEY, *argv)

    assert importer.main_from_args(args) == 2

    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert API_KEY not in err


def test_exit_code_2_for_a_missing_file(
    tmp_path: Path, fake: FakeLeadService, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(str(tmp_path / "nope.csv"), "--target", fake.target)

    assert importer.main_from_args(args) == 2
    assert "nope.csv not found" in capsys.readouterr().err


def test_exit_code_2_when_the_server_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{s.getsockname()[1]}"
    path = write_csv(tmp_path / "leads.csv", [example_row()])

    assert importer.main_from_args(cli_args(str(path), "--target", target)) == 2

    err = capsys.readouterr().err
    assert f"cannot reach the server at {target}" in err
    assert "Traceback" not in err


def test_a_failed_chunk_stops_the_import_and_keeps_what_was_done(
    tmp_path: Path, fake: FakeLeadService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail_on_stream = 2
    rows = [*many_rows(4), example_row(email="nope"), *many_rows(5)]
    path = write_csv(tmp_path / "leads.csv", rows)
    args = cli_args(str(path), "--target", fake.target, "--api-key", API_KEY, "--chunk-size", "5")

    assert importer.main_from_args(args) == 2

    err = capsys.readouterr().err
    assert "RESOURCE_EXHAUSTED" in err
    assert "stopped at row 6" in err
    assert "4 accepted, 0 duplicate, 1 rejected" in err
    # The first chunk's reject is kept; re-running sends the same keys again.
    assert [r[-2] for r in read_rejects(importer.default_rejects_path(path))[1:]] == ["5"]
    fake.fail_on_stream = 0
    assert importer.main_from_args(args) == 1
    assert [r.idempotency_key for r in fake.streams[2]] == [
        r.idempotency_key for r in fake.streams[0]
    ]


def test_a_chunk_has_its_own_deadline_not_the_clients_default(
    tmp_path: Path, fake: FakeLeadService
) -> None:
    fake.delay_seconds = 0.5
    path = write_csv(tmp_path / "leads.csv", many_rows(2))

    with CclClient(fake.target, API_KEY, timeout=0.2) as ccl:
        assert run(path, ccl)[0].accepted == 2
        with pytest.raises(importer.ImportAbortedError) as e:
            run(path, ccl, chunk_timeout=0.2)
    assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_import_too_large_suggests_a_smaller_chunk_size(
    tmp_path: Path, fake: FakeLeadService, capsys: pytest.CaptureFixture[str]
) -> None:
    def too_large(context: grpc.ServicerContext) -> None:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason="IMPORT_TOO_LARGE", domain="ccl"))
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message="at most 100 records", details=[info]
        )
        context.abort_with_status(rpc_status.to_status(status))

    fake.fail_on_stream, fake.failure = 1, too_large
    path = write_csv(tmp_path / "leads.csv", many_rows(2))
    args = cli_args(str(path), "--target", fake.target, "--api-key", API_KEY)

    assert importer.main_from_args(args) == 2

    err = capsys.readouterr().err
    assert "too large (IMPORT_TOO_LARGE: at most 100 records); try a smaller --chunk-size" in err
    assert "stopped at row 1" in err
