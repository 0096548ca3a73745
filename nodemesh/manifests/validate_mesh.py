"""security.nodemesh.io/v1 AuthorizationPolicy and PeerAuthentication: Istio's spec shapes.

The specs are Istio's security.istio.io/v1 ones so existing policies port by changing apiVersion.
Only shape is checked here; what a policy means is the policy compiler's business. Because a
security policy that silently drops a constraint allows more than its author meant, every field
accepted here must be enforced downstream: fields nodemesh cannot enforce are refused
(kinds.UNSUPPORTED_FIELDS).
"""

from __future__ import annotations

from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default
from nodemesh.manifests.validate_meta import validate_label_selector

POLICY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
AUTHZ_SPEC_FIELDS = frozenset({"selector", "targetRefs", "action", "rules"})
TARGET_REF_FIELDS = frozenset({"group", "kind", "name", "namespace"})
RULE_FIELDS = frozenset({"from", "to", "when"})
SOURCE_FIELDS = {
    "principals": names.non_empty,
    "notPrincipals": names.non_empty,
    "requestPrincipals": names.non_empty,
    "notRequestPrincipals": names.non_empty,
    "namespaces": names.non_empty,
    "notNamespaces": names.non_empty,
    "ipBlocks": names.ip_block,
    "notIpBlocks": names.ip_block,
    "remoteIpBlocks": names.ip_block,
    "notRemoteIpBlocks": names.ip_block,
}
OPERATION_FIELDS = {
    "hosts": names.non_empty,
    "notHosts": names.non_empty,
    "ports": names.port_number_string,
    "notPorts": names.port_number_string,
    "methods": names.non_empty,
    "notMethods": names.non_empty,
    "paths": names.non_empty,
    "notPaths": names.non_empty,
}
CONDITION_FIELDS = frozenset({"key", "values", "notValues"})
PEER_AUTHN_SPEC_FIELDS = frozenset({"selector", "mtls", "portLevelMtls"})
MTLS_FIELDS = frozenset({"mode"})

USED_FIELDS = {
    "AuthorizationPolicy": POLICY_FIELDS,
    "AuthorizationPolicySpec": AUTHZ_SPEC_FIELDS,
    "PolicyTargetReference": TARGET_REF_FIELDS,
    "Rule": RULE_FIELDS,
    "RuleFrom": frozenset({"source"}),
    "RuleTo": frozenset({"operation"}),
    "Source": frozenset(SOURCE_FIELDS),
    "Operation": frozenset(OPERATION_FIELDS),
    "Condition": CONDITION_FIELDS,
    "PeerAuthentication": POLICY_FIELDS,
    "PeerAuthenticationSpec": PEER_AUTHN_SPEC_FIELDS,
    "MutualTLS": MTLS_FIELDS,
}

ACTIONS = ("ALLOW", "DENY", "AUDIT", "CUSTOM")
MTLS_MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")


def validate_authorization_policy(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "AuthorizationPolicy", POLICY_FIELDS)
    spec = check.mapping(obj, "spec", path)
    if spec is None:
        return  # an empty spec is valid: an ALLOW policy with no rules matching nothing
    path = child(path, "spec")
    check.fields(spec, path, "AuthorizationPolicySpec", AUTHZ_SPEC_FIELDS)
    validate_label_selector(spec, "selector", path, check, type_name="WorkloadSelector")
    for ref_path, ref in check.each_mapping(spec, "targetRefs", path):
        check.fields(ref, ref_path, "PolicyTargetReference", TARGET_REF_FIELDS)
        check.string(ref, "group", ref_path)
        check.string(ref, "kind", ref_path, required=True, rule=names.non_empty)
        check.string(ref, "name", ref_path, required=True, rule=names.non_empty)
        check.string(ref, "namespace", ref_path, rule=names.dns1123_label)
    if spec.get("selector") is not None and spec.get("targetRefs"):
        check.fail(child(path, "targetRefs"), "may not be set together with selector; use one")
    if check.choice(spec, "action", path, ACTIONS) == "CUSTOM":
        check.fail(
            child(path, "action"),
            "CUSTOM is not supported: nodemesh has no external authorization providers; "
            "use ALLOW, DENY or AUDIT",
        )
    for rule_path, rule in check.each_mapping(spec, "rules", path):
        _validate_rule(rule, rule_path, check)


