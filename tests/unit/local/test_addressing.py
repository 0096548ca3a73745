"""The local cluster's address and name plan: names and addresses in, plans and errors out."""

from __future__ import annotations

import ipaddress

import pytest

from nodemesh.local.addressing import (
    MAX_NODES,
    AddressingError,
    allocate_pod_ip,
    allocate_vip,
    plan_cluster,
    veth_name,
)

UID = "123e4567-e89b-12d3-a456-426614174000"

# --- plan_cluster ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "name", "netns", "address", "pod_cidr", "gateway"),
    [
        (1, "node1", "nm-dev-node1", "198.18.0.11", "198.18.1.0/24", "198.18.1.1"),
        (2, "node2", "nm-dev-node2", "198.18.0.12", "198.18.2.0/24", "198.18.2.1"),
        (3, "node3", "nm-dev-node3", "198.18.0.13", "198.18.3.0/24", "198.18.3.1"),
    ],
)
def test_plan_cluster_numbers_nodes_from_one(index, name, netns, address, pod_cidr, gateway):
    plan = plan_cluster("dev", 3)
    node = plan.nodes[index - 1]
    assert (node.index, node.name, node.netns, node.address, node.pod_cidr, node.gateway) == (
        index,
        name,
        netns,
        address,
        pod_cidr,
        gateway,
    )
    assert plan.node(name) is node


def test_plan_cluster_names_the_hub_and_counts_the_nodes():
    plan = plan_cluster("c1", 2)
    assert plan.name == "c1"
    assert plan.hub_netns == "nm-c1-net"
    assert [n.name for n in plan.nodes] == ["node1", "node2"]


@pytest.mark.parametrize("count", [1, MAX_NODES])
def test_plan_cluster_accepts_the_node_count_bounds(count):
    plan = plan_cluster("dev", count)
    assert len(plan.nodes) == count
    last = plan.nodes[-1]
    assert last.address == f"198.18.0.{10 + count}"
    assert last.pod_cidr == f"198.18.{count}.0/24"


def test_plan_cluster_keeps_every_address_distinct_and_in_its_network():
    plan = plan_cluster("dev", MAX_NODES)
    addresses = [n.address for n in plan.nodes]
    cidrs = [n.pod_cidr for n in plan.nodes]
    assert len(set(addresses)) == len(addresses) == MAX_NODES
    assert len(set(cidrs)) == MAX_NODES
    underlay = ipaddress.IPv4Network("198.18.0.0/24")
    for node in plan.nodes:
        assert ipaddress.IPv4Address(node.address) in underlay
        cidr = ipaddress.IPv4Network(node.pod_cidr)
        assert not cidr.overlaps(underlay)
        assert ipaddress.IPv4Address(node.gateway) == cidr.network_address + 1


def test_node_lookup_of_a_missing_name_raises_key_error():
    with pytest.raises(KeyError):
        plan_cluster("dev", 2).node("node3")


@pytest.mark.parametrize("count", [0, -1, MAX_NODES + 1])
def test_plan_cluster_rejects_node_counts_out_of_range(count):
    with pytest.raises(AddressingError, match=rf"between 1 and {MAX_NODES}, got {count}"):
        plan_cluster("dev", count)


@pytest.mark.parametrize("name", ["a", "dev", "c1", "abcdefghijkl"])
def test_plan_cluster_accepts_good_names(name):
    assert plan_cluster(name, 1).hub_netns == f"nm-{name}-net"


@pytest.mark.parametrize(
    "name",
    [
        "",  # empty
        "1dev",  # starts with a digit
        "Dev",  # upper case
        "my-dev",  # dash: would make one cluster's prefix match another's names
        "my_dev",
        "abcdefghijklm",  # 13 characters
        "dev ",
    ],
)
def test_plan_cluster_rejects_bad_names(name):
    with pytest.raises(AddressingError, match="1-12 lowercase letters and digits"):
        plan_cluster(name, 1)


def test_pod_netns_carries_the_cluster_prefix_and_the_uid_without_dashes():
    assert plan_cluster("dev", 1).pod_netns(UID) == "nm-dev-p123e4567e89b"


