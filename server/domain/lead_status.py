"""Dealer-reported lead statuses: which the dealer CRM may report, which may follow which (the
one transition table, `ALLOWED_FROM`, which the dealer guide shows as rendered by
`transition_table_markdown`), and the activity entry a reported change leaves on the lead."""

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
# a sale may still be unwound (returned); lost and returned leads are closed. A repeat of
# `contacted` or `appointment_set` is allowed (a second call, a rescheduled visit: harmless, and
# logged). Every delivery status is open: `packaged` because a CRM may report before our worker
# records its 2xx, and `delivery_failed` because the lead is still this dealer's (it can read it
# through the API, and an operator may redeliver it); delivery never overwrites a reported status.
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
    ALREADY_RECEIVED = "already_received"  # this event id was recorded first (nothing changed)


@dataclass(frozen=True)
class StatusTransition:
    """What became of a dealer's status report: the outcome, the status the lead had and, when
    MOVED or ALREADY_RECEIVED, the lead it moved (or moved then)."""

    outcome: TransitionOutcome
    from_status: str = ""
    lead_id: str = ""


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


def transition_table_markdown() -> str:
    """`ALLOWED_FROM` as a Markdown table for the dealer guide: one row per status a dealer may
    report, one column per lead status, "yes" where the report may follow that status.

    What each reported status means:

    - `contacted`: the dealer reached the applicant (call, text or email). May be repeated.
    - `appointment_set`: the applicant agreed to visit or to a call with a finance manager. May
      be repeated (a rescheduled appointment).
    - `sold`: the applicant bought a vehicle (the deal is funded or delivered).
    - `lost`: the applicant will not buy through this dealer (no answer, bought elsewhere, not
      approved). Closes the lead.
    - `returned`: the dealer asks for the lead to be credited back (fake or wrong details, not
      the person, a duplicate); a `reason` is required. Closes the lead; may follow `sold` (an
      unwound deal).

    The lead statuses in the columns: `packaged` (routed to the dealer, delivery pending),
    `delivered` (the dealer's CRM answered 2xx), `delivery_failed` (the CRM refused it or every
    retry failed: the lead is still the dealer's), then the reported statuses themselves.
    """
    columns = [
        s
        for s in LeadStatus
        if s in DEALER_STATUSES.values() or any(s.value in a for a in ALLOWED_FROM.values())
    ]
    lines = [
        "| Reported status / lead is | " + " | ".join(f"`{c.value}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for reported, status in DEALER_STATUSES.items():
        cells = ("yes" if c.value in ALLOWED_FROM[status] else "no" for c in columns)
        lines.append(f"| `{reported}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
