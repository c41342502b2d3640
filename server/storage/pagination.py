"""Opaque page tokens for keyset pagination (AIP-158): base64url JSON of the last row's keys.

A token is parsed strictly against the declared schema of its list (`TOKEN_SCHEMAS`): bounded
length, base64url, UTF-8 JSON, exactly the declared keys, each of its type and within its bounds
(timestamps naive UTC in a sane range, ids in the format ids have, integers that fit a BIGINT,
text without control characters). Anything else, a token of another list included, is
INVALID_PAGE_TOKEN, so a forged token never reaches a query. Tokens are not signed: all a token
holds is the sort key of a row its caller could list anyway.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NaiveDatetime,
    StringConstraints,
    ValidationError,
)

from server.errors import FieldViolation, InvalidArgumentError

MAX_PAGE_SIZE = 500
# Longest token accepted: a dealer-list token (200-character name, each character as a
# `\uXXXX\uXXXX` pair) is under 3,500 base64 characters.
MAX_TOKEN_LENGTH = 4096
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

# Ids are lower-case UUID strings (`models.new_id`); log rows count up from 1 in a BIGINT.
_Uuid = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
_RowId = Annotated[int, Field(ge=0, le=2**63 - 1)]
_Timestamp = Annotated[NaiveDatetime, Field(ge=dt.datetime(1970, 1, 1), lt=dt.datetime(2200, 1, 1))]
# No C0/C1 control characters (NUL included); lone surrogates never get past the JSON parser.
_DealerName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
]


class _Token(BaseModel):
    """A token's JSON: strict types (no coercion), no keys beyond the declared ones."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _LeadsToken(_Token):
    k: Literal["leads"]
    t: _Timestamp  # created_at of the last lead of the page
    i: _Uuid  # its id


class _ActivityToken(_Token):
    k: Literal["activity"]
    i: _RowId  # id of the last activity of the page


class _DealersToken(_Token):
    k: Literal["dealers"]
    n: _DealerName  # name of the last dealer of the page
    i: _Uuid  # its id


class _DealerDeliveriesToken(_Token):
    k: Literal["dealer_deliveries"]
    t: _Timestamp  # created_at of the last delivery of the page
    i: _Uuid  # its id


class _EmailTemplatesToken(_Token):
    k: Literal["email_templates"]
    t: _Timestamp  # created_at of the last template of the page
    i: _Uuid  # its id


class _CampaignsToken(_Token):
    k: Literal["campaigns"]
    t: _Timestamp  # created_at of the last campaign of the page
    i: _Uuid  # its id


class _SuppressionsToken(_Token):
    k: Literal["suppressions"]
    t: _Timestamp  # created_at of the last suppression of the page
    i: _RowId  # its id


# Token kind -> its schema (field -> type and bounds).
TOKEN_SCHEMAS: dict[str, type[_Token]] = {
    "leads": _LeadsToken,
    "activity": _ActivityToken,
    "dealers": _DealersToken,
    "dealer_deliveries": _DealerDeliveriesToken,
    "email_templates": _EmailTemplatesToken,
    "campaigns": _CampaignsToken,
    "suppressions": _SuppressionsToken,
}


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
    """The keys a token of list `kind` holds, typed by `TOKEN_SCHEMAS` (timestamps as naive UTC
    datetimes); INVALID_PAGE_TOKEN for anything but a well-formed token of that list."""
    schema = TOKEN_SCHEMAS[kind]
    if len(token) > MAX_TOKEN_LENGTH or not _BASE64URL.fullmatch(token):
        raise invalid_page_token()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor = schema.model_validate_json(raw)  # bytes: must be UTF-8 JSON
    except (binascii.Error, ValidationError) as e:
        raise invalid_page_token() from e
    return cursor.model_dump(exclude={"k"})


def invalid_page_token() -> InvalidArgumentError:
    return InvalidArgumentError(
        "page_token is not valid",
        reason="INVALID_PAGE_TOKEN",
        violations=[FieldViolation("page_token", "is not a token returned by this list")],
    )
