"""AgentService servicer."""

from __future__ import annotations

from ccl.agent.v1 import agent_service_pb2 as pb
from ccl.agent.v1 import agent_service_pb2_grpc
from server.services.stats import StatsService
from server.transport import converters
from server.transport.context import Context


class AgentServicer(agent_service_pb2_grpc.AgentServiceServicer):
    def __init__(self, stats: StatsService) -> None:
        self._stats = stats

    async def GetSystemStats(
        self, request: pb.GetSystemStatsRequest, context: Context
    ) -> pb.GetSystemStatsResponse:
        return converters.system_stats_response(await self._stats.system_stats())

    async def ListAgentStatus(
        self, request: pb.ListAgentStatusRequest, context: Context
    ) -> pb.ListAgentStatusResponse:
        return converters.agent_status_response(await self._stats.agent_statuses())
