"""AuthorizationPolicy rules compiled into L4 matchers, and connections matched against them. Pure.

`node_agent.policy` decides; this module only answers "does rule N match this connection" and
"why". The split follows Istio ambient: istiod compiles each `Rule` into ztunnel's match tree
(pilot `ambient/authorization.go` `handleRule`), and ztunnel walks it per connection (`rbac.rs`):

    rule     = every clause holds                     (from, to, and one clause per `when`)
    clause   = any of its matches holds               (the `from` sources, the `to` operations)
    match    = every test holds                       (the fields of one source or operation)
    test     = some include value matches (if any are listed) and no exclude value does

Everything that can be parsed is parsed here, once, when the index is built: CIDRs become
(version, network, mask) integers, ports become frozensets, `*` patterns become prefix/suffix
tuples. Matching a connection then costs integer and string comparisons only.

Parts of a rule the agent cannot evaluate are left out of the tree and named on the rule:
- `l7`: HTTP attributes (methods, paths, hosts, request principals, remote IP blocks, and `when`
  keys outside `L4_CONDITION_KEYS`); they need a waypoint.
- `invalid`: values that do not parse (a `when` on source.ip with "10.0.0.300"). The manifest
  validator refuses such values in the typed fields, but `when` values are free text.
What a left-out part means depends on the policy's action and is decided in `node_agent.policy`.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.model import (
    DEFAULT_TRUST_DOMAIN,
    L4_CONDITION_KEYS,
    L7_OPERATION_FIELDS,
    L7_SOURCE_FIELDS,
    Condition,
    Operation,
    Rule,
    Source,
)

SPIFFE_SCHEME = "spiffe://"
# Istio reads the trust domain "cluster.local" in a policy as "this mesh's trust domain"
# (pilot/pkg/security/trustdomain), so policies written for the default keep working.
POLICY_LOCAL_TRUST_DOMAIN = "cluster.local"

IpKey = tuple[int, int]  # (IP version, address as an integer)


@functools.lru_cache(maxsize=8192)  # a node sees the same pod addresses again and again
def parse_ip(text: str) -> IpKey | None:
    """An address as integers; IPv4-mapped IPv6 is its IPv4 address. None if it does not parse."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.version, int(address))


def principal_of(source_identity: str | None) -> tuple[str, str]:
    """(principal, namespace) of a peer: "<td>/ns/<ns>/sa/<sa>" and "<ns>", or ("", "").

    Only workload identities are principals. Plaintext has none, and neither has a node agent's
    identity (`.../nodemesh/node/<node>`): it must never match a workload policy, not even `*`.
    """
    if not source_identity or not source_identity.startswith(SPIFFE_SCHEME):
        return "", ""
    principal = source_identity[len(SPIFFE_SCHEME) :]
    parts = principal.split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa" or not all(parts):
        return "", ""
    return principal, parts[2]


@dataclass(frozen=True, slots=True)
class Facts:
    """What L4 authorization knows about one connection, parsed once per connection."""

    principal: str  # peer SPIFFE ID without the scheme; "" for plaintext
    namespace: str  # the peer identity's namespace; "" for plaintext
    source_ip: str  # as the datapath reported it (shown in reasons)
    destination_ip: str
    port: int  # destination port
    source_key: IpKey | None  # source_ip parsed; None if it does not parse (matches no block)
    destination_key: IpKey | None

    @classmethod
    def of(
        cls, source_identity: str | None, source_ip: str, destination_ip: str, port: int
    ) -> Facts:
        principal, namespace = principal_of(source_identity)
        return cls(
            principal,
            namespace,
            source_ip,
            destination_ip,
            port,
            parse_ip(source_ip),
            parse_ip(destination_ip),
        )


# --- value matchers (built once; called per connection) ---------------------------------------


