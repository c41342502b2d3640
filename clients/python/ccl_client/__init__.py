"""Thin convenience client over the generated stubs: API-key auth, default deadlines, retries.

    from ccl_client import CclClient
    with CclClient("127.0.0.1:8080", api_key="ccl_…") as ccl:
        stats = ccl.agents.GetSystemStats(agent_service_pb2.GetSystemStatsRequest())

Retries use gRPC's own retry policy (service config): UNAVAILABLE only, with
exponential backoff, which is safe for every RPC; `ProcessLead` requests without an
idempotency key get one, so a retried write never creates a lead twice. A failed call
raises a typed error (`ccl_client.errors`: `InvalidArgument`, `NotFound`, ...) with the
server's `reason` and one `FieldViolation` per bad field.
"""

from __future__ import annotations

from ccl_client.client import DEFAULT_TIMEOUT_SECONDS, CclClient
from ccl_client.errors import CclError, FieldViolation

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "CclClient", "CclError", "FieldViolation"]
