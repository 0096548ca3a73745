"""The local cluster's network: a hub namespace with a bridge, node namespaces, pod sandboxes.

    hub netns (nm-<c>-net)        node netns (nm-<c>-nodeI)             pod netns (nm-<c>-p<uid>)
    br0 ── nodeI  <──veth──>  eth0 198.18.0.(10+I)/24
                              nmv<uid> 198.18.I.1/32  <──veth──>  eth0 198.18.I.x/32
                              route 198.18.I.x/32 dev nmv<uid>     default via 198.18.I.1
                              route 198.18.J.0/24 via node J

Pods use point-to-point veths, as the CNI `ptp` plugin does: every pod-facing veth of a node carries
the same gateway address, and the node routes each pod's /32 to its veth. Nothing is created in the
root namespace, so a cluster cannot disturb the host's own networking.

Command lists are built by pure functions (`*_commands`) and executed by `ip -batch` per namespace.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nodemesh.local import netns
from nodemesh.local.addressing import PROBE_SOURCE, SERVICE_CIDR, ClusterPlan, NodePlan

NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
}


def hub_commands(plan: ClusterPlan) -> list[str]:
    cmds = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
    for node in plan.nodes:
        cmds.append(f"link add {node.name} type veth peer name eth0 netns {node.netns}")
        cmds.append(f"link set {node.name} master br0 up")
    return cmds


def node_commands(plan: ClusterPlan, node: NodePlan) -> list[str]:
    cmds = [
        "link set lo up",
        f"addr add {PROBE_SOURCE}/32 dev lo",
        f"addr add {node.address}/24 dev eth0",
        "link set eth0 up",
        # connect() needs a route before nft's output DNAT runs: node processes reach VIPs.
        f"route add {SERVICE_CIDR} dev eth0",
    ]
    for other in plan.nodes:
        if other.name != node.name:
            cmds.append(f"route add {other.pod_cidr} via {other.address} dev eth0")
    return cmds


def create_cluster_network(plan: ClusterPlan) -> None:
    """Create every namespace and link of the cluster. Not idempotent: call on a clean slate."""
    for name in [plan.hub_netns, *(n.netns for n in plan.nodes)]:
        netns.run(["ip", "netns", "add", name])
    netns.ip_batch(hub_commands(plan), plan.hub_netns)
    for node in plan.nodes:
        netns.ip_batch(node_commands(plan, node), node.netns)
        netns.sysctls(node.netns, NODE_SYSCTLS)


@dataclass(frozen=True)
class PodNet:
    """What a pod sandbox's network is made of; enough to create it and to remove it."""

    netns: str
    node_netns: str
    veth: str
    ip: str
    gateway: str


def pod_node_commands(pod: PodNet) -> list[str]:
    return [
        f"link add {pod.veth} type veth peer name eth0 netns {pod.netns}",
        f"addr add {pod.gateway}/32 dev {pod.veth}",
        f"link set {pod.veth} up",
        f"route add {pod.ip}/32 dev {pod.veth} scope link",
    ]


def pod_commands(pod: PodNet) -> list[str]:
    return [
        "link set lo up",
        f"addr add {pod.ip}/32 dev eth0",
        "link set eth0 up",
        f"route add {pod.gateway}/32 dev eth0 scope link",
        f"route add default via {pod.gateway} dev eth0",
    ]


def create_pod_network(pod: PodNet) -> None:
    netns.run(["ip", "netns", "add", pod.netns])
    try:
        netns.ip_batch(pod_node_commands(pod), pod.node_netns)
        netns.ip_batch(pod_commands(pod), pod.netns)
    except netns.NetnsError:
        delete_pod_network(pod)
        raise


def delete_pod_network(pod: PodNet) -> None:
    """Remove the pod's veth pair, the node's /32 route to it, and the pod's namespace.

    The veth goes first and explicitly: `ip netns del` only drops a reference, and the kernel
    destroys the namespace (with its veth end and the node's route) later, asynchronously. A pod
    created right after on the same node may get the freed address, and its `route add` would
    then fail on the stale route.
    """
    if netns.netns_exists(pod.node_netns):
        with contextlib.suppress(netns.NetnsError):  # already gone
            netns.run(["ip", "-n", pod.node_netns, "link", "del", pod.veth])
    if netns.netns_exists(pod.netns):
        netns.run(["ip", "netns", "del", pod.netns])
