"""The checks every `nodemesh.v1` decoder makes on received fields, and the shared conversions.

A client decodes each resource at its trust boundary (controller.resources): these helpers turn a
field that the client would trip over later (an empty name, an address that is not an IP, a port
out of range, an identity that does not parse, an enum value this build does not know) into one
`ResourceError` that names the field, so the resource is rejected alone and the NACK says why.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from controller.model import Labels, freeze_labels
from nodemesh.identity import IdentityError, SpiffeId
from nodemesh.proto import mesh_pb2
from nodemesh.xds import resources as xds_resources


class ResourceError(xds_resources.ResourceError):
    """A received resource that cannot be used; it is rejected alone and named in the NACK."""


def require_text(value: str, what: str) -> str:
    if not value:
        raise ResourceError(f"{what} is empty")
    return value


def ip_address(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ResourceError(f"{what}: {value!r} is not an IP address") from None


def ip_addresses(values: Iterable[str], what: str, *, required: bool) -> tuple[str, ...]:
    addresses = tuple(ip_address(value, what) for value in values)
    if required and not addresses:
        raise ResourceError(f"{what}: no address")
    return addresses


def port_number(value: int, what: str) -> int:
    if not 1 <= value <= 65535:
        raise ResourceError(f"{what}: {value} is not a port number 1-65535")
    return value


def spiffe_id(value: str) -> SpiffeId:
    try:
        return SpiffeId.parse(value)
    except IdentityError as exc:
        raise ResourceError(f"identity: {exc}") from None


def labels_of(labels: Mapping[str, str]) -> Labels:
    return freeze_labels(labels)


def enum_name(enum_type: Any, value: int, what: str) -> str:
    try:
        return enum_type.Name(value)
    except ValueError:
        raise ResourceError(f"{what}: unknown value {value}; is this client older?") from None


def fields_of(obj: Any) -> dict[str, Any]:
    """A model value's fields by name, for messages whose field names are the same."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def encode_selector(selector: Labels | None) -> dict[str, Any]:
    return {} if selector is None else {"selector": {"match_labels": dict(selector)}}


def decode_selector(
    m: mesh_pb2.AuthorizationPolicy | mesh_pb2.PeerAuthentication,
) -> Labels | None:
    """An absent or empty selector is None: both select every workload in scope."""
    if not m.HasField("selector"):
        return None
    return labels_of(m.selector.match_labels) or None
