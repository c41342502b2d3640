import datetime

from ccl.lead.v1 import lead_pb2 as _lead_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VisitorEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISITOR_EVENT_TYPE_UNSPECIFIED: _ClassVar[VisitorEventType]
    VISITOR_EVENT_TYPE_PAGE_VIEW: _ClassVar[VisitorEventType]
    VISITOR_EVENT_TYPE_APPLICATION_STARTED: _ClassVar[VisitorEventType]
    VISITOR_EVENT_TYPE_STEP_COMPLETED: _ClassVar[VisitorEventType]
    VISITOR_EVENT_TYPE_APPLICATION_ABANDONED: _ClassVar[VisitorEventType]
    VISITOR_EVENT_TYPE_IDENTIFY: _ClassVar[VisitorEventType]

class EventResultStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_RESULT_STATUS_UNSPECIFIED: _ClassVar[EventResultStatus]
    EVENT_RESULT_STATUS_ACCEPTED: _ClassVar[EventResultStatus]
    EVENT_RESULT_STATUS_DUPLICATE: _ClassVar[EventResultStatus]
    EVENT_RESULT_STATUS_REJECTED: _ClassVar[EventResultStatus]
    EVENT_RESULT_STATUS_ALREADY_RECEIVED: _ClassVar[EventResultStatus]
    EVENT_RESULT_STATUS_DUPLICATE_CONSUMER: _ClassVar[EventResultStatus]

class PackageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PACKAGE_FORMAT_UNSPECIFIED: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_JSON: _ClassVar[PackageFormat]
    PACKAGE_FORMAT_ADF: _ClassVar[PackageFormat]
VISITOR_EVENT_TYPE_UNSPECIFIED: VisitorEventType
VISITOR_EVENT_TYPE_PAGE_VIEW: VisitorEventType
VISITOR_EVENT_TYPE_APPLICATION_STARTED: VisitorEventType
VISITOR_EVENT_TYPE_STEP_COMPLETED: VisitorEventType
VISITOR_EVENT_TYPE_APPLICATION_ABANDONED: VisitorEventType
VISITOR_EVENT_TYPE_IDENTIFY: VisitorEventType
EVENT_RESULT_STATUS_UNSPECIFIED: EventResultStatus
EVENT_RESULT_STATUS_ACCEPTED: EventResultStatus
EVENT_RESULT_STATUS_DUPLICATE: EventResultStatus
EVENT_RESULT_STATUS_REJECTED: EventResultStatus
EVENT_RESULT_STATUS_ALREADY_RECEIVED: EventResultStatus
EVENT_RESULT_STATUS_DUPLICATE_CONSUMER: EventResultStatus
PACKAGE_FORMAT_UNSPECIFIED: PackageFormat
PACKAGE_FORMAT_JSON: PackageFormat
PACKAGE_FORMAT_ADF: PackageFormat

class ProcessLeadRequest(_message.Message):
    __slots__ = ("idempotency_key", "lead")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LEAD_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    lead: _lead_pb2.LeadInput
    def __init__(self, idempotency_key: _Optional[str] = ..., lead: _Optional[_Union[_lead_pb2.LeadInput, _Mapping]] = ...) -> None: ...

class ProcessLeadResponse(_message.Message):
    __slots__ = ("lead", "outcome", "idempotent_replay", "returning_applicant", "identity")
    LEAD_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_REPLAY_FIELD_NUMBER: _ClassVar[int]
    RETURNING_APPLICANT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    lead: _lead_pb2.Lead
    outcome: _lead_pb2.LeadOutcome
    idempotent_replay: bool
    returning_applicant: bool
    identity: IdentityResult
    def __init__(self, lead: _Optional[_Union[_lead_pb2.Lead, _Mapping]] = ..., outcome: _Optional[_Union[_lead_pb2.LeadOutcome, str]] = ..., idempotent_replay: _Optional[bool] = ..., returning_applicant: _Optional[bool] = ..., identity: _Optional[_Union[IdentityResult, _Mapping]] = ...) -> None: ...

class IdentityResult(_message.Message):
    __slots__ = ("identity_id", "new_identity", "matched_by", "visitor_id")
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    MATCHED_BY_FIELD_NUMBER: _ClassVar[int]
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    identity_id: str
    new_identity: bool
    matched_by: str
    visitor_id: str
    def __init__(self, identity_id: _Optional[str] = ..., new_identity: _Optional[bool] = ..., matched_by: _Optional[str] = ..., visitor_id: _Optional[str] = ...) -> None: ...

