"""Which roles may call which RPC. Anything not listed here is refused (deny by default)."""

from __future__ import annotations

from server.domain.principal import Role

ADMIN, SERVICE, DEALER, OPS, AGENT = Role.ADMIN, Role.SERVICE, Role.DEALER, Role.OPS, Role.AGENT
# The website's submit-only key: it may send leads and visitor events and read nothing back.
INTAKE = Role.INTAKE

# Health and reflection are open to anyone (load balancers, grpcurl).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

# Verified by the handler itself (a provider's signature or a signed token), not by API key.
SIGNATURE_VERIFIED = frozenset(
    {
        "/ccl.campaign.v1.CampaignService/ReceiveMailgunEvent",
        "/ccl.campaign.v1.CampaignService/Unsubscribe",
        "/ccl.campaign.v1.CampaignService/GetUnsubscribePage",
    }
)

# RPCs of the contract that answer UNIMPLEMENTED (NOT_IMPLEMENTED) today: their work is not
# built (server/transport/servicers/chat.py). tools/openapi.py marks them.
NOT_BUILT = frozenset(
    {
        "/ccl.chat.v1.ChatService/Converse",
        "/ccl.chat.v1.ChatService/GetTranscript",
    }
)

ROLES: dict[str, frozenset[Role]] = {
    "/ccl.lead.v1.LeadService/ProcessLead": frozenset({ADMIN, SERVICE, DEALER, AGENT, INTAKE}),
    "/ccl.lead.v1.LeadService/GetLead": frozenset({ADMIN, SERVICE, DEALER, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/ListLeads": frozenset({ADMIN, SERVICE, DEALER, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/ListLeadActivity": frozenset({ADMIN, SERVICE, DEALER, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/ListLeadPackages": frozenset({ADMIN, SERVICE, DEALER, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/ListLeadDeliveries": frozenset({ADMIN, SERVICE, DEALER, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/RedeliverPackage": frozenset({ADMIN, OPS}),
    "/ccl.lead.v1.LeadService/RouteLead": frozenset({ADMIN, OPS, AGENT}),
    "/ccl.lead.v1.LeadService/TrackVisitorEvent": frozenset({ADMIN, SERVICE, AGENT, INTAKE}),
    # Dealers only: the body is verified with the calling dealer's signing secret.
    "/ccl.lead.v1.LeadService/ReceiveDealerWebhook": frozenset({DEALER}),
    "/ccl.lead.v1.LeadService/ImportLeads": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/BulkSend": frozenset({ADMIN, SERVICE, AGENT}),
    "/ccl.campaign.v1.CampaignService/CreateCampaign": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/GetCampaign": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/ListCampaigns": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/PauseCampaign": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/ResumeCampaign": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/CancelCampaign": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/CreateTemplate": frozenset({ADMIN, SERVICE}),
    "/ccl.campaign.v1.CampaignService/GetTemplate": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/ListTemplates": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/UpdateTemplate": frozenset({ADMIN, SERVICE}),
    # Renders (reads) only: nothing is stored or sent.
    "/ccl.campaign.v1.CampaignService/PreviewTemplate": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/ListSuppressions": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.campaign.v1.CampaignService/AddSuppression": frozenset({ADMIN, SERVICE}),
    # Lifting a suppression is an operator's decision, with a reason: admin keys only.
    "/ccl.campaign.v1.CampaignService/DeleteSuppression": frozenset({ADMIN}),
    "/ccl.agent.v1.AgentService/GetSystemStats": frozenset({ADMIN, SERVICE, OPS}),
    "/ccl.agent.v1.AgentService/ListAgentStatus": frozenset({ADMIN, SERVICE, OPS, AGENT}),
    "/ccl.dealer.v1.DealerService/CreateDealer": frozenset({ADMIN}),
    "/ccl.dealer.v1.DealerService/GetDealer": frozenset({ADMIN, OPS}),
    "/ccl.dealer.v1.DealerService/ListDealers": frozenset({ADMIN, OPS}),
    "/ccl.dealer.v1.DealerService/UpdateDealer": frozenset({ADMIN}),
    # A dealer key, for its own dealer only (checked by the service).
    "/ccl.dealer.v1.DealerService/TestDelivery": frozenset({ADMIN, DEALER}),
    "/ccl.dealer.v1.DealerService/ListDealerDeliveries": frozenset({ADMIN, OPS, DEALER}),
    "/ccl.chat.v1.ChatService/Converse": frozenset({ADMIN, SERVICE}),
    "/ccl.chat.v1.ChatService/GetTranscript": frozenset({ADMIN, SERVICE, OPS}),
}


def is_open(method: str) -> bool:
    return method.startswith(OPEN_PREFIXES) or method in SIGNATURE_VERIFIED
