"""`ccl import FILE`: streams a CSV or JSON-lines file of leads through LeadService.ImportLeads.

Rejected rows go to a CSV rejects file (for JSON lines too: each rejected line in a `line`
column), which operators open in spreadsheets. Following OWASP's CSV injection guidance, every
cell written there (header, values, `row` and `reason`) that a spreadsheet could take for a
formula gets a single quote in front: one starting with `=`, `+`, `-`, `@`, a tab or a carriage
return, also after leading whitespace or quotes (` =1+1`, `"=1+1`). The csv module quotes
separators and quotes inside cells, so no cell can start another. Reading a CSV file undoes
exactly that prefix (a quote followed by such a cell loses the quote), so a corrected rejects
file imports as it is: `'+13125550182` is read as `+13125550182`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from itertools import islice
from pathlib import Path
from typing import IO, Any, Literal

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ccl.lead.v1 import lead_pb2, lead_service_pb2
from ccl_client import CclClient
from ccl_client.errors import CclError

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_TARGET",
    "ImportAbortedError",
    "ImportFileError",
    "ImportSummary",
    "add_arguments",
    "default_rejects_path",
    "main_from_args",
    "run_import",
]

Format = Literal["csv", "jsonl"]
ClientFactory = Callable[[str, str], CclClient]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_CHUNK_SIZE = 500
# Deadline of one ImportLeads stream. The client's default (10 s) is meant for single calls; a
# chunk of hundreds of leads, each validated and processed, needs far longer.
DEFAULT_CHUNK_TIMEOUT_SECONDS = 300.0
# Rejected rows echoed on the console; the rest are only in the rejects file.
_MAX_REJECTS_SHOWN = 10
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class _Kind(Enum):
    STRING = "string"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"


# Flat CSV column -> (path inside LeadInput, kind).
_CSV_FIELDS: dict[str, tuple[tuple[str, ...], _Kind]] = {
    "first_name": (("first_name",), _Kind.STRING),
    "last_name": (("last_name",), _Kind.STRING),
    "email": (("email",), _Kind.STRING),
    "phone": (("phone",), _Kind.STRING),
    "date_of_birth": (("date_of_birth",), _Kind.STRING),
    "street": (("address", "street"), _Kind.STRING),
    "street2": (("address", "street2"), _Kind.STRING),
    "city": (("address", "city"), _Kind.STRING),
    "state": (("address", "state"), _Kind.STRING),
    "zip_code": (("address", "zip_code"), _Kind.STRING),
    "monthly_income_cents": (("monthly_income_cents",), _Kind.INT64),
    "down_payment_cents": (("down_payment_cents",), _Kind.INT64),
    "vehicle_year": (("vehicle", "year"), _Kind.INT32),
    "vehicle_make": (("vehicle", "make"), _Kind.STRING),
    "vehicle_model": (("vehicle", "model"), _Kind.STRING),
    "vehicle_trim": (("vehicle", "trim"), _Kind.STRING),
    "vehicle_vin": (("vehicle", "vin"), _Kind.STRING),
    "tcpa": (("consent", "tcpa"), _Kind.BOOL),
    "fcra_soft_pull": (("consent", "fcra_soft_pull"), _Kind.BOOL),
    "consent_text": (("consent", "consent_text"), _Kind.STRING),
    "ip_address": (("consent", "ip_address"), _Kind.STRING),
    "user_agent": (("consent", "user_agent"), _Kind.STRING),
    "page_url": (("consent", "page_url"), _Kind.STRING),
    "certificate_id": (("consent", "certificate_id"), _Kind.STRING),
    "source": (("source",), _Kind.STRING),
    "visitor_id": (("visitor_id",), _Kind.STRING),
    "employment_status": (("employment_status",), _Kind.STRING),
    "months_employed": (("months_employed",), _Kind.INT32),
    "months_at_address": (("months_at_address",), _Kind.INT32),
}
_KEY_COLUMN = "idempotency_key"
# The columns a rejects file adds. They are skipped on input, so a corrected rejects file can be
# imported as it is.
_ROW_COLUMN = "row"
_REASON_COLUMN = "reason"
_LINE_COLUMN = "line"

CSV_COLUMNS: tuple[str, ...] = (*_CSV_FIELDS, _KEY_COLUMN)
"""Every column a CSV file may have (plus `row` and `reason`, which are ignored)."""
_ACCEPTED_COLUMNS = frozenset({*CSV_COLUMNS, _ROW_COLUMN, _REASON_COLUMN})

_INT_RANGES = {_Kind.INT32: (-(2**31), 2**31 - 1), _Kind.INT64: (-(2**63), 2**63 - 1)}
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_PARSE_FIELD = re.compile(r"Failed to parse (\w+) field: ")
# A cell a spreadsheet may evaluate as a formula (see the module's docstring).
_FORMULA_START = re.compile(r"[\s\"']*[=+\-@\t\r]")


class ImportFileError(Exception):
    """The file cannot be imported at all (missing, unreadable, unknown format or columns, bad
    options). Raised before anything is sent."""


class ImportAbortedError(Exception):
    """A chunk's ImportLeads call failed; the chunks before it were imported.

    `summary` counts the rows of those earlier chunks. Re-running the same file is safe: every
    record keeps its idempotency key, so the server answers the earlier ones with their first
    result.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        reason: str,
        first_row: int,
        summary: ImportSummary,
    ) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details
        self.reason = reason
        self.first_row = first_row
        self.summary = summary


