"""TrafficPolicy <-> `nodemesh.v1.TrafficPolicy` (controller.resources), checked before it is used.

The spec travels as the canonical JSON text of the normalized spec (a string, not a Struct:
numbers stay integers, equal specs stay equal bytes). A receiver holds it to what the waypoint
will do with it, so a policy the waypoint could not apply is refused here, alone, and named in
the NACK, instead of failing a request later:

- the spec is a JSON object that passes nodemesh.manifests' TrafficPolicy validation (the same
  checks `meshctl apply` makes), and `traffic_policy_from_spec` (the waypoint's own reader) parses
  it: a receiver older than its controller refuses a field it does not know rather than ignore it;
- every Service the policy applies to is one of its spec's targetRefs, named once: the controller
  may narrow a policy to the Services it won, never widen it;
- the creation timestamp is "" or in the model's one spelling, so precedence compares instants.
"""

from __future__ import annotations

import json

from controller.model import TrafficPolicy, canonical_json
from controller.model_traffic import creation_timestamp
from controller.resource_checks import ResourceError, require_text
from nodemesh.manifests.validate import validate_object
from nodemesh.proto import mesh_pb2
from waypoint.resilience.config import traffic_policy_from_spec
from waypoint.resilience.errors import ResilienceConfigError

API_VERSION = "networking.nodemesh.io/v1"


def encode_traffic_policy(p: TrafficPolicy) -> mesh_pb2.TrafficPolicy:
    return mesh_pb2.TrafficPolicy(
        name=p.name,
        namespace=p.namespace,
        services=p.services,
        spec=p.spec,
        creation_timestamp=p.created,
    )


def decode_traffic_policy(m: mesh_pb2.TrafficPolicy) -> TrafficPolicy:
    name, namespace = require_text(m.name, "name"), require_text(m.namespace, "namespace")
    spec = _spec(m.spec, name, namespace)
    return TrafficPolicy(
        name=name,
        namespace=namespace,
        services=_services(m.services, spec),
        spec=canonical_json(spec),
        created=_created(m.creation_timestamp),
    )


def _spec(text: str, name: str, namespace: str) -> dict:
    """The spec as data, once it passed the manifest checks and the waypoint's reader."""
    try:
        spec = json.loads(require_text(text, "spec"))
    except json.JSONDecodeError as exc:
        raise ResourceError(f"spec: not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ResourceError(f"spec: must be a JSON object, got {type(spec).__name__}")
    obj = {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }
    manifest, problems = validate_object(obj, "the controller", 1, None)
    if manifest is None:
        raise ResourceError(
            "; ".join(f"{p.field or 'spec'}: {p.message}" for p in problems)  # fields say spec.x
        )
    try:
        traffic_policy_from_spec(spec)
    except ResilienceConfigError as exc:
        raise ResourceError(f"spec: {exc}") from None
    return spec


def _services(services, spec: dict) -> tuple[str, ...]:
    if not services:
        raise ResourceError("services: empty; a policy is sent only for Services it applies to")
    targets = {ref.get("name") for ref in spec["targetRefs"]}
    for service in services:
        if service not in targets:
            raise ResourceError(
                f"services: {service!r} is not one of spec.targetRefs "
                f"({', '.join(sorted(targets))}); a policy applies only to Services it targets"
            )
    if len(set(services)) != len(services):
        raise ResourceError("services: a Service is listed twice")
    return tuple(services)


def _created(value: str) -> str:
    try:
        canonical = creation_timestamp(value)
    except ValueError as exc:
        raise ResourceError(f"creation_timestamp: {exc}") from None
    if canonical != value:
        raise ResourceError(
            f"creation_timestamp: {value!r} is not spelled YYYY-MM-DDTHH:MM:SSZ (UTC), so it "
            "would not compare with other policies' times"
        )
    return value
