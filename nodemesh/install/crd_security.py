"""Schemas of security.nodemesh.io/v1 AuthorizationPolicy and PeerAuthentication.

The specs are Istio's security.istio.io/v1 shapes, restricted to what nodemesh enforces
(nodemesh/manifests/validate_mesh.py is the reference): a security policy whose field is silently
dropped allows more than its author meant, so fields the validator refuses (`provider`,
`targetRef`, `serviceAccounts`, action CUSTOM) are absent here too, and the API server's strict
field validation refuses them instead of pruning them quietly.
"""

from __future__ import annotations

from nodemesh.install import openapi as o
from nodemesh.manifests import validate_mesh as mesh

# Fields whose values are checked the same way by validate_mesh.SOURCE_FIELDS / OPERATION_FIELDS.
_IP_FIELDS = ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")
_PORT_FIELDS = ("ports", "notPorts")
# CUSTOM needs an external authorization provider, which nodemesh does not have.
SUPPORTED_ACTIONS = tuple(action for action in mesh.ACTIONS if action != "CUSTOM")


def _match_value(field: str) -> o.Schema:
    if field in _IP_FIELDS:
        return o.string("An IP address or CIDR block.", pattern=o.IP_BLOCK_PATTERN)
    if field in _PORT_FIELDS:
        return o.string("A port number, as a string.", pattern=o.PORT_STRING_PATTERN)
    return o.string(min_length=1)


def _any_set(fields: tuple[str, ...]) -> str:
    return " || ".join(f"(has(self.{name}) && size(self.{name}) > 0)" for name in fields)


def _match(fields: tuple[str, ...], description: str) -> o.Schema:
    """A `source` or `operation`: lists of strings; at least one list must be non-empty."""
    listing = ", ".join(fields)
    return o.obj(
        {name: o.array(_match_value(name)) for name in fields},
        description=description,
        rules=(o.rule(_any_set(fields), f"must not be empty; set at least one of {listing}"),),
    )


def _rule() -> o.Schema:
    source = _match(tuple(mesh.SOURCE_FIELDS), "Who sends the request (peer identity, address).")
    operation = _match(
        tuple(mesh.OPERATION_FIELDS), "What the request asks for (host, port, path)."
    )
    condition = o.obj(
        {
            "key": o.string("An Istio condition key, e.g. request.headers[x-user].", min_length=1),
            "values": o.array(o.string()),
            "notValues": o.array(o.string()),
        },
        required=("key",),
        rules=(o.rule(_any_set(("values", "notValues")), "must set values or notValues"),),
    )
    return o.obj(
        {
            "from": o.array(o.obj({"source": source}, required=("source",))),
            "to": o.array(o.obj({"operation": operation}, required=("operation",))),
            "when": o.array(condition),
        },
        description="Matches when every present section matches (from AND to AND when).",
    )


def authorization_policy_spec() -> o.Schema:
    target_ref = o.obj(
        {
            "group": o.string('API group of the target; "" for a Service.'),
            "kind": o.string("Kind of the target, e.g. Service or Gateway.", min_length=1),
            "name": o.string("Name of the target.", min_length=1),
            "namespace": o.string(
                "Namespace of the target (the policy's own if left out).",
                pattern=o.DNS1123_LABEL_PATTERN,
                max_length=63,
            ),
        },
        required=("kind", "name"),
    )
    return o.obj(
        {
            "selector": o.selector(
                "Workloads the policy applies to (all in the namespace if unset)."
            ),
            "targetRefs": o.array(target_ref, "Services or waypoints the policy attaches to."),
            "action": o.string(
                "ALLOW (default), DENY or AUDIT. CUSTOM is not supported: nodemesh has no "
                "external authorization providers.",
                enum=SUPPORTED_ACTIONS,
            ),
            "rules": o.array(_rule(), "A request matching any rule gets the action."),
        },
        description="Istio's AuthorizationPolicy spec (security.istio.io/v1).",
        rules=(
            o.rule(
                "!(has(self.selector) && has(self.targetRefs) && size(self.targetRefs) > 0)",
                "targetRefs may not be set together with selector; use one",
            ),
        ),
    )


def _mtls() -> o.Schema:
    return o.obj(
        {"mode": o.string("Mutual TLS mode (UNSET inherits).", enum=mesh.MTLS_MODES)},
        description="Mutual TLS settings.",
    )


def peer_authentication_spec() -> o.Schema:
    port_level = {
        **o.obj({}, description="Per-port mTLS modes, keyed by port number (needs a selector)."),
        "additionalProperties": _mtls(),
        "x-kubernetes-validations": [
            o.rule(
                "self.all(port, port.matches('^[0-9]+$') && int(port) >= 1 && int(port) <= 65535)",
                "keys must be port numbers 1-65535",
            )
        ],
    }
    del port_level["properties"]  # a map: additionalProperties only
    return o.obj(
        {
            "selector": o.selector(
                "Workloads the policy applies to (all in the namespace if unset)."
            ),
            "mtls": _mtls(),
            "portLevelMtls": port_level,
        },
        description="Istio's PeerAuthentication spec (security.istio.io/v1).",
        rules=(
            o.rule(
                "!has(self.portLevelMtls) || size(self.portLevelMtls) == 0 || has(self.selector)",
                "portLevelMtls requires a selector: port numbers only mean something for chosen "
                "workloads",
            ),
        ),
    )
