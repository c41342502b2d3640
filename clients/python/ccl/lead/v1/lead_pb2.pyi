import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PurchaseTimeframe(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_TIMEFRAME_UNSPECIFIED: _ClassVar[PurchaseTimeframe]
    PURCHASE_TIMEFRAME_WITHIN_WEEK: _ClassVar[PurchaseTimeframe]
    PURCHASE_TIMEFRAME_WITHIN_MONTH: _ClassVar[PurchaseTimeframe]
    PURCHASE_TIMEFRAME_WITHIN_3_MONTHS: _ClassVar[PurchaseTimeframe]
    PURCHASE_TIMEFRAME_LATER: _ClassVar[PurchaseTimeframe]

class VehicleStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VEHICLE_STATUS_UNSPECIFIED: _ClassVar[VehicleStatus]
    VEHICLE_STATUS_NEW: _ClassVar[VehicleStatus]
    VEHICLE_STATUS_USED: _ClassVar[VehicleStatus]

class LeadStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAD_STATUS_UNSPECIFIED: _ClassVar[LeadStatus]
    LEAD_STATUS_RECEIVED: _ClassVar[LeadStatus]
    LEAD_STATUS_PREQUALIFIED: _ClassVar[LeadStatus]
    LEAD_STATUS_DECLINED: _ClassVar[LeadStatus]
    LEAD_STATUS_NEEDS_REVIEW: _ClassVar[LeadStatus]
    LEAD_STATUS_UNROUTED: _ClassVar[LeadStatus]
    LEAD_STATUS_PACKAGED: _ClassVar[LeadStatus]
    LEAD_STATUS_DELIVERED: _ClassVar[LeadStatus]
    LEAD_STATUS_DELIVERY_FAILED: _ClassVar[LeadStatus]
    LEAD_STATUS_CONTACTED: _ClassVar[LeadStatus]
    LEAD_STATUS_APPOINTMENT_SET: _ClassVar[LeadStatus]
    LEAD_STATUS_SOLD: _ClassVar[LeadStatus]
    LEAD_STATUS_LOST: _ClassVar[LeadStatus]
    LEAD_STATUS_RETURNED: _ClassVar[LeadStatus]
    LEAD_STATUS_DUPLICATE: _ClassVar[LeadStatus]

class LeadOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAD_OUTCOME_UNSPECIFIED: _ClassVar[LeadOutcome]
    LEAD_OUTCOME_ACCEPTED: _ClassVar[LeadOutcome]
    LEAD_OUTCOME_DUPLICATE: _ClassVar[LeadOutcome]
    LEAD_OUTCOME_REJECTED: _ClassVar[LeadOutcome]

class CreditDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDIT_DECISION_UNSPECIFIED: _ClassVar[CreditDecision]
    CREDIT_DECISION_PREQUALIFIED: _ClassVar[CreditDecision]
    CREDIT_DECISION_DECLINED: _ClassVar[CreditDecision]
    CREDIT_DECISION_NEEDS_REVIEW: _ClassVar[CreditDecision]

class CreditSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREDIT_SOURCE_UNSPECIFIED: _ClassVar[CreditSource]
    CREDIT_SOURCE_FLEXPATH: _ClassVar[CreditSource]
    CREDIT_SOURCE_SIMULATED: _ClassVar[CreditSource]

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_PENDING: _ClassVar[DeliveryState]
    DELIVERY_STATE_RETRYING: _ClassVar[DeliveryState]
    DELIVERY_STATE_DELIVERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_REJECTED: _ClassVar[DeliveryState]
    DELIVERY_STATE_DEAD_LETTERED: _ClassVar[DeliveryState]
    DELIVERY_STATE_ACCEPTED: _ClassVar[DeliveryState]
    DELIVERY_STATE_SIMULATED: _ClassVar[DeliveryState]

class Agent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_UNSPECIFIED: _ClassVar[Agent]
    AGENT_VISITOR_IDENTIFIER: _ClassVar[Agent]
    AGENT_CREDIT_CHECK: _ClassVar[Agent]
    AGENT_LEAD_PACKAGING: _ClassVar[Agent]
    AGENT_EMAIL_REENGAGEMENT: _ClassVar[Agent]
    AGENT_REALTIME_CHAT: _ClassVar[Agent]
    AGENT_ORCHESTRATOR: _ClassVar[Agent]
PURCHASE_TIMEFRAME_UNSPECIFIED: PurchaseTimeframe
PURCHASE_TIMEFRAME_WITHIN_WEEK: PurchaseTimeframe
PURCHASE_TIMEFRAME_WITHIN_MONTH: PurchaseTimeframe
PURCHASE_TIMEFRAME_WITHIN_3_MONTHS: PurchaseTimeframe
PURCHASE_TIMEFRAME_LATER: PurchaseTimeframe
VEHICLE_STATUS_UNSPECIFIED: VehicleStatus
VEHICLE_STATUS_NEW: VehicleStatus
VEHICLE_STATUS_USED: VehicleStatus
LEAD_STATUS_UNSPECIFIED: LeadStatus
LEAD_STATUS_RECEIVED: LeadStatus
LEAD_STATUS_PREQUALIFIED: LeadStatus
LEAD_STATUS_DECLINED: LeadStatus
LEAD_STATUS_NEEDS_REVIEW: LeadStatus
LEAD_STATUS_UNROUTED: LeadStatus
LEAD_STATUS_PACKAGED: LeadStatus
LEAD_STATUS_DELIVERED: LeadStatus
LEAD_STATUS_DELIVERY_FAILED: LeadStatus
LEAD_STATUS_CONTACTED: LeadStatus
LEAD_STATUS_APPOINTMENT_SET: LeadStatus
LEAD_STATUS_SOLD: LeadStatus
LEAD_STATUS_LOST: LeadStatus
LEAD_STATUS_RETURNED: LeadStatus
LEAD_STATUS_DUPLICATE: LeadStatus
LEAD_OUTCOME_UNSPECIFIED: LeadOutcome
LEAD_OUTCOME_ACCEPTED: LeadOutcome
LEAD_OUTCOME_DUPLICATE: LeadOutcome
LEAD_OUTCOME_REJECTED: LeadOutcome
CREDIT_DECISION_UNSPECIFIED: CreditDecision
CREDIT_DECISION_PREQUALIFIED: CreditDecision
CREDIT_DECISION_DECLINED: CreditDecision
CREDIT_DECISION_NEEDS_REVIEW: CreditDecision
CREDIT_SOURCE_UNSPECIFIED: CreditSource
CREDIT_SOURCE_FLEXPATH: CreditSource
CREDIT_SOURCE_SIMULATED: CreditSource
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_PENDING: DeliveryState
DELIVERY_STATE_RETRYING: DeliveryState
DELIVERY_STATE_DELIVERED: DeliveryState
DELIVERY_STATE_REJECTED: DeliveryState
DELIVERY_STATE_DEAD_LETTERED: DeliveryState
DELIVERY_STATE_ACCEPTED: DeliveryState
DELIVERY_STATE_SIMULATED: DeliveryState
AGENT_UNSPECIFIED: Agent
AGENT_VISITOR_IDENTIFIER: Agent
AGENT_CREDIT_CHECK: Agent
AGENT_LEAD_PACKAGING: Agent
AGENT_EMAIL_REENGAGEMENT: Agent
AGENT_REALTIME_CHAT: Agent
AGENT_ORCHESTRATOR: Agent

class Address(_message.Message):
    __slots__ = ("street", "street2", "city", "state", "zip_code")
    STREET_FIELD_NUMBER: _ClassVar[int]
    STREET2_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_CODE_FIELD_NUMBER: _ClassVar[int]
    street: str
    street2: str
    city: str
    state: str
    zip_code: str
    def __init__(self, street: _Optional[str] = ..., street2: _Optional[str] = ..., city: _Optional[str] = ..., state: _Optional[str] = ..., zip_code: _Optional[str] = ...) -> None: ...

class Vehicle(_message.Message):
    __slots__ = ("year", "make", "model", "trim", "vin", "price_cents")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRIM_FIELD_NUMBER: _ClassVar[int]
    VIN_FIELD_NUMBER: _ClassVar[int]
    PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    year: int
    make: str
    model: str
    trim: str
    vin: str
    price_cents: int
    def __init__(self, year: _Optional[int] = ..., make: _Optional[str] = ..., model: _Optional[str] = ..., trim: _Optional[str] = ..., vin: _Optional[str] = ..., price_cents: _Optional[int] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("tcpa", "fcra_soft_pull", "consent_text", "ip_address", "user_agent", "page_url", "certificate_id", "consented_time")
    TCPA_FIELD_NUMBER: _ClassVar[int]
    FCRA_SOFT_PULL_FIELD_NUMBER: _ClassVar[int]
    CONSENT_TEXT_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CONSENTED_TIME_FIELD_NUMBER: _ClassVar[int]
    tcpa: bool
    fcra_soft_pull: bool
    consent_text: str
    ip_address: str
    user_agent: str
    page_url: str
    certificate_id: str
    consented_time: _timestamp_pb2.Timestamp
    def __init__(self, tcpa: _Optional[bool] = ..., fcra_soft_pull: _Optional[bool] = ..., consent_text: _Optional[str] = ..., ip_address: _Optional[str] = ..., user_agent: _Optional[str] = ..., page_url: _Optional[str] = ..., certificate_id: _Optional[str] = ..., consented_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LeadInput(_message.Message):
    __slots__ = ("first_name", "last_name", "email", "phone", "date_of_birth", "address", "monthly_income_cents", "down_payment_cents", "vehicle", "consent", "source", "visitor_id", "employment_status", "months_employed", "months_at_address", "trade_in", "purchase_timeframe", "vehicle_status")
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_INCOME_CENTS_FIELD_NUMBER: _ClassVar[int]
    DOWN_PAYMENT_CENTS_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VISITOR_ID_FIELD_NUMBER: _ClassVar[int]
    EMPLOYMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    MONTHS_EMPLOYED_FIELD_NUMBER: _ClassVar[int]
    MONTHS_AT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TRADE_IN_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_TIMEFRAME_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_STATUS_FIELD_NUMBER: _ClassVar[int]
    first_name: str
    last_name: str
    email: str
    phone: str
    date_of_birth: str
    address: Address
    monthly_income_cents: int
    down_payment_cents: int
    vehicle: Vehicle
    consent: Consent
    source: str
    visitor_id: str
    employment_status: str
    months_employed: int
    months_at_address: int
    trade_in: TradeIn
    purchase_timeframe: PurchaseTimeframe
    vehicle_status: VehicleStatus
    def __init__(self, first_name: _Optional[str] = ..., last_name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., date_of_birth: _Optional[str] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., monthly_income_cents: _Optional[int] = ..., down_payment_cents: _Optional[int] = ..., vehicle: _Optional[_Union[Vehicle, _Mapping]] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ..., source: _Optional[str] = ..., visitor_id: _Optional[str] = ..., employment_status: _Optional[str] = ..., months_employed: _Optional[int] = ..., months_at_address: _Optional[int] = ..., trade_in: _Optional[_Union[TradeIn, _Mapping]] = ..., purchase_timeframe: _Optional[_Union[PurchaseTimeframe, str]] = ..., vehicle_status: _Optional[_Union[VehicleStatus, str]] = ...) -> None: ...

class TradeIn(_message.Message):
    __slots__ = ("year", "make", "model", "mileage")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MAKE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MILEAGE_FIELD_NUMBER: _ClassVar[int]
    year: int
    make: str
    model: str
    mileage: int
    def __init__(self, year: _Optional[int] = ..., make: _Optional[str] = ..., model: _Optional[str] = ..., mileage: _Optional[int] = ...) -> None: ...

class CreditResult(_message.Message):
    __slots__ = ("decision", "source", "tier", "score_band", "max_payment_cents", "max_amount_cents", "reference_id", "check_time")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SCORE_BAND_FIELD_NUMBER: _ClassVar[int]
    MAX_PAYMENT_CENTS_FIELD_NUMBER: _ClassVar[int]
    MAX_AMOUNT_CENTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CHECK_TIME_FIELD_NUMBER: _ClassVar[int]
    decision: CreditDecision
    source: CreditSource
    tier: str
    score_band: str
    max_payment_cents: int
    max_amount_cents: int
    reference_id: str
    check_time: _timestamp_pb2.Timestamp
    def __init__(self, decision: _Optional[_Union[CreditDecision, str]] = ..., source: _Optional[_Union[CreditSource, str]] = ..., tier: _Optional[str] = ..., score_band: _Optional[str] = ..., max_payment_cents: _Optional[int] = ..., max_amount_cents: _Optional[int] = ..., reference_id: _Optional[str] = ..., check_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Lead(_message.Message):
    __slots__ = ("lead_id", "status", "outcome", "applicant", "create_time", "update_time", "identity_id", "duplicate_of_lead_id", "credit", "score", "dealer_id", "delivery_state", "source_dealer_id", "reason")
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    APPLICANT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_STATE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lead_id: str
    status: LeadStatus
    outcome: LeadOutcome
    applicant: LeadInput
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    identity_id: str
    duplicate_of_lead_id: str
    credit: CreditResult
    score: int
    dealer_id: str
    delivery_state: DeliveryState
    source_dealer_id: str
    reason: str
    def __init__(self, lead_id: _Optional[str] = ..., status: _Optional[_Union[LeadStatus, str]] = ..., outcome: _Optional[_Union[LeadOutcome, str]] = ..., applicant: _Optional[_Union[LeadInput, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., identity_id: _Optional[str] = ..., duplicate_of_lead_id: _Optional[str] = ..., credit: _Optional[_Union[CreditResult, _Mapping]] = ..., score: _Optional[int] = ..., dealer_id: _Optional[str] = ..., delivery_state: _Optional[_Union[DeliveryState, str]] = ..., source_dealer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Activity(_message.Message):
    __slots__ = ("activity_id", "lead_id", "agent", "kind", "summary", "details_json", "create_time")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    LEAD_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    lead_id: str
    agent: Agent
    kind: str
    summary: str
    details_json: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, activity_id: _Optional[str] = ..., lead_id: _Optional[str] = ..., agent: _Optional[_Union[Agent, str]] = ..., kind: _Optional[str] = ..., summary: _Optional[str] = ..., details_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
