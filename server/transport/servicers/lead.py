"""LeadService servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ccl.lead.v1 import lead_service_pb2 as pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.errors import UnimplementedError
from server.services.leads import LeadService
from server.transport import converters
from server.transport.context import Context, current_principal


class LeadServicer(lead_service_pb2_grpc.LeadServiceServicer):
    def __init__(self, leads: LeadService) -> None:
        self._leads = leads

    async def ProcessLead(
        self, request: pb.ProcessLeadRequest, context: Context
    ) -> pb.ProcessLeadResponse:
        result = await self._leads.process(
            current_principal(),
            request.idempotency_key,
            converters.lead_input(request.lead, request.HasField("lead")),
        )
        return converters.process_response(result)

    async def GetLead(self, request: pb.GetLeadRequest, context: Context) -> pb.GetLeadResponse:
        record = await self._leads.get(current_principal(), request.lead_id)
        return pb.GetLeadResponse(lead=converters.lead_message(record))

    async def ListLeads(
        self, request: pb.ListLeadsRequest, context: Context
    ) -> pb.ListLeadsResponse:
        page = await self._leads.list(
            current_principal(),
            converters.lead_filter(request),
            request.page_size,
            request.page_token,
        )
        return pb.ListLeadsResponse(
            leads=[converters.lead_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListLeadActivity(
        self, request: pb.ListLeadActivityRequest, context: Context
    ) -> pb.ListLeadActivityResponse:
        page = await self._leads.list_activity(
            current_principal(), request.lead_id, request.page_size, request.page_token
        )
        return pb.ListLeadActivityResponse(
            activities=[converters.activity_message(a) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def TrackVisitorEvent(
        self, request: pb.TrackVisitorEventRequest, context: Context
    ) -> pb.TrackVisitorEventResponse:
        raise UnimplementedError("visitor tracking (VisitorIdentifier) is not built yet")

    async def ReceiveDealerWebhook(
        self, request: pb.ReceiveDealerWebhookRequest, context: Context
    ) -> pb.ReceiveDealerWebhookResponse:
        raise UnimplementedError("the dealer webhook is not built yet")

    async def ImportLeads(
        self,
        request_iterator: AsyncIterator[pb.ImportLeadsRequest],
        context: Context,
    ) -> pb.ImportLeadsResponse:
        raise UnimplementedError("bulk import is not built yet")
