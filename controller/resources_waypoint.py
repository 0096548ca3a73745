"""Waypoint <-> `nodemesh.v1.Waypoint` (controller.resources), checked like the pods it stands for.

A Waypoint tells an agent where to send a destination's traffic and whom to accept it from, so
decoding holds it to what the controller promises: the identity parses and is the waypoint's own
(namespace and service account = its name), every address is an IP, the port is a port, and a
waypoint that does not exist has no address to send to.
"""

from __future__ import annotations

from controller.model import Waypoint
from controller.resource_checks import (
    ResourceError,
    fields_of,
    ip_addresses,
    port_number,
    require_text,
    spiffe_id,
)
from nodemesh.proto import mesh_pb2


def encode_waypoint(w: Waypoint) -> mesh_pb2.Waypoint:
    return mesh_pb2.Waypoint(**fields_of(w))


def decode_waypoint(m: mesh_pb2.Waypoint) -> Waypoint:
    name, namespace = require_text(m.name, "name"), require_text(m.namespace, "namespace")
    identity = spiffe_id(m.identity)
    if (identity.namespace, identity.service_account) != (namespace, name):
        raise ResourceError(
            f"identity {m.identity} is not namespace {namespace!r}, service account {name!r}: "
            "a waypoint's pods run as the service account named after it"
        )
    addresses = ip_addresses(m.addresses, "addresses", required=False)
    if addresses and not m.exists:
        raise ResourceError("addresses are set but exists is false: a missing waypoint has no pod")
    return Waypoint(
        name=name,
        namespace=namespace,
        identity=m.identity,
        addresses=addresses,
        hbone_port=port_number(m.hbone_port, "hbone_port"),
        exists=m.exists,
    )
