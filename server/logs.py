"""Structured JSON logs (python-json-logger). Callers never pass personal data in `extra`.

No URL reaches a log with its userinfo or query string (see `server.redact`), whichever logger
wrote it (httpx logs every request's URL at INFO): `install_url_redaction` redacts the message
of every record as it is created, so every handler sees it redacted, and the JSON formatter
redacts what else a line carries (`extra` values, tracebacks, stacks).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from pythonjsonlogger.core import LogData
from pythonjsonlogger.json import JsonFormatter

from server.redact import redact_urls


def configure_logging(level: str = "INFO") -> None:
    install_url_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _UrlRedactingFactory:
    """A log record factory that wraps another and redacts URLs in the message it produces."""

    def __init__(self, wrapped: Callable[..., logging.LogRecord]) -> None:
        self.wrapped = wrapped

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        if isinstance(record.msg, dict):  # a JSON log's fields: the formatter redacts them
            return record
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, as it always does
            return record
        redacted = redact_urls(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return record


def install_url_redaction() -> None:
    """Makes every log record, from any logger, carry its message (`msg % args`) with each URL
    reduced to `scheme://host[:port]/path`. Idempotent; process-wide."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _UrlRedactingFactory):
        logging.setLogRecordFactory(_UrlRedactingFactory(factory))


class RedactingJsonFormatter(JsonFormatter):
    """A JsonFormatter that redacts URLs in every string it writes: the message, `extra` values
    (also inside lists and dicts) and the traceback or stack of a record."""

    def process_log_record(self, log_data: LogData) -> LogData:
        return {key: _redact_value(value) for key, value in log_data.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    return value
