"""FlowEvent <-> the `nodemesh.v1.FlowEvent` message that carries it to the controller's relay.

Theory of operation: agents and waypoints push their events to the controller over gRPC
(nodemesh/proto/flows.proto). The message mirrors `nodemesh.flows.event.FlowEvent` field by
field, with proto3 `optional` wherever the dataclass has None, so a round trip gives back an equal
event. Decoding goes through `FlowEvent.from_dict`, so a message with an unknown point or verdict
(a newer component than this controller) is refused with the same `FlowEventError` as JSON is.
Written by hand rather than with `json_format`: a batch of 256 events is converted on the
component's event loop every 100 ms, and reflection would cost ten times as much.
"""

from __future__ import annotations

from nodemesh.flows.event import Endpoint, FlowEvent, Http
from nodemesh.proto import flows_pb2

_ENDPOINT_FIELDS = ("namespace", "name", "identity", "address")
# The event's optional scalars (service, policy, rule, route, tunnel, ...), read off the message
# type, so a field added to both FlowEvent and flows.proto needs no change here.
_OPTIONAL = tuple(
    f.name
    for f in flows_pb2.FlowEvent.DESCRIPTOR.fields
    if f.has_presence and f.message_type is None
)


def to_message(event: FlowEvent) -> flows_pb2.FlowEvent:
    msg = flows_pb2.FlowEvent(
        time=event.time,
        point=str(event.point),
        reporter=event.reporter,
        flow_id=event.flow_id,
        verdict=str(event.verdict),
        reason=event.reason,
        source=_endpoint_message(event.source),
        destination=_endpoint_message(event.destination),
    )
    for name in _OPTIONAL:
        if (value := getattr(event, name, None)) is not None:
            setattr(msg, name, value)
    if event.http is not None:
        msg.http.CopyFrom(_http_message(event.http))
    return msg


def from_message(msg: flows_pb2.FlowEvent) -> FlowEvent:
    """The event `msg` carries; raises FlowEventError (naming the field) when it is malformed."""
    data: dict = {
        "time": msg.time,
        "point": msg.point,
        "reporter": msg.reporter,
        "flow_id": msg.flow_id,
        "verdict": msg.verdict,
        "reason": msg.reason,
        "source": _endpoint_dict(msg.source),
        "destination": _endpoint_dict(msg.destination),
    }
    for name in _OPTIONAL:
        if msg.HasField(name):
            data[name] = getattr(msg, name)
    if msg.HasField("http"):
        data["http"] = _http_dict(msg.http)
    return FlowEvent.from_dict(data)


def _endpoint_message(endpoint: Endpoint) -> flows_pb2.FlowEndpoint:
    return flows_pb2.FlowEndpoint(**endpoint.to_dict())


def _endpoint_dict(msg: flows_pb2.FlowEndpoint) -> dict:
    return {name: getattr(msg, name) for name in _ENDPOINT_FIELDS if msg.HasField(name)}


def _http_message(http: Http) -> flows_pb2.FlowHttp:
    return flows_pb2.FlowHttp(**http.to_dict())


def _http_dict(msg: flows_pb2.FlowHttp) -> dict:
    out = {"method": msg.method, "path": msg.path, "status": msg.status}
    out["latency_ms"] = msg.latency_ms
    for name in ("trace_id", "route"):
        if msg.HasField(name):
            out[name] = getattr(msg, name)
    return out
