import datetime

from ccl.lead.v1 import lead_pb2 as _lead_pb2
from ccl.lead.v1 import lead_service_pb2 as _lead_service_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointAuthType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_AUTH_TYPE_UNSPECIFIED: _ClassVar[EndpointAuthType]
    ENDPOINT_AUTH_TYPE_NONE: _ClassVar[EndpointAuthType]
    ENDPOINT_AUTH_TYPE_BASIC: _ClassVar[EndpointAuthType]
    ENDPOINT_AUTH_TYPE_HEADER: _ClassVar[EndpointAuthType]

class DeliveryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_FORMAT_UNSPECIFIED: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_JSON: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_ADF: _ClassVar[DeliveryFormat]

class DeliveryChannel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_CHANNEL_UNSPECIFIED: _ClassVar[DeliveryChannel]
    DELIVERY_CHANNEL_HTTPS: _ClassVar[DeliveryChannel]
    DELIVERY_CHANNEL_EMAIL: _ClassVar[DeliveryChannel]
ENDPOINT_AUTH_TYPE_UNSPECIFIED: EndpointAuthType
ENDPOINT_AUTH_TYPE_NONE: EndpointAuthType
ENDPOINT_AUTH_TYPE_BASIC: EndpointAuthType
ENDPOINT_AUTH_TYPE_HEADER: EndpointAuthType
DELIVERY_FORMAT_UNSPECIFIED: DeliveryFormat
DELIVERY_FORMAT_JSON: DeliveryFormat
DELIVERY_FORMAT_ADF: DeliveryFormat
DELIVERY_CHANNEL_UNSPECIFIED: DeliveryChannel
DELIVERY_CHANNEL_HTTPS: DeliveryChannel
DELIVERY_CHANNEL_EMAIL: DeliveryChannel

