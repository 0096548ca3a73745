"""Flow events: what each component saw of each connection and request, for `trace --follow`.

Sans-I/O throughout (no socket, no asyncio): `event` is the record and its JSON form, `ring`
the bounded per-component store read by sequence number, `query` the `/debug/flows` parameters,
`filters` the reader's selection, `follow` the merging of many rings into one stream, and
`agent` the events an agent builds from its connection records. The I/O around them lives in
`nodemesh.flows_admin` (serving, long-poll) and `nodemesh.flows_local` (reading a local cluster).
"""

from nodemesh.flows.event import Endpoint, FlowEvent, FlowEventError, FlowVerdict, Http, Point
from nodemesh.flows.filters import FlowFilter, FlowFilterError
from nodemesh.flows.follow import Follower, line, merge, tail
from nodemesh.flows.query import FlowQuery, FlowQueryError
from nodemesh.flows.ring import FlowRing, Page, Subscription

__all__ = [
    "Endpoint",
    "FlowEvent",
    "FlowEventError",
    "FlowFilter",
    "FlowFilterError",
    "FlowQuery",
    "FlowQueryError",
    "FlowRing",
    "FlowVerdict",
    "Follower",
    "Http",
    "Page",
    "Point",
    "Subscription",
    "line",
    "merge",
    "tail",
]
