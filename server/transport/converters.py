"""Conversions between protobuf messages and domain types. No business rules here."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from ccl.agent.v1 import agent_service_pb2 as agent_pb
from ccl.campaign.v1 import campaign_service_pb2 as campaign_pb
from ccl.dealer.v1 import dealer_service_pb2 as dealer_pb
from ccl.lead.v1 import lead_pb2, lead_service_pb2
from server.agents.email_reengagement.campaigns import (
    BulkSendOutcome,
    CampaignDraft,
    CampaignView,
)
from server.agents.orchestrator import ImportRecord, ImportRecordResult
from server.agents.visitor_identifier import VisitorEventInput
from server.domain import leads as d
from server.domain.campaigns import Audience, DripStep
from server.domain.dealers import DealerInput, DealerRecord, EndpointCredentials
from server.errors import FieldViolation, InvalidArgumentError
from server.services import stats
from server.services.dealer_webhook import EventResult, EventStatus
from server.storage.campaigns import MessageCounts, SuppressionRecord, TemplateRecord
from server.storage.deliveries import DeliveryView
from server.storage.packages import PackageView
from server.transport.text import nul_field

if TYPE_CHECKING:  # jinja2 loads with the templates module: only when a template is used
    from server.domain.templates import TemplateSpec


def to_timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value)
    return ts


def from_timestamp(message: object, field: str, path: str = "") -> dt.datetime | None:
    """A naive UTC datetime for a set Timestamp field, else None; INVALID_ARGUMENT (naming
    `path`) for a timestamp outside years 1 to 9999."""
    if not message.HasField(field):  # type: ignore[attr-defined]
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, field)
    try:
        return ts.ToDatetime(tzinfo=dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError) as e:
        raise InvalidArgumentError(
            "a timestamp is out of range",
            reason="INVALID_TIMESTAMP",
            violations=[FieldViolation(path or field, "is not a valid timestamp")],
        ) from e


def request_enum(
    enum_type: EnumTypeWrapper, prefix: str, number: int, path: str, reason: str
) -> str:
    """The lower-case name, without `prefix`, of an enum value in a request; "" for 0 (not set).

    Proto3 enums are open: any int32 arrives on the wire. A number the enum does not define is
    INVALID_ARGUMENT (`reason`, the RPC's own for bad input) with a violation naming `path`."""
    if number == 0:
        return ""
    try:
        name: str = enum_type.Name(number)
    except ValueError:
        raise InvalidArgumentError(
            f"{path} is not a known value",
            reason=reason,
            violations=[
                FieldViolation(path, f"{number} is not a {enum_type.DESCRIPTOR.name} value")
            ],
        ) from None
    return name.removeprefix(prefix).lower()


# --- leads: requests ------------------------------------------------------------------


def lead_input(message: lead_pb2.LeadInput, present: bool = True) -> d.LeadInput | None:
    if not present:
        return None
    a, v, c = message.address, message.vehicle, message.consent
    return d.LeadInput(
        first_name=message.first_name,
        last_name=message.last_name,
        email=message.email,
        phone=message.phone,
        date_of_birth=message.date_of_birth,
        address=d.AddressInput(
            street=a.street, street2=a.street2, city=a.city, state=a.state, zip_code=a.zip_code
        )
        if message.HasField("address")
        else None,
        monthly_income_cents=message.monthly_income_cents,
        down_payment_cents=message.down_payment_cents,
        vehicle=d.VehicleInput(
            year=v.year,
            make=v.make,
            model=v.model,
            trim=v.trim,
            vin=v.vin,
            price_cents=v.price_cents,
        )
        if message.HasField("vehicle")
        else None,
        consent=d.ConsentInput(
            tcpa=c.tcpa,
            fcra_soft_pull=c.fcra_soft_pull,
            consent_text=c.consent_text,
            ip_address=c.ip_address,
            user_agent=c.user_agent,
            page_url=c.page_url,
            certificate_id=c.certificate_id,
            consented_at=from_timestamp(c, "consented_time", "lead.consent.consented_time"),
        )
        if message.HasField("consent")
        else None,
        source=message.source,
        visitor_id=message.visitor_id,
        employment_status=message.employment_status,
        months_employed=message.months_employed,
        months_at_address=message.months_at_address,
        trade_in=d.TradeInInput(
            year=message.trade_in.year,
            make=message.trade_in.make,
            model=message.trade_in.model,
            mileage=message.trade_in.mileage,
        )
        if message.HasField("trade_in")
        else None,
        purchase_timeframe=request_enum(
            lead_pb2.PurchaseTimeframe,
            "PURCHASE_TIMEFRAME_",
            message.purchase_timeframe,
            "lead.purchase_timeframe",
            "INVALID_LEAD",
        ),
        vehicle_status=request_enum(
            lead_pb2.VehicleStatus,
            "VEHICLE_STATUS_",
            message.vehicle_status,
            "lead.vehicle_status",
            "INVALID_LEAD",
        ),
    )


def lead_filter(request: lead_service_pb2.ListLeadsRequest) -> d.LeadFilter:
    status = request_enum(
        lead_pb2.LeadStatus, "LEAD_STATUS_", request.status, "status", "INVALID_FILTER"
    )
    return d.LeadFilter(
        status=d.LeadStatus(status) if status else None,
        dealer_id=request.dealer_id,
        created_after=from_timestamp(request, "created_after"),
        created_before=from_timestamp(request, "created_before"),
        source=request.source,
    )


# --- leads: responses -----------------------------------------------------------------


def _enum(enum_type: Any, prefix: str, value: str) -> Any:
    """The proto enum number named PREFIX + value (0, UNSPECIFIED, for an empty value)."""
    if not value:
        return 0
    return enum_type.Value(f"{prefix}{value.upper()}")


def lead_message(record: d.LeadRecord) -> lead_pb2.Lead:
    a = record.applicant
    message = lead_pb2.Lead(
        lead_id=record.lead_id,
        status=_enum(lead_pb2.LeadStatus, "LEAD_STATUS_", record.status.value),
        outcome=_enum(lead_pb2.LeadOutcome, "LEAD_OUTCOME_", record.outcome.value),
        applicant=lead_pb2.LeadInput(
            first_name=a.first_name,
            last_name=a.last_name,
            email=a.email,
            phone=a.phone,
            date_of_birth=a.date_of_birth,
            monthly_income_cents=a.monthly_income_cents,
            down_payment_cents=a.down_payment_cents,
            source=a.source,
            visitor_id=a.visitor_id,
            employment_status=a.employment_status,
            months_employed=a.months_employed,
            months_at_address=a.months_at_address,
        ),
        create_time=to_timestamp(record.created_at),
        update_time=to_timestamp(record.updated_at),
        identity_id=record.identity_id,
        duplicate_of_lead_id=record.duplicate_of_lead_id,
        score=record.score,
        dealer_id=record.dealer_id,
        delivery_state=_enum(lead_pb2.DeliveryState, "DELIVERY_STATE_", record.delivery_state),
        source_dealer_id=record.source_dealer_id,
        reason=record.reason,
    )
    if a.address is not None:
        message.applicant.address.CopyFrom(
            lead_pb2.Address(
                street=a.address.street,
                street2=a.address.street2,
                city=a.address.city,
                state=a.address.state,
                zip_code=a.address.zip_code,
            )
        )
    if a.vehicle is not None and (a.vehicle.year or a.vehicle.make or a.vehicle.model):
        message.applicant.vehicle.CopyFrom(
            lead_pb2.Vehicle(
                year=a.vehicle.year,
                make=a.vehicle.make,
                model=a.vehicle.model,
                trim=a.vehicle.trim,
                vin=a.vehicle.vin,
                price_cents=a.vehicle.price_cents,
            )
        )
    if a.consent is not None:
        c = a.consent
        message.applicant.consent.CopyFrom(
            lead_pb2.Consent(
                tcpa=c.tcpa,
                fcra_soft_pull=c.fcra_soft_pull,
                consent_text=c.consent_text,
                ip_address=c.ip_address,
                user_agent=c.user_agent,
                page_url=c.page_url,
                certificate_id=c.certificate_id,
                consented_time=to_timestamp(c.consented_at),
            )
        )
    if record.credit is not None:
        cr = record.credit
        message.credit.CopyFrom(
            lead_pb2.CreditResult(
                decision=_enum(lead_pb2.CreditDecision, "CREDIT_DECISION_", cr.decision),
                source=_enum(lead_pb2.CreditSource, "CREDIT_SOURCE_", cr.source),
                tier=cr.tier,
                score_band=cr.score_band,
                max_payment_cents=cr.max_payment_cents,
                max_amount_cents=cr.max_amount_cents,
                reference_id=cr.reference_id,
                check_time=to_timestamp(cr.checked_at),
            )
        )
    return message


def process_response(result: d.ProcessResult) -> lead_service_pb2.ProcessLeadResponse:
    return lead_service_pb2.ProcessLeadResponse(
        lead=lead_message(result.lead),
        outcome=_enum(lead_pb2.LeadOutcome, "LEAD_OUTCOME_", result.outcome.value),
        idempotent_replay=result.idempotent_replay,
        returning_applicant=result.returning_applicant,
        identity=lead_service_pb2.IdentityResult(
            identity_id=result.identity.identity_id,
            new_identity=result.identity.new_identity,
            matched_by=result.identity.matched_by,
            visitor_id=result.identity.visitor_id,
        ),
    )


def lead_input_from_json(payload: Any) -> d.LeadInput:
    """A LeadInput from its JSON form (webhook events); ValueError when it is not one."""
    if not isinstance(payload, dict):
        raise ValueError("a lead must be a JSON object")
    try:
        message = json_format.ParseDict(payload, lead_pb2.LeadInput(), ignore_unknown_fields=False)
    except (json_format.ParseError, RecursionError) as e:
        raise ValueError("not a LeadInput") from e
    if nul_field(message) is not None:
        raise ValueError("a lead field contains a NUL character")
    lead = lead_input(message)
    assert lead is not None
    return lead


def import_record(message: lead_service_pb2.ImportLeadsRequest) -> ImportRecord:
    return ImportRecord(
        idempotency_key=message.idempotency_key,
        lead=lead_input(message.lead, message.HasField("lead")),
        record_ref=message.record_ref,
    )


def import_response(results: list[ImportRecordResult]) -> lead_service_pb2.ImportLeadsResponse:
    counts = {o: 0 for o in d.LeadOutcome}
    for r in results:
        counts[r.outcome] += 1
    return lead_service_pb2.ImportLeadsResponse(
        results=[
            lead_service_pb2.ImportLeadResult(
                record_ref=r.record_ref,
                outcome=_enum(lead_pb2.LeadOutcome, "LEAD_OUTCOME_", r.outcome.value),
                lead_id=r.lead_id,
                reason=r.reason,
                idempotent_replay=r.replay,
            )
            for r in results
        ],
        received_count=len(results),
        accepted_count=counts[d.LeadOutcome.ACCEPTED],
        duplicate_count=counts[d.LeadOutcome.DUPLICATE],
        rejected_count=counts[d.LeadOutcome.REJECTED],
    )


# Every result the dealer webhook gives; EVENT_RESULT_STATUS_DUPLICATE (deprecated) is never sent.
_EVENT_RESULT_STATUS = {
    EventStatus.ACCEPTED: lead_service_pb2.EVENT_RESULT_STATUS_ACCEPTED,
    EventStatus.ALREADY_RECEIVED: lead_service_pb2.EVENT_RESULT_STATUS_ALREADY_RECEIVED,
    EventStatus.DUPLICATE_CONSUMER: lead_service_pb2.EVENT_RESULT_STATUS_DUPLICATE_CONSUMER,
    EventStatus.REJECTED: lead_service_pb2.EVENT_RESULT_STATUS_REJECTED,
}


def dealer_event_result(r: EventResult) -> lead_service_pb2.DealerEventResult:
    """One dealer webhook event's result."""
    return lead_service_pb2.DealerEventResult(
        event_id=r.event_id,
        status=_EVENT_RESULT_STATUS[r.status],
        reason=r.reason,
        lead_id=r.lead_id,
    )


def package_message(p: PackageView) -> lead_service_pb2.LeadPackage:
    return lead_service_pb2.LeadPackage(
        package_id=p.package_id,
        lead_id=p.lead_id,
        dealer_id=p.dealer_id,
        format=_enum(lead_service_pb2.PackageFormat, "PACKAGE_FORMAT_", p.format),
        content_type=p.content_type,
        body=p.body,
        create_time=to_timestamp(p.created_at),
    )


def delivery_message(v: DeliveryView) -> lead_service_pb2.Delivery:
    return lead_service_pb2.Delivery(
        delivery_id=v.delivery_id,
        event_id=v.event_id,
        lead_id=v.lead_id,
        dealer_id=v.dealer_id,
        package_id=v.package_id,
        state=_enum(lead_pb2.DeliveryState, "DELIVERY_STATE_", v.state),
        attempt_count=v.attempts,
        next_attempt_time=to_timestamp(v.next_attempt_at),
        deliver_time=to_timestamp(v.delivered_at),
        last_error=v.last_error,
        attempts=[
            lead_service_pb2.DeliveryAttempt(
                attempt_time=to_timestamp(at), status_code=code, error=error, duration_ms=ms
            )
            for at, code, error, ms in v.attempt_log
        ],
    )


def visitor_event(
    request: lead_service_pb2.TrackVisitorEventRequest, ip_address: str
) -> VisitorEventInput:
    return VisitorEventInput(
        anonymous_id=request.anonymous_id,
        event_type=request_enum(
            lead_service_pb2.VisitorEventType,
            "VISITOR_EVENT_TYPE_",
            request.event_type,
            "event_type",
            "INVALID_VISITOR_EVENT",
        ),
        page_url=request.page.url,
        page_path=request.page.path,
        referrer=request.page.referrer,
        page_title=request.page.title,
        utm_source=request.campaign.source,
        utm_medium=request.campaign.medium,
        utm_campaign=request.campaign.name,
        utm_term=request.campaign.term,
        utm_content=request.campaign.content,
        user_agent=request.user_agent,
        ip_address=request.ip_address or ip_address,
        client_time=from_timestamp(request, "client_time"),
        sent_time=from_timestamp(request, "sent_time"),
        email=request.email,
        phone=request.phone,
        step=request.step,
        event_id=request.event_id,
    )


# --- dealers --------------------------------------------------------------------------


def dealer_input(message: dealer_pb.Dealer) -> DealerInput:
    """Fields with presence that were not sent keep the domain defaults."""
    fmt = request_enum(
        dealer_pb.DeliveryFormat,
        "DELIVERY_FORMAT_",
        message.delivery_format,
        "dealer.delivery_format",
        "INVALID_DEALER",
    )
    defaults = DealerInput()
    return DealerInput(
        name=message.name,
        states=list(message.states),
        zip_prefixes=list(message.zip_prefixes),
        accepted_tiers=list(message.accepted_tiers),
        daily_cap=message.daily_cap if message.HasField("daily_cap") else defaults.daily_cap,
        priority=message.priority if message.HasField("priority") else defaults.priority,
        weight=message.weight if message.HasField("weight") else defaults.weight,
        endpoint_url=message.endpoint_url,
        delivery_format=fmt or "json",
        signing_secret=message.signing_secret,
        active=message.active if message.HasField("active") else defaults.active,
        contact_email=message.contact_email,
        contact_phone=message.contact_phone,
        endpoint_credentials=_endpoint_credentials(message),
        delivery_channel=request_enum(
            dealer_pb.DeliveryChannel,
            "DELIVERY_CHANNEL_",
            message.delivery_channel,
            "dealer.delivery_channel",
            "INVALID_DEALER",
        )
        or "https",
        intake_email=message.intake_email,
    )


def _endpoint_credentials(message: dealer_pb.Dealer) -> EndpointCredentials | None:
    """The dealer's `endpoint_auth` as credentials; None when absent or with no method set
    (which clears them on update)."""
    if not message.HasField("endpoint_auth"):
        return None
    auth = message.endpoint_auth
    method = auth.WhichOneof("method")
    if method == "basic":
        return EndpointCredentials(
            kind="basic", username=auth.basic.username, password=auth.basic.password
        )
    if method == "header":
        return EndpointCredentials(kind="header", name=auth.header.name, value=auth.header.value)
    return None


def dealer_message(r: DealerRecord) -> dealer_pb.Dealer:
    """A dealer as returned: never its signing secret nor its endpoint credentials (only
    their kind and, for a header, its name)."""
    return dealer_pb.Dealer(
        dealer_id=r.dealer_id,
        name=r.name,
        states=r.states,
        zip_prefixes=r.zip_prefixes,
        accepted_tiers=r.accepted_tiers,
        daily_cap=r.daily_cap,
        priority=r.priority,
        weight=r.weight,
        endpoint_url=r.endpoint_url,
        delivery_format=_enum(dealer_pb.DeliveryFormat, "DELIVERY_FORMAT_", r.delivery_format),
        signing_secret_set=r.signing_secret_set,
        active=r.active,
        create_time=to_timestamp(r.created_at),
        update_time=to_timestamp(r.updated_at),
        contact_email=r.contact_email,
        contact_phone=r.contact_phone,
        endpoint_auth_type=_enum(
            dealer_pb.EndpointAuthType, "ENDPOINT_AUTH_TYPE_", r.endpoint_auth_type
        ),
        endpoint_auth_header_name=r.endpoint_auth_header_name,
        delivery_channel=_enum(dealer_pb.DeliveryChannel, "DELIVERY_CHANNEL_", r.delivery_channel),
        intake_email=r.intake_email,
    )


def activity_message(record: d.ActivityRecord) -> lead_pb2.Activity:
    return lead_pb2.Activity(
        activity_id=record.activity_id,
        lead_id=record.lead_id,
        agent=_enum(lead_pb2.Agent, "AGENT_", record.agent.value),
        kind=record.kind,
        summary=record.summary,
        details_json=record.details_json,
        create_time=to_timestamp(record.created_at),
    )


# --- campaigns ------------------------------------------------------------------------


def template_spec(message: campaign_pb.Template) -> TemplateSpec:
    from server.domain.templates import TemplateSpec

    return TemplateSpec(
        name=message.name,
        subject=message.subject,
        html=message.html_body,
        text=message.text_body,
    )


def template_message(r: TemplateRecord) -> campaign_pb.Template:
    return campaign_pb.Template(
        template_id=r.template_id,
        name=r.name,
        subject=r.subject,
        html_body=r.html_body,
        text_body=r.text_body,
        create_time=to_timestamp(r.created_at),
        version=r.version,
        version_create_time=to_timestamp(r.version_created_at),
    )


def suppression_message(r: SuppressionRecord) -> campaign_pb.Suppression:
    return campaign_pb.Suppression(
        suppression_id=str(r.suppression_id),
        email=r.address,
        reason=_enum(campaign_pb.SuppressionReason, "SUPPRESSION_REASON_", r.reason),
        source=r.source,
        create_time=to_timestamp(r.created_at),
        campaign_id=r.campaign_id,
        message_id=r.message_id,
    )


# Domain campaign state -> the proto's (running is SENDING, completed is SENT).
_CAMPAIGN_STATES = {
    "draft": campaign_pb.CAMPAIGN_STATE_DRAFT,
    "scheduled": campaign_pb.CAMPAIGN_STATE_SCHEDULED,
    "running": campaign_pb.CAMPAIGN_STATE_SENDING,
    "paused": campaign_pb.CAMPAIGN_STATE_PAUSED,
    "completed": campaign_pb.CAMPAIGN_STATE_SENT,
    "cancelled": campaign_pb.CAMPAIGN_STATE_CANCELLED,
}
_CAMPAIGN_KINDS = {
    "one_off": campaign_pb.CAMPAIGN_KIND_ONE_OFF,
    "drip": campaign_pb.CAMPAIGN_KIND_DRIP,
}


def campaign_draft(message: campaign_pb.Campaign) -> CampaignDraft:
    a = message.audience
    p = "campaign.audience."
    kind = request_enum(
        campaign_pb.CampaignKind,
        "CAMPAIGN_KIND_",
        message.kind,
        "campaign.kind",
        "INVALID_CAMPAIGN",
    )
    return CampaignDraft(
        name=message.name,
        kind=kind,
        template_id=message.template_id,
        audience=Audience(
            statuses=frozenset(a.lead_statuses),
            credit_tiers=frozenset(a.credit_tiers),
            states=frozenset(a.states),
            sources=frozenset(a.sources),
            created_after=from_timestamp(a, "created_after", f"{p}created_after"),
            created_before=from_timestamp(a, "created_before", f"{p}created_before"),
            abandoned_after=from_timestamp(a, "abandoned_after", f"{p}abandoned_after"),
            abandoned_before=from_timestamp(a, "abandoned_before", f"{p}abandoned_before"),
            exclude_converted=not a.include_converted,
        ),
        lead_ids=tuple(a.lead_ids),
        abandoned_within_days=a.abandoned_within_days,
        send_at=from_timestamp(message, "send_at", "campaign.send_at"),
        steps=tuple(
            DripStep(delay=dt.timedelta(minutes=s.delay_minutes), template_id=s.template_id)
            for s in message.steps
        ),
    )


def _parsed(value: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if isinstance(value, str) and value else None


def audience_message(data: dict[str, Any]) -> campaign_pb.Audience:
    return campaign_pb.Audience(
        abandoned_within_days=int(data.get("abandoned_within_days") or 0),
        lead_ids=[str(i) for i in data.get("lead_ids") or ()],
        lead_statuses=[f"LEAD_STATUS_{s.upper()}" for s in data.get("statuses") or ()],
        credit_tiers=list(data.get("credit_tiers") or ()),
        states=list(data.get("states") or ()),
        sources=list(data.get("sources") or ()),
        created_after=to_timestamp(_parsed(data.get("created_after"))),
        created_before=to_timestamp(_parsed(data.get("created_before"))),
        abandoned_after=to_timestamp(_parsed(data.get("abandoned_after"))),
        abandoned_before=to_timestamp(_parsed(data.get("abandoned_before"))),
        include_converted=not data.get("exclude_converted", True),
    )


def campaign_stats(counts: MessageCounts) -> campaign_pb.CampaignStats:
    st = counts.as_stats()
    return campaign_pb.CampaignStats(
        queued_count=st.queued,
        sent_count=st.sent,
        delivered_count=st.delivered,
        opened_count=st.opened,
        clicked_count=st.clicked,
        bounced_count=st.bounced,
        complained_count=st.complained,
        unsubscribed_count=st.unsubscribed,
        suppressed_count=st.suppressed,
        failed_count=st.failed,
        simulated_count=counts.count("simulated"),
        unknown_count=counts.count("unknown"),
    )


def campaign_message(view: CampaignView) -> campaign_pb.Campaign:
    r = view.record
    return campaign_pb.Campaign(
        campaign_id=r.campaign_id,
        name=r.name,
        kind=_CAMPAIGN_KINDS.get(r.kind, campaign_pb.CAMPAIGN_KIND_UNSPECIFIED),
        template_id=r.template_id or "",
        audience=audience_message(view.audience),
        state=_CAMPAIGN_STATES.get(r.state, campaign_pb.CAMPAIGN_STATE_UNSPECIFIED),
        stats=campaign_stats(view.counts),
        create_time=to_timestamp(r.created_at),
        send_time=to_timestamp(r.sent_at),
        template_version=r.template_version,
        send_at=to_timestamp(r.send_at),
        paused_reason=r.paused_reason,
        recipients=r.recipients,
        steps=[
            campaign_pb.DripStep(
                template_id=s.template_id,
                delay_minutes=int(s.delay.total_seconds() // 60),
                template_version=s.template_version,
            )
            for s in view.steps
        ],
    )


def bulk_send_response(outcome: BulkSendOutcome) -> campaign_pb.BulkSendResponse:
    return campaign_pb.BulkSendResponse(
        campaign=campaign_message(outcome.campaign) if outcome.campaign else None,
        queued_count=outcome.queued,
        suppressed_count=outcome.suppressed,
        idempotent_replay=outcome.replay,
        samples=[
            campaign_pb.RenderedSample(
                lead_id=s.lead_id,
                subject=s.email.subject,
                text_body=s.email.text,
                html_body=s.email.html,
            )
            for s in outcome.samples
        ],
    )


# --- agents ---------------------------------------------------------------------------


def _named_counts(counts: dict[str, int], prefix: str = "") -> list[agent_pb.NamedCount]:
    return [
        agent_pb.NamedCount(name=f"{prefix}{k.upper()}" if prefix else k, count=v)
        for k, v in sorted(counts.items())
    ]


def system_stats_response(s: stats.SystemStats) -> agent_pb.GetSystemStatsResponse:
    return agent_pb.GetSystemStatsResponse(
        version=s.version,
        uptime_seconds=s.uptime_seconds,
        database_backend=s.database_backend,
        compute_time=to_timestamp(s.computed_at),
        leads_total=s.leads_total,
        leads_last_24h=s.leads_last_24h,
        leads_by_status=_named_counts(s.leads_by_status, "LEAD_STATUS_"),
        leads_by_source=_named_counts(s.leads_by_source),
        visitors_total=s.visitors_total,
        credit_checks_total=s.credit_checks_total,
        deliveries_by_state=_named_counts(s.deliveries_by_state, "DELIVERY_STATE_"),
        emails_by_state=_named_counts(s.emails_by_state),
        suppressions_total=s.suppressions_total,
        chat_sessions_open=s.chat_sessions_open,
        dealers_active=s.dealers_active,
    )


def agent_status_response(
    statuses: list[stats.AgentStatus],
) -> agent_pb.ListAgentStatusResponse:
    return agent_pb.ListAgentStatusResponse(
        agents=[
            agent_pb.AgentStatus(
                name=s.name,
                description=s.description,
                state=_enum(agent_pb.AgentState, "AGENT_STATE_", s.state.value),
                detail=s.detail,
                metrics=[agent_pb.AgentMetric(name=k, value=v) for k, v in s.metrics.items()],
                last_activity_time=to_timestamp(s.last_activity_at),
            )
            for s in statuses
        ]
    )
