"""DealerService servicer."""

from __future__ import annotations

from ccl.dealer.v1 import dealer_service_pb2 as pb
from ccl.dealer.v1 import dealer_service_pb2_grpc
from server.services.dealers import DealerService
from server.transport import converters
from server.transport.context import Context


class DealerServicer(dealer_service_pb2_grpc.DealerServiceServicer):
    def __init__(self, dealers: DealerService) -> None:
        self._dealers = dealers

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
