"""node_agent.telemetry: Istio's TCP metrics as exposed text, label derivation, access log lines.

Metrics are read back the way Prometheus reads them: `generate_latest` on the test's own registry,
parsed as exposition text. Clocks are injected, so timestamps and durations are exact.
"""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller.model import (
    Endpoint,
    PeerWorkload,
    Service,
    ServicePort,
    Workload,
    freeze_labels,
)
from node_agent import telemetry
from node_agent.policy import Decision, DecisionCode
from node_agent.routing import Route
from node_agent.telemetry import (
    AgentMetrics,
    ConnectionRecord,
    ConnectionTable,
    Direction,
    Reporter,
    ResponseFlag,
    SecurityPolicy,
    canonical_revision,
    canonical_service,
    tcp_labels,
    workload_name,
)

# Istio's names and ztunnel's label set, written out here rather than imported from the module.
ISTIO_TCP = {
    "istio_tcp_connections_opened_total",
    "istio_tcp_connections_closed_total",
    "istio_tcp_sent_bytes_total",
    "istio_tcp_received_bytes_total",
}
ISTIO_LABELS = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_service",
    "destination_service_namespace",
    "destination_service_name",
    "destination_workload",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
]
WEB_ID = "spiffe://cluster.local/ns/shop/sa/web"
DB_ID = "spiffe://cluster.local/ns/shop/sa/db"
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def workload(name="web-5d4f8-abcde", labels=None, owner="Deployment/web", ns="shop", sa="web"):
    return Workload(
        uid=f"uid-{name}",
        name=name,
        namespace=ns,
        node="node1",
        addresses=("198.18.1.2",),
        service_account=sa,
        identity=f"spiffe://cluster.local/ns/{ns}/sa/{sa}",
        labels=freeze_labels({"app": "web", "version": "v1"} if labels is None else labels),
        enrolled=True,
        waypoint="",
        ready=True,
        netns="",
        cgroup="",
        owner=owner,
    )


WEB = workload()
DB_POD = workload("db-0", {"app": "db"}, owner="StatefulSet/db", sa="db")
DB = PeerWorkload.of(DB_POD)
DB_SVC = Service(
    name="db",
    namespace="shop",
    hostname="db.shop.svc.cluster.local",
    vips=("198.18.128.10",),
    ports=(ServicePort("tcp", 5432, 5432, "TCP", ""),),
    endpoints=(),
    waypoint="",
)
DENY = Decision(
    False,
    "DENY",
    DecisionCode.DENIED_BY_DENY,
    "denied by DENY policy shop/no-db rule 0: port 5432 matched",
    "shop/no-db",
    0,
)


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env():
    """(registry, table, access log lines, wall clock, monotonic clock)."""
    registry = CollectorRegistry()
    lines: list[str] = []
    wall, mono = Clock(T0), Clock(100.0)
    table = ConnectionTable(AgentMetrics(registry), lines.append, wall=wall, monotonic=mono)
    return registry, table, lines, wall, mono


def outbound(**kw) -> ConnectionRecord:
    fields = dict(
        direction=Direction.OUTBOUND,
        source_address=("198.18.1.2", 40000),
        destination_address=("198.18.128.10", 5432),
        security_policy=SecurityPolicy.MUTUAL_TLS,
        source=WEB,
        destination=DB,
        service=DB_SVC,
        source_principal=WEB_ID,
        destination_principal=DB_ID,
        route=Route.DIRECT,
    )
    return ConnectionRecord(**(fields | kw))


def inbound(**kw) -> ConnectionRecord:
    fields = dict(
        direction=Direction.INBOUND,
        source_address=("198.18.0.5", 40000),
        destination_address=("198.18.1.3", 5432),
        security_policy=SecurityPolicy.MUTUAL_TLS,
        source=PeerWorkload.of(WEB),
        destination=DB_POD,
        source_principal=WEB_ID,
        destination_principal=DB_ID,
    )
    return ConnectionRecord(**(fields | kw))


