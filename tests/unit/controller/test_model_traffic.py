"""One TrafficPolicy per Service: the oldest wins, then the name; timestamps in one spelling."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.model import MeshSnapshot
from controller.model_traffic import TrafficPolicy, creation_timestamp, resolve_conflicts

SPEC = '{"faults":{"abort":{"httpStatus":503,"percentage":50}},"targetRefs":[]}'


def policy(name: str, *services: str, created: str = "2025-06-02T09:00:00Z", ns: str = "shop"):
    return TrafficPolicy(name, ns, services, SPEC, created)


def owners(policies: list[TrafficPolicy]) -> dict[str, str]:
    """Service key -> name of the policy that got it."""
    return {key: p.name for p in policies for key in p.service_keys}


def test_the_oldest_policy_wins_a_contested_service():
    old = policy("zeta", "web", created="2025-06-01T00:00:00Z")
    new = policy("alpha", "web", created="2025-06-02T00:00:00Z")

    kept, conflicts = resolve_conflicts([new, old])

    assert kept == [old]
    [conflict] = conflicts
    assert (conflict.loser, conflict.winner, conflict.service) == (new, old, "web")
    assert conflict.left_out


def test_a_tie_in_age_goes_to_the_name_that_sorts_first():
    kept, conflicts = resolve_conflicts([policy("b", "web"), policy("a", "web")])

    assert [p.name for p in kept] == ["a"]
    assert [c.loser.name for c in conflicts] == ["b"]


def test_a_policy_with_no_known_age_never_beats_one_with_an_age():
    kept, _ = resolve_conflicts([policy("a", "web", created=""), policy("b", "web")])

    assert [p.name for p in kept] == ["b"]


def test_a_loser_keeps_the_services_nobody_contests():
    old = policy("old", "web", created="2025-06-01T00:00:00Z")
    broad = policy("broad", "api", "web", "db", created="2025-06-02T00:00:00Z")

    kept, conflicts = resolve_conflicts([broad, old])

    assert owners(kept) == {"shop/web": "old", "shop/api": "broad", "shop/db": "broad"}
    assert [p.services for p in kept if p.name == "broad"] == [("api", "db")]  # spec order kept
    [conflict] = conflicts
    assert conflict.service == "web" and not conflict.left_out
    assert "kept for its other Services" in conflict.message()


def test_policies_of_other_namespaces_never_conflict():
    kept, conflicts = resolve_conflicts([policy("p", "web"), policy("p", "web", ns="east")])

    assert len(kept) == 2 and conflicts == []


def test_the_conflict_message_says_who_won_why_and_what_to_change():
    old = policy("first", "web", created="2025-06-01T00:00:00Z")
    _, [conflict] = resolve_conflicts([old, policy("second", "web")])

    message = conflict.message()
    assert message.startswith(
        "not applied to Service shop/web (left out): TrafficPolicy shop/first"
    )
    assert "created 2025-06-01T00:00:00Z" in message
    assert "oldest creationTimestamp wins" in message
    assert "remove 'web' from this one's spec.targetRefs" in message


_times = st.sampled_from(["", "2025-06-01T00:00:00Z", "2025-06-02T00:00:00Z"])
_policies = st.lists(
    st.builds(
        lambda name, services, created: policy(name, *services, created=created),
        st.sampled_from("abcdef"),
        st.lists(st.sampled_from(["web", "api", "db"]), min_size=1, max_size=3, unique=True),
        _times,
    ),
    max_size=6,
    unique_by=lambda p: p.name,
)


@given(policies=_policies, data=st.data())
def test_every_service_goes_to_its_best_claimant_whatever_the_order(policies, data):
    shuffled = data.draw(st.permutations(policies))

    kept, conflicts = resolve_conflicts(shuffled)

    claims: dict[str, list[TrafficPolicy]] = {}
    for p in policies:
        for key in p.service_keys:
            claims.setdefault(key, []).append(p)
    expected = {key: min(c, key=lambda p: p.precedence).name for key, c in claims.items()}
    assert owners(kept) == expected
    assert len(conflicts) == sum(len(c) - 1 for c in claims.values())
    assert (kept, conflicts) == resolve_conflicts(policies)
    MeshSnapshot.build((), (), (), (), (), traffic_policies=kept)  # a valid snapshot: no clash


def test_a_snapshot_refuses_two_policies_for_one_service():
    with pytest.raises(ValueError, match="duplicate TrafficPolicy target Service 'shop/web'"):
        MeshSnapshot.build(
            (), (), (), (), (), traffic_policies=[policy("a", "web"), policy("b", "web")]
        )


def test_the_snapshot_indexes_policies_by_key_and_by_service():
    web = policy("web-policy", "web", "api")

    snap = MeshSnapshot.build((), (), (), (), (), traffic_policies=[web])

    assert snap.traffic_policy("shop", "web-policy") is web
    assert snap.traffic_policy("shop", "web") is None
    assert dict(snap.traffic_policy_by_service) == {"shop/web": web, "shop/api": web}


@pytest.mark.parametrize(
    ("given_time", "spelled"),
    [
        ("2025-06-02T09:14:27Z", "2025-06-02T09:14:27Z"),
        ("2025-06-02T11:14:27+02:00", "2025-06-02T09:14:27Z"),  # to UTC
        ("2025-06-02T09:14:27.123456Z", "2025-06-02T09:14:27Z"),  # whole seconds, as metav1.Time
        ("2025-06-02T09:14:27", "2025-06-02T09:14:27Z"),  # Kubernetes times are UTC
        (None, ""),
        ("", ""),
    ],
)
def test_creation_timestamps_have_one_spelling(given_time, spelled):
    assert creation_timestamp(given_time) == spelled


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01T00:00:00Z", 1717318467])
def test_a_creation_timestamp_that_is_no_time_is_refused(bad):
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        creation_timestamp(bad)