class BasicAuth(_message.Message):
    __slots__ = ("username", "password")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    username: str
    password: str
    def __init__(self, username: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class HeaderAuth(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class EndpointAuth(_message.Message):
    __slots__ = ("basic", "header")
    BASIC_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    basic: BasicAuth
    header: HeaderAuth
    def __init__(self, basic: _Optional[_Union[BasicAuth, _Mapping]] = ..., header: _Optional[_Union[HeaderAuth, _Mapping]] = ...) -> None: ...

class Dealer(_message.Message):
    __slots__ = ("dealer_id", "name", "states", "zip_prefixes", "accepted_tiers", "daily_cap", "priority", "weight", "endpoint_url", "delivery_format", "signing_secret", "signing_secret_set", "active", "create_time", "update_time", "contact_email", "contact_phone", "endpoint_auth", "endpoint_auth_type", "endpoint_auth_header_name", "delivery_channel", "intake_email")
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    ZIP_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_TIERS_FIELD_NUMBER: _ClassVar[int]
    DAILY_CAP_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_SET_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTACT_EMAIL_FIELD_NUMBER: _ClassVar[int]
    CONTACT_PHONE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_AUTH_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_AUTH_TYPE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_AUTH_HEADER_NAME_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    INTAKE_EMAIL_FIELD_NUMBER: _ClassVar[int]
    dealer_id: str
    name: str
    states: _containers.RepeatedScalarFieldContainer[str]
    zip_prefixes: _containers.RepeatedScalarFieldContainer[str]
    accepted_tiers: _containers.RepeatedScalarFieldContainer[str]
    daily_cap: int
    priority: int
    weight: int
    endpoint_url: str
    delivery_format: DeliveryFormat
    signing_secret: str
    signing_secret_set: bool
    active: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    contact_email: str
    contact_phone: str
    endpoint_auth: EndpointAuth
    endpoint_auth_type: EndpointAuthType
    endpoint_auth_header_name: str
    delivery_channel: DeliveryChannel
    intake_email: str
    def __init__(self, dealer_id: _Optional[str] = ..., name: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ..., zip_prefixes: _Optional[_Iterable[str]] = ..., accepted_tiers: _Optional[_Iterable[str]] = ..., daily_cap: _Optional[int] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ..., endpoint_url: _Optional[str] = ..., delivery_format: _Optional[_Union[DeliveryFormat, str]] = ..., signing_secret: _Optional[str] = ..., signing_secret_set: _Optional[bool] = ..., active: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contact_email: _Optional[str] = ..., contact_phone: _Optional[str] = ..., endpoint_auth: _Optional[_Union[EndpointAuth, _Mapping]] = ..., endpoint_auth_type: _Optional[_Union[EndpointAuthType, str]] = ..., endpoint_auth_header_name: _Optional[str] = ..., delivery_channel: _Optional[_Union[DeliveryChannel, str]] = ..., intake_email: _Optional[str] = ...) -> None: ...

class CreateDealerRequest(_message.Message):
    __slots__ = ("dealer",)
    DEALER_FIELD_NUMBER: _ClassVar[int]
    dealer: Dealer
    def __init__(self, dealer: _Optional[_Union[Dealer, _Mapping]] = ...) -> None: ...

class CreateDealerResponse(_message.Message):
    __slots__ = ("dealer", "generated_signing_secret")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    GENERATED_SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    dealer: Dealer
    generated_signing_secret: str
    def __init__(self, dealer: _Optional[_Union[Dealer, _Mapping]] = ..., generated_signing_secret: _Optional[str] = ...) -> None: ...

class GetDealerRequest(_message.Message):
    __slots__ = ("dealer_id",)
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    dealer_id: str
    def __init__(self, dealer_id: _Optional[str] = ...) -> None: ...

class GetDealerResponse(_message.Message):
    __slots__ = ("dealer",)
    DEALER_FIELD_NUMBER: _ClassVar[int]
    dealer: Dealer
    def __init__(self, dealer: _Optional[_Union[Dealer, _Mapping]] = ...) -> None: ...

class ListDealersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDealersResponse(_message.Message):
    __slots__ = ("dealers", "next_page_token")
    DEALERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dealers: _containers.RepeatedCompositeFieldContainer[Dealer]
    next_page_token: str
    def __init__(self, dealers: _Optional[_Iterable[_Union[Dealer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDealerRequest(_message.Message):
    __slots__ = ("dealer", "update_mask")
    DEALER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dealer: Dealer
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dealer: _Optional[_Union[Dealer, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDealerResponse(_message.Message):
    __slots__ = ("dealer",)
    DEALER_FIELD_NUMBER: _ClassVar[int]
    dealer: Dealer
    def __init__(self, dealer: _Optional[_Union[Dealer, _Mapping]] = ...) -> None: ...

class TestDeliveryRequest(_message.Message):
    __slots__ = ("dealer_id",)
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    dealer_id: str
    def __init__(self, dealer_id: _Optional[str] = ...) -> None: ...

class TestDeliveryResponse(_message.Message):
    __slots__ = ("delivered", "http_status", "error", "response_excerpt", "latency_ms", "webhook_id", "format", "retryable")
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    delivered: bool
    http_status: int
    error: str
    response_excerpt: str
    latency_ms: int
    webhook_id: str
    format: _lead_service_pb2.PackageFormat
    retryable: bool
    def __init__(self, delivered: _Optional[bool] = ..., http_status: _Optional[int] = ..., error: _Optional[str] = ..., response_excerpt: _Optional[str] = ..., latency_ms: _Optional[int] = ..., webhook_id: _Optional[str] = ..., format: _Optional[_Union[_lead_service_pb2.PackageFormat, str]] = ..., retryable: _Optional[bool] = ...) -> None: ...

class ListDealerDeliveriesRequest(_message.Message):
    __slots__ = ("dealer_id", "page_size", "page_token", "state")
    DEALER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    dealer_id: str
    page_size: int
    page_token: str
    state: _lead_pb2.DeliveryState
    def __init__(self, dealer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[_lead_pb2.DeliveryState, str]] = ...) -> None: ...

class ListDealerDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[_lead_service_pb2.Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[_lead_service_pb2.Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
