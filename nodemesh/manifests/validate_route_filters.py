"""HTTPRoute filters: each `type` names the one field that carries its configuration."""

from __future__ import annotations

from typing import Any

from nodemesh.manifests import names
from nodemesh.manifests.check import Check, child, set_default

# Filter type -> the field holding its configuration, as Gateway API's CEL rules pair them.
FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
    "ExtensionRef": "extensionRef",
}
# Filters that may be repeated in one rule; the others may appear once.
REPEATABLE = ("RequestMirror", "ExtensionRef")

HEADER_FILTER_FIELDS = frozenset({"set", "add", "remove"})
HEADER_FIELDS = frozenset({"name", "value"})
REDIRECT_FIELDS = frozenset({"scheme", "hostname", "path", "port", "statusCode"})
REWRITE_FIELDS = frozenset({"hostname", "path"})
PATH_MODIFIER_FIELDS = frozenset({"type", "replaceFullPath", "replacePrefixMatch"})
MIRROR_FIELDS = frozenset({"backendRef", "percent", "fraction"})
FRACTION_FIELDS = frozenset({"numerator", "denominator"})
BACKEND_OBJECT_REF_FIELDS = frozenset({"group", "kind", "name", "namespace", "port"})
LOCAL_REF_FIELDS = frozenset({"group", "kind", "name"})

USED_FIELDS = {
    "HTTPRouteFilter": frozenset({"type", *FILTER_FIELDS.values()}),
    "HTTPHeaderFilter": HEADER_FILTER_FIELDS,
    "HTTPHeader": HEADER_FIELDS,
    "HTTPRequestRedirectFilter": REDIRECT_FIELDS,
    "HTTPURLRewriteFilter": REWRITE_FIELDS,
    "HTTPPathModifier": PATH_MODIFIER_FIELDS,
    "HTTPRequestMirrorFilter": MIRROR_FIELDS,
    "Fraction": FRACTION_FIELDS,
    "BackendObjectReference": BACKEND_OBJECT_REF_FIELDS,
    "LocalObjectReference": LOCAL_REF_FIELDS,
}


def validate_filters(owner: dict[str, Any], path: str, check: Check) -> None:
    """Check `owner["filters"]` (a rule's or a backendRef's)."""
    seen: dict[str, str] = {}
    for filter_path, entry in check.each_mapping(owner, "filters", path):
        kind = _validate_filter(entry, filter_path, check)
        if kind is None:
            continue
        if kind in seen and kind not in REPEATABLE:
            check.fail(child(filter_path, "type"), f"{kind} may appear once (also {seen[kind]})")
        seen.setdefault(kind, filter_path)
    if "RequestRedirect" in seen and "URLRewrite" in seen:
        message = "RequestRedirect and URLRewrite may not be used together"
        check.fail(child(path, "filters"), message)


def normalize_filters(owner: dict[str, Any]) -> None:
    set_default(owner, "filters", [])
    for entry in owner["filters"]:
        mirror = entry.get("requestMirror")
        if mirror is not None:
            normalize_backend_object_ref(mirror["backendRef"])


def _validate_filter(entry: dict[str, Any], path: str, check: Check) -> str | None:
    check.fields(entry, path, "HTTPRouteFilter", USED_FIELDS["HTTPRouteFilter"])
    kind = check.choice(entry, "type", path, tuple(FILTER_FIELDS), required=True)
    if kind is None:
        return None
    wanted = FILTER_FIELDS[kind]
    for other in FILTER_FIELDS.values():
        if other != wanted and entry.get(other) is not None:
            check.fail(child(path, other), f"must not be set when type is {kind}")
    config = check.mapping(entry, wanted, path)
    if config is None:
        check.fail(child(path, wanted), f"required when type is {kind}")
        return kind
    config_path = child(path, wanted)
    if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
        _validate_header_modifier(config, config_path, check)
    elif kind == "RequestRedirect":
        _validate_redirect(config, config_path, check)
    elif kind == "URLRewrite":
        check.fields(config, config_path, "HTTPURLRewriteFilter", REWRITE_FIELDS)
        check.string(config, "hostname", config_path, rule=_precise_hostname)
        _validate_path_modifier(config, config_path, check)
    elif kind == "RequestMirror":
        _validate_mirror(config, config_path, check)
    else:
        check.fields(config, config_path, "LocalObjectReference", LOCAL_REF_FIELDS)
        check.string(config, "group", config_path, required=True)
        check.string(config, "kind", config_path, required=True, rule=names.non_empty)
        check.string(config, "name", config_path, required=True, rule=names.non_empty)
    return kind


