"""TrafficPolicy objects -> the model's `TrafficPolicy`s, one per Service, losers reported.

Part of `controller.translate`; the rules:

- A TrafficPolicy goes through nodemesh.manifests' validator and normalizer like every policy
  (controller.translate_policy.validated), so the spec the waypoint reads has every default
  written, also when it comes from a Kubernetes API server that stored it as the user wrote it.
  The normalized spec travels whole, as canonical JSON (equal specs, equal text, so an unchanged
  policy is never pushed again); the waypoint parses it (waypoint/resilience/config.py).
- Its Services are its `spec.targetRefs` names, all in the policy's own namespace (Gateway API's
  LocalPolicyTargetReference; the validator refuses anything else). A target Service that does
  not exist is kept: the policy applies as soon as the Service does, as Gateway API attachments do.
- Several policies targeting one Service: the oldest `creationTimestamp` wins, then the name
  (controller.model_traffic.resolve_conflicts); each loss is one error line for the operator.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.model import TrafficPolicy, canonical_json
from controller.model_traffic import creation_timestamp, resolve_conflicts
from controller.translate_policy import Invalid, validated


def traffic_policy(obj: dict) -> TrafficPolicy:
    """The model of one TrafficPolicy object, targets not yet contested; Invalid if broken."""
    obj = validated(obj)
    meta, spec = obj["metadata"], obj["spec"]
    try:
        created = creation_timestamp(meta.get("creationTimestamp"))
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return TrafficPolicy(
        name=meta["name"],
        namespace=meta["namespace"],
        services=tuple(ref["name"] for ref in spec["targetRefs"]),
        spec=canonical_json(spec),
        created=created,
    )


def one_per_service(
    policies: Iterable[TrafficPolicy],
) -> tuple[list[TrafficPolicy], list[tuple[str, str, str]]]:
    """The policies with the Services each one wins; and (namespace, name, why) per lost Service,
    for translate to report as the loser's errors."""
    kept, conflicts = resolve_conflicts(policies)
    return kept, [(c.loser.namespace, c.loser.name, c.message()) for c in conflicts]
