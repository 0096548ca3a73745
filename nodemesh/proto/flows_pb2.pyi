from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FlowEndpoint(_message.Message):
    __slots__ = ("namespace", "name", "identity", "address")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    identity: str
    address: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., identity: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class FlowHttp(_message.Message):
    __slots__ = ("method", "path", "status", "latency_ms", "trace_id", "route")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    method: str
    path: str
    status: int
    latency_ms: float
    trace_id: str
    route: str
    def __init__(self, method: _Optional[str] = ..., path: _Optional[str] = ..., status: _Optional[int] = ..., latency_ms: _Optional[float] = ..., trace_id: _Optional[str] = ..., route: _Optional[str] = ...) -> None: ...

class FlowEvent(_message.Message):
    __slots__ = ("time", "point", "reporter", "flow_id", "verdict", "reason", "source", "destination", "service", "policy", "rule", "route", "http", "tunnel", "traceparent")
    TIME_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    FLOW_ID_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    HTTP_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    time: float
    point: str
    reporter: str
    flow_id: str
    verdict: str
    reason: str
    source: FlowEndpoint
    destination: FlowEndpoint
    service: str
    policy: str
    rule: int
    route: str
    http: FlowHttp
    tunnel: str
    traceparent: str
    def __init__(self, time: _Optional[float] = ..., point: _Optional[str] = ..., reporter: _Optional[str] = ..., flow_id: _Optional[str] = ..., verdict: _Optional[str] = ..., reason: _Optional[str] = ..., source: _Optional[_Union[FlowEndpoint, _Mapping]] = ..., destination: _Optional[_Union[FlowEndpoint, _Mapping]] = ..., service: _Optional[str] = ..., policy: _Optional[str] = ..., rule: _Optional[int] = ..., route: _Optional[str] = ..., http: _Optional[_Union[FlowHttp, _Mapping]] = ..., tunnel: _Optional[str] = ..., traceparent: _Optional[str] = ...) -> None: ...

class FlowBatch(_message.Message):
    __slots__ = ("events", "dropped")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FlowEvent]
    dropped: int
    def __init__(self, events: _Optional[_Iterable[_Union[FlowEvent, _Mapping]]] = ..., dropped: _Optional[int] = ...) -> None: ...

class FlowReportsSummary(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...
