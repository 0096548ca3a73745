"""waypoint.telemetry: Istio's L7 metrics read back as Prometheus reads them.

Every assertion goes through `generate_latest` on the test's own registry and the exposition
parser, so names, label sets and bucket boundaries are checked as a scraper sees them. Istio's
names, labels and buckets are written out here rather than imported from the module.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from nodemesh.telemetry import ResponseFlag
from tests.unit.waypoint.records import CART_ID, WEB_ID, grpc_head, record
from waypoint.messages import Peer, ResponseHead
from waypoint.telemetry import (
    HTTP_LABELS,
    PeerLabelMemo,
    WaypointMetrics,
    http_labels,
    response_code_label,
)

ISTIO_HTTP_LABELS = {
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
}
ISTIO_DURATION_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000]
ISTIO_DURATION_BUCKETS += [60000, 300000, 600000, 1800000, 3600000]


@pytest.fixture
def registry():
    return CollectorRegistry()


def samples(registry, name):
    """{sample name: [(labels, value)]} of metric family `name`."""
    text = generate_latest(registry).decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for s in family.samples:
                out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def requests(registry):
    return samples(registry, "istio_requests")["istio_requests_total"]


def buckets(registry, name, **match):
    """{le: cumulative count} of the histogram's buckets whose labels include `match`."""
    found = {}
    for labels, value in samples(registry, name)[f"{name}_bucket"]:
        if all(labels[k] == v for k, v in match.items()):
            found[labels["le"]] = value
    return found


def test_label_names_are_istios(registry):
    assert set(HTTP_LABELS) == ISTIO_HTTP_LABELS
    assert len(HTTP_LABELS) == len(ISTIO_HTTP_LABELS)


def test_label_values_of_a_successful_request(registry):
    WaypointMetrics(registry).record(record())
    [(labels, value)] = requests(registry)
    assert value == 1
    assert labels == {
        "reporter": "waypoint",
        "source_workload": "web",
        "source_workload_namespace": "shop",
        "source_principal": WEB_ID,
        "source_app": "web",
        "source_version": "v1",
        "source_canonical_service": "web",
        "source_canonical_revision": "v1",
        "source_cluster": "Kubernetes",
        # the endpoint is a PeerWorkload: pod name and "latest" until the model carries more
        "destination_workload": "cart-0",
        "destination_workload_namespace": "shop",
        "destination_principal": CART_ID,
        "destination_app": "cart-0",
        "destination_version": "latest",
        "destination_canonical_service": "cart-0",
        "destination_canonical_revision": "latest",
        "destination_cluster": "Kubernetes",
        "destination_service": "cart.shop.svc.cluster.local",
        "destination_service_name": "cart",
        "destination_service_namespace": "shop",
        "request_protocol": "http",
        "response_code": "200",
        "grpc_response_status": "",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }


def test_label_values_of_a_failed_grpc_call_with_flags():
    r = record(
        request=grpc_head(),
        response=ResponseHead(503),
        flags=frozenset({ResponseFlag.RETRY_LIMIT_EXCEEDED, ResponseFlag.UPSTREAM_CONNECT_FAILURE}),
    )
    labels = dict(zip(HTTP_LABELS, http_labels(r), strict=True))
    assert labels["request_protocol"] == "grpc"
    assert labels["response_code"] == "503"
    assert labels["grpc_response_status"] == "14"  # 503 maps to UNAVAILABLE
    assert labels["response_flags"] == "UF,URX"


def test_plaintext_client_without_a_known_workload():
    r = record(peer=Peer(None, ("198.18.9.9", 1234), ("198.18.128.20", 80)), source=None)
    labels = dict(zip(HTTP_LABELS, http_labels(r), strict=True))
    assert labels["connection_security_policy"] == "none"
    assert labels["source_workload"] == labels["source_principal"] == "unknown"
    assert labels["destination_principal"] == "unknown"  # principals only under mutual TLS


def test_no_response_is_code_zero(registry):
    WaypointMetrics(registry).record(
        record(response=None, flags=frozenset({ResponseFlag.DOWNSTREAM_TERMINATED}))
    )
    [(labels, _)] = requests(registry)
    assert (labels["response_code"], labels["response_flags"]) == ("0", "DC")


