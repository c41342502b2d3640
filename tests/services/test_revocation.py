"""Revocation takes effect at once in the process that revokes (SQLite and PostgreSQL): a key
revoked through `ApiKeyService`, or a dealer deactivated through `DealerService`, is refused
on its next use however long the key cache is; a change made by another process (the CLI) is
seen within the cache time. Through the real server over gRPC and through Envoy over REST."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import pytest
from google.protobuf import field_mask_pb2

from ccl.dealer.v1 import dealer_service_pb2, dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2 as lead_pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.app import Application
from server.domain.dealers import DealerInput
from server.domain.principal import Role
from server.errors import UnauthenticatedError
from server.services.auth import ApiKeyService
from server.services.dealers import DealerService
from server.storage.db import Database
from support.builders import dealer
from support.rpc import auth, rich_error
from support.stack import EnvoyProcess, ServerThread, make_settings

T = TypeVar("T")
LONG_CACHE = 3600.0  # long enough that only an invalidation can explain a refusal


class GatedDatabase:
    """Runs work on the real database but hands each result back only once `release` is set:
    an API key lookup still in flight while the key is revoked."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.looked_up = asyncio.Event()
        self.release = asyncio.Event()

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        result = await self._db.run(fn, *args, **kwargs)
        self.looked_up.set()
        await self.release.wait()
        return result


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refused(authenticate: Awaitable[object]) -> None:
    with pytest.raises(UnauthenticatedError) as e:
        await authenticate
    assert e.value.reason == "API_KEY_INVALID"


# --- the services, in this process ---------------------------------------------------


async def test_a_key_revoked_through_the_service_is_refused_at_once(
    application: Application,
) -> None:
    keys = ApiKeyService(application.db, cache_seconds=LONG_CACHE)
    revoked, kept = keys.create_sync(Role.OPS), keys.create_sync(Role.OPS)
    await keys.authenticate(revoked.api_key)
    await keys.authenticate(kept.api_key)
    keys.revoke_sync(revoked.key_id)
    await refused(keys.authenticate(revoked.api_key))
    assert (await keys.authenticate(kept.api_key)).key_id == kept.key_id


async def test_a_lookup_in_flight_when_its_key_is_revoked_is_not_cached(
    application: Application,
) -> None:
    gated = GatedDatabase(application.db)
    keys = ApiKeyService(gated, cache_seconds=LONG_CACHE)  # type: ignore[arg-type]
    key = keys.create_sync(Role.OPS)
    in_flight = asyncio.create_task(keys.authenticate(key.api_key))
    await asyncio.wait_for(gated.looked_up.wait(), 60)
    keys.revoke_sync(key.key_id)
    gated.release.set()
    # The call that began before the revocation may still pass; it must not be remembered.
    assert (await in_flight).key_id == key.key_id
    await refused(keys.authenticate(key.api_key))


async def test_a_dealer_deactivated_through_the_service_has_its_keys_refused_at_once(
    application: Application,
) -> None:
    keys = ApiKeyService(application.db, cache_seconds=LONG_CACHE)
    dealers = DealerService(application.db, on_deactivated=keys.forget_dealer)
    leaving, staying = dealer(), dealer()
    leaving_key = keys.create_sync(Role.DEALER, leaving)
    staying_key = keys.create_sync(Role.DEALER, staying)
    await keys.authenticate(leaving_key.api_key)
    await keys.authenticate(staying_key.api_key)

    await dealers.update(leaving, DealerInput(active=True), ["active"])
    assert (await keys.authenticate(leaving_key.api_key)).dealer_id == leaving
    await dealers.update(leaving, DealerInput(active=False), ["active"])
    await refused(keys.authenticate(leaving_key.api_key))
    assert (await keys.authenticate(staying_key.api_key)).dealer_id == staying


