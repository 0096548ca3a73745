"""ClusterIP services for the local cluster, rendered as one nftables table per node netns.

Theory of operation
-------------------
Every pod, in the mesh or not, must reach Service ClusterIPs (VIPs). As in kube-proxy's nftables
mode, each node netns gets one table that the runtime replaces wholesale on every change:

* ``nat-prerouting`` (pods routed through the node) and ``nat-output`` (processes in the node
  netns) jump to ``services``, which looks up ``daddr . l4proto . dport`` in the ``service-ips``
  verdict map and goes to one chain per service port.
* A service-port chain picks an endpoint with ``numgen random mod N`` (equal weight); an endpoint
  chain DNATs to ``ip:port``. Conntrack keeps the choice for the life of the connection, so an
  update only affects new connections (UDP flows keep their old endpoint until their conntrack
  entry expires).
* Hairpin: if the chosen endpoint is the client itself, the reply would never return to the node
  to be un-DNATed. The endpoint chain therefore sets bit ``MASQUERADE_MARK`` and ``nat-postrouting``
  masquerades marked packets (clearing the bit, leaving other mark bits alone). Masquerade needs an
  IPv4 address somewhere in the node netns.
* Rejects run in filter chains *before* DNAT (priority -110), while ``daddr`` is still the VIP:
  ``port-check`` returns for ports with endpoints and rejects ports without any, then anything else
  sent to a known VIP (an unknown port, ICMP) is rejected. Callers get ECONNREFUSED at once rather
  than a timeout, without depending on the node having a route for the VIP range. (This needs a
  kernel that allows ``reject`` at prerouting; verified on 6.18.)

``render_ruleset`` is pure and deterministic: the same input renders byte-identical text, so the
caller can skip an unchanged apply. ``apply_ruleset`` and ``delete_ruleset`` are the only I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_TABLE = "nodemesh-kubeproxy"
#: Mark bit asking ``nat-postrouting`` to masquerade (kube-proxy uses the same bit).
MASQUERADE_MARK = 0x4000
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_./-]")
_UNSAFE_COMMENT = re.compile(r"[^A-Za-z0-9_.,:/> -]")
_NAME_PART_MAX = 100  # nft allows 256-byte chain names; keep them readable in `nft list`
_COMMENT_MAX = 120  # nft refuses comments of 128 bytes or more


class KubeProxyError(ValueError):
    """Bad service input, or nft refused / failed to apply the rules (message says which)."""


def _check_ip(owner: str, field: str, value: object) -> None:
    try:
        ipaddress.IPv4Address(value)  # type: ignore[arg-type]
    except (ipaddress.AddressValueError, ValueError) as exc:
        raise KubeProxyError(
            f"{owner}: {field} {value!r} is not an IPv4 address (the local cluster is IPv4-only)"
        ) from exc


def _check_port(owner: str, field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise KubeProxyError(f"{owner}: {field} {value!r} is outside 1-65535")


@dataclass(frozen=True)
class Endpoint:
    """One ready backend of a service port: the pod IP and its target port."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        _check_ip("Endpoint", "ip", self.ip)
        _check_port("Endpoint", "port", self.port)


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service with the endpoints that are ready to serve it."""

    namespace: str
    service: str
    port_name: str
    protocol: str  # "TCP" | "UDP"
    cluster_ip: str
    port: int
    endpoints: tuple[Endpoint, ...] = ()

    def __post_init__(self) -> None:
        for field in ("namespace", "service"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise KubeProxyError(f"ServicePort: {field} must be a non-empty string")
        if not isinstance(self.port_name, str):
            raise KubeProxyError("ServicePort: port_name must be a string ('' when unnamed)")
        owner = f"ServicePort {self.label}"
        if self.protocol not in _PROTOCOLS:
            raise KubeProxyError(
                f"{owner}: protocol {self.protocol!r} is not supported, use 'TCP' or 'UDP'"
            )
        _check_ip(owner, "cluster_ip", self.cluster_ip)
        _check_port(owner, "port", self.port)
        if not isinstance(self.endpoints, tuple) or not all(
            isinstance(ep, Endpoint) for ep in self.endpoints
        ):
            raise KubeProxyError(f"{owner}: endpoints must be a tuple of Endpoint")

    @property
    def label(self) -> str:
        """``ns/svc:port`` as operators write it; the port number when the port is unnamed."""
        return f"{self.namespace}/{self.service}:{self.port_name or self.port}"


def _vip_key(sp: ServicePort) -> str:
    ip = ipaddress.IPv4Address(sp.cluster_ip)
    return f"{ip} . {_PROTOCOLS[sp.protocol]} . {sp.port}"


def _sort_key(sp: ServicePort) -> tuple[object, ...]:
    ip = int(ipaddress.IPv4Address(sp.cluster_ip))
    return (sp.namespace, sp.service, sp.port_name, sp.protocol, ip, sp.port)


def _endpoints(sp: ServicePort) -> list[Endpoint]:
    """Sorted and de-duplicated: the same endpoint may appear in two EndpointSlices."""
    return sorted(set(sp.endpoints), key=lambda ep: (int(ipaddress.IPv4Address(ep.ip)), ep.port))


def _chain_name(prefix: str, identity: str, readable: str) -> str:
    """``prefix-HASH-readable``: the hash keeps names unique after sanitizing and truncation."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{prefix}-{digest}-{_UNSAFE_NAME.sub('_', readable)[:_NAME_PART_MAX]}"


