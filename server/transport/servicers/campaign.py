"""CampaignService servicer: campaigns (the EmailReengagement agent's lifecycle), templates,
the Mailgun webhook, unsubscribe and suppressions."""

from __future__ import annotations

from google.api import httpbody_pb2  # type: ignore[import-untyped]

from ccl.campaign.v1 import campaign_service_pb2 as pb
from ccl.campaign.v1 import campaign_service_pb2_grpc
from server.agents.email_reengagement.campaigns import CampaignLifecycle
from server.services.campaigns import (
    CampaignTemplateService,
    MailgunWebhookService,
    SuppressionService,
    UnsubscribeService,
)
from server.transport import converters
from server.transport.context import Context, current_principal


class CampaignServicer(campaign_service_pb2_grpc.CampaignServiceServicer):
    def __init__(
        self,
        templates: CampaignTemplateService,
        mailgun: MailgunWebhookService,
        unsubscribe: UnsubscribeService,
        suppressions: SuppressionService,
        campaigns: CampaignLifecycle,
    ) -> None:
        self._campaigns = campaigns
        self._templates = templates
        self._mailgun = mailgun
        self._unsubscribe = unsubscribe
        self._suppressions = suppressions

    async def BulkSend(self, request: pb.BulkSendRequest, context: Context) -> pb.BulkSendResponse:
        outcome = await self._campaigns.bulk_send(
            idempotency_key=request.idempotency_key,
            scope=current_principal().scope,
            campaign_id=request.campaign_id,
            draft=(
                converters.campaign_draft(request.campaign)
                if request.HasField("campaign")
                else None
            ),
            dry_run=request.dry_run,
        )
        return converters.bulk_send_response(outcome)

    async def CreateCampaign(
        self, request: pb.CreateCampaignRequest, context: Context
    ) -> pb.CreateCampaignResponse:
        view = await self._campaigns.create(converters.campaign_draft(request.campaign))
        return pb.CreateCampaignResponse(campaign=converters.campaign_message(view))

    async def GetCampaign(
        self, request: pb.GetCampaignRequest, context: Context
    ) -> pb.GetCampaignResponse:
        view = await self._campaigns.get(request.campaign_id)
        return pb.GetCampaignResponse(campaign=converters.campaign_message(view))

    async def ListCampaigns(
        self, request: pb.ListCampaignsRequest, context: Context
    ) -> pb.ListCampaignsResponse:
        page = await self._campaigns.list_campaigns(request.page_size, request.page_token)
        return pb.ListCampaignsResponse(
            campaigns=[converters.campaign_message(v) for v in page.items],
            next_page_token=page.next_page_token,
        )

    async def PauseCampaign(
        self, request: pb.PauseCampaignRequest, context: Context
    ) -> pb.PauseCampaignResponse:
        view = await self._campaigns.pause(request.campaign_id)
        return pb.PauseCampaignResponse(campaign=converters.campaign_message(view))

    async def ResumeCampaign(
        self, request: pb.ResumeCampaignRequest, context: Context
    ) -> pb.ResumeCampaignResponse:
        view = await self._campaigns.resume(request.campaign_id)
        return pb.ResumeCampaignResponse(campaign=converters.campaign_message(view))

    async def CancelCampaign(
        self, request: pb.CancelCampaignRequest, context: Context
    ) -> pb.CancelCampaignResponse:
        view = await self._campaigns.cancel(request.campaign_id)
        return pb.CancelCampaignResponse(campaign=converters.campaign_message(view))

    async def CreateTemplate(
        self, request: pb.CreateTemplateRequest, context: Context
    ) -> pb.CreateTemplateResponse:
        record = await self._templates.create(converters.template_spec(request.template))
        return pb.CreateTemplateResponse(template=converters.template_message(record))

    async def GetTemplate(
        self, request: pb.GetTemplateRequest, context: Context
    ) -> pb.GetTemplateResponse:
        record = await self._templates.get(request.template_id, request.version)
        return pb.GetTemplateResponse(template=converters.template_message(record))

    async def ListTemplates(
        self, request: pb.ListTemplatesRequest, context: Context
    ) -> pb.ListTemplatesResponse:
        page = await self._templates.list_templates(request.page_size, request.page_token)
        return pb.ListTemplatesResponse(
            templates=[converters.template_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateTemplate(
        self, request: pb.UpdateTemplateRequest, context: Context
    ) -> pb.UpdateTemplateResponse:
        record = await self._templates.update(
            request.template.template_id,
            converters.template_spec(request.template),
            list(request.update_mask.paths),
        )
        return pb.UpdateTemplateResponse(template=converters.template_message(record))

    async def PreviewTemplate(
        self, request: pb.PreviewTemplateRequest, context: Context
    ) -> pb.PreviewTemplateResponse:
        preview = await self._templates.preview(
            template_id=request.template_id,
            version=request.version,
            inline=(
                converters.template_spec(request.template) if request.HasField("template") else None
            ),
            lead_id=request.lead_id,
        )
        return pb.PreviewTemplateResponse(
            subject=preview.email.subject,
            html_body=preview.email.html,
            text_body=preview.email.text,
            template_version=preview.template_version,
        )

    async def ReceiveMailgunEvent(
        self, request: pb.ReceiveMailgunEventRequest, context: Context
    ) -> pb.ReceiveMailgunEventResponse:
        applied = await self._mailgun.receive(request.body.data)
        return pb.ReceiveMailgunEventResponse(applied=applied)

    async def Unsubscribe(
        self, request: pb.UnsubscribeRequest, context: Context
    ) -> pb.UnsubscribeResponse:
        return pb.UnsubscribeResponse(
            unsubscribed=await self._unsubscribe.unsubscribe(request.token)
        )

    async def GetUnsubscribePage(
        self, request: pb.GetUnsubscribePageRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        page = await self._unsubscribe.page(request.token)
        return httpbody_pb2.HttpBody(content_type="text/html; charset=utf-8", data=page.encode())

    async def ListSuppressions(
        self, request: pb.ListSuppressionsRequest, context: Context
    ) -> pb.ListSuppressionsResponse:
        page = await self._suppressions.list_suppressions(request.page_size, request.page_token)
        return pb.ListSuppressionsResponse(
            suppressions=[converters.suppression_message(r) for r in page.items],
            next_page_token=page.next_page_token,
        )

    async def AddSuppression(
        self, request: pb.AddSuppressionRequest, context: Context
    ) -> pb.AddSuppressionResponse:
        record, created = await self._suppressions.add(request.email)
        return pb.AddSuppressionResponse(
            suppression=converters.suppression_message(record), created=created
        )

    async def DeleteSuppression(
        self, request: pb.DeleteSuppressionRequest, context: Context
    ) -> pb.DeleteSuppressionResponse:
        record = await self._suppressions.delete(request.suppression_id, request.reason)
        return pb.DeleteSuppressionResponse(suppression=converters.suppression_message(record))
