"""Leader election between controller replicas against the fake API server's Lease store.

The fake stores Leases with the API server's optimistic concurrency (a PUT with a stale
resourceVersion is 409 Conflict). Most tests drive each elector's rounds by hand with a clock of
its own, so "15 s later" needs no sleeping; the last one runs the electors' threads for real.
"""

from __future__ import annotations

import logging
import threading

import pytest

from controller.leader import ElectionConfig, LeaseElector
from tests.inprocess.kube_fake import FakeApiServer
from tests.inprocess.test_registry_kube import eventually

NAMESPACE = "nodemesh-system"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(server):
    server.writable("coordination.k8s.io/v1", "leases")
    return server


@pytest.fixture
def elector(api):
    """elector(identity, clock=None, **config) -> a LeaseElector on the fake (not started)."""
    made: list[LeaseElector] = []

    def make(identity: str, clock=None, **config) -> LeaseElector:
        kwargs = {"clock": clock} if clock else {}
        made.append(LeaseElector(api, NAMESPACE, ElectionConfig(identity, **config), **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        for one in made:
            one.stop(release=False)
        assert not [t for t in threading.enumerate() if t.name == "leader-election"]


def lease(server: FakeApiServer) -> dict:
    return server.get_object("coordination.k8s.io/v1", "leases", NAMESPACE, "nodemesh-controller")


def test_one_leads_and_the_other_takes_over_once_the_first_stops_renewing(server, elector):
    clock_a, clock_b = Clock(), Clock()
    a, b = elector("a", clock_a), elector("b", clock_b)

    a.step()
    b.step()

    assert a.is_leader() and not b.is_leader()
    assert lease(server)["spec"]["holderIdentity"] == "a"
    for _ in range(10):  # a renews every retry period: b never sees an expired lease
        clock_a.now += 2
        clock_b.now += 2
        a.step()
        b.step()
        assert a.is_leader() and not b.is_leader()
    renewals = lease(server)

    clock_a.now += 10  # a hangs (no renewal): it steps down at its renew deadline ...
    assert not a.is_leader()
    clock_b.now += 14.9
    b.step()
    assert not b.is_leader()  # ... and b waits out the lease duration on its own clock
    clock_b.now += 0.1
    b.step()

    assert b.is_leader()
    taken = lease(server)["spec"]
    assert taken["holderIdentity"] == "b" and taken["leaseTransitions"] == 1
    assert taken["acquireTime"] != renewals["spec"]["acquireTime"]
    a.step()  # a comes back: the lease is b's and live
    assert not a.is_leader() and b.is_leader()


def test_two_replicas_taking_an_expired_lease_at_once_one_gets_409(server, elector, caplog):
    caplog.set_level(logging.INFO, "nodemesh.controller.leader")
    clock = Clock()
    a, b, c = elector("a", clock), elector("b", clock), elector("c", clock)
    a.step()
    b.observe()
    c.observe()
    clock.now += 15  # a is gone; b and c both read the same expired record

    assert b.act()
    assert not c.act()  # its write carried the old resourceVersion

    assert b.is_leader() and not c.is_leader()
    assert lease(server)["spec"]["holderIdentity"] == "b"
    assert "written by another replica first" in caplog.text
    conflicts = [r for r in server.writes() if r.method == "PUT"]
    assert [r.body["spec"]["holderIdentity"] for r in conflicts] == ["b", "c"]
    c.step()  # reads again: b's lease is live
    assert not c.is_leader() and lease(server)["spec"]["holderIdentity"] == "b"


def test_a_clean_stop_releases_the_lease_for_an_immediate_takeover(server, elector):
    clock = Clock()
    a, b = elector("a", clock), elector("b", clock)
    a.step()
    b.step()

    a.stop()

    assert lease(server)["spec"]["holderIdentity"] == ""
    b.step()  # no waiting out the duration
    assert b.is_leader() and not a.is_leader()


def test_an_unreachable_api_server_costs_the_leadership(server, elector):
    clock = Clock()
    a = elector("a", clock)
    a.step()
    assert a.is_leader()
    server.stop()

    clock.now += 10
    a.step()

    assert not a.is_leader()


def test_running_electors_hand_over_leadership(server, elector):
    """The threads for real, with short timings; on_change reports each transition."""
    timings = {"lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.05}
    changes: list[tuple[str, bool]] = []
    a, b = elector("a", **timings), elector("b", **timings)
    a.on_change = lambda leading: changes.append(("a", leading))
    b.on_change = lambda leading: changes.append(("b", leading))

    a.start()
    eventually(a.is_leader)
    b.start()
    eventually(lambda: b.election.holder() == "a")  # b has read a's lease
    assert not b.is_leader()

    a.stop(release=False)  # a crash: b must wait the lease out
    eventually(b.is_leader)

    assert changes == [("a", True), ("a", False), ("b", True)]
    assert lease(server)["spec"]["holderIdentity"] == "b"
