"""The destination agent's rule for pods behind a waypoint: HBONE only from that waypoint."""

from controller.model import Workload
from controller.model_waypoint import waypoint_identity
from node_agent.pod import tunnel_source


def pod(waypoint: str, identity: str = "spiffe://example.org/ns/shop/sa/web") -> Workload:
    return Workload(
        uid="u1",
        name="web-1",
        namespace="shop",
        node="node1",
        addresses=("198.18.1.5",),
        service_account="web",
        identity=identity,
        labels=(),
        enrolled=True,
        waypoint=waypoint,
        ready=True,
        netns="",
        cgroup="",
        owner="",
    )


def test_a_pod_behind_a_waypoint_expects_the_waypoints_own_identity():
    assert waypoint_identity(pod("waypoint")) == "spiffe://example.org/ns/shop/sa/waypoint"


def test_a_pod_without_a_waypoint_takes_any_verified_peer():
    assert waypoint_identity(pod("")) is None


WAYPOINT = "spiffe://example.org/ns/shop/sa/waypoint"
CLIENT = "spiffe://example.org/ns/shop/sa/client"
FORGED = {"forwarded": "for=198.18.9.9"}


def test_forwarded_is_taken_only_from_the_pods_own_waypoint():
    assert tunnel_source(FORGED, "198.18.2.7", WAYPOINT, WAYPOINT) == "198.18.9.9"
    assert tunnel_source({}, "198.18.2.7", WAYPOINT, WAYPOINT) == "198.18.2.7"


def test_a_forged_forwarded_from_another_peer_is_ignored():
    assert tunnel_source(FORGED, "198.18.1.4", CLIENT, WAYPOINT) == "198.18.1.4"
    assert tunnel_source(FORGED, "198.18.1.4", CLIENT, None) == "198.18.1.4"
