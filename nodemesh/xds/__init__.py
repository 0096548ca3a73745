"""Delta xDS as nodemesh speaks it, shared by the controller and the nodes (see DESIGN.md).

:mod:`nodemesh.xds.resources` holds what both ends share (the opaque resource, the NACK format, the
errors); :mod:`nodemesh.xds.client` is the agent's and waypoint's side.  The controller's side is
:mod:`controller.xds.delta`.  Both sides are sans-I/O: the gRPC shells around them live elsewhere.
"""

from nodemesh.xds.client import DeltaClient, Handler, build_node
from nodemesh.xds.resources import (
    WILDCARD,
    LocalProtocolError,
    ProtocolError,
    Rejection,
    RemoteProtocolError,
    ResourceError,
    XdsResource,
    content_version,
    decode_nack,
    encode_nack,
)

__all__ = [
    "WILDCARD",
    "DeltaClient",
    "Handler",
    "LocalProtocolError",
    "ProtocolError",
    "Rejection",
    "RemoteProtocolError",
    "ResourceError",
    "XdsResource",
    "build_node",
    "content_version",
    "decode_nack",
    "encode_nack",
]