def _readable(sp: ServicePort) -> str:
    return f"{sp.namespace}/{sp.service}/{sp.protocol.lower()}/{sp.port_name or sp.port}"


def _service_chain(sp: ServicePort) -> str:
    return _chain_name("svc", f"{sp.label}/{sp.protocol}/{_vip_key(sp)}", _readable(sp))


def _endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    ip = ipaddress.IPv4Address(ep.ip)
    readable = _readable(sp)
    identity = f"{sp.label}/{sp.protocol}/{_vip_key(sp)}->{ip}:{ep.port}"
    return _chain_name("ep", identity, f"{readable}__{ip}/{ep.port}")


def _comment(text: str) -> str:
    return f'comment "{_UNSAFE_COMMENT.sub("_", text)[:_COMMENT_MAX]}"'


def _check_unique(ordered: Sequence[ServicePort]) -> None:
    seen: dict[str, ServicePort] = {}
    for sp in ordered:
        other = seen.setdefault(_vip_key(sp), sp)
        if other is not sp:
            raise KubeProxyError(
                f"service ports {other.label} and {sp.label} both claim {sp.cluster_ip} "
                f"{sp.protocol}/{sp.port}; a ClusterIP port belongs to exactly one service port"
            )


def _elements(items: Sequence[str]) -> list[str]:
    if not items:
        return []
    return ["\t\telements = {", *(f"\t\t\t{item}," for item in items), "\t\t}"]


def _sets_and_maps(ordered: Sequence[ServicePort]) -> list[str]:
    key_type = "ipv4_addr . inet_proto . inet_service"
    vips = sorted({ipaddress.IPv4Address(sp.cluster_ip) for sp in ordered})
    dispatch = [
        f"{_vip_key(sp)} {_comment(sp.label)} : goto {_service_chain(sp)}"
        for sp in ordered
        if sp.endpoints
    ]
    checks = [
        f"{_vip_key(sp)} {_comment(sp.label)} : return"
        if sp.endpoints
        else f"{_vip_key(sp)} {_comment(sp.label + ' has no ready endpoints')} : goto reject-chain"
        for sp in ordered
    ]
    return [
        "\tset cluster-ips {",
        "\t\ttype ipv4_addr",
        f"\t\t{_comment('every ClusterIP: traffic to an unknown port is rejected')}",
        *_elements([str(ip) for ip in vips]),
        "\t}",
        "\tmap service-ips {",
        f"\t\ttype {key_type} : verdict",
        f"\t\t{_comment('ClusterIP ports with ready endpoints -> service chain')}",
        *_elements(dispatch),
        "\t}",
        "\tmap port-check {",
        f"\t\ttype {key_type} : verdict",
        f"\t\t{_comment('known ClusterIP ports: those without endpoints are rejected')}",
        *_elements(checks),
        "\t}",
    ]