def samples(registry) -> dict[str, list[dict[str, str]]]:
    """Sample name -> label dicts, parsed from the exposition text."""
    found: dict[str, list] = {}
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(dict(sample.labels))
    return found


def value(registry, name, **labels) -> float:
    """Sum of `name` over the series whose labels include `labels` (0 if none)."""
    total = 0.0
    text = generate_latest(registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and labels.items() <= s.labels.items():
                total += s.value
    return total


# --- names and labels -----------------------------------------------------------------------------


def test_tcp_counters_have_istio_names_and_exactly_istio_labels(env):
    registry, table, *_ = env
    table.close(table.open(outbound()), flag=ResponseFlag.CONNECT)
    text = generate_latest(registry).decode()
    assert "_total_total" not in text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    # (prometheus_client also writes "<name>_created" gauges unless the process disables them.)
    counters = {name for name, kind in types.items() if kind == "counter"}
    assert {name for name in counters if name.startswith("istio_")} == ISTIO_TCP
    found = samples(registry)
    for name in ISTIO_TCP:
        for labels in found[name]:
            assert sorted(labels) == sorted(ISTIO_LABELS)
    assert list(telemetry.TCP_LABELS) == ISTIO_LABELS  # ztunnel's order, too


def test_agent_gauges_and_decision_counter_names(env):
    registry, table, *_ = env
    m = table.metrics
    m.captured_pods.set(3)
    m.config_generation.set(7)
    m.certificate_expiry.labels(WEB_ID).set(T0)
    m.count_decision(DENY)
    table.open(inbound())
    found = samples(registry)
    assert found["nodemesh_agent_captured_pods"] == [{}]
    assert found["nodemesh_agent_config_generation"] == [{}]
    assert found["nodemesh_agent_certificate_expiry_timestamp_seconds"] == [{"identity": WEB_ID}]
    assert found["nodemesh_agent_active_connections"] == [{"direction": "inbound"}]
    assert found["nodemesh_agent_policy_decisions_total"] == [
        {"decision": "deny", "code": "denied_by_deny"}
    ]


def test_labels_of_an_outbound_mtls_connection(env):
    registry, table, *_ = env
    table.open(outbound())
    (labels,) = samples(registry)["istio_tcp_connections_opened_total"]
    assert labels == {
        "reporter": "source",
        "source_workload": "web",
        "source_canonical_service": "web",
        "source_canonical_revision": "v1",
        "source_workload_namespace": "shop",
        "source_principal": WEB_ID,
        "source_app": "web",
        "source_version": "v1",
        "source_cluster": "Kubernetes",
        "destination_service": "db.shop.svc.cluster.local",
        "destination_service_namespace": "shop",
        "destination_service_name": "db",
        "destination_workload": "db-0",  # a PeerWorkload has no owner: the pod name
        "destination_canonical_service": "db-0",
        "destination_canonical_revision": "latest",
        "destination_workload_namespace": "shop",
        "destination_principal": DB_ID,
        "destination_app": "db-0",
        "destination_version": "latest",
        "destination_cluster": "Kubernetes",
        "request_protocol": "tcp",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }


# --- label derivation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "name", "expected"),
    [
        ("Deployment/web", "web-5d4f8-abcde", "web"),
        ("StatefulSet/db", "db-0", "db"),
        ("Job/migrate", "migrate-x7k2p", "migrate"),
        ("", "standalone", "standalone"),
    ],
)
def test_workload_name_is_the_owner_else_the_pod(owner, name, expected):
    assert workload_name(workload(name, owner=owner)) == expected


