"""AgentService servicer."""

from __future__ import annotations

import grpc

from ccl.agent.v1 import agent_service_pb2 as pb
from ccl.agent.v1 import agent_service_pb2_grpc
from server.services.stats import StatsService
from server.transport import converters


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    def __init__(self, stats: StatsService) -> None:
        self._stats = stats

    async def GetSystemStats(  # noqa: N802
        self, request: pb.GetSystemStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetSystemStatsResponse:
        return converters.system_stats_response(await self._stats.system_stats())

    async def ListAgentStatus(  # noqa: N802
        self, request: pb.ListAgentStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentStatusResponse:
        return converters.agent_status_response(await self._stats.agent_statuses())
