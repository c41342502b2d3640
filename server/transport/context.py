"""Per-call context (request id, caller) carried in contextvars from interceptors to servicers."""

from __future__ import annotations

import contextvars

from server.services.auth import Principal

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    """The authenticated caller of the current RPC (set by the auth interceptor)."""
    principal = principal_var.get()
    if principal is None:
        raise RuntimeError("no authenticated caller in this context")
    return principal