async def test_another_process_revoking_or_deactivating_is_seen_within_the_cache_time(
    application: Application,
) -> None:
    clock = FakeClock()
    keys = ApiKeyService(application.db, cache_seconds=30, clock=clock)
    other_process = ApiKeyService(application.db)  # e.g. `ccl keys revoke`
    other_dealers = DealerService(application.db)
    key = keys.create_sync(Role.OPS)
    dealer_id = dealer()
    dealer_key = keys.create_sync(Role.DEALER, dealer_id)
    await keys.authenticate(key.api_key)
    await keys.authenticate(dealer_key.api_key)

    other_process.revoke_sync(key.key_id)
    await other_dealers.update(dealer_id, DealerInput(active=False), ["active"])
    clock.now += 29
    assert (await keys.authenticate(key.api_key)).key_id == key.key_id
    assert (await keys.authenticate(dealer_key.api_key)).dealer_id == dealer_id
    clock.now += 2  # past the cache time: both checked again, both refused
    await refused(keys.authenticate(key.api_key))
    await refused(keys.authenticate(dealer_key.api_key))


# --- the real server: gRPC directly and REST through Envoy ----------------------------


@pytest.fixture(scope="module")
def cached_stack(application: Application) -> Iterator[ServerThread]:
    settings = make_settings(
        application.settings.database_url,
        data_keys=application.settings.data_keys,  # one cipher for the whole process
        api_key_cache_seconds=LONG_CACHE,
    )
    server = ServerThread(settings).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rest(
    cached_stack: ServerThread, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    proxy = EnvoyProcess([cached_stack.port], Path(tmp_path_factory.mktemp("envoy"))).start()
    try:
        with httpx.Client(base_url=proxy.base_url, timeout=30) as client:
            yield client
    finally:
        proxy.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def grpc_list_leads(stack: ServerThread, key: str) -> grpc.StatusCode:
    with stack.channel() as channel:
        leads = lead_service_pb2_grpc.LeadServiceStub(channel)
        try:
            leads.ListLeads(lead_pb.ListLeadsRequest(), metadata=auth(key), timeout=30)
        except grpc.RpcError as e:
            assert rich_error(e).reason == "API_KEY_INVALID"
            return e.code()
        return grpc.StatusCode.OK


def rest_list_leads(rest: httpx.Client, key: str) -> int:
    r = rest.get("/api/leads", headers=bearer(key))
    if r.status_code == 401:
        assert "API_KEY_INVALID" in r.text
    return r.status_code


def in_server(stack: ServerThread, work: Callable[[], T]) -> T:
    stack.app.db.db.connect(reuse_if_open=True)
    try:
        return work()
    finally:
        stack.app.db.db.close()


@pytest.mark.e2e
def test_revoked_key_is_refused_at_once_over_grpc_and_rest(
    cached_stack: ServerThread, rest: httpx.Client
) -> None:
    key = cached_stack.create_key(Role.OPS)
    assert grpc_list_leads(cached_stack, key) is grpc.StatusCode.OK
    assert rest_list_leads(rest, key) == 200
    in_server(cached_stack, lambda: cached_stack.app.api_keys.revoke_sync(key.split("_")[1]))
    assert grpc_list_leads(cached_stack, key) is grpc.StatusCode.UNAUTHENTICATED
    assert rest_list_leads(rest, key) == 401


@pytest.mark.e2e
def test_deactivated_dealer_key_is_refused_at_once_over_grpc_and_rest(
    cached_stack: ServerThread, rest: httpx.Client
) -> None:
    admin = cached_stack.create_key(Role.ADMIN)
    by_rest, by_grpc = (in_server(cached_stack, dealer) for _ in range(2))
    keys = {d: cached_stack.create_key(Role.DEALER, d) for d in (by_rest, by_grpc)}
    for key in keys.values():
        assert grpc_list_leads(cached_stack, key) is grpc.StatusCode.OK
        assert rest_list_leads(rest, key) == 200  # both now cached for an hour

    off = rest.patch(
        f"/api/dealers/{by_rest}",
        json={"active": False},
        params={"update_mask": "active"},
        headers=bearer(admin),
    )
    assert off.status_code == 200, off.text
    with cached_stack.channel() as channel:
        dealer_service_pb2_grpc.DealerServiceStub(channel).UpdateDealer(
            dealer_service_pb2.UpdateDealerRequest(
                dealer=dealer_service_pb2.Dealer(dealer_id=by_grpc, active=False),
                update_mask=field_mask_pb2.FieldMask(paths=["active"]),
            ),
            metadata=auth(admin),
            timeout=30,
        )
    for key in keys.values():
        assert grpc_list_leads(cached_stack, key) is grpc.StatusCode.UNAUTHENTICATED
        assert rest_list_leads(rest, key) == 401
