"""CampaignService servicer: the EmailReengagement agent is not built yet, so every RPC
answers UNIMPLEMENTED (reason NOT_IMPLEMENTED) instead of pretending to work."""

from __future__ import annotations

from typing import Any, NoReturn

from ccl.campaign.v1 import campaign_service_pb2_grpc
from server.errors import UnimplementedError

_MESSAGE = "email campaigns (EmailReengagement) are not built yet"


class CampaignServicer(campaign_service_pb2_grpc.CampaignServiceServicer):
    async def BulkSend(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def CreateCampaign(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def GetCampaign(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def ListCampaigns(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def CreateTemplate(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def GetTemplate(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def ListTemplates(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def ReceiveMailgunEvent(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)

    async def Unsubscribe(self, request: Any, context: Any) -> NoReturn:
        raise UnimplementedError(_MESSAGE)
