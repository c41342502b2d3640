import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATE_UNSPECIFIED: _ClassVar[AgentState]
    AGENT_STATE_READY: _ClassVar[AgentState]
    AGENT_STATE_DEGRADED: _ClassVar[AgentState]
    AGENT_STATE_DISABLED: _ClassVar[AgentState]
AGENT_STATE_UNSPECIFIED: AgentState
AGENT_STATE_READY: AgentState
AGENT_STATE_DEGRADED: AgentState
AGENT_STATE_DISABLED: AgentState

class GetSystemStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NamedCount(_message.Message):
    __slots__ = ("name", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetSystemStatsResponse(_message.Message):
    __slots__ = ("version", "uptime_seconds", "database_backend", "compute_time", "leads_total", "leads_last_24h", "leads_by_status", "leads_by_source", "visitors_total", "credit_checks_total", "deliveries_by_state", "emails_by_state", "suppressions_total", "chat_sessions_open", "dealers_active")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DATABASE_BACKEND_FIELD_NUMBER: _ClassVar[int]
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEADS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LEADS_LAST_24H_FIELD_NUMBER: _ClassVar[int]
    LEADS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    LEADS_BY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    VISITORS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_CHECKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    EMAILS_BY_STATE_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSIONS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CHAT_SESSIONS_OPEN_FIELD_NUMBER: _ClassVar[int]
    DEALERS_ACTIVE_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: int
    database_backend: str
    compute_time: _timestamp_pb2.Timestamp
    leads_total: int
    leads_last_24h: int
    leads_by_status: _containers.RepeatedCompositeFieldContainer[NamedCount]
    leads_by_source: _containers.RepeatedCompositeFieldContainer[NamedCount]
    visitors_total: int
    credit_checks_total: int
    deliveries_by_state: _containers.RepeatedCompositeFieldContainer[NamedCount]
    emails_by_state: _containers.RepeatedCompositeFieldContainer[NamedCount]
    suppressions_total: int
    chat_sessions_open: int
    dealers_active: int
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[int] = ..., database_backend: _Optional[str] = ..., compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., leads_total: _Optional[int] = ..., leads_last_24h: _Optional[int] = ..., leads_by_status: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., leads_by_source: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., visitors_total: _Optional[int] = ..., credit_checks_total: _Optional[int] = ..., deliveries_by_state: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., emails_by_state: _Optional[_Iterable[_Union[NamedCount, _Mapping]]] = ..., suppressions_total: _Optional[int] = ..., chat_sessions_open: _Optional[int] = ..., dealers_active: _Optional[int] = ...) -> None: ...

class ListAgentStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentMetric(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: int
    def __init__(self, name: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("name", "description", "state", "detail", "metrics", "last_activity_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    state: AgentState
    detail: str
    metrics: _containers.RepeatedCompositeFieldContainer[AgentMetric]
    last_activity_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., state: _Optional[_Union[AgentState, str]] = ..., detail: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[AgentMetric, _Mapping]]] = ..., last_activity_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListAgentStatusResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentStatus]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentStatus, _Mapping]]] = ...) -> None: ...