@pytest.mark.parametrize(("code", "label"), [(200, "200"), (599, "599"), (0, "0"), (99, "0")])
def test_response_code_label_is_bounded(code, label):
    assert response_code_label(code) == label


def test_duration_bucket_placement(registry):
    metrics = WaypointMetrics(registry)
    metrics.record(record(duration=0.0125))  # 12.5 ms
    metrics.record(record(duration=0.025))  # 25 ms: on a boundary, counted in le=25
    found = buckets(registry, "istio_request_duration_milliseconds")
    assert [float(le) for le in found if le != "+Inf"] == ISTIO_DURATION_BUCKETS
    assert (found["10.0"], found["25.0"], found["50.0"], found["+Inf"]) == (0, 2, 2, 2)
    [(_, total)] = samples(registry, "istio_request_duration_milliseconds")[
        "istio_request_duration_milliseconds_sum"
    ]
    assert total == pytest.approx(37.5)


def test_size_bucket_placement(registry):
    WaypointMetrics(registry).record(record())  # request 90+10 B, response 100+1400 B
    request = buckets(registry, "istio_request_bytes")
    response = buckets(registry, "istio_response_bytes")
    assert [float(le) for le in request if le != "+Inf"] == [10.0**i for i in range(10)]
    assert (request["10.0"], request["100.0"]) == (0, 1)
    assert (response["1000.0"], response["10000.0"]) == (0, 1)


def test_same_labels_share_one_series(registry):
    metrics = WaypointMetrics(registry)
    for _ in range(3):
        metrics.record(record())
    metrics.record(record(response=ResponseHead(404)))
    counts = {labels["response_code"]: value for labels, value in requests(registry)}
    assert counts == {"200": 3, "404": 1}
    assert metrics.label_sets() == 2


def test_label_sets_past_the_limit_fold_into_unknown_peers(registry):
    metrics = WaypointMetrics(registry, max_label_sets=1)
    metrics.record(record())
    metrics.record(record(source=None))  # a new label set, past the limit
    metrics.record(record(peer=Peer("spiffe://x/ns/y/sa/z", ("198.18.0.1", 1), ("a", 1))))
    series = requests(registry)
    folded = [(labels, value) for labels, value in series if labels["source_workload"] == "unknown"]
    [(labels, value)] = folded
    assert value == 2  # both overflowing requests, still counted
    assert labels["source_principal"] == labels["destination_service"] == "unknown"
    assert (labels["reporter"], labels["response_code"]) == ("waypoint", "200")
    assert sum(v for _, v in series) == 3
    [(_, overflowed)] = samples(registry, "nodemesh_waypoint_label_overflow")[
        "nodemesh_waypoint_label_overflow_total"
    ]
    assert overflowed == 2


def test_limit_must_be_positive(registry):
    with pytest.raises(ValueError, match="max_label_sets"):
        WaypointMetrics(registry, max_label_sets=0)


def test_peer_label_memo_agrees_with_deriving_the_labels():
    memo = PeerLabelMemo()
    r = record()
    assert memo.labels(r) == http_labels(r)[:20]
    assert (
        memo.labels(record(peer=Peer(None, ("198.18.1.2", 1), ("198.18.128.20", 80))))
        == (http_labels(record(peer=Peer(None, ("198.18.1.2", 1), ("198.18.128.20", 80))))[:20])
    )


def test_peer_label_memo_never_answers_for_another_object():
    """An entry is keyed on ids but checked by identity, so an equal-id impostor misses."""
    memo = PeerLabelMemo()
    first = record()
    memo.labels(first)
    renamed = replace(first.service, hostname="other.shop.svc.cluster.local")
    labels = memo.labels(record(service=renamed))
    assert labels[HTTP_LABELS.index("destination_service")] == "other.shop.svc.cluster.local"


def test_peer_label_memo_is_bounded():
    memo = PeerLabelMemo(limit=2)
    for port in range(5):
        memo.labels(
            record(
                peer=Peer(f"spiffe://cluster.local/ns/a/sa/{port}", ("1.1.1.1", 1), ("2.2.2.2", 2))
            )
        )
    assert len(memo._memo) <= 2