class GetLeadRequest(_message.Message):
    __slots__ = ("lead_id",)
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    def __init__(self, lead_id: _Optional[str] = ...) -> None: ...

class GetLeadResponse(_message.Message):
    __slots__ = ("lead",)
    LEAD_FIELD_NUMBER: _ClassVar[int]
    lead: _lead_pb2.Lead
    def __init__(self, lead: _Optional[_Union[_lead_pb2.Lead, _Mapping]] = ...) -> None: ...

class ListLeadsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "dealer_id", "created_after", "created_before", "source")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _lead_pb2.LeadStatus
    dealer_id: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    source: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_lead_pb2.LeadStatus, str]] = ..., dealer_id: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class ListLeadsResponse(_message.Message):
    __slots__ = ("leads", "next_page_token")
    LEADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    leads: _containers.RepeatedCompositeFieldContainer[_lead_pb2.Lead]
    next_page_token: str
    def __init__(self, leads: _Optional[_Iterable[_Union[_lead_pb2.Lead, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListLeadActivityRequest(_message.Message):
    __slots__ = ("lead_id", "page_size", "page_token")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    page_size: int
    page_token: str
    def __init__(self, lead_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListLeadActivityResponse(_message.Message):
    __slots__ = ("activities", "next_page_token")
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    activities: _containers.RepeatedCompositeFieldContainer[_lead_pb2.Activity]
    next_page_token: str
    def __init__(self, activities: _Optional[_Iterable[_Union[_lead_pb2.Activity, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PageContext(_message.Message):
    __slots__ = ("url", "path", "referrer", "title")
    URL_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    url: str
    path: str
    referrer: str
    title: str
    def __init__(self, url: _Optional[str] = ..., path: _Optional[str] = ..., referrer: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class CampaignContext(_message.Message):
    __slots__ = ("source", "medium", "name", "term", "content")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEDIUM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    source: str
    medium: str
    name: str
    term: str
    content: str
    def __init__(self, source: _Optional[str] = ..., medium: _Optional[str] = ..., name: _Optional[str] = ..., term: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class TrackVisitorEventRequest(_message.Message):
    __slots__ = ("anonymous_id", "event_type", "page", "campaign", "user_agent", "ip_address", "client_time", "email", "phone", "step", "event_id", "sent_time")
    ANONYMOUS_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TIME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SENT_TIME_FIELD_NUMBER: _ClassVar[int]
    anonymous_id: str
    event_type: VisitorEventType
    page: PageContext
    campaign: CampaignContext
    user_agent: str
    ip_address: str
    client_time: _timestamp_pb2.Timestamp
    email: str
    phone: str
    step: str
    event_id: str
    sent_time: _timestamp_pb2.Timestamp
    def __init__(self, anonymous_id: _Optional[str] = ..., event_type: _Optional[_Union[VisitorEventType, str]] = ..., page: _Optional[_Union[PageContext, _Mapping]] = ..., campaign: _Optional[_Union[CampaignContext, _Mapping]] = ..., user_agent: _Optional[str] = ..., ip_address: _Optional[str] = ..., client_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., step: _Optional[str] = ..., event_id: _Optional[str] = ..., sent_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TrackVisitorEventResponse(_message.Message):
    __slots__ = ("visitor_id", "identity_id", "returning_visitor", "privacy_opt_out")
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNING_VISITOR_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_OPT_OUT_FIELD_NUMBER: _ClassVar[int]
    visitor_id: str
    identity_id: str
    returning_visitor: bool
    privacy_opt_out: bool
    def __init__(self, visitor_id: _Optional[str] = ..., identity_id: _Optional[str] = ..., returning_visitor: _Optional[bool] = ..., privacy_opt_out: _Optional[bool] = ...) -> None: ...

class ReceiveDealerWebhookRequest(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: _httpbody_pb2.HttpBody
    def __init__(self, body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class DealerEventResult(_message.Message):
    __slots__ = ("event_id", "status", "reason", "lead_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    status: EventResultStatus
    reason: str
    lead_id: str
    def __init__(self, event_id: _Optional[str] = ..., status: _Optional[_Union[EventResultStatus, str]] = ..., reason: _Optional[str] = ..., lead_id: _Optional[str] = ...) -> None: ...

class ReceiveDealerWebhookResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[DealerEventResult]
    def __init__(self, results: _Optional[_Iterable[_Union[DealerEventResult, _Mapping]]] = ...) -> None: ...

class ListLeadPackagesRequest(_message.Message):
    __slots__ = ("lead_id",)
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    def __init__(self, lead_id: _Optional[str] = ...) -> None: ...

class LeadPackage(_message.Message):
    __slots__ = ("package_id", "lead_id", "dealer_id", "format", "content_type", "body", "create_time")
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    package_id: str
    lead_id: str
    dealer_id: str
    format: PackageFormat
    content_type: str
    body: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, package_id: _Optional[str] = ..., lead_id: _Optional[str] = ..., dealer_id: _Optional[str] = ..., format: _Optional[_Union[PackageFormat, str]] = ..., content_type: _Optional[str] = ..., body: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListLeadPackagesResponse(_message.Message):
    __slots__ = ("packages",)
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    packages: _containers.RepeatedCompositeFieldContainer[LeadPackage]
    def __init__(self, packages: _Optional[_Iterable[_Union[LeadPackage, _Mapping]]] = ...) -> None: ...

class ListLeadDeliveriesRequest(_message.Message):
    __slots__ = ("lead_id",)
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    def __init__(self, lead_id: _Optional[str] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("attempt_time", "status_code", "error", "duration_ms")
    ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    attempt_time: _timestamp_pb2.Timestamp
    status_code: int
    error: str
    duration_ms: int
    def __init__(self, attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "event_id", "lead_id", "dealer_id", "package_id", "state", "attempt_count", "next_attempt_time", "deliver_time", "last_error", "attempts")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_TIME_FIELD_NUMBER: _ClassVar[int]
    DELIVER_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    lead_id: str
    dealer_id: str
    package_id: str
    state: _lead_pb2.DeliveryState
    attempt_count: int
    next_attempt_time: _timestamp_pb2.Timestamp
    deliver_time: _timestamp_pb2.Timestamp
    last_error: str
    attempts: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., lead_id: _Optional[str] = ..., dealer_id: _Optional[str] = ..., package_id: _Optional[str] = ..., state: _Optional[_Union[_lead_pb2.DeliveryState, str]] = ..., attempt_count: _Optional[int] = ..., next_attempt_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliver_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ...) -> None: ...

class ListLeadDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class RedeliverPackageRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class RedeliverPackageResponse(_message.Message):
    __slots__ = ("delivery",)
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    delivery: Delivery
    def __init__(self, delivery: _Optional[_Union[Delivery, _Mapping]] = ...) -> None: ...

class RouteLeadRequest(_message.Message):
    __slots__ = ("lead_id",)
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    def __init__(self, lead_id: _Optional[str] = ...) -> None: ...

class RouteLeadResponse(_message.Message):
    __slots__ = ("lead",)
    LEAD_FIELD_NUMBER: _ClassVar[int]
    lead: _lead_pb2.Lead
    def __init__(self, lead: _Optional[_Union[_lead_pb2.Lead, _Mapping]] = ...) -> None: ...

class ImportLeadsRequest(_message.Message):
    __slots__ = ("idempotency_key", "lead", "record_ref")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LEAD_FIELD_NUMBER: _ClassVar[int]
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    lead: _lead_pb2.LeadInput
    record_ref: str
    def __init__(self, idempotency_key: _Optional[str] = ..., lead: _Optional[_Union[_lead_pb2.LeadInput, _Mapping]] = ..., record_ref: _Optional[str] = ...) -> None: ...

class ImportLeadResult(_message.Message):
    __slots__ = ("record_ref", "outcome", "lead_id", "reason", "idempotent_replay")
    RECORD_REF_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_REPLAY_FIELD_NUMBER: _ClassVar[int]
    record_ref: str
    outcome: _lead_pb2.LeadOutcome
    lead_id: str
    reason: str
    idempotent_replay: bool
    def __init__(self, record_ref: _Optional[str] = ..., outcome: _Optional[_Union[_lead_pb2.LeadOutcome, str]] = ..., lead_id: _Optional[str] = ..., reason: _Optional[str] = ..., idempotent_replay: _Optional[bool] = ...) -> None: ...

class ImportLeadsResponse(_message.Message):
    __slots__ = ("results", "received_count", "accepted_count", "duplicate_count", "rejected_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImportLeadResult]
    received_count: int
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[ImportLeadResult, _Mapping]]] = ..., received_count: _Optional[int] = ..., accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ...) -> None: ...
