"""LeadService servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ccl.lead.v1 import lead_service_pb2 as pb
from ccl.lead.v1 import lead_service_pb2_grpc
from server.agents.orchestrator import ImportRecord, Orchestrator
from server.domain.validation import normalize_ip
from server.services.dealer_webhook import DealerWebhookService
from server.services.leads import LeadService
from server.transport import converters
from server.transport.context import Context, call_metadata, current_principal


def client_ip(context: Context) -> str:
    """The caller's IP, normalised: Envoy's trusted external address, else the peer (direct
    gRPC); "" when that is not an IP address (it is then simply unknown, not a caller error)."""
    md = call_metadata(context)
    address = md.get("x-envoy-external-address", "")
    if not address:
        peer = context.peer() or ""  # "ipv4:1.2.3.4:5678" or "ipv6:[::1]:5678"
        kind, _, rest = peer.partition(":")
        if kind in ("ipv4", "ipv6"):
            address = rest.rsplit(":", 1)[0].strip("[]")
    try:
        return normalize_ip(address)
    except ValueError:
        return ""


def privacy_opt_out(context: Context) -> bool:
    """Global Privacy Control (`Sec-GPC: 1`) or Do-Not-Track (`DNT: 1`)."""
    md = call_metadata(context)
    return md.get("sec-gpc", "").strip() == "1" or md.get("dnt", "").strip() == "1"


class LeadServicer(lead_service_pb2_grpc.LeadServiceServicer):
    def __init__(
        self, leads: LeadService, orchestrator: Orchestrator, webhook: DealerWebhookService
    ) -> None:
        self._leads = leads
        self._orchestrator = orchestrator
        self._webhook = webhook

    async def ProcessLead(
        self, request: pb.ProcessLeadRequest, context: Context
    ) -> pb.ProcessLeadResponse:
        result = await self._orchestrator.process(
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
        page = await self._leads.list_leads(
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

    async def ListLeadPackages(
        self, request: pb.ListLeadPackagesRequest, context: Context
    ) -> pb.ListLeadPackagesResponse:
        packages = await self._leads.packages(current_principal(), request.lead_id)
        return pb.ListLeadPackagesResponse(
            packages=[converters.package_message(p) for p in packages]
        )

    async def ListLeadDeliveries(
        self, request: pb.ListLeadDeliveriesRequest, context: Context
    ) -> pb.ListLeadDeliveriesResponse:
        views = await self._leads.deliveries(current_principal(), request.lead_id)
        return pb.ListLeadDeliveriesResponse(
            deliveries=[converters.delivery_message(v) for v in views]
        )

    async def RedeliverPackage(
        self, request: pb.RedeliverPackageRequest, context: Context
    ) -> pb.RedeliverPackageResponse:
        view = await self._leads.redeliver(current_principal(), request.delivery_id)
        return pb.RedeliverPackageResponse(delivery=converters.delivery_message(view))

    async def RouteLead(
        self, request: pb.RouteLeadRequest, context: Context
    ) -> pb.RouteLeadResponse:
        record = await self._orchestrator.route(current_principal(), request.lead_id)
        return pb.RouteLeadResponse(lead=converters.lead_message(record))

    async def TrackVisitorEvent(
        self, request: pb.TrackVisitorEventRequest, context: Context
    ) -> pb.TrackVisitorEventResponse:
        result = await self._leads.track(
            converters.visitor_event(request, client_ip(context)), privacy_opt_out(context)
        )
        return pb.TrackVisitorEventResponse(
            visitor_id=result.visitor_id,
            identity_id=result.identity_id,
            returning_visitor=result.returning_visitor,
            privacy_opt_out=result.privacy_opt_out,
        )

    async def ReceiveDealerWebhook(
        self, request: pb.ReceiveDealerWebhookRequest, context: Context
    ) -> pb.ReceiveDealerWebhookResponse:
        md = call_metadata(context)
        results = await self._webhook.receive(
            current_principal(),
            request.body.data,
            md.get("x-ccl-timestamp", ""),
            md.get("x-ccl-signature", ""),
            headers=md,  # webhook-id, webhook-timestamp, webhook-signature (Standard Webhooks)
        )
        return pb.ReceiveDealerWebhookResponse(
            results=[converters.dealer_event_result(r) for r in results]
        )

    async def ImportLeads(
        self, request_iterator: AsyncIterator[pb.ImportLeadsRequest], context: Context
    ) -> pb.ImportLeadsResponse:
        async def records() -> AsyncIterator[ImportRecord]:
            async for message in request_iterator:
                yield converters.import_record(message)

        results = await self._orchestrator.import_leads(current_principal(), records())
        return converters.import_response(results)
