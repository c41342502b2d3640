"""gRPC server bootstrap: servicers, interceptors, health (a status per service), reflection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # type: ignore[attr-defined]
from grpc_reflection.v1alpha import reflection

from ccl.agent.v1 import agent_service_pb2, agent_service_pb2_grpc
from ccl.campaign.v1 import campaign_service_pb2, campaign_service_pb2_grpc
from ccl.chat.v1 import chat_service_pb2, chat_service_pb2_grpc
from ccl.dealer.v1 import dealer_service_pb2, dealer_service_pb2_grpc
from ccl.lead.v1 import lead_service_pb2, lead_service_pb2_grpc
from server.agents.email_reengagement.campaigns import CampaignLifecycle
from server.agents.orchestrator import Orchestrator
from server.services.auth import ApiKeyService
from server.services.campaigns import (
    CampaignTemplateService,
    MailgunWebhookService,
    SuppressionService,
    UnsubscribeService,
)
from server.services.dealer_deliveries import DealerDeliveryService
from server.services.dealer_webhook import DealerWebhookService
from server.services.dealers import DealerService
from server.services.leads import LeadService
from server.services.stats import StatsService
from server.transport.interceptors import (
    AuthInterceptor,
    ErrorInterceptor,
    LoggingInterceptor,
    RequestInterceptor,
)
from server.transport.servicers.agent import AgentServicer
from server.transport.servicers.campaign import CampaignServicer
from server.transport.servicers.chat import ChatServicer
from server.transport.servicers.dealer import DealerServicer
from server.transport.servicers.lead import LeadServicer

SERVICE_NAMES = (
    lead_service_pb2.DESCRIPTOR.services_by_name["LeadService"].full_name,
    campaign_service_pb2.DESCRIPTOR.services_by_name["CampaignService"].full_name,
    agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
    chat_service_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    dealer_service_pb2.DESCRIPTOR.services_by_name["DealerService"].full_name,
)
# Services whose health is NOT_SERVING: part of their RPCs would answer UNIMPLEMENTED, so a
# caller that checks health before using them learns they cannot do their job. None today
# (ChatService's unbuilt RPCs are its whole surface and are documented as not built).
NOT_SERVING_SERVICES: frozenset[str] = frozenset()


class GrpcServer:
    """The running server: the grpc.aio server, its bound port and its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health: health_aio.HealthServicer):
        self.server = server
        self.port = port
        self.health = health

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            status = (
                health_pb2.HealthCheckResponse.NOT_SERVING
                if name in NOT_SERVING_SERVICES
                else health_pb2.HealthCheckResponse.SERVING
            )
            await self.health.set(name, status)

    async def stop(self, grace: float, drain_delay: float = 0.0) -> None:
        """Health to NOT_SERVING first, and for `drain_delay` seconds keep serving so load
        balancers see it and route elsewhere; then refuse new calls and give in-flight calls
        `grace` seconds to finish."""
        await self.health.enter_graceful_shutdown()
        if drain_delay > 0:
            await asyncio.sleep(drain_delay)
        await self.server.stop(grace)


@dataclass(frozen=True)
class ServerParts:
    """What the transport serves: the services it calls and the limits it applies. Handed in
    by the process owner (`server.main`), so the transport imports no application."""

    api_keys: ApiKeyService
    leads: LeadService
    orchestrator: Orchestrator
    dealer_webhook: DealerWebhookService
    dealers: DealerService
    dealer_deliveries: DealerDeliveryService
    stats: StatsService
    campaign_templates: CampaignTemplateService
    mailgun_webhook: MailgunWebhookService
    unsubscribe: UnsubscribeService
    suppressions: SuppressionService
    campaigns: CampaignLifecycle
    max_request_bytes: int
    request_message_timeout_seconds: float


def server_options(max_receive_bytes: int) -> list[tuple[str, int]]:
    """The gRPC server's channel options (also the benchmark's echo baseline's: bench/)."""
    return [
        ("grpc.max_receive_message_length", max_receive_bytes),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        # Off by default so a second server on a taken port fails instead of silently
        # sharing it; scale-out behind Envoy uses separate ports or processes.
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ]


def create_server(parts: ServerParts, host: str, port: int) -> GrpcServer:
    """Builds the server bound to host:port (0 picks a free port). Call `start()` to serve."""
    max_bytes = max(parts.max_request_bytes, 4 * 1024 * 1024)
    server = grpc.aio.server(
        interceptors=[
            LoggingInterceptor(),
            ErrorInterceptor(),
            AuthInterceptor(parts.api_keys),
            RequestInterceptor(parts.request_message_timeout_seconds),
        ],
        options=server_options(max_bytes),
    )
    lead_service_pb2_grpc.add_LeadServiceServicer_to_server(
        LeadServicer(parts.leads, parts.orchestrator, parts.dealer_webhook), server
    )
    dealer_service_pb2_grpc.add_DealerServiceServicer_to_server(
        DealerServicer(parts.dealers, parts.dealer_deliveries), server
    )
    campaign_service_pb2_grpc.add_CampaignServiceServicer_to_server(
        CampaignServicer(
            parts.campaign_templates,
            parts.mailgun_webhook,
            parts.unsubscribe,
            parts.suppressions,
            parts.campaigns,
        ),
        server,
    )
    agent_service_pb2_grpc.add_AgentServiceServicer_to_server(AgentServicer(parts.stats), server)
    chat_service_pb2_grpc.add_ChatServiceServicer_to_server(ChatServicer(), server)
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC server to {host}:{port}")
    return GrpcServer(server, bound, health)