# --- allocate_pod_ip ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (set(), "198.18.1.2"),  # .1 is the gateway
        ({"198.18.1.2"}, "198.18.1.3"),
        ({"198.18.1.2", "198.18.1.4"}, "198.18.1.3"),  # lowest free, not next after highest
        ({"198.18.1.3"}, "198.18.1.2"),
        ({f"198.18.1.{i}" for i in range(2, 254)}, "198.18.1.254"),  # last host
    ],
)
def test_allocate_pod_ip_takes_the_lowest_free_host_after_the_gateway(used, expected):
    assert allocate_pod_ip("198.18.1.0/24", used) == expected


def test_allocate_pod_ip_never_hands_out_the_gateway_even_when_it_is_not_in_used():
    ips = set()
    for _ in range(253):
        ips.add(allocate_pod_ip("198.18.1.0/24", ips))
    assert "198.18.1.1" not in ips
    assert ips == {f"198.18.1.{i}" for i in range(2, 255)}


def test_allocate_pod_ip_reports_a_full_pool():
    used = {f"198.18.1.{i}" for i in range(2, 255)}
    with pytest.raises(AddressingError, match=r"pod CIDR 198.18.1.0/24 is full \(253 addresses"):
        allocate_pod_ip("198.18.1.0/24", used)


# --- allocate_vip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("used", "requested", "expected"),
    [
        (set(), None, "198.19.0.10"),  # .1-.9 reserved
        ({"198.19.0.10"}, None, "198.19.0.11"),
        ({"198.19.0.10", "198.19.0.12"}, None, "198.19.0.11"),
        ({"198.19.0.11"}, None, "198.19.0.10"),
        ({f"198.19.0.{i}" for i in range(10, 256)}, None, "198.19.1.0"),  # crosses the octet
        (set(), "", "198.19.0.10"),  # empty request: allocate
        (set(), "198.19.0.10", "198.19.0.10"),
        (set(), "198.19.7.7", "198.19.7.7"),
        ({"198.19.0.10"}, "198.19.0.50", "198.19.0.50"),
    ],
)
def test_allocate_vip(used, requested, expected):
    assert allocate_vip(used, requested) == expected


@pytest.mark.parametrize(
    "requested",
    [
        "198.19.0.9",  # reserved
        "198.19.0.1",
        "198.18.0.10",  # pod/underlay range
        "10.96.0.10",
        "198.20.0.10",
    ],
)
def test_allocate_vip_rejects_requests_outside_the_usable_range(requested):
    with pytest.raises(AddressingError, match=rf"clusterIP {requested} is outside the service"):
        allocate_vip(set(), requested)


def test_allocate_vip_rejects_a_taken_request():
    with pytest.raises(AddressingError, match=r"clusterIP 198.19.0.20 is already allocated"):
        allocate_vip({"198.19.0.20"}, "198.19.0.20")


def test_allocate_vip_reports_an_exhausted_range():
    first, last = (
        int(ipaddress.IPv4Address("198.19.0.10")),
        int(ipaddress.IPv4Address("198.19.255.254")),
    )
    used = {str(ipaddress.IPv4Address(i)) for i in range(first, last + 1)}
    with pytest.raises(AddressingError, match="exhausted"):
        allocate_vip(used)


def test_allocate_vip_treats_the_broadcast_address_the_same_when_requested():
    with pytest.raises(AddressingError):
        allocate_vip(set(), "198.19.255.255")


# --- veth_name ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        (UID, "nmv123e4567e89"),
        ("abc", "nmvabc"),
        ("ffffffff-ffff-ffff-ffff-ffffffffffff", "nmvfffffffffff"),
    ],
)
def test_veth_name_fits_the_15_byte_interface_limit(uid, expected):
    name = veth_name(uid)
    assert name == expected
    assert len(name.encode()) <= 15


def test_veth_names_of_different_uids_differ():
    assert veth_name("11111111-0000-0000-0000-000000000000") != veth_name(
        "22222222-0000-0000-0000-000000000000"
    )
