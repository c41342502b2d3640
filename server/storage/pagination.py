"""Opaque page tokens for keyset pagination (AIP-158): base64url JSON of the last row's keys."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from server.errors import FieldViolation, InvalidArgumentError

MAX_PAGE_SIZE = 500


def page_size(requested: int, default: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgumentError(
            "page_size is out of range",
            reason="INVALID_PAGE_SIZE",
            violations=[FieldViolation("page_size", f"must be between 0 and {MAX_PAGE_SIZE}")],
        )
    return requested or default


def encode_token(kind: str, values: dict[str, Any]) -> str:
    raw = json.dumps({"k": kind, **values}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(kind: str, token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(data, dict) or data.get("k") != kind:
            raise ValueError("wrong kind")
        return data
    except (ValueError, binascii.Error, UnicodeDecodeError) as e:
        raise invalid_page_token() from e


def invalid_page_token() -> InvalidArgumentError:
    return InvalidArgumentError(
        "page_token is not valid",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is not a token returned by this list")],
    )
