"""Test data: the issue's example request, as JSON and as a protobuf message."""

from __future__ import annotations

import copy
import json
from typing import Any

from google.protobuf import json_format

from ccl.lead.v1 import lead_service_pb2

EXAMPLE_REQUEST: dict[str, Any] = {
    "idempotency_key": "web-7f1c2a",
    "lead": {
        "first_name": "Maria",
        "last_name": "Lopez",
        "email": "maria.lopez@example.com",
        "phone": "(312) 555-0182",
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
        "consent": {
            "tcpa": True,
            "fcra_soft_pull": True,
            "consent_text": "I agree to be contacted ...",
            "ip_address": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "page_url": "https://completecarloans.com/apply",
        },
        "source": "website",
        "visitor_id": "anon-5d1e",
    },
}


def example_request(**lead_changes: Any) -> dict[str, Any]:
    """A deep copy of the example with `lead` fields replaced (None removes a field)."""
    request = copy.deepcopy(EXAMPLE_REQUEST)
    for key, value in lead_changes.items():
        if value is None:
            request["lead"].pop(key, None)
        else:
            request["lead"][key] = value
    return request


def example_message(idempotency_key: str | None = None, **lead_changes: Any):  # type: ignore[no-untyped-def]
    request = example_request(**lead_changes)
    if idempotency_key is not None:
        request["idempotency_key"] = idempotency_key
    return json_format.Parse(json.dumps(request), lead_service_pb2.ProcessLeadRequest())
