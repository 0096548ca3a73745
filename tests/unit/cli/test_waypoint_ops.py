"""The library under `meshctl waypoint`: readiness, waiting with an injected clock, deletes."""

from __future__ import annotations

import pytest

from nodemesh.cli.waypoint_ops import (
    WaypointOpError,
    gateways_to_delete,
    not_ready_reason,
    wait_ready,
)
from tests.unit.cli.helpers import waypoint_pod


class FakeClock:
    """Time moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def statuses(*pods_per_read: list[dict]):
    """read_status returning each list of pods in turn, then the last one forever."""
    reads = list(pods_per_read)

    def read() -> dict:
        pods = reads.pop(0) if len(reads) > 1 else reads[0]
        return {"pods": pods}

    return read


def test_ready_as_soon_as_one_pod_of_the_waypoint_is_ready():
    status = {"pods": [waypoint_pod("a"), waypoint_pod("b", ready=True)]}

    assert not_ready_reason(status, "shop", "waypoint") is None


@pytest.mark.parametrize(
    ("pods", "reason"),
    [
        ([], "waypoint shop/waypoint has no pod yet; the controller deploys it"),
        (
            [waypoint_pod("a", display="CrashLoopBackOff")],
            "waypoint shop/waypoint has no ready pod (a CrashLoopBackOff); see 'meshctl logs POD'",
        ),
        ([waypoint_pod("a", ready=True, gateway="east")], "has no pod yet"),
        ([waypoint_pod("a", ready=True, ns="web")], "has no pod yet"),
    ],
    ids=["no-pod", "crash-looping", "another-waypoint", "another-namespace"],
)
def test_not_ready_says_why(pods, reason):
    assert reason in (not_ready_reason({"pods": pods}, "shop", "waypoint") or "")


def test_wait_polls_until_the_pod_is_ready():
    clock = FakeClock()
    read = statuses([], [waypoint_pod("a")], [waypoint_pod("a", ready=True)])

    reason = wait_ready(read, "shop", "waypoint", 60, clock=clock, sleep=clock.sleep)

    assert reason is None
    assert len(clock.slept) == 2


def test_wait_gives_up_at_the_deadline_with_the_last_reason():
    clock = FakeClock()
    read = statuses([waypoint_pod("a", display="CrashLoopBackOff")])

    reason = wait_ready(read, "shop", "waypoint", 1.0, clock=clock, sleep=clock.sleep)

    assert reason is not None and "CrashLoopBackOff" in reason
    assert clock.now >= 101.0


def test_delete_defaults_to_istioctls_waypoint_name():
    [manifest] = gateways_to_delete([], "shop", (), False)

    assert (manifest.kind, manifest.namespace, manifest.name) == ("Gateway", "shop", "waypoint")


def test_delete_all_picks_only_waypoint_gateways_of_the_namespace():
    def gateway(name, ns="shop", cls="nodemesh-waypoint"):
        return {
            "kind": "Gateway",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"gatewayClassName": cls},
        }

    objects = [gateway("east"), gateway("west", ns="web"), gateway("ingress", cls="istio")]

    assert [m.name for m in gateways_to_delete(objects, "shop", (), True)] == ["east"]
    with pytest.raises(WaypointOpError, match="not both"):
        gateways_to_delete(objects, "shop", ("east",), True)
