"""A dealer's delivery log through real Envoy (REST), SQLite and PostgreSQL: leads a dealer sends
come back to it through the delivery worker and the fake CRM; its key lists its own deliveries,
newest first, with their attempts, a page at a time and by state; another dealer's id is
NOT_FOUND; bad tokens and filters are INVALID_ARGUMENT; no package content is listed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from ccl.dealer.v1 import dealer_service_pb2 as pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from server.domain.principal import Role
from server.storage.pagination import encode_token
from support.data import example_request
from support.fake_crm import FakeCrm, running
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread, make_settings
from support.webhook_signing import whsec

pytestmark = pytest.mark.e2e
SECRET_A = whsec("log-dealer-a-secret-0123456789")
SECRET_B = whsec("log-dealer-b-secret-0123456789")
DELIVERED, REJECTED = 3, 2


@pytest.fixture(scope="module")
def server(db_url: str) -> Iterator[ServerThread]:
    settings = make_settings(db_url, worker_poll_seconds=0.05)
    stack = ServerThread(settings).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def proxy(server: ServerThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvoyProcess]:
    envoy = EnvoyProcess([server.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    yield envoy
    envoy.stop()


def client(proxy: EnvoyProcess, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=proxy.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=20
    )


@pytest.fixture(scope="module")
def crms(backend: str) -> Iterator[dict[str, tuple[FakeCrm, str]]]:  # one per backend run
    # Dealer A's endpoint accepts three packages, then refuses (400: rejected, not retried).
    a = FakeCrm(secret=SECRET_A, script=[200] * DELIVERED + [400])
    b = FakeCrm(secret=SECRET_B)
    with running(a) as url_a, running(b) as url_b:
        yield {"A": (a, url_a), "B": (b, url_b)}


@pytest.fixture(scope="module")
def dealers(
    server: ServerThread, proxy: EnvoyProcess, crms: dict[str, tuple[FakeCrm, str]]
) -> dict[str, dict[str, Any]]:
    """Dealers A and B, each with its key and the leads it sent (all routed back to it and
    delivered by the worker), in the order sent."""
    out: dict[str, dict[str, Any]] = {}
    with client(proxy, server.create_key(Role.ADMIN)) as admin:
        for name, secret in (("A", SECRET_A), ("B", SECRET_B)):
            r = admin.post(
                "/api/dealers",
                json={
                    "name": f"Log Motors {name}",
                    "states": ["TX"],  # serves no lead of its own: only what it sends
                    "endpoint_url": crms[name][1],
                    "signing_secret": secret,
                    "active": True,
                },
            )
            assert r.status_code == 200, r.text
            dealer_id = r.json()["dealer"]["dealer_id"]
            out[name] = {"id": dealer_id, "key": server.create_key(Role.DEALER, dealer_id)}
    for name, count in (("A", DELIVERED + REJECTED), ("B", 1)):
        leads = []
        with client(proxy, out[name]["key"]) as dealer:
            for i in range(count):
                request = example_request(
                    last_name="Prequalified",  # the simulation's sandbox identity
                    email=f"log-{name.lower()}{i}@example.com",
                    phone=f"(312) 555-01{10 * (name == 'B') + i:02d}",
                )
                request["idempotency_key"] = f"log-{name}-{i}"
                r = dealer.post("/api/leads/process", json=request)
                assert r.status_code == 200, r.text
                leads.append(r.json()["lead"]["lead_id"])
                time.sleep(0.002)  # distinct creation times, whatever the clock's resolution
        out[name]["leads"] = leads
    crms["A"][0].wait_for(DELIVERED + REJECTED)
    crms["B"][0].wait_for(1)
    return out


def log(http: httpx.Client, dealer_id: str, **params: Any) -> httpx.Response:
    return http.get(f"/api/dealers/{dealer_id}/deliveries", params=params)


def settled(http: httpx.Client, dealer_id: str, count: int) -> list[dict[str, Any]]:
    """The whole log once `count` deliveries have their final state."""
    deadline = time.monotonic() + 20
    while True:
        r = log(http, dealer_id, page_size=100)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json().get("deliveries", [])
        final = [
            d
            for d in items
            if d["state"] in ("DELIVERY_STATE_DELIVERED", "DELIVERY_STATE_REJECTED")
        ]
        if len(final) == count:
            return items
        assert time.monotonic() < deadline, items
        time.sleep(0.05)


def error(response: httpx.Response) -> tuple[int, str, set[str]]:
    reason, fields = "", set()
    for d in response.json().get("details", []):
        if d["@type"].endswith("ErrorInfo"):
            reason = d["reason"]
        if d["@type"].endswith("BadRequest"):
            fields = {v["field"] for v in d["field_violations"]}
    return response.status_code, reason, fields


def test_a_dealer_lists_its_own_deliveries_newest_first_with_attempts(
    proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    a = dealers["A"]
    with client(proxy, a["key"]) as http:
        items = settled(http, a["id"], DELIVERED + REJECTED)
    assert [d["lead_id"] for d in items] == list(reversed(a["leads"]))
    assert {d["dealer_id"] for d in items} == {a["id"]}
    states = sorted(d["state"] for d in items)
    assert (
        states == ["DELIVERY_STATE_DELIVERED"] * DELIVERED + ["DELIVERY_STATE_REJECTED"] * REJECTED
    )
    for d in items:
        [attempt] = d["attempts"]
        assert attempt["status_code"] == (200 if d["state"] == "DELIVERY_STATE_DELIVERED" else 400)
        assert d["event_id"] and d["package_id"] and d["delivery_id"]
    with client(proxy, dealers["B"]["key"]) as http:
        b_items = settled(http, dealers["B"]["id"], 1)
    assert [d["lead_id"] for d in b_items] == dealers["B"]["leads"]


def test_the_log_holds_no_package_content(
    proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    a = dealers["A"]
    with client(proxy, a["key"]) as http:
        settled(http, a["id"], DELIVERED + REJECTED)
        text = log(http, a["id"]).text
    for personal in ("log-a0@example.com", "Prequalified", "Maria", "+1312555", "Springfield"):
        assert personal not in text


def test_paging_walks_the_whole_log_once(
    proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    a = dealers["A"]
    with client(proxy, a["key"]) as http:
        everything = [d["delivery_id"] for d in settled(http, a["id"], DELIVERED + REJECTED)]
        seen: list[str] = []
        sizes = []
        token = ""
        while True:
            r = log(http, a["id"], page_size=2, page_token=token)
            assert r.status_code == 200, r.text
            page = r.json()
            sizes.append(len(page.get("deliveries", [])))
            seen += [d["delivery_id"] for d in page.get("deliveries", [])]
            token = page.get("next_page_token", "")
            if not token:
                break
    assert sizes == [2, 2, 1]
    assert seen == everything


def test_the_state_filter(proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]) -> None:
    a = dealers["A"]
    with client(proxy, a["key"]) as http:
        settled(http, a["id"], DELIVERED + REJECTED)
        for state, count in (
            ("DELIVERY_STATE_REJECTED", REJECTED),
            ("DELIVERY_STATE_DELIVERED", DELIVERED),
            ("DELIVERY_STATE_PENDING", 0),
        ):
            r = log(http, a["id"], state=state)
            assert r.status_code == 200, r.text
            items = r.json().get("deliveries", [])
            assert len(items) == count and {d["state"] for d in items} <= {state}
        # Envoy refuses an undeclared number in a query itself (a plain-text 400); over gRPC
        # the server answers INVALID_FILTER (below).
        assert log(http, a["id"], state=99).status_code == 400


def test_an_undeclared_state_number_over_grpc_is_invalid_filter(
    server: ServerThread, dealers: dict[str, dict[str, Any]]
) -> None:
    with server.channel() as channel:
        stub = dealer_service_pb2_grpc.DealerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.ListDealerDeliveries(
                pb.ListDealerDeliveriesRequest(dealer_id=dealers["A"]["id"], state=42),  # type: ignore[arg-type]
                metadata=auth(dealers["A"]["key"]),
            )
    error = rich_error(e.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FILTER")
    assert set(error.violations) == {"state"}


def test_another_dealers_log_is_not_found_to_a_dealer_key(
    proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    with client(proxy, dealers["A"]["key"]) as http:
        for other in (dealers["B"]["id"], "00000000-0000-4000-8000-000000000000"):
            assert error(log(http, other))[:2] == (404, "DEALER_NOT_FOUND")


def test_admin_and_ops_read_any_log_and_an_unknown_dealer_is_not_found(
    server: ServerThread, proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    for role in (Role.ADMIN, Role.OPS):
        with client(proxy, server.create_key(role)) as http:
            r = log(http, dealers["B"]["id"])
            assert r.status_code == 200, r.text
            assert [d["lead_id"] for d in r.json()["deliveries"]] == dealers["B"]["leads"]
            assert error(log(http, "no-such-dealer"))[:2] == (404, "DEALER_NOT_FOUND")


def test_bad_page_tokens_and_sizes_are_invalid_argument(
    server: ServerThread, proxy: EnvoyProcess, dealers: dict[str, dict[str, Any]]
) -> None:
    a = dealers["A"]
    with client(proxy, server.create_key(Role.ADMIN)) as admin:
        leads_token = admin.get("/api/leads", params={"page_size": 1}).json()["next_page_token"]
    assert leads_token  # a real token, of another list
    with client(proxy, a["key"]) as http:
        forged = [
            encode_token("dealer_deliveries", {"t": "2026-01-01T00:00:00", "i": "a\x00b"}),
            encode_token("dealer_deliveries", {"t": "99999-01-01T00:00:00", "i": a["id"]}),
            encode_token("dealer_deliveries", {"t": "2026-01-01T00:00:00", "i": 2**70}),
        ]
        for token in ("garbage", leads_token, "A" * 5000, *forged):
            assert error(log(http, a["id"], page_token=token)) == (
                400,
                "INVALID_PAGE_TOKEN",
                {"page_token"},
            )
        # A well-formed token past every row: an empty last page.
        oldest = encode_token("dealer_deliveries", {"t": "1970-01-02T00:00:00", "i": a["id"]})
        r = log(http, a["id"], page_token=oldest)
        assert r.status_code == 200 and r.json().get("deliveries", []) == [], r.text
        assert error(log(http, a["id"], page_size=501)) == (400, "INVALID_PAGE_SIZE", {"page_size"})
