"""`meshctl trace`: the path of one connection through the mesh, hop by hop, and its verdict.

`explain(objects, Probe(...))` works the path out from configuration alone (no traffic): the
controller's translation, then each component's own pure decision with the state that component
would hold. The result is a `Trace` of `Hop`s, rendered by `render` or dumped with `to_dict`; a
live trace (from flow events) is meant to produce the same values, so both print alike.
"""

from nodemesh.trace.explain import explain
from nodemesh.trace.hops import Component, Hop, Trace, Verdict
from nodemesh.trace.probe import HttpProbe, Probe, TraceError, parse_header
from nodemesh.trace.render import render

__all__ = [
    "Component",
    "Hop",
    "HttpProbe",
    "Probe",
    "Trace",
    "TraceError",
    "Verdict",
    "explain",
    "parse_header",
    "render",
]
