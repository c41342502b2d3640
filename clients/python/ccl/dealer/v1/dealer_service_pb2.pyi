import datetime

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

class DeliveryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_FORMAT_UNSPECIFIED: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_JSON: _ClassVar[DeliveryFormat]
    DELIVERY_FORMAT_ADF: _ClassVar[DeliveryFormat]
DELIVERY_FORMAT_UNSPECIFIED: DeliveryFormat
DELIVERY_FORMAT_JSON: DeliveryFormat
DELIVERY_FORMAT_ADF: DeliveryFormat

class Dealer(_message.Message):
    __slots__ = ("dealer_id", "name", "states", "zip_prefixes", "accepted_tiers", "daily_cap", "priority", "weight", "endpoint_url", "delivery_format", "signing_secret", "signing_secret_set", "active", "create_time", "update_time", "contact_email", "contact_phone")
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
    def __init__(self, dealer_id: _Optional[str] = ..., name: _Optional[str] = ..., states: _Optional[_Iterable[str]] = ..., zip_prefixes: _Optional[_Iterable[str]] = ..., accepted_tiers: _Optional[_Iterable[str]] = ..., daily_cap: _Optional[int] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ..., endpoint_url: _Optional[str] = ..., delivery_format: _Optional[_Union[DeliveryFormat, str]] = ..., signing_secret: _Optional[str] = ..., signing_secret_set: _Optional[bool] = ..., active: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., contact_email: _Optional[str] = ..., contact_phone: _Optional[str] = ...) -> None: ...

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