@pytest.mark.parametrize(
    ("labels", "service", "revision"),
    [
        (
            {
                "service.istio.io/canonical-name": "cn",
                "app.kubernetes.io/name": "k8s",
                "app": "a",
                "service.istio.io/canonical-revision": "cr",
                "app.kubernetes.io/version": "k8sv",
                "version": "v",
            },
            "cn",
            "cr",
        ),
        (
            {
                "app.kubernetes.io/name": "k8s",
                "app": "a",
                "app.kubernetes.io/version": "2",
                "version": "v",
            },
            "k8s",
            "2",
        ),
        ({"app": "a", "version": "v"}, "a", "v"),
        ({"app": ""}, "web", "latest"),  # an empty label value does not count
        ({}, "web", "latest"),  # the workload name, and Istio's default revision
    ],
)
def test_canonical_service_and_revision_precedence(labels, service, revision):
    w = workload(labels=labels)
    assert (canonical_service(w), canonical_revision(w)) == (service, revision)


def test_peer_workload_reports_pod_name_and_latest():
    assert (workload_name(DB), canonical_service(DB), canonical_revision(DB)) == (
        "db-0",
        "db-0",
        "latest",
    )


def test_unknown_workloads_and_service_are_unknown():
    labels = dict(
        zip(
            ISTIO_LABELS,
            tcp_labels(Reporter.DESTINATION, SecurityPolicy.NONE, None, None, None),
            strict=True,
        )
    )
    known = {"reporter", "request_protocol", "response_flags", "connection_security_policy"}
    assert {k: v for k, v in labels.items() if k not in known} == dict.fromkeys(
        set(ISTIO_LABELS) - known, "unknown"
    )
    assert labels["connection_security_policy"] == "none"
    assert labels["response_flags"] == "-"


def test_plaintext_reports_security_none_and_no_principals():
    values = tcp_labels(Reporter.DESTINATION, SecurityPolicy.NONE, WEB, DB_POD, None, WEB_ID, DB_ID)
    labels = dict(zip(ISTIO_LABELS, values, strict=True))
    assert labels["connection_security_policy"] == "none"
    assert labels["source_principal"] == labels["destination_principal"] == "unknown"
    assert labels["source_workload"] == "web"  # the workload is still known by its address


def test_unknown_response_flag_is_refused():
    with pytest.raises(ValueError):
        tcp_labels(Reporter.SOURCE, SecurityPolicy.NONE, None, None, None, flag="UF")


# --- the label cache ------------------------------------------------------------------------------


def test_cache_returns_the_identical_label_tuple(env, monkeypatch):
    _, table, *_ = env
    calls = []

    def counting(*args):
        calls.append(args)
        return tcp_labels(*args)

    monkeypatch.setattr(telemetry, "tcp_labels", counting)
    first = table.series(outbound())
    again = table.series(outbound(source_address=("198.18.1.2", 40001)))  # another connection
    assert again is first
    assert again.labels is first.labels
    assert len(calls) == 1  # derived once, then one dict lookup


def test_cache_separates_what_changes_labels(env):
    _, table, *_ = env
    base = table.series(outbound())
    assert table.series(outbound(security_policy=SecurityPolicy.NONE)) is not base
    assert table.series(outbound(service=None)) is not base
    assert table.series(outbound(destination_principal=None)) is not base
    assert table.series(inbound()) is not base


# --- bytes ----------------------------------------------------------------------------------------


def test_byte_deltas_accumulate_while_open_and_at_close(env):
    registry, table, *_ = env
    record = table.open(outbound())
    table.update_bytes(record, 10, 100)
    table.update_bytes(record, 5, 50)
    # Visible before the close; Istio counts source -> destination as "received".
    assert value(registry, "istio_tcp_received_bytes_total") == 15
    assert value(registry, "istio_tcp_sent_bytes_total") == 150
    table.close(record, sent=1, received=2)
    assert value(registry, "istio_tcp_received_bytes_total") == 16
    assert value(registry, "istio_tcp_sent_bytes_total") == 152
    assert (record.bytes_sent, record.bytes_received) == (16, 152)