def _validate_header_modifier(config: dict[str, Any], path: str, check: Check) -> None:
    check.fields(config, path, "HTTPHeaderFilter", HEADER_FILTER_FIELDS)
    for key in ("set", "add"):
        for header_path, header in check.each_mapping(config, key, path):
            check.fields(header, header_path, "HTTPHeader", HEADER_FIELDS)
            check.string(header, "name", header_path, required=True, rule=names.http_token)
            check.string(header, "value", header_path, required=True)
    check.strings(config, "remove", path, rule=names.http_token)


def _validate_redirect(config: dict[str, Any], path: str, check: Check) -> None:
    check.fields(config, path, "HTTPRequestRedirectFilter", REDIRECT_FIELDS)
    check.choice(config, "scheme", path, ("http", "https"))
    check.string(config, "hostname", path, rule=_precise_hostname)
    check.integer(config, "port", path, low=1, high=65535)
    status = check.integer(config, "statusCode", path)
    if status is not None and status not in (301, 302):
        check.fail(child(path, "statusCode"), f"must be 301 or 302, got {status}")
    _validate_path_modifier(config, path, check)


def _validate_path_modifier(config: dict[str, Any], path: str, check: Check) -> None:
    modifier = check.mapping(config, "path", path)
    if modifier is None:
        return
    path = child(path, "path")
    check.fields(modifier, path, "HTTPPathModifier", PATH_MODIFIER_FIELDS)
    kind = check.choice(
        modifier, "type", path, ("ReplaceFullPath", "ReplacePrefixMatch"), required=True
    )
    for field in ("replaceFullPath", "replacePrefixMatch"):
        wanted = kind is not None and field == kind[0].lower() + kind[1:]
        if wanted:
            check.string(modifier, field, path, required=True)
        elif modifier.get(field) is not None:
            check.fail(child(path, field), f"must not be set when type is {kind}")


def _validate_mirror(config: dict[str, Any], path: str, check: Check) -> None:
    check.fields(config, path, "HTTPRequestMirrorFilter", MIRROR_FIELDS)
    ref = check.mapping(config, "backendRef", path, required=True)
    if ref is not None:
        validate_backend_object_ref(ref, child(path, "backendRef"), check)
    check.integer(config, "percent", path, low=0, high=100)
    fraction = check.mapping(config, "fraction", path)
    if fraction is not None:
        fraction_path = child(path, "fraction")
        check.fields(fraction, fraction_path, "Fraction", FRACTION_FIELDS)
        numerator = check.integer(fraction, "numerator", fraction_path, required=True, low=0)
        denominator = check.integer(fraction, "denominator", fraction_path, low=1)
        if numerator is not None and numerator > (denominator or 100):
            check.fail(fraction_path, "numerator must not be greater than denominator")
        if config.get("percent") is not None:
            check.fail(fraction_path, "may not be set together with percent; use one")


def validate_backend_object_ref(
    ref: dict[str, Any],
    path: str,
    check: Check,
    *,
    type_name: str = "BackendObjectReference",
    used: frozenset[str] = BACKEND_OBJECT_REF_FIELDS,
) -> None:
    """group/kind/name/namespace/port of a backend; Services need a port (Gateway API rule).

    HTTPRoute's backendRefs extend this type with more fields: pass their `type_name` and `used`.
    """
    check.fields(ref, path, type_name, used)
    group = check.string(ref, "group", path) or ""
    kind = check.string(ref, "kind", path, rule=names.non_empty) or "Service"
    check.string(ref, "name", path, required=True, rule=names.non_empty)
    check.string(ref, "namespace", path, rule=names.dns1123_label)
    port = check.integer(ref, "port", path, low=1, high=65535)
    if port is None and ref.get("port") is None and group == "" and kind == "Service":
        check.fail(child(path, "port"), "required when referring to a Service")


def normalize_backend_object_ref(ref: dict[str, Any]) -> None:
    set_default(ref, "group", "")
    set_default(ref, "kind", "Service")


def _precise_hostname(value: str) -> str | None:
    if value.startswith("*"):
        return f"must be a precise hostname without wildcards, got {value!r}"
    return names.gateway_hostname(value)
