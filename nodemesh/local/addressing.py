"""Address and name plan of a local cluster: pure functions, no I/O.

Every address lies in 198.18.0.0/15 (RFC 2544's benchmarking block), so a local cluster can never
collide with a real network. The whole cluster lives behind its own "hub" network namespace, so two
clusters on one machine may reuse the same addresses; only names (network namespaces, cgroups) must
differ, and they all carry the cluster's name.

    198.18.0.0/24      node underlay: node i is 198.18.0.(10+i) on the hub bridge
    198.18.i.0/24      pod CIDR of node i; 198.18.i.1 is the gateway on every pod veth
    198.19.0.0/16      Service virtual IPs (198.19.0.10 upward; .1-.9 reserved)
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

UNDERLAY = ipaddress.IPv4Network("198.18.0.0/24")
SERVICE_CIDR = ipaddress.IPv4Network("198.19.0.0/16")
# The source of the kubelet's probes, on every node's loopback (Istio ambient SNATs them to
# 169.254.7.127 for the same reason): the agents' inbound capture lets it through, so a probe
# reaches the application itself, also under STRICT, and says whether *it* is ready. A pod
# cannot complete a handshake from it: replies to it are delivered to the node. bpf/sk_lookup.c
# has the same address as NODEMESH_PROBE_SOURCE; change both together.
PROBE_SOURCE = "198.18.0.254"
FIRST_VIP = ipaddress.IPv4Address("198.19.0.10")
DNS_DOMAIN = "cluster.local"
MAX_NODES = 32
NETNS_PREFIX = "nm-"
CGROUP_PREFIX = "nodemesh-"
_CLUSTER_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")


class AddressingError(ValueError):
    """A request the address plan cannot satisfy (bad cluster name, too many nodes, pool full)."""


def check_cluster_name(name: str) -> str:
    """Cluster names carry no dashes so that one cluster's prefix never matches another's names."""
    if not _CLUSTER_NAME.match(name):
        raise AddressingError(
            f"cluster name {name!r}: use 1-12 lowercase letters and digits, starting with a letter"
        )
    return name


def cluster_netns_prefix(cluster: str) -> str:
    return f"{NETNS_PREFIX}{cluster}-"


@dataclass(frozen=True)
class NodePlan:
    """One node: a network namespace with an underlay address and a pod CIDR."""

    name: str
    index: int
    netns: str
    address: str  # on the hub bridge, eth0 in the node netns
    pod_cidr: str
    gateway: str  # the node side of every pod veth carries this address

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ClusterPlan:
    name: str
    hub_netns: str
    nodes: tuple[NodePlan, ...]

    def node(self, name: str) -> NodePlan:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def pod_netns(self, uid: str) -> str:
        return f"{cluster_netns_prefix(self.name)}p{uid.replace('-', '')[:12]}"


def plan_cluster(name: str, node_count: int) -> ClusterPlan:
    check_cluster_name(name)
    if not 1 <= node_count <= MAX_NODES:
        raise AddressingError(f"--nodes must be between 1 and {MAX_NODES}, got {node_count}")
    prefix = cluster_netns_prefix(name)
    nodes = tuple(
        NodePlan(
            name=f"node{i}",
            index=i,
            netns=f"{prefix}node{i}",
            address=str(UNDERLAY.network_address + 10 + i),
            pod_cidr=f"198.18.{i}.0/24",
            gateway=f"198.18.{i}.1",
        )
        for i in range(1, node_count + 1)
    )
    return ClusterPlan(name=name, hub_netns=f"{prefix}net", nodes=nodes)


def allocate_pod_ip(pod_cidr: str, used: set[str]) -> str:
    """Lowest free host address of the node's pod CIDR, skipping the gateway (.1)."""
    net = ipaddress.IPv4Network(pod_cidr)
    for host in list(net.hosts())[1:]:
        if str(host) not in used:
            return str(host)
    raise AddressingError(f"pod CIDR {pod_cidr} is full ({len(used)} addresses in use)")


def allocate_vip(used: set[str], requested: str | None = None) -> str:
    """A Service virtual IP: the requested one if it is free and in range, else the lowest free."""
    if requested:
        try:
            addr = ipaddress.IPv4Address(requested)
        except ValueError as exc:
            raise AddressingError(f"clusterIP {requested!r} is not an IPv4 address") from exc
        if addr not in SERVICE_CIDR or addr < FIRST_VIP or addr == SERVICE_CIDR.broadcast_address:
            raise AddressingError(
                f"clusterIP {requested} is outside the service range {SERVICE_CIDR} "
                f"(usable from {FIRST_VIP} to {SERVICE_CIDR.broadcast_address - 1})"
            )
        if requested in used:
            raise AddressingError(f"clusterIP {requested} is already allocated")
        return requested
    addr = FIRST_VIP
    while addr in SERVICE_CIDR and addr != SERVICE_CIDR.broadcast_address:
        if str(addr) not in used:
            return str(addr)
        addr += 1
    raise AddressingError(f"service range {SERVICE_CIDR} is exhausted")


def veth_name(uid: str) -> str:
    """Node-side veth of a pod; interface names are at most 15 bytes."""
    return f"nmv{uid.replace('-', '')[:11]}"