class _Strings:
    """Istio's string match: exact, "prefix*", "*suffix", or "*" (any non-empty value)."""

    __slots__ = ("exact", "prefixes", "presence", "suffixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        exact, prefixes, suffixes, self.presence = set(), [], [], False
        for pattern in patterns:
            if pattern == "*":
                self.presence = True
            elif pattern.startswith("*"):
                suffixes.append(pattern[1:])
            elif pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            else:
                exact.add(pattern)
        self.exact, self.prefixes, self.suffixes = (
            frozenset(exact),
            tuple(prefixes),
            tuple(suffixes),
        )

    def __call__(self, value: str) -> bool:
        # "" is "no identity": ztunnel matches it against nothing (its Presence needs a value).
        if not value:
            return False
        return (
            self.presence
            or value in self.exact
            or value.startswith(self.prefixes)
            or value.endswith(self.suffixes)
        )


class _Networks:
    """IP addresses and CIDR blocks, as (version, network, mask) integers."""

    __slots__ = ("networks",)

    def __init__(self, networks: tuple[tuple[int, int, int], ...]) -> None:
        self.networks = networks

    def __call__(self, key: IpKey | None) -> bool:
        if key is None:
            return False
        version, value = key
        return any(v == version and value & mask == net for v, net, mask in self.networks)


def _networks(values: tuple[str, ...]) -> tuple[_Networks, list[str]]:
    parsed, bad = [], []
    for value in values:
        try:
            network = ipaddress.ip_network(value, strict=False)  # host bits allowed, as Istio
        except ValueError:
            bad.append(value)
            continue
        mask = int(network.netmask)
        parsed.append((network.version, int(network.network_address) & mask, mask))
    return _Networks(tuple(parsed)), bad


def _ports(values: tuple[str, ...]) -> tuple[Callable[[int], bool], list[str]]:
    good = {int(v) for v in values if v.isascii() and v.isdigit() and 1 <= int(v) <= 65535}
    bad = [v for v in values if not (v.isascii() and v.isdigit() and 1 <= int(v) <= 65535)]
    return frozenset(good).__contains__, bad


def _principals(values: tuple[str, ...], trust_domain: str) -> tuple[_Strings, list[str]]:
    """Principal patterns; "cluster.local/..." also stands for the mesh's own trust domain."""
    patterns = list(values)
    if trust_domain != POLICY_LOCAL_TRUST_DOMAIN:
        local = POLICY_LOCAL_TRUST_DOMAIN + "/"
        patterns += [trust_domain + "/" + v[len(local) :] for v in values if v.startswith(local)]
    return _Strings(patterns), []


# attribute -> (label in reasons, Facts field tested, Facts field shown, matcher builder)
_ATTRIBUTES: dict[str, tuple[str, str, str, Callable]] = {
    "principal": ("principal", "principal", "principal", _principals),
    "namespace": ("namespace", "namespace", "namespace", lambda v, _td: (_Strings(v), [])),
    "source.ip": ("source IP", "source_key", "source_ip", lambda v, _td: _networks(v)),
    "destination.ip": (
        "destination IP",
        "destination_key",
        "destination_ip",
        lambda v, _td: _networks(v),
    ),
    "port": ("port", "port", "port", lambda v, _td: _ports(v)),
}
_CONDITION_ATTRIBUTE = {
    "source.ip": "source.ip",
    "source.namespace": "namespace",
    "source.principal": "principal",
    "destination.ip": "destination.ip",
    "destination.port": "port",
}
assert frozenset(_CONDITION_ATTRIBUTE) == L4_CONDITION_KEYS


@dataclass(frozen=True, slots=True)
class AttributeCheck:
    """One attribute of a connection against include/exclude values (ztunnel's matches_internal)."""

    label: str  # "port", "principal", ... (for reasons)
    value: Callable[[Facts], object]  # the tested attribute
    shown: Callable[[Facts], object]  # the attribute as the operator reads it
    include: Callable[[object], bool] | None  # None: no include values were listed
    exclude: Callable[[object], bool] | None  # None: no exclude values were listed

    def __call__(self, facts: Facts) -> bool:
        value = self.value(facts)
        if self.include is not None and not self.include(value):
            return False
        return self.exclude is None or not self.exclude(value)


Match = tuple[AttributeCheck, ...]  # every test holds; () holds for every connection


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One `Rule` of a policy, as L4 matchers plus the parts the agent could not compile."""

    index: int  # position in the policy's rules (reasons say "rule 0")
    clauses: tuple[tuple[Match, ...], ...]  # every clause holds; within one, any match holds
    l7: tuple[str, ...]  # HTTP attributes left out, in Istio's spelling ("methods", "request.*")
    invalid: tuple[str, ...]  # values left out because they do not parse ("source.ip: 'x'")

    @property
    def complete(self) -> bool:
        """True if the L4 matchers are the whole rule."""
        return not self.l7 and not self.invalid

    def matches(self, facts: Facts) -> bool:
        """Whether the compiled (L4) part of the rule matches; left-out parts are not consulted."""
        for clause in self.clauses:
            for match in clause:
                for test in match:
                    if not test(facts):
                        break
                else:
                    break  # every test of this match held: the clause holds
            else:
                return False  # no match of this clause held
        return True

    def explain(self, facts: Facts) -> str:
        """What matched, for a rule that matches: "port 8080, namespace shop matched"."""
        seen: dict[str, None] = {}
        for clause in self.clauses:
            match = next(m for m in clause if all(test(facts) for test in m))
            for test in match:
                shown = test.shown(facts)
                seen[f"{test.label} {shown if shown != '' else '(none: plaintext)'}"] = None
        if not seen:
            return "the rule has no L4 conditions, so it matches every connection"
        return ", ".join(seen) + " matched"


def compile_rule(rule: Rule, index: int, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> CompiledRule:
    l7: list[str] = []
    invalid: list[str] = []
    clauses: list[tuple[Match, ...]] = []
    if rule.sources:
        clauses.append(tuple(_source(s, trust_domain, l7, invalid) for s in rule.sources))
    if rule.operations:
        clauses.append(tuple(_operation(o, trust_domain, l7, invalid) for o in rule.operations))
    clauses.extend((_condition(c, trust_domain, l7, invalid),) for c in rule.conditions)
    return CompiledRule(index, tuple(clauses), tuple(dict.fromkeys(l7)), tuple(invalid))


def _source(source: Source, td: str, l7: list[str], invalid: list[str]) -> Match:
    l7.extend(_camel(field) for field in L7_SOURCE_FIELDS if getattr(source, field))
    return _tests(
        td,
        invalid,
        ("principal", source.principals, source.not_principals),
        ("namespace", source.namespaces, source.not_namespaces),
        ("source.ip", source.ip_blocks, source.not_ip_blocks),
    )


def _operation(operation: Operation, td: str, l7: list[str], invalid: list[str]) -> Match:
    l7.extend(_camel(field) for field in L7_OPERATION_FIELDS if getattr(operation, field))
    return _tests(td, invalid, ("port", operation.ports, operation.not_ports))


def _condition(condition: Condition, td: str, l7: list[str], invalid: list[str]) -> Match:
    attribute = _CONDITION_ATTRIBUTE.get(condition.key)
    if attribute is None:
        l7.append(condition.key)
        return ()
    return _tests(td, invalid, (attribute, condition.values, condition.not_values))


def _tests(
    td: str, invalid: list[str], *fields: tuple[str, tuple[str, ...], tuple[str, ...]]
) -> Match:
    tests = []
    for attribute, include, exclude in fields:
        if not include and not exclude:
            continue
        label, tested, shown, build = _ATTRIBUTES[attribute]
        include_match, bad_include = build(include, td) if include else (None, [])
        exclude_match, bad_exclude = build(exclude, td) if exclude else (None, [])
        if bad_include or bad_exclude:
            # A half-parsed list would silently widen or narrow the rule: leave the test out and
            # let the caller decide, as it does for HTTP attributes.
            invalid.extend(f"{label}: {value!r}" for value in bad_include + bad_exclude)
            continue
        tests.append(
            AttributeCheck(
                label,
                operator.attrgetter(tested),
                operator.attrgetter(shown),
                include_match,
                exclude_match,
            )
        )
    return tuple(tests)


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)
