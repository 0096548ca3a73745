"""What both ends of nodemesh's delta xDS stream share: the resource, the NACK format, the errors.

The controller (:mod:`controller.xds.delta`) and the agents and waypoints
(:mod:`nodemesh.xds.client`) speak Envoy's incremental xDS over
``AggregatedDiscoveryService/DeltaAggregatedResources``.  Neither side needs to understand the
resources it moves: the protocol only compares names and versions.  So a resource is carried here
as opaque bytes (:class:`XdsResource`), and only the component that finally applies it decodes the
payload into its own message type.

Versions are content hashes (:func:`content_version`): two snapshots that build the same bytes for
a resource give it the same version, so a controller restart or a reconnect to another replica
resends nothing that did not change.

NACK format
-----------
Envoy's NACK says only "this response was rejected" with free text in ``error_detail``.  nodemesh
rejects resource by resource (a bad resource is rejected alone; the rest applies), so the server
must learn *which* names were refused.  A nodemesh NACK is a ``DeltaDiscoveryRequest`` with
``response_nonce`` set and ``error_detail`` a ``google.rpc.Status`` with::

    code    = 3 (INVALID_ARGUMENT)
    message = {"rejected": {"<resource name>": "<reason>", ...}}   (JSON, keys sorted)

Every resource of the acknowledged response that is *not* named was applied.  A status whose
message is not in this format (an Envoy or ztunnel client, which writes free text) is read as the
rejection of the whole response: :func:`decode_nack` returns ``None`` and the server falls back to
Envoy's meaning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

WILDCARD = "*"
"""The subscription name meaning "everything the server decides this client gets"."""
NACK_STATUS_CODE = 3
"""google.rpc.Code.INVALID_ARGUMENT: the resources were well delivered but could not be applied."""
VERSION_LENGTH = 16
"""Hex digits of sha256 kept as a version: 64 bits, ample to tell a resource's revisions apart."""


class ProtocolError(Exception):
    """The delta xDS exchange cannot go on as it is; the subclass says who is to blame."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol.  The I/O shell closes the stream (gRPC INVALID_ARGUMENT).

    Closing is the recovery, not just the punishment: the client reconnects and sends its
    ``initial_resource_versions``, after which both sides agree again.
    """


class LocalProtocolError(ProtocolError):
    """Our own caller misused a protocol object (a routing or handler bug); fix the code."""


class ResourceError(ValueError):
    """One resource of a response cannot be read; it is rejected alone and named in the NACK."""


def content_version(payload: bytes) -> str:
    """The version of a resource: a hash of its serialized bytes, equal when the content is."""
    return hashlib.sha256(payload).hexdigest()[:VERSION_LENGTH]


@dataclass(frozen=True)
class XdsResource:
    """One named, versioned resource, its message kept serialized.

    ``type_url`` is the message's full type URL (``type.googleapis.com/<package>.<Message>``), the
    same as the ``type_url`` of the stream it travels on.
    """

    type_url: str
    name: str
    version: str
    payload: bytes

    @classmethod
    def build(cls, type_url: str, name: str, payload: bytes) -> XdsResource:
        """A resource versioned by the hash of its payload (how the controller makes them)."""
        return cls(type_url, name, content_version(payload), payload)

    def to_proto(self) -> discovery_pb2.Resource:
        """The envelope put in ``DeltaDiscoveryResponse.resources``."""
        body = any_pb2.Any(type_url=self.type_url, value=self.payload)
        return discovery_pb2.Resource(name=self.name, version=self.version, resource=body)

    @classmethod
    def from_proto(cls, proto: discovery_pb2.Resource, type_url: str) -> XdsResource:
        """Read one received envelope; raise :class:`ResourceError` if it cannot be used.

        ``type_url`` is the stream's: a resource of another type is refused rather than handed to
        a handler that would misparse it.  A missing version is derived from the payload, so a
        server that leaves versions out still gets meaningful ``initial_resource_versions``.
        """
        if not proto.name:
            raise ResourceError("resource has no name")
        if not proto.HasField("resource"):
            raise ResourceError("resource carries no body (Resource.resource is unset)")
        if proto.resource.type_url != type_url:
            raise ResourceError(
                f"resource body is {proto.resource.type_url!r}, the stream carries {type_url!r}"
            )
        payload = proto.resource.value
        return cls(type_url, proto.name, proto.version or content_version(payload), payload)


@dataclass(frozen=True)
class Rejection:
    """A resource version the client refused, and why (kept so nobody resends it unchanged)."""

    version: str
    reason: str


def encode_nack(rejected: Mapping[str, str]) -> status_pb2.Status:
    """The ``error_detail`` of a NACK naming each rejected resource with its reason."""
    message = json.dumps({"rejected": dict(rejected)}, sort_keys=True)
    return status_pb2.Status(code=NACK_STATUS_CODE, message=message)


def decode_nack(status: status_pb2.Status) -> dict[str, str] | None:
    """The rejected names and reasons of a nodemesh NACK, or ``None`` if not in that format.

    An empty mapping also gives ``None``: a NACK that names nothing rejects the response as a
    whole, which is what a non-nodemesh client means by it.
    """
    try:
        body = json.loads(status.message)
    except ValueError:
        return None
    rejected = body.get("rejected") if isinstance(body, dict) else None
    if not isinstance(rejected, dict) or not rejected:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in rejected.items()):
        return None
    return rejected
