"""Domain errors: plain Python, no gRPC. One interceptor maps them to status codes.

Each error carries an UPPER_SNAKE `reason` (the `ErrorInfo.reason` callers
switch on), a message safe to show a caller (no personal data), optional
metadata, and for bad input one `FieldViolation` per bad field.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: its path in the request (e.g. `lead.email`) and what is wrong."""

    field: str
    description: str


@dataclass
class CclError(Exception):
    """Base of every error the platform raises on purpose."""

    message: str
    reason: str = "ERROR"
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


@dataclass
class InvalidArgumentError(CclError):
    """The request is malformed; `violations` names every bad field."""

    reason: str = "INVALID_ARGUMENT"
    violations: list[FieldViolation] = field(default_factory=list)


@dataclass
class NotFoundError(CclError):
    reason: str = "NOT_FOUND"


@dataclass
class AlreadyExistsError(CclError):
    reason: str = "ALREADY_EXISTS"


@dataclass
class FailedPreconditionError(CclError):
    reason: str = "FAILED_PRECONDITION"


@dataclass
class UnauthenticatedError(CclError):
    reason: str = "UNAUTHENTICATED"


@dataclass
class PermissionDeniedError(CclError):
    reason: str = "PERMISSION_DENIED"


@dataclass
class ResourceExhaustedError(CclError):
    reason: str = "RESOURCE_EXHAUSTED"


@dataclass
class UpstreamError(CclError):
    """An external system (FlexPath, Mailgun, a dealer CRM, OpenAI) failed or is unreachable."""

    reason: str = "UPSTREAM_UNAVAILABLE"


@dataclass
class UnimplementedError(CclError):
    """The RPC exists in the contract but is not built yet."""

    reason: str = "NOT_IMPLEMENTED"
