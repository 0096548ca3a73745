"""The attributes a rule can test: where each is read from Facts, and how its values parse. Pure.

Istio names an attribute in two ways: as a field of a `Source` or `Operation` (`ipBlocks`,
`methods`) and as a `when` key (`source.ip`, `request.headers[x-user]`). Both resolve here to one
`Attribute`, so a field and its `when` twin can never drift apart.

An attribute is L4 (the node agent knows it) or L7 (only a waypoint that parsed the request
does). What the evaluator does with an L7 attribute when it has no HTTP facts is the engine's
business (`nodemesh.authz`), not this table's.

`when` keys and what they read (Istio's "Authorization Policy Conditions"):

    source.ip, destination.ip, destination.port        the connection           (L4)
    source.principal, source.namespace                 the mTLS peer identity   (L4)
    remote.ip                                          X-Forwarded-For client   (L7)
    request.headers[<name>]                            a request header         (L7)
    connection.sni                                     the client's TLS SNI     (L7)
    request.auth.principal, .audiences, .presenter,
    request.auth.claims[<claim>]                       a validated JWT          (L7)

nodemesh validates no JWTs (it has no RequestAuthentication), so every request is
unauthenticated: `request.auth.*` and `requestPrincipals` values never match and their
`notValues` / `notRequestPrincipals` never exclude, exactly as Istio treats a request that
carries no valid token. `DENY notRequestPrincipals: ["*"]` therefore denies every request.

`experimental.envoy.filters.*` keys match Envoy filter metadata, which nodemesh does not have;
they, and any key not listed above, are unsupported: `resolve_condition` says so and the engine
fails closed on them (an ALLOW rule holding one never matches, a DENY rule counts it as matched).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.authz import matchers
from nodemesh.authz.facts import Facts

Builder = Callable[[tuple[str, ...], str], matchers.Built]


@dataclass(frozen=True, slots=True)
class Attribute:
    """One testable attribute of a connection or request."""

    label: str  # how reasons name it: "port", "path", "request header x-user"
    l7: bool  # read from Facts.http: only a waypoint knows it
    value: Callable[[Facts], object]  # what the matchers compare
    shown: Callable[[Facts], str]  # what reasons print when it matched
    build: Builder  # values as written -> (matcher, values that do not parse)


def _http(field: str) -> Callable[[Facts], object]:
    getter = operator.attrgetter(field)
    return lambda facts: getter(facts.http)


def _shown(field: str, absent: str) -> Callable[[Facts], str]:
    getter = operator.attrgetter(field)
    return lambda facts: str(getter(facts)) or absent


def _nothing(_facts: Facts) -> str:
    return ""  # no JWT was validated: the attribute has no value


_NO_JWT = "(none: nodemesh validates no JWTs)"
_PLAINTEXT = "(none: plaintext)"

ATTRIBUTES: dict[str, Attribute] = {
    "principal": Attribute(
        "principal",
        False,
        operator.attrgetter("principal"),
        _shown("principal", _PLAINTEXT),
        matchers.principals,
    ),
    "namespace": Attribute(
        "namespace",
        False,
        operator.attrgetter("namespace"),
        _shown("namespace", _PLAINTEXT),
        matchers.strings,
    ),
    "source.ip": Attribute(
        "source IP",
        False,
        operator.attrgetter("source_key"),
        _shown("source_ip", "(none)"),
        matchers.networks,
    ),
    "destination.ip": Attribute(
        "destination IP",
        False,
        operator.attrgetter("destination_key"),
        _shown("destination_ip", "(none)"),
        matchers.networks,
    ),
    "port": Attribute(
        "port", False, operator.attrgetter("port"), _shown("port", "(none)"), matchers.ports
    ),
    "request.principal": Attribute(
        "request principal", True, _nothing, lambda _f: _NO_JWT, matchers.strings
    ),
    "remote.ip": Attribute(
        "remote IP",
        True,
        _http("remote_key"),
        _shown("http.remote_ip", "(none)"),
        matchers.networks,
    ),
    "host": Attribute(
        "host", True, _http("hosts"), _shown("http.authority", "(none)"), matchers.hosts
    ),
    "method": Attribute(
        "method", True, _http("method"), _shown("http.method", "(none)"), matchers.strings
    ),
    "path": Attribute("path", True, _http("path"), _shown("http.path", "(none)"), matchers.paths),
    "connection.sni": Attribute(
        "SNI", True, _http("sni"), _shown("http.sni", "(none)"), matchers.strings
    ),
}

# Source / Operation fields (controller.model names, without "not_") -> attribute
FIELD_ATTRIBUTES = {
    "principals": "principal",
    "namespaces": "namespace",
    "ip_blocks": "source.ip",
    "request_principals": "request.principal",
    "remote_ip_blocks": "remote.ip",
    "hosts": "host",
    "ports": "port",
    "methods": "method",
    "paths": "path",
}

_CONDITION_KEYS = {
    "source.ip": "source.ip",
    "source.namespace": "namespace",
    "source.principal": "principal",
    "destination.ip": "destination.ip",
    "destination.port": "port",
    "remote.ip": "remote.ip",
    "connection.sni": "connection.sni",
}
_JWT_KEYS = ("request.auth.principal", "request.auth.audiences", "request.auth.presenter")


def resolve_condition(key: str) -> Attribute | str:
    """The attribute a `when` key tests, or why nodemesh cannot test it (a sentence)."""
    if key in _CONDITION_KEYS:
        return ATTRIBUTES[_CONDITION_KEYS[key]]
    header = _bracketed(key, "request.headers[")
    if header:
        return _header(header.lower())
    if key in _JWT_KEYS or _bracketed(key, "request.auth.claims["):
        return Attribute(key, True, _nothing, lambda _f: _NO_JWT, matchers.strings)
    if key.startswith("experimental.envoy.filters."):
        return f"condition key {key!r} (Envoy filter metadata, which nodemesh does not have)"
    return f"condition key {key!r} (not a key nodemesh knows)"


def _bracketed(key: str, prefix: str) -> str:
    """The name in brackets: "x-user" for "request.headers[x-user]"; "" if there is none."""
    if key.startswith(prefix) and key.endswith("]"):
        return key[len(prefix) : -1]
    return ""


def _header(name: str) -> Attribute:
    # Header values can be credentials (Authorization, cookies): reasons name the header only.
    return Attribute(
        f"request header {name}",
        True,
        lambda facts: facts.http.header(name),
        lambda _f: "",
        matchers.headers,
    )
