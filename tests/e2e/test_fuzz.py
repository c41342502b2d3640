"""Property: nothing a caller sends through Envoy produces a 5xx. Hypothesis builds request
bodies of every JSON type for every field of the write endpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.stack import EnvoyProcess

pytestmark = pytest.mark.e2e

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            "1990-02-30",
            "(312) 555-0182",
            "a@b.co",
            "IL",
            "62701",
            "9999-12-31T00:00:00Z",
            "a\x00b",
        ]
    )
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
LEAD_FIELDS = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "date_of_birth",
    "address",
    "monthly_income_cents",
    "down_payment_cents",
    "vehicle",
    "consent",
    "source",
    "visitor_id",
    "months_employed",
]


def body_for(fields: list[str]) -> st.SearchStrategy[dict]:  # type: ignore[type-arg]
    return st.fixed_dictionaries({}, optional={f: values for f in fields})


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=envoy_proxy.base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10
    ) as c:
        yield c


FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(lead=body_for(LEAD_FIELDS), key=values)
def test_process_lead_never_5xx(http: httpx.Client, lead: dict, key: object) -> None:  # type: ignore[type-arg]
    r = http.post("/api/leads/process", json={"idempotency_key": key, "lead": lead})
    assert r.status_code < 500, r.text


@FUZZ
@given(
    event=body_for(
        [
            "anonymous_id",
            "event_type",
            "page",
            "campaign",
            "client_time",
            "sent_time",
            "email",
            "phone",
            "event_id",
            "user_agent",
            "ip_address",
        ]
    )
)
def test_track_never_5xx(http: httpx.Client, event: dict) -> None:  # type: ignore[type-arg]
    r = http.post("/api/visitors/track", json=event)
    assert r.status_code < 500, r.text


@FUZZ
@given(
    dealer=body_for(
        [
            "name",
            "states",
            "zip_prefixes",
            "accepted_tiers",
            "daily_cap",
            "priority",
            "weight",
            "endpoint_url",
            "delivery_format",
            "signing_secret",
            "active",
        ]
    )
)
def test_create_dealer_never_5xx(http: httpx.Client, dealer: dict) -> None:  # type: ignore[type-arg]
    r = http.post("/api/dealers", json=dealer)
    assert r.status_code < 500, r.text


@FUZZ
@given(
    path=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), max_size=20
    ),
    params=st.dictionaries(
        st.sampled_from(["page_size", "page_token", "status", "source", "created_after"]),
        st.text(max_size=12),
        max_size=3,
    ),
)
def test_reads_never_5xx(http: httpx.Client, path: str, params: dict) -> None:  # type: ignore[type-arg]
    for url in (f"/api/leads/{path}", f"/api/leads/{path}/activity", "/api/leads", "/api/dealers"):
        r = http.get(url, params=params if url in ("/api/leads", "/api/dealers") else None)
        assert r.status_code < 500, (url, r.text)
