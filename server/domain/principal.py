"""Who is calling: a principal (the API key's id, its role and, for dealer keys, the dealer)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.errors import FieldViolation, InvalidArgumentError


class Role(enum.StrEnum):
    ADMIN = "admin"
    SERVICE = "service"
    DEALER = "dealer"
    OPS = "ops"
    AGENT = "agent"
    # Submit-only, for the website: ProcessLead and TrackVisitorEvent, nothing else.
    INTAKE = "intake"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, its role and, for dealer keys, the dealer."""

    key_id: str
    role: Role
    dealer_id: str | None = None

    @property
    def scope(self) -> str:
        """The namespace of the caller's idempotency keys: per dealer, or internal callers."""
        return f"dealer:{self.dealer_id}" if self.dealer_id else "internal"


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as e:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidArgumentError(
            f"role must be one of {allowed}",
            reason="INVALID_ROLE",
            violations=[FieldViolation("role", f"must be one of {allowed}")],
        ) from e
