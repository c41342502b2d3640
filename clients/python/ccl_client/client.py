"""The client: one channel, auth and deadline interceptors, typed stubs per service."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import grpc

from ccl.agent.v1 import agent_service_pb2_grpc
from ccl.campaign.v1 import campaign_service_pb2_grpc
from ccl.chat.v1 import chat_service_pb2_grpc
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2, lead_service_pb2_grpc
from ccl_client.errors import typed

DEFAULT_TIMEOUT_SECONDS = 10.0

_RETRY_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],  # every method
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "3s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


def channel_options(extra: list[tuple[str, Any]] | None = None) -> list[tuple[str, Any]]:
    """Retries on UNAVAILABLE (gRPC's service config) and keepalive, then the caller's own."""
    return [
        ("grpc.service_config", _RETRY_SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        ("grpc.keepalive_time_ms", 30_000),
        *(extra or []),
    ]


class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: tuple[tuple[str, str | bytes], ...] | None,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class _AuthAndDeadline(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc,type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc,type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc,type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc,type-arg]
):
    """Adds the API key to every call, and a deadline to unary-response calls without one
    (streams, such as a chat, run as long as the caller keeps them open)."""

    def __init__(self, api_key: str, timeout: float | None) -> None:
        self._metadata: list[tuple[str, str | bytes]] = (
            [("authorization", f"Bearer {api_key}")] if api_key else []
        )
        self._timeout = timeout

    def _details(self, details: Any, default_timeout: float | None) -> _CallDetails:
        metadata = (*tuple(details.metadata or ()), *self._metadata)
        timeout = details.timeout if details.timeout is not None else default_timeout
        return _CallDetails(
            details.method,
            timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details, self._timeout), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Iterator[Any]
    ) -> Any:
        return continuation(self._details(details, self._timeout), request_iterator)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        return continuation(self._details(details, None), request)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: Any, request_iterator: Iterator[Any]
    ) -> Any:
        return continuation(self._details(details, None), request_iterator)


class _TypedCall:
    """A stub's method whose failures raise typed errors (`ccl_client.errors`): calling it, and
    `with_call`. (`future` and streamed responses are plain gRPC.)"""

    def __init__(self, method: Any, prepare: Callable[[Any], Any] | None = None) -> None:
        self._method = method
        self._prepare = prepare

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._invoke(self._method, request, *args, **kwargs)

    def with_call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        return self._invoke(self._method.with_call, request, *args, **kwargs)

    def _invoke(self, call: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if self._prepare is not None:
            request = self._prepare(request)
        try:
            return call(request, *args, **kwargs)
        except grpc.RpcError as e:
            raise typed(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)


class _TypedStub:
    """A generated stub whose unary methods raise typed errors."""

    def __init__(self, stub: Any, prepare: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self._stub = stub
        self._prepare = prepare or {}

    def __getattr__(self, name: str) -> Any:
        return _TypedCall(getattr(self._stub, name), self._prepare.get(name))


def with_idempotency_key(
    request: lead_service_pb2.ProcessLeadRequest,
) -> lead_service_pb2.ProcessLeadRequest:
    """A ProcessLead request without an idempotency key gets a fresh one, so that the client's
    own retries (UNAVAILABLE) can never create the lead twice."""
    if request.idempotency_key:
        return request
    keyed = lead_service_pb2.ProcessLeadRequest()
    keyed.CopyFrom(request)
    keyed.idempotency_key = f"client-{uuid.uuid4()}"
    return keyed


class CclClient:
    """Typed stubs for the five services over one channel (plaintext or TLS). Failed calls raise
    `ccl_client.errors.CclError` subclasses carrying the reason and each field violation;
    `ProcessLead` requests get an idempotency key when they have none."""

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
        base = (
            grpc.secure_channel(target, credentials, opts)
            if credentials is not None
            else grpc.insecure_channel(target, opts)
        )
        self._base = base
        self.channel = grpc.intercept_channel(base, _AuthAndDeadline(api_key, timeout))
        self.leads = cast(
            lead_service_pb2_grpc.LeadServiceStub,
            _TypedStub(
                lead_service_pb2_grpc.LeadServiceStub(self.channel),
                {"ProcessLead": with_idempotency_key},
            ),
        )
        self.dealers = cast(
            dealer_service_pb2_grpc.DealerServiceStub,
            _TypedStub(dealer_service_pb2_grpc.DealerServiceStub(self.channel)),
        )
        self.campaigns = cast(
            campaign_service_pb2_grpc.CampaignServiceStub,
            _TypedStub(campaign_service_pb2_grpc.CampaignServiceStub(self.channel)),
        )
        self.agents = cast(
            agent_service_pb2_grpc.AgentServiceStub,
            _TypedStub(agent_service_pb2_grpc.AgentServiceStub(self.channel)),
        )
        self.chat = cast(
            chat_service_pb2_grpc.ChatServiceStub,
            _TypedStub(chat_service_pb2_grpc.ChatServiceStub(self.channel)),
        )

    def close(self) -> None:
        self._base.close()

    def __enter__(self) -> CclClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