def normalize_authorization_policy(obj: dict[str, Any]) -> None:
    set_default(obj, "spec", {})
    set_default(obj["spec"], "action", "ALLOW")
    set_default(obj["spec"], "rules", [])


def _validate_rule(rule: dict[str, Any], path: str, check: Check) -> None:
    check.fields(rule, path, "Rule", RULE_FIELDS)
    for from_path, entry in check.each_mapping(rule, "from", path):
        check.fields(entry, from_path, "RuleFrom", {"source"})
        _validate_match(entry, "source", from_path, check, "Source", SOURCE_FIELDS)
    for to_path, entry in check.each_mapping(rule, "to", path):
        check.fields(entry, to_path, "RuleTo", {"operation"})
        _validate_match(entry, "operation", to_path, check, "Operation", OPERATION_FIELDS)
    for when_path, condition in check.each_mapping(rule, "when", path):
        check.fields(condition, when_path, "Condition", CONDITION_FIELDS)
        check.string(condition, "key", when_path, required=True, rule=names.non_empty)
        check.strings(condition, "values", when_path)
        check.strings(condition, "notValues", when_path)
        if not condition.get("values") and not condition.get("notValues"):
            check.fail(when_path, "must set values or notValues")


def _validate_match(
    entry: dict[str, Any], key: str, path: str, check: Check, type_name: str, fields: dict
) -> None:
    """A `source` or `operation`: lists of strings, each checked by its field's rule."""
    match = check.mapping(entry, key, path, required=True)
    if match is None:
        return
    path = child(path, key)
    check.fields(match, path, type_name, fields)
    if not any(match.get(name) for name in fields):
        check.fail(path, f"must not be empty; set at least one of {', '.join(fields)}")
    for name, rule in fields.items():
        check.strings(match, name, path, rule=rule)


def validate_peer_authentication(obj: dict[str, Any], path: str, check: Check) -> None:
    check.fields(obj, path, "PeerAuthentication", POLICY_FIELDS)
    spec = check.mapping(obj, "spec", path)
    if spec is None:
        return
    path = child(path, "spec")
    check.fields(spec, path, "PeerAuthenticationSpec", PEER_AUTHN_SPEC_FIELDS)
    validate_label_selector(spec, "selector", path, check, type_name="WorkloadSelector")
    _validate_mtls(spec, "mtls", path, check)
    port_level = check.mapping(spec, "portLevelMtls", path)
    if not port_level:
        return
    port_level_path = child(path, "portLevelMtls")
    if spec.get("selector") is None:
        message = "requires a selector: port numbers only mean something for chosen workloads"
        check.fail(port_level_path, message)
    seen: set[int] = set()
    for port in port_level:
        number = _port_key(port)
        if number is None:
            message = f"keys must be port numbers 1-65535, got {port!r}"
            check.fail(child(port_level_path, port), message)
        elif number in seen:
            check.fail(child(port_level_path, port), f"duplicate port {number}")
        seen.add(number or 0)
        _validate_mtls(port_level, port, port_level_path, check)


def normalize_peer_authentication(obj: dict[str, Any]) -> None:
    set_default(obj, "spec", {})
    spec = obj["spec"]
    set_default(spec, "mtls", {})
    set_default(spec["mtls"], "mode", "UNSET")
    # YAML reads `8080:` as an integer key and JSON as a string one; later code sees integers.
    port_level = spec.get("portLevelMtls") or {}
    spec["portLevelMtls"] = {_port_key(port): mtls or {} for port, mtls in port_level.items()}
    for mtls in spec["portLevelMtls"].values():
        set_default(mtls, "mode", "UNSET")


def _validate_mtls(obj: dict[Any, Any], key: Any, path: str, check: Check) -> None:
    mtls = check.mapping(obj, key, path)
    if mtls is not None:
        mtls_path = child(path, key)
        check.fields(mtls, mtls_path, "MutualTLS", MTLS_FIELDS)
        check.choice(mtls, "mode", mtls_path, MTLS_MODES)


def _port_key(port: object) -> int | None:
    if isinstance(port, str) and port.isascii() and port.isdigit():
        port = int(port)
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        return port
    return None