@dataclass
class ImportSummary:
    """What an import did. `received` counts the rows read (blank ones skipped)."""

    received: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    already_imported: int = 0
    """Rows whose idempotency key the server had seen (counted in accepted/duplicate too)."""
    elapsed_seconds: float = 0.0
    rejects_path: Path | None = None
    """The rejects file, or None when no row was rejected."""

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0


@dataclass(slots=True)
class _Record:
    row: int
    original: list[str]
    """The values written to the rejects file before `row` and `reason`."""
    request: lead_service_pb2.ImportLeadsRequest | None = None
    error: str = ""
    """Why the record could not be parsed locally (then it has no request)."""


def default_rejects_path(path: Path) -> Path:
    """`leads.csv` -> `leads.rejects.csv`, beside the input."""
    return path.with_name(f"{path.stem}.rejects.csv")


def _derived_key(digest: str, row: int) -> str:
    # The content hash makes a re-run of the same file send the same keys (and so never create
    # duplicates) while another file with the same row numbers gets keys of its own.
    return f"imp-{digest[:16]}-{row}"


def _file_digest(path: Path) -> str:
    with _reading(path), path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turns the errors of reading the input into ImportFileError."""
    try:
        yield
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path} is not UTF-8 text") from e
    except csv.Error as e:
        raise ImportFileError(f"{path}: broken CSV: {e}") from e
    except OSError as e:
        raise ImportFileError(f"cannot read {path}: {e.strerror or e}") from e


# --- CSV ---------------------------------------------------------------------------------------


class _CsvSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        with _reading(path), path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
        if not header:
            raise ImportFileError(f"{path} has no header row")
        header = [_unneutralised(name) for name in header]
        self.header = header
        self.width = len(header)
        names = [name.strip().lower() for name in header]
        problems: list[str] = []
        unknown = [
            name or f"(column {i + 1} has no name)"
            for i, name in enumerate(names)
            if name not in _ACCEPTED_COLUMNS
        ]
        if unknown:
            problems.append("unknown column(s): " + ", ".join(unknown))
        repeated = sorted({n for n in names if n and names.count(n) > 1})
        if repeated:
            problems.append("repeated column(s): " + ", ".join(repeated))
        if problems:
            raise ImportFileError(
                f"{path}: {'; '.join(problems)}. Known columns: {', '.join(CSV_COLUMNS)}"
            )
        self.names = names
        # Carried over into the rejects file, minus a rejects file's own row and reason columns.
        self.kept = [i for i, n in enumerate(names) if n not in (_ROW_COLUMN, _REASON_COLUMN)]
        self.reject_columns = [header[i] for i in self.kept]

    def count(self) -> int:
        return sum(1 for _row, values in self._rows() if _has_value(values))

    def records(self, digest: str) -> Generator[_Record, None, None]:
        for row, values in self._rows():
            if _has_value(values):
                yield self._record(row, values, digest)

    def _rows(self) -> Iterator[tuple[int, list[str]]]:
        """(data row number, values) of every row after the header, blank ones included."""
        with _reading(self.path), self.path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            try:
                next(reader, None)
                for row, values in enumerate(reader, start=1):
                    yield row, [_unneutralised(value) for value in values]
            except csv.Error as e:
                raise csv.Error(f"line {reader.line_num}: {e}") from e

    def _record(self, row: int, values: list[str], digest: str) -> _Record:
        padded = [*values, *[""] * (self.width - len(values))][: self.width]
        record = _Record(row, [padded[i] for i in self.kept])
        if len(values) != self.width:
            record.error = f"row has {len(values)} fields; the header has {self.width}"
            return record
        lead = lead_pb2.LeadInput()
        key = ""
        errors: list[str] = []
        for name, raw in zip(self.names, values, strict=True):
            value = raw.strip()
            if not value or name in (_ROW_COLUMN, _REASON_COLUMN):
                continue
            if name == _KEY_COLUMN:
                key = value
                continue
            path, kind = _CSV_FIELDS[name]
            try:
                _set(lead, path, _convert(value, kind))
            except ValueError as e:
                errors.append(f"{name}: {e}")
        if errors:
            record.error = "; ".join(errors)
            return record
        record.request = lead_service_pb2.ImportLeadsRequest(
            idempotency_key=key or _derived_key(digest, row), lead=lead, record_ref=str(row)
        )
        return record


def _neutralised(cell: str) -> str:
    """`cell` as a spreadsheet shows it as text: with a single quote in front when it could be
    taken for a formula."""
    return "'" + cell if _FORMULA_START.match(cell) else cell


def _unneutralised(cell: str) -> str:
    """The inverse of `_neutralised`: `cell` without the quote it would have put in front."""
    return cell[1:] if cell.startswith("'") and _FORMULA_START.match(cell, 1) else cell


def _has_value(values: list[str]) -> bool:
    """True for a row with a value; spreadsheets like to end files with rows of empty cells."""
    return any(v.strip() for v in values)


def _convert(value: str, kind: _Kind) -> str | int | bool:
    # Messages never repeat the value: it may be personal data, and reasons reach the console.
    if kind is _Kind.STRING:
        return value
    if kind is _Kind.BOOL:
        try:
            return _BOOLS[value.lower()]
        except KeyError:
            raise ValueError("is not true/false, 1/0 or yes/no") from None
    if not _INTEGER.fullmatch(value):
        raise ValueError("is not a whole number")
    number = int(value)
    low, high = _INT_RANGES[kind]
    if not low <= number <= high:
        raise ValueError("is out of range")
    return number


def _set(message: Any, path: tuple[str, ...], value: str | int | bool) -> None:
    for part in path[:-1]:
        message = getattr(message, part)
    setattr(message, path[-1], value)


# --- JSON lines --------------------------------------------------------------------------------


class _JsonlSource:
    reject_columns = [_LINE_COLUMN]

    def __init__(self, path: Path) -> None:
        self.path = path

    def count(self) -> int:
        return sum(1 for _row, line in self._lines() if line.strip())

    def records(self, digest: str) -> Generator[_Record, None, None]:
        for row, line in self._lines():
            if line.strip():
                yield _jsonl_record(row, line, digest)

    def _lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line without its line break)."""
        with _reading(self.path), self.path.open(encoding="utf-8-sig", newline="") as f:
            for row, line in enumerate(f, start=1):
                yield row, line.rstrip("\r\n")


