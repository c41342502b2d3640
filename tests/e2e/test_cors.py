"""CORS preflight through real Envoy: the website's origin may use every method the REST
surface has (PATCH and DELETE included); other origins get no CORS grant."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.stack import EnvoyProcess

pytestmark = pytest.mark.e2e

ORIGIN = "https://completecarloans.com"


@pytest.fixture(scope="module")
def http(envoy_proxy: EnvoyProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=envoy_proxy.base_url, timeout=10) as client:
        yield client


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE"])
def test_preflight_allows_the_method(http: httpx.Client, method: str) -> None:
    r = http.options(
        "/api/dealers/some-dealer",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    allowed = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert method in allowed


def test_other_origins_get_no_grant_for_patch(http: httpx.Client) -> None:
    r = http.options(
        "/api/dealers/some-dealer",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PATCH"},
    )
    assert "access-control-allow-origin" not in r.headers
