"""Signing a dealer webhook as a dealer does: Standard Webhooks headers made with the
`standardwebhooks` library, plus the deprecated `x-ccl-*` pair (accepted during its window, and
what the server reads until the servicer passes the Standard Webhooks headers on)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
import uuid

from standardwebhooks import Webhook


def whsec(label: str) -> str:
    """A fixed, valid `whsec_` secret for a test (its key: the label's bytes, 24+ of them)."""
    return "whsec_" + base64.b64encode(label.encode().ljust(24, b"#")).decode()


def standard_headers(
    body: bytes, secret: str, ts: int | None = None, msg_id: str | None = None
) -> dict[str, str]:
    timestamp = ts if ts is not None else int(time.time())
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    signature = Webhook(secret).sign(
        msg_id, dt.datetime.fromtimestamp(timestamp, tz=dt.UTC), body.decode()
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def legacy_headers(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    timestamp = str(ts if ts is not None else int(time.time()))
    key = Webhook(secret)._whsecret  # the secret's key bytes, as the deprecated scheme uses
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"x-ccl-timestamp": timestamp, "x-ccl-signature": f"sha256={mac}"}


def signed_headers(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    """Both header sets, for the same timestamp, and the JSON content type."""
    return {
        **standard_headers(body, secret, ts),
        **legacy_headers(body, secret, ts),
        "content-type": "application/json",
    }