def _jsonl_record(row: int, line: str, digest: str) -> _Record:
    record = _Record(row, [line])
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        record.error = f"line is not valid JSON ({e.msg} at column {e.colno})"
        return record
    if not isinstance(data, dict):
        record.error = "line is not a JSON object"
        return record
    # Either a ProcessLeadRequest ({"idempotency_key", "lead"}) or a bare LeadInput.
    wrapped = "lead" in data
    message: Any = lead_service_pb2.ProcessLeadRequest() if wrapped else lead_pb2.LeadInput()
    prefix = "" if wrapped else "lead"
    problem = _shape_problem(data, message.DESCRIPTOR, prefix)
    if problem is None:
        try:
            json_format.ParseDict(data, message)
        except (json_format.ParseError, TypeError, ValueError) as e:
            # ParseDict quotes the offending value; keep only the field path it names.
            path = ".".join(p for p in (prefix, *_PARSE_FIELD.findall(str(e))) if p)
            problem = f"{path or 'record'}: has the wrong type or is out of range"
    if problem is not None:
        record.error = problem
        return record
    lead, key = (message.lead, message.idempotency_key) if wrapped else (message, "")
    record.request = lead_service_pb2.ImportLeadsRequest(
        idempotency_key=key or _derived_key(digest, row), lead=lead, record_ref=str(row)
    )
    return record