def test_inbound_bytes_are_not_flipped(env):
    registry, table, *_ = env
    record = table.open(inbound())
    table.update_bytes(record, sent=7, received=3)  # the local destination sent 7 back
    assert value(registry, "istio_tcp_received_bytes_total", reporter="destination") == 3
    assert value(registry, "istio_tcp_sent_bytes_total", reporter="destination") == 7


# --- open, close, flags, decisions ----------------------------------------------------------------


def test_open_and_close_count_and_track_active(env):
    registry, table, lines, *_ = env
    record = table.open(outbound())
    assert len(table) == 1
    assert value(registry, "nodemesh_agent_active_connections", direction="outbound") == 1
    assert value(registry, "istio_tcp_connections_opened_total", reporter="source") == 1
    table.close(record)
    table.close(record)  # a second close is a no-op
    assert len(table) == 0
    assert value(registry, "nodemesh_agent_active_connections", direction="outbound") == 0
    assert value(registry, "istio_tcp_connections_closed_total", response_flags="-") == 1
    assert len(lines) == 1


def test_closing_a_record_never_opened_is_an_error(env):
    _, table, *_ = env
    with pytest.raises(ValueError, match="never opened"):
        table.close(outbound())


def test_close_flag_labels_only_the_closed_counter(env):
    registry, table, *_ = env
    table.close(table.open(outbound()), error="connection refused", flag="CONNECT")
    assert value(registry, "istio_tcp_connections_opened_total", response_flags="-") == 1
    assert value(registry, "istio_tcp_connections_closed_total", response_flags="CONNECT") == 1
    assert value(registry, "istio_tcp_connections_closed_total", response_flags="-") == 0


def test_no_endpoints_route_implies_uh(env):
    registry, table, *_ = env
    record = table.open(outbound(route=Route.NO_ENDPOINTS, destination=None))
    table.close(record, error="no ready endpoint")
    assert record.response_flag is ResponseFlag.NO_HEALTHY_UPSTREAM
    assert value(registry, "istio_tcp_connections_closed_total", response_flags="UH") == 1


def test_denied_connection_counts_decision_code_and_deny_flag(env):
    registry, table, *_ = env
    record = table.open(inbound())
    table.decide(record, DENY)
    table.close(record, error="denied by policy")
    assert (
        value(
            registry,
            "nodemesh_agent_policy_decisions_total",
            decision="deny",
            code="denied_by_deny",
        )
        == 1
    )
    assert value(registry, "istio_tcp_connections_closed_total", response_flags="DENY") == 1
    allowed = Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, "allowed: no policy")
    table.close(table.open(inbound(decision=allowed)))  # a decision known at open counts too
    assert value(registry, "nodemesh_agent_policy_decisions_total", decision="allow") == 1
    assert value(registry, "nodemesh_agent_policy_decisions_total") == 2


# --- access log -----------------------------------------------------------------------------------


def test_access_log_line_of_an_outbound_connection(env):
    _, table, lines, wall, mono = env
    record = table.open(outbound())
    table.update_bytes(record, 12, 3400)
    wall.now, mono.now = T0 + 1.5, 101.5
    table.close(record)
    (line,) = lines
    assert "\n" not in line
    assert json.loads(line) == {
        "timestamp": "2023-11-14T22:13:21.500Z",
        "level": "info",
        "scope": "access",
        "message": "connection complete",
        "src.addr": "198.18.1.2:40000",
        "src.workload": "web-5d4f8-abcde",
        "src.namespace": "shop",
        "src.identity": WEB_ID,
        "dst.addr": "198.18.128.10:5432",
        "dst.service": "db.shop.svc.cluster.local",
        "dst.workload": "db-0",
        "dst.namespace": "shop",
        "dst.identity": DB_ID,
        "direction": "outbound",
        "bytes_sent": 12,
        "bytes_recv": 3400,
        "duration": "1500ms",
        "route": "direct",
    }


