"""nodemesh.telemetry: the label vocabulary the agent and the waypoint share.

The node agent's own tests (tests/unit/node_agent/test_telemetry.py) pin the L4 behaviour through
the agent's re-exports; these pin what the move added: the shared helpers read any object with the
right attributes, response flags render in Envoy's order, and the agent still re-exports the same
objects.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

import node_agent.telemetry as agent_telemetry
from nodemesh import telemetry
from nodemesh.telemetry import (
    L4_FLAGS,
    PEER_LABELS,
    TCP_LABELS,
    Reporter,
    ResponseFlag,
    SecurityPolicy,
    format_address,
    l4_flag,
    peer_labels,
    response_flags,
    rfc3339,
    service_labels,
    side_labels,
)


@dataclass(frozen=True)
class Pod:
    """Not a controller.model class: the helpers must accept any workload-shaped object."""

    name: str
    namespace: str
    owner: str = ""
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Svc:
    name: str
    namespace: str
    hostname: str


WEB = Pod("web-5d4f8-abcde", "shop", "Deployment/web", (("app", "web"), ("version", "v2")))
BARE = Pod("db-0", "data")  # no owner, no labels: a PeerWorkload-like view
SVC = Svc("web", "shop", "web.shop.svc.cluster.local")
WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"


def test_agent_reexports_the_shared_objects():
    for name in (
        "Reporter",
        "ResponseFlag",
        "SecurityPolicy",
        "TCP_LABELS",
        "UNKNOWN",
        "CLUSTER",
        "workload_name",
        "canonical_service",
        "canonical_revision",
        "tcp_labels",
        "rfc3339",
    ):
        assert getattr(agent_telemetry, name) is getattr(telemetry, name), name


def test_tcp_labels_are_peer_labels_then_protocol_flags_security():
    assert TCP_LABELS[: len(PEER_LABELS)] == PEER_LABELS
    assert TCP_LABELS[len(PEER_LABELS) :] == (
        "request_protocol",
        "response_flags",
        "connection_security_policy",
    )


def test_side_labels_of_a_workload_with_owner_and_labels():
    assert side_labels(WEB, WEB_ID) == (
        "web",
        "web",
        "v2",
        "shop",
        WEB_ID,
        "web",
        "v2",
        "Kubernetes",
    )


def test_side_labels_of_a_bare_workload_fall_back_to_pod_name_and_latest():
    assert side_labels(BARE, None) == (
        "db-0",
        "db-0",
        "latest",
        "data",
        "unknown",
        "db-0",
        "latest",
        "Kubernetes",
    )


def test_side_labels_without_a_workload_keep_a_known_principal():
    assert side_labels(None, WEB_ID) == ("unknown",) * 4 + (WEB_ID,) + ("unknown",) * 3


def test_service_labels():
    assert service_labels(SVC) == ("web.shop.svc.cluster.local", "shop", "web")
    assert service_labels(None) == ("unknown",) * 3


def test_peer_labels_drop_principals_without_mutual_tls():
    mtls = peer_labels(Reporter.WAYPOINT, SecurityPolicy.MUTUAL_TLS, WEB, BARE, SVC, WEB_ID, "x")
    plain = peer_labels(Reporter.WAYPOINT, SecurityPolicy.NONE, WEB, BARE, SVC, WEB_ID, "x")
    at = {name: i for i, name in enumerate(PEER_LABELS)}
    assert mtls[at["reporter"]] == "waypoint"
    assert (mtls[at["source_principal"]], mtls[at["destination_principal"]]) == (WEB_ID, "x")
    assert (plain[at["source_principal"]], plain[at["destination_principal"]]) == ("unknown",) * 2
    assert len(mtls) == len(PEER_LABELS)


def test_response_flags_none_is_a_dash():
    assert response_flags([]) == "-"
    assert response_flags([ResponseFlag.NONE]) == "-"


def test_response_flags_join_in_envoys_order_whatever_the_input_order():
    flags = [ResponseFlag.RETRY_LIMIT_EXCEEDED, ResponseFlag.UPSTREAM_CONNECT_FAILURE]
    assert response_flags(flags) == "UF,URX"
    assert response_flags(["DC", "UH", "-"]) == "UH,DC"


@given(st.sets(st.sampled_from(list(ResponseFlag))))
def test_response_flags_is_one_value_per_combination(flags):
    rendered = response_flags(flags)
    assert response_flags(sorted(flags, reverse=True)) == rendered  # input order is irrelevant
    in_enum_order = [f.value for f in ResponseFlag if f in flags and f is not ResponseFlag.NONE]
    assert rendered == (",".join(in_enum_order) or "-")


def test_response_flags_refuse_unknown_names():
    with pytest.raises(ValueError):
        response_flags(["NOPE"])


def test_l4_flag_accepts_ztunnels_vocabulary_and_refuses_l7_flags():
    assert {l4_flag(f.value) for f in L4_FLAGS} == set(L4_FLAGS)
    with pytest.raises(ValueError, match="L7-only"):
        l4_flag("UF")


def test_envoy_short_names():
    assert ResponseFlag.NO_ROUTE == "NR"
    assert ResponseFlag.DELAY_INJECTED == "DI"
    assert ResponseFlag.FAULT_INJECTED == "FI"
    assert ResponseFlag.RATE_LIMITED == "RL"
    assert ResponseFlag.UPSTREAM_OVERFLOW == "UO"
    assert ResponseFlag.UPSTREAM_TIMEOUT == "UT"


def test_rfc3339_and_addresses():
    assert rfc3339(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"
    assert format_address(("198.18.1.2", 80)) == "198.18.1.2:80"
    assert format_address(("2001:db8::1", 443)) == "[2001:db8::1]:443"
