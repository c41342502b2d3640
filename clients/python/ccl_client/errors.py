"""Typed errors: a failed call raises a `CclError` subclass per gRPC status, carrying the server's
`ErrorInfo` (reason, domain, metadata such as `request_id`) and one `FieldViolation` per bad
field. Each is still a `grpc.RpcError` with `code()`, `details()` and `trailing_metadata()`,
so code written against plain gRPC keeps working.

    try:
        ccl.leads.ProcessLead(request)
    except InvalidArgument as e:
        for v in e.violations:
            print(v.field, v.description)   # lead.email  is not a valid email address
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, by its path (`lead.address.zip_code`)."""

    field: str
    description: str


class CclError(grpc.RpcError):  # type: ignore[misc]
    """A call the server (or the channel) answered with an error status."""

    def __init__(self, error: grpc.RpcError) -> None:
        self._error: Any = error
        self.code_value: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        self.message: str = error.details() or ""  # type: ignore[attr-defined]
        self.reason = ""
        self.domain = ""
        self.metadata: dict[str, str] = {}
        self.violations: list[FieldViolation] = []
        try:
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
        except ValueError:  # details that do not match the call's status
            status = None
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason, self.domain = info.reason, info.domain
                self.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.violations = [
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                ]
        super().__init__(self.message)

    @property
    def request_id(self) -> str:
        """The server's id of the request (give it when you report a problem)."""
        return self.metadata.get("request_id", "")

    def code(self) -> grpc.StatusCode:
        return self.code_value

    def details(self) -> str:
        return self.message

    def trailing_metadata(self) -> Any:
        return self._error.trailing_metadata()

    def __str__(self) -> str:
        parts = [f"{self.code_value.name}: {self.message}"]
        if self.reason:
            parts.append(f"({self.reason})")
        parts += [f"{v.field}: {v.description}" for v in self.violations]
        return "; ".join(parts)


class InvalidArgument(CclError):
    """The request is malformed or has bad fields (see `violations`)."""


class NotFound(CclError):
    pass


class AlreadyExists(CclError):
    """For example an idempotency key reused with a different request."""


class PermissionDenied(CclError):
    pass


class Unauthenticated(CclError):
    pass


class FailedPrecondition(CclError):
    pass


class ResourceExhausted(CclError):
    """Rate limited: retry later."""


class Unavailable(CclError):
    """The server could not be reached (after the client's own retries)."""


class DeadlineExceeded(CclError):
    pass


class Unimplemented(CclError):
    pass


class Internal(CclError):
    """A server fault; `request_id` and the message's incident id identify it."""


_BY_CODE: dict[grpc.StatusCode, type[CclError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.INTERNAL: Internal,
}


def typed(error: grpc.RpcError) -> CclError:
    """The typed error for a failed call (`CclError` itself for the other codes)."""
    if isinstance(error, CclError):
        return error
    code = error.code()  # type: ignore[attr-defined]
    return _BY_CODE.get(code, CclError)(error)
