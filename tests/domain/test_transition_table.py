"""The dealer status transition table: `ALLOWED_FROM` is the one source; its Markdown rendering
says the same, and the dealer guide (docs/dealers.md) shows exactly that rendering."""

from __future__ import annotations

from pathlib import Path

from server.domain.lead_status import ALLOWED_FROM, DEALER_STATUSES, transition_table_markdown
from server.domain.leads import LeadStatus

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "dealers.md"


def cells() -> dict[tuple[str, str], str]:
    """(reported status, lead status) -> the rendered cell."""
    header, rule, *rows = transition_table_markdown().splitlines()
    columns = [c.strip().strip("`") for c in header.strip("|").split("|")][1:]
    assert set(rule) <= {"|", "-"}
    out: dict[tuple[str, str], str] = {}
    for row in rows:
        reported, *values = (c.strip() for c in row.strip("|").split("|"))
        assert len(values) == len(columns)
        out.update({(reported.strip("`"), c): v for c, v in zip(columns, values, strict=True)})
    return out


def test_the_table_renders_allowed_from_cell_by_cell() -> None:
    table = cells()
    assert {reported for reported, _ in table} == set(DEALER_STATUSES)
    for (reported, lead_status), cell in table.items():
        allowed = lead_status in ALLOWED_FROM[DEALER_STATUSES[reported]]
        assert cell == ("yes" if allowed else "no"), (reported, lead_status)
    # Every status a report may follow is a column, and so is every reported status.
    columns = {c for _, c in table}
    assert set().union(*ALLOWED_FROM.values()) <= columns
    assert {s.value for s in DEALER_STATUSES.values()} <= columns
    assert columns <= {s.value for s in LeadStatus}


def test_the_transitions_make_sense() -> None:
    table = cells()
    assert table["contacted", "contacted"] == "yes"  # a repeat report is harmless
    assert table["appointment_set", "appointment_set"] == "yes"  # rescheduled
    assert table["returned", "sold"] == "yes"  # an unwound deal
    for reported in DEALER_STATUSES:
        assert table[reported, "delivery_failed"] == "yes"  # still the dealer's lead
        assert table[reported, "lost"] == table[reported, "returned"] == "no"  # closed
    assert table["sold", "sold"] == "no"
    assert table["contacted", "appointment_set"] == "no"  # never backwards


def test_the_dealer_guide_shows_exactly_this_table() -> None:
    assert GUIDE.is_file(), f"{GUIDE} is missing"
    assert transition_table_markdown() in GUIDE.read_text(encoding="utf-8"), (
        "docs/dealers.md must contain the output of transition_table_markdown() verbatim"
    )
