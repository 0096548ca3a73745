"""Value matchers for AuthorizationPolicy fields: built once per push, called per request. Pure.

Each builder takes the values of one field as the policy wrote them and returns a matcher plus
the values it could not use (`bad`). The caller never uses a half-parsed list: a list with one
bad value would silently widen or narrow the rule, so the whole test is left out and reported
(see `nodemesh.authz.compile`).

String fields use Istio's one-wildcard syntax (exact, "prefix*", "*suffix", or "*" for any
non-empty value); IP fields take addresses and CIDR blocks; ports are decimal strings.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from nodemesh.authz.facts import IpKey

# Istio reads the trust domain "cluster.local" in a policy as "this mesh's trust domain"
# (pilot/pkg/security/trustdomain), so policies written for the default keep working.
POLICY_LOCAL_TRUST_DOMAIN = "cluster.local"

Built = tuple[Callable[[object], bool], list[str]]  # (matcher, values that did not parse)


class StringMatch:
    """Istio's string match: exact, "prefix*", "*suffix", or "*" (any non-empty value)."""

    __slots__ = ("exact", "fold", "prefixes", "presence", "suffixes")

    def __init__(self, patterns: Iterable[str], *, ignore_case: bool = False) -> None:
        self.fold = ignore_case
        exact, prefixes, suffixes, self.presence = set(), [], [], False
        for pattern in patterns:
            pattern = pattern.lower() if ignore_case else pattern
            if pattern == "*":
                self.presence = True
            elif pattern.startswith("*"):
                suffixes.append(pattern[1:])
            elif pattern.endswith("*"):
                prefixes.append(pattern[:-1])
            else:
                exact.add(pattern)
        self.exact = frozenset(exact)
        self.prefixes, self.suffixes = tuple(prefixes), tuple(suffixes)

    def __call__(self, value: str) -> bool:
        # "" is "no value" (no identity, no JWT, no SNI): like Envoy's presence match, nothing
        # matches it, not even "*".
        if not value:
            return False
        if self.fold:
            value = value.lower()
        return (
            self.presence
            or value in self.exact
            or value.startswith(self.prefixes)
            or value.endswith(self.suffixes)
        )


class AnySpelling:
    """A string match over several spellings of one value (a Host with and without its port)."""

    __slots__ = ("match",)

    def __init__(self, match: StringMatch) -> None:
        self.match = match

    def __call__(self, spellings: tuple[str, ...]) -> bool:
        return any(self.match(spelling) for spelling in spellings)


class HeaderMatch:
    """A header value: an absent header (None) matches nothing; "*" matches any present one."""

    __slots__ = ("match",)

    def __init__(self, match: StringMatch) -> None:
        self.match = match

    def __call__(self, value: str | None) -> bool:
        if value is None:
            return False
        return self.match.presence or self.match(value)


class Networks:
    """IP addresses and CIDR blocks, as (version, network, mask) integers."""

    __slots__ = ("networks",)

    def __init__(self, networks: tuple[tuple[int, int, int], ...]) -> None:
        self.networks = networks

    def __call__(self, key: IpKey | None) -> bool:
        if key is None:
            return False
        version, value = key
        return any(v == version and value & mask == net for v, net, mask in self.networks)


def strings(values: tuple[str, ...], _trust_domain: str) -> Built:
    return StringMatch(values), []


def networks(values: tuple[str, ...], _trust_domain: str) -> Built:
    parsed, bad = [], []
    for value in values:
        try:
            network = ipaddress.ip_network(value, strict=False)  # host bits allowed, as Istio
        except ValueError:
            bad.append(value)
            continue
        mask = int(network.netmask)
        parsed.append((network.version, int(network.network_address) & mask, mask))
    return Networks(tuple(parsed)), bad


def ports(values: tuple[str, ...], _trust_domain: str) -> Built:
    good = {int(v) for v in values if _is_port(v)}
    return frozenset(good).__contains__, [v for v in values if not _is_port(v)]


def _is_port(value: str) -> bool:
    return value.isascii() and value.isdigit() and 1 <= int(value) <= 65535


def principals(values: tuple[str, ...], trust_domain: str) -> Built:
    """Principal patterns; "cluster.local/..." also stands for the mesh's own trust domain."""
    patterns = list(values)
    if trust_domain != POLICY_LOCAL_TRUST_DOMAIN:
        local = POLICY_LOCAL_TRUST_DOMAIN + "/"
        patterns += [trust_domain + "/" + v[len(local) :] for v in values if v.startswith(local)]
    return StringMatch(patterns), []


def hosts(values: tuple[str, ...], _trust_domain: str) -> Built:
    """Host patterns, case-insensitive (Istio), against every spelling of the request's Host."""
    return AnySpelling(StringMatch(values, ignore_case=True)), []


def paths(values: tuple[str, ...], _trust_domain: str) -> Built:
    """Path patterns, case-sensitive, against the normalized path without its query.

    Istio's path templates ("/api/{*}/x", "/{**}") are not supported: taken literally they
    would never match, so they are refused like unparseable values.
    """
    bad = [v for v in values if "{" in v or "}" in v]
    return StringMatch(values), bad


def headers(values: tuple[str, ...], _trust_domain: str) -> Built:
    return HeaderMatch(StringMatch(values)), []
