"""DealerService servicer."""

from __future__ import annotations

from ccl.dealer.v1 import dealer_service_pb2 as pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from ccl.lead.v1 import lead_pb2, lead_service_pb2
from server.services.dealer_deliveries import DealerDeliveryService
from server.services.dealers import DealerService
from server.transport import converters
from server.transport.context import Context, current_principal

_PACKAGE_FORMAT = {
    "json": lead_service_pb2.PACKAGE_FORMAT_JSON,
    "adf": lead_service_pb2.PACKAGE_FORMAT_ADF,
}


class DealerServicer(dealer_service_pb2_grpc.DealerServiceServicer):
    def __init__(self, dealers: DealerService, deliveries: DealerDeliveryService) -> None:
        self._dealers = dealers
        self._deliveries = deliveries

    async def CreateDealer(
        self, request: pb.CreateDealerRequest, context: Context
    ) -> pb.CreateDealerResponse:
        record, generated = await self._dealers.create(converters.dealer_input(request.dealer))
        return pb.CreateDealerResponse(
            dealer=converters.dealer_message(record), generated_signing_secret=generated
        )

    async def GetDealer(
        self, request: pb.GetDealerRequest, context: Context
    ) -> pb.GetDealerResponse:
        return pb.GetDealerResponse(
            dealer=converters.dealer_message(await self._dealers.get(request.dealer_id))
        )

    async def ListDealers(
        self, request: pb.ListDealersRequest, context: Context
    ) -> pb.ListDealersResponse:
        page = await self._dealers.list_dealers(request.page_size, request.page_token)
        return pb.ListDealersResponse(
            dealers=[converters.dealer_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateDealer(
        self, request: pb.UpdateDealerRequest, context: Context
    ) -> pb.UpdateDealerResponse:
        record = await self._dealers.update(
            request.dealer.dealer_id,
            converters.dealer_input(request.dealer),
            list(request.update_mask.paths),
        )
        return pb.UpdateDealerResponse(dealer=converters.dealer_message(record))

    async def TestDelivery(
        self, request: pb.TestDeliveryRequest, context: Context
    ) -> pb.TestDeliveryResponse:
        r = await self._deliveries.test_delivery(current_principal(), request.dealer_id)
        return pb.TestDeliveryResponse(
            delivered=r.delivered,
            http_status=r.http_status,
            error=r.error,
            response_excerpt=r.response_excerpt,
            latency_ms=r.latency_ms,
            webhook_id=r.webhook_id,
            format=_PACKAGE_FORMAT[r.format],
            retryable=r.retryable,
        )

    async def ListDealerDeliveries(
        self, request: pb.ListDealerDeliveriesRequest, context: Context
    ) -> pb.ListDealerDeliveriesResponse:
        state = converters.request_enum(
            lead_pb2.DeliveryState, "DELIVERY_STATE_", request.state, "state", "INVALID_FILTER"
        )
        page = await self._deliveries.list_deliveries(
            current_principal(), request.dealer_id, state, request.page_size, request.page_token
        )
        return pb.ListDealerDeliveriesResponse(
            deliveries=[converters.delivery_message(v) for v in page.items],
            next_page_token=page.next_page_token,
        )
