"""Dealer domain types."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
from dataclasses import dataclass, field

# How a dealer's packages travel: POSTed to its endpoint URL, or mailed as plain-text ADF XML to
# its CRM's intake address (the way most dealer CRMs take leads).
CHANNEL_HTTPS = "https"
CHANNEL_EMAIL = "email"
DELIVERY_CHANNELS = (CHANNEL_HTTPS, CHANNEL_EMAIL)


@dataclass(frozen=True)
class EndpointCredentials:
    """How we authenticate to a dealer's endpoint besides the signature: HTTP Basic
    (`kind="basic"`, `username`, `password`) or one header (`kind="header"`, `name` is the header
    name, `value` its value). Stored encrypted; never returned, never logged (`__repr__` hides
    the secrets)."""

    kind: str  # "basic" | "header"
    username: str = ""
    password: str = field(default="", repr=False)
    name: str = ""
    value: str = field(default="", repr=False)


@dataclass
class DealerInput:
    """A dealer as created or updated by an admin (every field optional on update)."""

    name: str = ""
    states: list[str] = field(default_factory=list)
    zip_prefixes: list[str] = field(default_factory=list)
    accepted_tiers: list[str] = field(default_factory=list)
    daily_cap: int = 0
    priority: int = 100
    weight: int = 1
    endpoint_url: str = ""
    delivery_format: str = "json"
    signing_secret: str = ""
    active: bool = True
    contact_email: str = ""
    contact_phone: str = ""
    # None: none on create; on update, a mask naming this field with None clears them.
    endpoint_credentials: EndpointCredentials | None = None
    delivery_channel: str = CHANNEL_HTTPS
    # The CRM's lead intake address (required by, and only used for, the email channel).
    intake_email: str = ""


@dataclass(frozen=True)
class DealerRecord:
    dealer_id: str
    name: str
    states: list[str]
    zip_prefixes: list[str]
    accepted_tiers: list[str]
    daily_cap: int
    priority: int
    weight: int
    endpoint_url: str
    delivery_format: str
    signing_secret_set: bool
    active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    contact_email: str = ""
    contact_phone: str = ""
    # "none" | "basic" | "header"; the secrets themselves are never read back into a record.
    endpoint_auth_type: str = "none"
    endpoint_auth_header_name: str = ""
    delivery_channel: str = CHANNEL_HTTPS
    intake_email: str = ""


@dataclass(frozen=True)
class DeliveryTarget:
    """Everything needed to deliver to (or test) a dealer's endpoint: where, in which format,
    the signing secrets valid now (current first, then the previous one while its rotation
    overlap lasts) and the endpoint credentials, decrypted."""

    dealer_id: str
    url: str
    delivery_format: str
    secrets: list[str] = field(repr=False)
    credentials: EndpointCredentials | None
    active: bool
    name: str
    contact_email: str
    contact_phone: str
    delivery_channel: str = CHANNEL_HTTPS
    intake_email: str = ""


# Signing secrets follow Standard Webhooks: "whsec_" + base64 of the HMAC key's bytes.
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32  # what the server generates
MIN_SECRET_BYTES = 24  # the least a caller-chosen secret may carry
MAX_SECRET_BYTES = 64
DEFAULT_OVERLAP_HOURS = 24
MAX_OVERLAP_HOURS = 24 * 30


def generate_signing_secret() -> str:
    """A new signing secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_problem(value: str) -> str | None:
    """Why a caller-chosen signing secret is refused, or None when it is a valid `whsec_`
    secret of 24 to 64 bytes that are not all the same (a "zero" key)."""
    if not value:
        return "must not be empty (a secret is generated; rotate it with rotate-secret)"
    if not value.startswith(SECRET_PREFIX):
        return f"must be {SECRET_PREFIX}<base64>, as the server generates"
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {SECRET_PREFIX} followed by standard base64"
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        return f"must carry {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
    if len(set(key)) < 8:
        return "is not random enough"
    return None


def signing_key(secret: str) -> bytes:
    """The HMAC key of a signing secret: the bytes of a `whsec_` secret; for a secret stored
    before secrets were `whsec_` (raw text), its UTF-8 bytes, the key it always signed with."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :] + "==")
        except (binascii.Error, ValueError):
            pass
    return secret.encode()
