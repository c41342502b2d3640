"""The asyncio client: the same services, auth, deadlines, retries, idempotency keys and typed
errors as `CclClient`, over `grpc.aio`.

    from ccl_client.aio import AsyncCclClient
    async with AsyncCclClient("127.0.0.1:8080", api_key="ccl_…") as ccl:
        response = await ccl.leads.ProcessLead(request)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import grpc
import grpc.aio

from ccl.agent.v1 import agent_service_pb2_grpc
from ccl.campaign.v1 import campaign_service_pb2_grpc
from ccl.chat.v1 import chat_service_pb2_grpc
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2_grpc
from ccl_client.client import (
    DEFAULT_TIMEOUT_SECONDS,
    channel_options,
    with_idempotency_key,
)
from ccl_client.errors import typed


class _TypedAsyncCall:
    """An aio stub method: the key and a default deadline added, failures raised typed.
    (Streamed responses are plain gRPC.)"""

    def __init__(
        self,
        method: Any,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        prepare: Callable[[Any], Any] | None,
    ) -> None:
        self._method = method
        self._metadata = metadata
        self._timeout = timeout
        self._prepare = prepare

    async def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (gRPC's own deadline, as the stubs take it)
        metadata: tuple[tuple[str, str], ...] = (),
        **kwargs: Any,
    ) -> Any:
        if self._prepare is not None:
            request = self._prepare(request)
        try:
            return await self._method(
                request,
                timeout=timeout if timeout is not None else self._timeout,
                metadata=(*metadata, *self._metadata),
                **kwargs,
            )
        except grpc.RpcError as e:
            raise typed(e) from None


class _TypedAsyncStub:
    def __init__(
        self,
        stub: Any,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        prepare: dict[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._timeout = timeout
        self._prepare = prepare or {}

    def __getattr__(self, name: str) -> _TypedAsyncCall:
        method = getattr(self._stub, name)
        return _TypedAsyncCall(method, self._metadata, self._timeout, self._prepare.get(name))


class AsyncCclClient:
    """Typed aio stubs for the five services over one channel (plaintext or TLS)."""

    def __init__(
        self,
        target: str,
        api_key: str = "",
        *,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        credentials: grpc.ChannelCredentials | None = None,
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        opts = channel_options(options)
        self.channel = (
            grpc.aio.secure_channel(target, credentials, opts)
            if credentials is not None
            else grpc.aio.insecure_channel(target, opts)
        )
        md: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )

        def stub(cls: Any, **prepare: Callable[[Any], Any]) -> Any:
            return _TypedAsyncStub(cls(self.channel), md, timeout, prepare)

        self.leads = cast(
            lead_service_pb2_grpc.LeadServiceStub,
            stub(lead_service_pb2_grpc.LeadServiceStub, ProcessLead=with_idempotency_key),
        )
        self.dealers = cast(
            dealer_service_pb2_grpc.DealerServiceStub,
            stub(dealer_service_pb2_grpc.DealerServiceStub),
        )
        self.campaigns = cast(
            campaign_service_pb2_grpc.CampaignServiceStub,
            stub(campaign_service_pb2_grpc.CampaignServiceStub),
        )
        self.agents = cast(
            agent_service_pb2_grpc.AgentServiceStub, stub(agent_service_pb2_grpc.AgentServiceStub)
        )
        self.chat = cast(
            chat_service_pb2_grpc.ChatServiceStub, stub(chat_service_pb2_grpc.ChatServiceStub)
        )

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> AsyncCclClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
