"""What authorization knows about one connection or request, parsed once per evaluation. Pure.

A `Facts` always holds the L4 view (peer identity, addresses, destination port). It holds an
`HttpFacts` only where a request has been parsed, that is at the waypoint; the node agent builds
`Facts` without one. The evaluator reads that absence as "HTTP attributes are unknown here" and
applies the agent's conservative semantics (see `nodemesh.authz`), so one rule tree serves both.

Everything a matcher compares is prepared here, once: addresses become integers, the peer
identity is split into principal and namespace, the Host is lower-cased in both its spellings.
Matching then costs integer and string comparisons only.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

SPIFFE_SCHEME = "spiffe://"

IpKey = tuple[int, int]  # (IP version, address as an integer)
Headers = tuple[tuple[str, str], ...]  # (lower-case name, value) pairs, as the waypoint parsed them


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


def host_spellings(authority: str) -> tuple[str, ...]:
    """The Host as policies compare it: lower-cased, with and without its port.

    Envoy compares `hosts` against the Host header as sent, so `Host: admin.shop:80` escapes a
    DENY on `admin.shop` (Istio's best-practice guide warns about it). nodemesh matches a host
    pattern against either spelling instead: a DENY cannot be dodged by adding a port, and an
    ALLOW written as Istio users write it (`[x, "x:*"]`) still works.
    """
    host = authority.lower()
    if not host:
        return ()
    bare = host
    if host.startswith("["):  # IPv6 literal: "[::1]:8080"
        end = host.find("]")
        if end != -1 and host[end + 1 : end + 2] == ":":
            bare = host[: end + 1]
    elif host.count(":") == 1:
        bare = host.split(":", 1)[0]
    return (host,) if bare == host else (host, bare)


# Pseudo-headers live in RequestHead fields, not in its headers; `request.headers[:method]` still
# means the method, as in Envoy (which also files HTTP/1.1's Host under ":authority"). ":path"
# is the normalized path without its query, the one spelling every path test sees.
_PSEUDO_HEADERS = {
    ":method": "method",
    ":authority": "authority",
    "host": "authority",
    ":path": "path",
    ":scheme": "scheme",
}


@dataclass(frozen=True, slots=True)
class HttpFacts:
    """What the waypoint knows about one request, beyond the connection it came on."""

    method: str  # as sent ("GET"); methods are case-sensitive
    path: str  # normalized (nodemesh.authz.paths), without the query string
    authority: str  # Host / :authority as sent (shown in reasons)
    hosts: tuple[str, ...]  # host_spellings(authority): what `hosts` patterns are matched against
    headers: Headers  # request headers, lower-case names, hop-by-hop ones removed
    scheme: str  # "http" or "https", as the client used it
    remote_ip: str  # the original client (X-Forwarded-For, trusted hops); else the source address
    remote_key: IpKey | None  # remote_ip parsed; None if it does not parse (matches no block)
    sni: str  # SNI of the client's TLS connection to the waypoint; "" when there was none

    @classmethod
    def of(
        cls,
        method: str,
        path: str,
        authority: str,
        headers: Headers = (),
        *,
        scheme: str = "http",
        remote_ip: str = "",
        sni: str = "",
    ) -> HttpFacts:
        """Facts of one request; `path` must already be normalized (see nodemesh.authz.paths)."""
        lowered = tuple((name.lower(), value) for name, value in headers)
        return cls(
            method,
            path,
            authority,
            host_spellings(authority),
            lowered,
            scheme,
            remote_ip,
            parse_ip(remote_ip),
            sni,
        )

    def header(self, name: str) -> str | None:
        """Header `name` (lower-case) as Envoy matches it: repeated values joined by ",".

        None when absent, which a value never matches and a `notValues` never excludes.
        """
        pseudo = _PSEUDO_HEADERS.get(name)
        if pseudo is not None:
            value = getattr(self, pseudo)
            return value or None
        values = [value for key, value in self.headers if key == name]
        return ",".join(values) if values else None


@dataclass(frozen=True, slots=True)
class Facts:
    """What authorization knows about one connection (and, at the waypoint, one request)."""

    principal: str  # peer SPIFFE ID without the scheme; "" for plaintext
    namespace: str  # the peer identity's namespace; "" for plaintext
    source_ip: str  # as the datapath reported it (shown in reasons)
    destination_ip: str
    port: int  # destination port
    source_key: IpKey | None  # source_ip parsed; None if it does not parse (matches no block)
    destination_key: IpKey | None
    http: HttpFacts | None = None  # None at the node agent: HTTP attributes are unknown there

    @classmethod
    def of(
        cls,
        source_identity: str | None,
        source_ip: str,
        destination_ip: str,
        port: int,
        http: HttpFacts | None = None,
    ) -> Facts:
        """Facts of a connection; pass `source_identity` only if mutual TLS verified it."""
        principal, namespace = principal_of(source_identity)
        return cls(
            principal,
            namespace,
            source_ip,
            destination_ip,
            port,
            parse_ip(source_ip),
            parse_ip(destination_ip),
            http,
        )
