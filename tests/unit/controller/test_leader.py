"""The leader election's decision core: Lease records and a clock in, actions out (no I/O)."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from controller.leader import (
    Create,
    Election,
    ElectionConfig,
    LeaseRecord,
    Update,
    Wait,
    micro_time,
)

WALL = "2025-06-02T09:14:27.000000Z"


def held_by(holder: str, version: str = "10", renew: str = WALL, transitions: int = 0):
    return LeaseRecord(holder, 15, WALL, renew, transitions, version)


def election(identity: str = "a") -> Election:
    return Election(ElectionConfig(identity))


def test_no_lease_creates_one_held_by_us():
    e = election()
    e.observe(None, now=0)

    action = e.decide(now=0, wall=WALL)

    assert action == Create(LeaseRecord("a", 15, WALL, WALL, 0))


def test_a_live_lease_of_another_replica_is_waited_on_until_it_expires_on_our_clock():
    e = election()
    e.observe(held_by("b"), now=100)

    assert e.decide(now=100, wall=WALL) == Wait("b")
    e.observe(held_by("b"), now=114.9)  # unchanged record: still judged from when first seen
    assert e.decide(now=114.9, wall=WALL) == Wait("b")
    e.observe(held_by("b"), now=115)

    action = e.decide(now=115, wall="later")

    assert action == Update(LeaseRecord("a", 15, "later", "later", 1, "10"), acquiring=True)


def test_a_renewal_by_the_holder_restarts_the_expiry():
    e = election()
    e.observe(held_by("b"), now=100)
    e.observe(held_by("b", version="11", renew="renewed"), now=110)

    assert e.decide(now=120, wall=WALL) == Wait("b")  # 10 s after the renewal was seen
    e.observe(held_by("b", version="11", renew="renewed"), now=125)
    assert isinstance(e.decide(now=125, wall=WALL), Update)


def test_the_timestamps_in_the_lease_are_never_trusted():
    """A holder whose clock runs an hour behind is still live while its record keeps changing."""
    e = election()
    e.observe(held_by("b", renew="2000-01-01T00:00:00.000000Z"), now=100)

    assert e.decide(now=101, wall=WALL) == Wait("b")


def test_a_released_lease_is_taken_at_once():
    e = election()
    e.observe(replace(held_by("b", transitions=3), holder=""), now=100)

    action = e.decide(now=100, wall="now")

    assert action == Update(LeaseRecord("a", 15, "now", "now", 4, "10"), acquiring=True)


def test_our_own_lease_is_renewed_keeping_acquire_time_and_transitions():
    e = election()
    e.observe(held_by("a", transitions=2), now=100)

    action = e.decide(now=100, wall="now")

    assert action == Update(LeaseRecord("a", 15, WALL, "now", 2, "10"), acquiring=False)


def test_leading_needs_a_success_and_lapses_at_the_renew_deadline():
    e = election()
    e.observe(None, now=0)
    assert not e.is_leader(0)
    created = replace(e.decide(now=0, wall=WALL).record, resource_version="1")

    e.succeeded(created, now=0)

    assert e.is_leader(9.9)
    assert not e.is_leader(10)  # no successful renewal for the renew deadline: step down
    e.succeeded(replace(created, resource_version="2"), now=9)
    assert e.is_leader(18)


def test_a_lease_taken_by_another_ends_our_leadership():
    e = election()
    e.observe(held_by("a"), now=0)
    e.succeeded(held_by("a", version="11"), now=0)
    assert e.is_leader(1)

    e.observe(held_by("b", version="12"), now=2)

    assert not e.is_leader(2)
    assert e.holder() == "b"


def test_release_only_what_we_hold():
    e = election()
    e.observe(held_by("b"), now=0)
    assert e.release("now") is None

    e.observe(held_by("a"), now=0)

    assert e.release("now") == LeaseRecord("", 1, WALL, "now", 0, "10")


def test_a_lease_round_trips_through_its_api_shape():
    record = LeaseRecord("a", 15, WALL, "renewed", 3, "")
    lease = {"metadata": {"resourceVersion": "42"}, "spec": record.spec()}

    assert LeaseRecord.from_lease(lease) == replace(record, resource_version="42")
    assert LeaseRecord.from_lease({"metadata": {}}) == LeaseRecord("", 0, "", "", 0, "")


@pytest.mark.parametrize(
    "durations",
    [(15, 10, 10), (10, 10, 2), (15, 20, 2)],
    ids=["retry-not-below-deadline", "deadline-not-below-duration", "deadline-above-duration"],
)
def test_config_refuses_timings_that_would_let_two_leaders_overlap(durations):
    duration, deadline, retry = durations
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        ElectionConfig("a", duration, deadline, retry)


def test_config_needs_an_identity():
    with pytest.raises(ValueError, match="--leader-id"):
        ElectionConfig("")


def test_micro_time_is_rfc3339_with_microseconds():
    moment = datetime.datetime(2025, 6, 2, 9, 14, 27, 5, tzinfo=datetime.UTC)
    assert micro_time(moment) == "2025-06-02T09:14:27.000005Z"
