"""Dealer-reported lead statuses: which the dealer CRM may report, which may follow which, and
the activity entry a reported change leaves on the lead."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from server.domain.leads import ActivityEntry, AgentName, LeadStatus

# What a dealer may report (webhook `status` values), and the lead status each one sets.
DEALER_STATUSES: dict[str, LeadStatus] = {
    "contacted": LeadStatus.CONTACTED,
    "appointment_set": LeadStatus.APPOINTMENT_SET,
    "sold": LeadStatus.SOLD,
    "lost": LeadStatus.LOST,
    "returned": LeadStatus.RETURNED,
}
# Which dealer statuses may follow which: forward through contact and appointment to an outcome;
# a sale may still be unwound (returned); lost and returned leads are closed.
_OPEN = (LeadStatus.PACKAGED, LeadStatus.DELIVERED, LeadStatus.DELIVERY_FAILED)
ALLOWED_FROM: dict[LeadStatus, frozenset[str]] = {
    LeadStatus.CONTACTED: frozenset(s.value for s in (*_OPEN, LeadStatus.CONTACTED)),
    LeadStatus.APPOINTMENT_SET: frozenset(
        s.value for s in (*_OPEN, LeadStatus.CONTACTED, LeadStatus.APPOINTMENT_SET)
    ),
    LeadStatus.SOLD: frozenset(
        s.value for s in (*_OPEN, LeadStatus.CONTACTED, LeadStatus.APPOINTMENT_SET)
    ),
    LeadStatus.LOST: frozenset(
        s.value for s in (*_OPEN, LeadStatus.CONTACTED, LeadStatus.APPOINTMENT_SET)
    ),
    LeadStatus.RETURNED: frozenset(
        s.value for s in (*_OPEN, LeadStatus.CONTACTED, LeadStatus.APPOINTMENT_SET, LeadStatus.SOLD)
    ),
}


class TransitionOutcome(enum.StrEnum):
    MOVED = "moved"
    NOT_FOUND = "not_found"  # no such lead, or another dealer's (not disclosed)
    NOT_ALLOWED = "not_allowed"  # the lead's status is not one the change may follow


@dataclass(frozen=True)
class StatusTransition:
    """What became of a dealer's status report: the outcome and the status the lead had."""

    outcome: TransitionOutcome
    from_status: str = ""


def dealer_status_entry(
    reported: str, from_status: str, to: LeadStatus, event_id: str, reason: str
) -> ActivityEntry:
    """The activity step a dealer's status report leaves on the lead."""
    return (
        AgentName.LEAD_PACKAGING,
        "dealer.status_updated",
        f"Dealer reports {reported}",
        {
            "from": from_status,
            "to": to.value,
            "event_id": event_id,
            "reason_given": bool(reason.strip()),
        },
    )