def _shape_problem(value: object, descriptor: Descriptor, path: str) -> str | None:
    """The first unknown field or non-object message, found before ParseDict, whose messages
    would quote values (it iterates a string given for a message as if it were field names)."""
    if not isinstance(value, dict):
        return f"{path or 'record'}: must be a JSON object"
    fields = {f.name: f for f in descriptor.fields} | {f.json_name: f for f in descriptor.fields}
    for key, item in value.items():
        name = f"{path}.{key}" if path else str(key)
        known = fields.get(key)
        if known is None:
            return f"{name[:100]}: unknown field"
        sub = known.message_type
        # Well-known types (a Timestamp is a string in JSON) are left to ParseDict.
        if sub is not None and item is not None and not sub.full_name.startswith("google."):
            problem = _shape_problem(item, sub, f"{path}.{known.name}" if path else known.name)
            if problem is not None:
                return problem
    return None


# --- rejects -----------------------------------------------------------------------------------


class _RejectsWriter:
    """Collects rejected rows in a temporary file beside the target and, when done, moves it into
    place; with no rejects the target is removed, so a stale file never outlives its run."""

    def __init__(self, target: Path, columns: list[str]) -> None:
        self.target = target
        self.count = 0
        if target.is_dir():
            raise ImportFileError(f"the rejects file {target} is a directory")
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as e:
            raise ImportFileError(
                f"cannot write the rejects file {target} ({e.strerror}); choose one with --rejects"
            ) from e
        # mkstemp makes it 0600, which suits a file of personal data.
        self._tmp = Path(name)
        self._file: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file)
        self._write_row([*columns, _ROW_COLUMN, _REASON_COLUMN])

    def write(self, record: _Record, reason: str) -> None:
        self._write_row([*record.original, str(record.row), reason])
        self.count += 1

    def _write_row(self, cells: list[str]) -> None:
        # Every cell, header included: a spreadsheet evaluates formulas wherever they are.
        self._writer.writerow([_neutralised(cell) for cell in cells])

    def finish(self) -> Path | None:
        self._file.close()
        try:
            if self.count:
                self._tmp.replace(self.target)
                return self.target
            self._tmp.unlink(missing_ok=True)
            self.target.unlink(missing_ok=True)
        except OSError as e:
            kept = f"; the rejects are in {self._tmp}" if self._tmp.exists() else ""
            raise ImportFileError(
                f"cannot write the rejects file {self.target} ({e.strerror}){kept}"
            ) from e
        return None