_FIXED_CHAINS = """\
	chain filter-prerouting {
		type filter hook prerouting priority dstnat - 10; policy accept;
		ct state new jump cluster-ip-check
	}
	chain filter-output {
		type filter hook output priority -110; policy accept;
		ct state new jump cluster-ip-check
	}
	chain cluster-ip-check {
		ip daddr . meta l4proto . th dport vmap @port-check
		ip daddr @cluster-ips goto reject-chain
	}
	chain reject-chain {
		meta l4proto tcp reject with tcp reset
		reject
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain mark-for-masquerade {
		meta mark set meta mark | MARK
	}
	chain masquerading {
		meta mark & MARK == 0 return
		meta mark set meta mark ^ MARK
		masquerade fully-random
	}""".replace("MARK", f"{MASQUERADE_MARK:#x}").splitlines()


def _service_chains(sp: ServicePort) -> list[str]:
    endpoints = _endpoints(sp)
    if not endpoints:
        return []
    proto = _PROTOCOLS[sp.protocol]
    picks = ", ".join(f"{i} : goto {_endpoint_chain(sp, ep)}" for i, ep in enumerate(endpoints))
    lines = [
        f"\tchain {_service_chain(sp)} {{",
        f"\t\t{_comment(sp.label)}",
        f"\t\tnumgen random mod {len(endpoints)} vmap {{ {picks} }}",
        "\t}",
    ]
    for ep in endpoints:
        ip = ipaddress.IPv4Address(ep.ip)
        lines += [
            f"\tchain {_endpoint_chain(sp, ep)} {{",
            f"\t\t{_comment(f'{sp.label} -> {ip}:{ep.port}')}",
            f"\t\tip saddr {ip} jump mark-for-masquerade",
            f"\t\tmeta l4proto {proto} dnat to {ip}:{ep.port}",
            "\t}",
        ]
    return lines


def render_ruleset(ports: Sequence[ServicePort], *, table: str = DEFAULT_TABLE) -> str:
    """Render an ``nft -f`` script that atomically replaces ``table`` with rules for ``ports``.

    The script first declares the table (so the delete also works on first apply), deletes it and
    defines it again; nft runs the file as one transaction, so no packet sees a half-built table.
    """
    if not _TABLE_NAME.fullmatch(table):
        raise KubeProxyError(f"table {table!r} must be a letter then letters, digits, _ or -")
    ordered = sorted(ports, key=_sort_key)
    _check_unique(ordered)
    chains = [line for sp in ordered for line in _service_chains(sp)]
    lines = [
        f"table ip {table}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        f"\t{_comment('nodemesh kube-proxy: ClusterIP services, replaced on every change')}",
        *_sets_and_maps(ordered),
        *_FIXED_CHAINS,
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply_ruleset(netns: str, script: str, *, timeout: float = 10.0) -> None:
    """Run ``script`` with ``nft -f -`` inside ``netns``; nft applies all of it or none of it."""
    _run_nft(netns, script, timeout, action="apply the kube-proxy ruleset")


def delete_ruleset(netns: str, *, table: str = DEFAULT_TABLE, timeout: float = 10.0) -> None:
    """Remove ``table`` from ``netns``; an absent table is fine (the script declares it first)."""
    if not _TABLE_NAME.fullmatch(table):
        raise KubeProxyError(f"table {table!r} must be a letter then letters, digits, _ or -")
    script = f"table ip {table}\ndelete table ip {table}\n"
    _run_nft(netns, script, timeout, action=f"delete table ip {table}")


def _run_nft(netns: str, script: str, timeout: float, *, action: str) -> None:
    argv = ["ip", "netns", "exec", netns, "nft", "-f", "-"]
    try:
        done = subprocess.run(
            argv, input=script, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise KubeProxyError(
            f"netns {netns}: nft did not {action} within {timeout}s; is nft hung on a lock?"
        ) from exc
    except OSError as exc:
        raise KubeProxyError(
            f"netns {netns}: cannot run {argv[0]!r} to {action}: {exc}; is iproute2 installed?"
        ) from exc
    if done.returncode != 0:
        raise KubeProxyError(
            f"netns {netns}: failed to {action} (exit {done.returncode}): {done.stderr.strip()}"
            " -- check that the netns exists and nft runs in it; an nft syntax error in a"
            " rendered script is a render_ruleset bug"
        )