def test_access_log_line_of_a_denied_plaintext_connection(env):
    _, table, lines, *_ = env
    record = inbound(
        security_policy=SecurityPolicy.NONE,
        source=None,
        source_address=("2001:db8::7", 5555),
        source_principal=None,
    )
    table.open(record)
    table.decide(record, DENY)
    table.close(record, error="connection denied by policy")
    entry = json.loads(lines[0])
    assert entry["level"] == "error"
    assert entry["error"] == "connection denied by policy"
    assert entry["src.addr"] == "[2001:db8::7]:5555"
    assert "src.identity" not in entry and "dst.identity" not in entry  # nothing was proven
    assert "src.workload" not in entry and "route" not in entry
    assert entry["direction"] == "inbound"
    assert entry["policy"] == "shop/no-db"
    assert entry["policy.rule"] == 0
    assert entry["decision"] == "denied_by_deny"
    assert entry["reason"] == DENY.reason


# --- snapshot -------------------------------------------------------------------------------------


def test_snapshot_lists_open_connections_as_json(env):
    _, table, _, _, mono = env
    first = table.open(outbound())
    second = table.open(inbound())
    table.update_bytes(first, 1, 2)
    mono.now += 0.25
    view = table.snapshot()
    json.dumps(view)  # JSON-ready
    assert [c["id"] for c in view] == [first.id, second.id]
    assert view[0]["started"] == "2023-11-14T22:13:20.000Z"
    assert view[0]["age_ms"] == 250
    assert view[0]["bytes_sent"] == 1 and view[0]["bytes_recv"] == 2
    assert view[0]["security"] == "mutual_tls"
    assert view[0]["route"] == "direct"
    table.close(first)
    assert [c["id"] for c in table.snapshot()] == [second.id]


# --- destination_service on the inbound side: a claim checked against the agent's config ---------

DB_SELECTING = dataclasses.replace(
    DB_SVC, endpoints=(Endpoint(DB_POD.uid, "198.18.1.2", ((5432, 5432),)),)
)
SERVICES = {DB_SELECTING.key: DB_SELECTING}


def test_a_claimed_service_that_selects_the_pod_on_that_port_is_taken():
    found = telemetry.claimed_service(SERVICES, DB_SVC.hostname, DB_POD, 5432)
    assert found is DB_SELECTING


@pytest.mark.parametrize(
    ("services", "claim", "pod", "port"),
    [
        (SERVICES, None, DB_POD, 5432),  # nothing claimed
        (SERVICES, "", DB_POD, 5432),
        ({}, DB_SVC.hostname, DB_POD, 5432),  # a Service this agent does not know
        ({DB_SVC.key: DB_SVC}, DB_SVC.hostname, DB_POD, 5432),  # it selects no pod
        (SERVICES, DB_SVC.hostname, WEB, 5432),  # it selects another pod, not this one
        (SERVICES, DB_SVC.hostname, DB_POD, 8080),  # no Service port maps to this one
        (SERVICES, "db.shop.svc.evil.example", DB_POD, 5432),  # same key, not its hostname
        (SERVICES, "db", DB_POD, 5432),
    ],
)
def test_an_unconfirmed_claim_is_ignored(services, claim, pod, port):
    assert telemetry.claimed_service(services, claim, pod, port) is None


def test_a_confirmed_claim_labels_the_destination_reporter_series(env):
    registry, table, *_ = env
    service = telemetry.claimed_service(SERVICES, DB_SVC.hostname, DB_POD, 5432)
    table.open(inbound(service=service))
    (series,) = samples(registry)["istio_tcp_connections_opened_total"]
    assert series["reporter"] == "destination"
    assert series["destination_service"] == "db.shop.svc.cluster.local"
    assert (series["destination_service_namespace"], series["destination_service_name"]) == (
        "shop",
        "db",
    )
