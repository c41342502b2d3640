"""Per-call context (request id, caller) carried in contextvars from interceptors to servicers."""

from __future__ import annotations

import contextvars
from typing import Any

import grpc

from server.domain.principal import Principal

# The servicer context of any RPC (grpc-stubs makes it generic in request and response).
Context = grpc.aio.ServicerContext[Any, Any]

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def call_metadata(context: Context) -> dict[str, str]:
    """The call's text metadata (gRPC metadata or, through Envoy, the HTTP headers), keys
    lower-cased, first value of each."""
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            out.setdefault(key.lower(), value)
    return out


def current_principal() -> Principal:
    """The authenticated caller of the current RPC (set by the auth interceptor)."""
    principal = principal_var.get()
    if principal is None:
        raise RuntimeError("no authenticated caller in this context")
    return principal
