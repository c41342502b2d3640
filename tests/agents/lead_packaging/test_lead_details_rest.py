"""The lead's vehicle details (trade-in, purchase timeframe, new/used) through Envoy's REST
transcoding, on both backends: accepted and stored for the package, or refused with a field
violation."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.storage import models as m
from support.data import example_request
from support.stack import EnvoyProcess, ServerThread

pytestmark = pytest.mark.e2e

DETAILS = {
    "vehicle_status": "VEHICLE_STATUS_NEW",
    "purchase_timeframe": "PURCHASE_TIMEFRAME_WITHIN_WEEK",
    "trade_in": {"year": 2012, "make": "Honda", "model": "Fit", "mileage": 141000},
}


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess, admin_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=envoy_proxy.base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=20
    ) as client:
        yield client


def stored(stack: ServerThread, lead_id: str) -> m.Lead:
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        return m.Lead.get_by_id(lead_id)
    finally:
        stack.app.db.db.close()


@pytest.mark.parametrize("camel", [False, True], ids=["proto_names", "json_names"])
def test_details_are_accepted_and_stored(
    http: httpx.Client, stack: ServerThread, camel: bool
) -> None:
    details = dict(DETAILS)
    if camel:
        details = {
            "vehicleStatus": details["vehicle_status"],
            "purchaseTimeframe": details["purchase_timeframe"],
            "tradeIn": details["trade_in"],
        }
    request = example_request(
        email=f"details-{int(camel)}@example.com", phone=f"(608) 555-0{140 + int(camel)}"
    )
    request["lead"].update(details)
    request["idempotency_key"] = f"lead-details-{int(camel)}"
    r = http.post("/api/leads/process", json=request)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "LEAD_OUTCOME_ACCEPTED"
    row = stored(stack, r.json()["lead"]["lead_id"])
    assert (row.vehicle_status, row.purchase_timeframe) == ("new", "within_week")
    assert (row.trade_in_year, row.trade_in_make, row.trade_in_model, row.trade_in_mileage) == (
        2012,
        "Honda",
        "Fit",
        141000,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"trade_in": {"year": 2012, "model": "Fit"}}, "lead.trade_in.make"),
        ({"trade_in": {"make": "Honda", "mileage": -5}}, "lead.trade_in.mileage"),
        ({"purchase_timeframe": 99}, "lead.purchase_timeframe"),
        ({"vehicle_status": 7}, "lead.vehicle_status"),
    ],
)
def test_bad_details_are_field_violations(
    http: httpx.Client, changes: dict[str, object], field: str
) -> None:
    request = example_request(email="bad-details@example.com")
    request["lead"].update(changes)
    request["idempotency_key"] = f"bad-details-{field}"
    r = http.post("/api/leads/process", json=request)
    assert r.status_code == 400, r.text
    assert f'"field":"{field}"' in r.text