# --- import ------------------------------------------------------------------------------------


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="progress.data.speed")


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def _chunks(records: Iterable[_Record], size: int) -> Iterator[list[_Record]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _error_reason(call: grpc.Call) -> str:
    """The ErrorInfo reason of a rich gRPC error, if it carries one."""
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # details that do not match the call's status
        return ""
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def _source(path: Path, file_format: Format | None) -> _CsvSource | _JsonlSource:
    fmt = file_format or _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ImportFileError(
            f"cannot tell the format of {path} from its extension; "
            "use --format csv or --format jsonl"
        )
    if not path.is_file():
        raise ImportFileError(f"{path} is not a file" if path.exists() else f"{path} not found")
    return _CsvSource(path) if fmt == "csv" else _JsonlSource(path)


def run_import(
    path: Path,
    client: CclClient,
    *,
    rejects_path: Path | None = None,
    show_progress: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    console: Console | None = None,
    file_format: Format | None = None,
    chunk_timeout: float | None = DEFAULT_CHUNK_TIMEOUT_SECONDS,
) -> ImportSummary:
    """Imports `path` (CSV or JSON lines, from its extension unless `file_format` is given) in
    ImportLeads streams of `chunk_size` rows and returns the counts.

    Raises ImportFileError before anything is sent when the file cannot be read or has unknown
    columns, and ImportAbortedError when a call fails. Either way, the rejects file holds exactly
    the rejects of this run (none: no file).
    """
    if chunk_size < 1:
        raise ImportFileError("the chunk size must be at least 1")
    console = console if console is not None else Console()
    started = time.monotonic()
    source = _source(path, file_format)
    # A full pass before sending: it counts rows for the progress bar and finds broken CSV or
    # text that is not UTF-8 before anything is imported.
    total = source.count()
    digest = _file_digest(path)
    target = rejects_path if rejects_path is not None else default_rejects_path(path)
    if target.resolve() == path.resolve():
        raise ImportFileError("the rejects file must not be the input file")
    rejects = _RejectsWriter(target, source.reject_columns)

    summary = ImportSummary()
    shown = 0

    def reject(record: _Record, reason: str) -> None:
        nonlocal shown
        rejects.write(record, reason)
        summary.rejected += 1
        if shown < _MAX_REJECTS_SHOWN:
            shown += 1
            console.print(
                f"row {record.row} rejected: {reason}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    try:
        with (
            _progress(console, show_progress and console.is_terminal) as progress,
            contextlib.closing(source.records(digest)) as records,
        ):
            task = progress.add_task(f"importing {path.name}", total=total)
            for chunk in _chunks(records, chunk_size):
                results = _send(chunk, client, chunk_timeout, summary)
                for record in chunk:
                    summary.received += 1
                    if record.request is None:
                        reject(record, record.error)
                        continue
                    result = results.get(record.request.record_ref)
                    if result is None:
                        reject(record, "the server returned no result for this row")
                    elif result.outcome == lead_pb2.LEAD_OUTCOME_ACCEPTED:
                        summary.accepted += 1
                        summary.already_imported += result.idempotent_replay
                    elif result.outcome == lead_pb2.LEAD_OUTCOME_DUPLICATE:
                        summary.duplicate += 1
                        summary.already_imported += result.idempotent_replay
                    else:
                        reject(record, result.reason or "rejected by the server")
                progress.advance(task, len(chunk))
    finally:
        summary.rejects_path = rejects.finish()
        summary.elapsed_seconds = time.monotonic() - started
    if summary.rejected > shown:
        console.print(f"... and {summary.rejected - shown} more rejected rows", highlight=False)
    console.print(_summary_line(path, summary), markup=False, highlight=False, soft_wrap=True)
    return summary


def _send(
    chunk: list[_Record], client: CclClient, timeout: float | None, summary: ImportSummary
) -> dict[str, lead_service_pb2.ImportLeadResult]:
    """One ImportLeads stream for the chunk's parsed records: their results by record_ref."""
    requests = [r.request for r in chunk if r.request is not None]
    if not requests:
        return {}
    try:
        # A generator, so gRPC pulls records as flow control allows.
        response: lead_service_pb2.ImportLeadsResponse = client.leads.ImportLeads(
            (request for request in requests), timeout=timeout
        )
    except CclError as e:  # the client's typed error: status, message and reason
        raise ImportAbortedError(e.code(), e.details(), e.reason, chunk[0].row, summary) from e
    except grpc.RpcError as e:
        first = chunk[0].row
        if not isinstance(e, grpc.Call):  # every error of a finished call is one
            raise ImportAbortedError(grpc.StatusCode.UNKNOWN, str(e), "", first, summary) from e
        details = e.details() or ""
        raise ImportAbortedError(e.code(), details, _error_reason(e), first, summary) from e
    return {result.record_ref: result for result in response.results}


def _summary_line(path: Path, summary: ImportSummary) -> str:
    line = (
        f"{path.name}: {summary.received} rows in {summary.elapsed_seconds:.1f}s: "
        f"{summary.accepted} accepted, {summary.duplicate} duplicate, {summary.rejected} rejected"
    )
    if summary.already_imported:
        line += f" ({summary.already_imported} already imported by an earlier run)"
    return f"{line}; rejects in {summary.rejects_path}" if summary.rejects_path else line


# --- command line ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `ccl import`."""
    parser.add_argument("file", metavar="FILE", type=Path, help="a .csv or .jsonl file of leads")
    parser.add_argument(
        "--target",
        default=os.environ.get("CCL_TARGET", DEFAULT_TARGET),
        help=f"the gRPC server, host:port (env CCL_TARGET; default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("CCL_API_KEY", ""),
        help="an admin or service API key (env CCL_API_KEY)",
    )
    parser.add_argument(
        "--rejects",
        metavar="PATH",
        type=Path,
        default=None,
        help="where rejected rows go (default: FILE's name with .rejects.csv, beside it)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--format",
        choices=["csv", "jsonl"],
        default=None,
        help="the file's format (default: from its extension, .csv or .jsonl/.ndjson)",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=DEFAULT_CHUNK_SIZE,
        help=f"rows per ImportLeads stream (default {DEFAULT_CHUNK_SIZE})",
    )


def main_from_args(
    args: argparse.Namespace,
    client_factory: ClientFactory = CclClient,
    *,
    console: Console | None = None,
) -> int:
    """Runs `ccl import`: 0 when every row was accepted or a duplicate, 1 when some were
    rejected, 2 when the file or the server could not be used (130 on Ctrl-C)."""
    try:
        with client_factory(args.target, args.api_key) as client:
            summary = run_import(
                args.file,
                client,
                rejects_path=args.rejects,
                show_progress=not args.no_progress,
                chunk_size=args.chunk_size,
                console=console,
                file_format=args.format,
            )
    except ImportFileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportAbortedError as e:
        done = e.summary
        print(f"error: {_describe_abort(e, args)}", file=sys.stderr)
        print(
            f"stopped at row {e.first_row}; the rows before it were imported "
            f"({done.accepted} accepted, {done.duplicate} duplicate, {done.rejected} rejected). "
            "Running the same file again is safe: imported rows are not duplicated.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted; running the same file again is safe", file=sys.stderr)
        return 130
    return summary.exit_code


def _describe_abort(e: ImportAbortedError, args: argparse.Namespace) -> str:
    code = e.code
    why = f"{e.reason}: {e.details}" if e.reason else e.details
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"cannot reach the server at {args.target} ({e.details})"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        hint = "" if args.api_key else " no API key was given;"
        return f"the server refused the API key ({why});{hint} use --api-key or CCL_API_KEY"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"this API key may not import leads ({why}); an admin or service key is needed"
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return f"the server at {args.target} does not support ImportLeads ({e.details})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "the server did not finish a chunk in time; try a smaller --chunk-size"
    if e.reason == "IMPORT_TOO_LARGE":
        return f"the server refused a chunk as too large ({why}); try a smaller --chunk-size"
    return f"the import failed: {code.name} ({why})"
