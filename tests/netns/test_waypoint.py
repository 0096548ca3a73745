"""A waypoint on a real local cluster: deployed by `meshctl waypoint apply`, reached over HBONE.

One 2-node cluster per test; namespace `shop` enrolled and using waypoint `waypoint`; echo pods
`web-v1` (node2) and `web-v2` (node1) behind Services `web`, `web-v1`, `web-v2`; a curl client on
node1. Every request goes client → agent → waypoint (its own identity from its service-account
token, config from the controller) → the destination pod's agent → the app. The second test adds
a `slow` Service whose pod answers after 2 s, and resilience settings: a TrafficPolicy's faults
(controller → xDS → the waypoint's state) and an HTTPRoute rule's request timeout.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from tests.netns.test_local_cluster import ECHO_SERVER, apply_text, pods
from tests.netns.test_mesh import until

pytestmark = pytest.mark.netns
APPS = Path(__file__).resolve().parent / "apps"


ECHO = ["python3", "-u", "-c", ECHO_SERVER]  # answers "<POD_NAME> <NODE_NAME>"


def http_workload(
    name: str, node: str, command: list[str], namespace: str = "shop", labels: dict | None = None
) -> str:
    """Pod `name` on `node` running `command`, an HTTP server on 8080 (ready once it listens),
    and Service `name` (port 80) selecting `labels`, {app: name} unless given. POD_NAME and
    NODE_NAME are set for the echo server, which answers with them."""
    selector = json.dumps(labels or {"app": name})
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {namespace}, labels: {selector}}}
        spec:
          nodeName: {node}
          containers:
            - name: app
              command: {json.dumps(command)}
              env: [{{name: POD_NAME, value: {name}}}, {{name: NODE_NAME, value: {node}}}]
              ports: [{{name: http, containerPort: 8080}}]
              readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
        ---
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          selector: {selector}
          ports: [{{name: http, port: 80, targetPort: http}}]
        ---
    """)


def app() -> str:
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
        "{nodemesh.io/dataplane-mode: ambient}}\n---\n"
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: client, namespace: shop}\n---\n"
        + http_workload("web-v1", "node2", ECHO, labels={"app": "web", "version": "v1"})
        + http_workload("web-v2", "node1", ECHO, labels={"app": "web", "version": "v2"})
        + textwrap.dedent("""\
            apiVersion: v1
            kind: Service
            metadata: {name: web, namespace: shop}
            spec:
              selector: {app: web}
              ports: [{name: http, port: 80, targetPort: http}]
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: client, namespace: shop}
            spec:
              nodeName: node1
              serviceAccountName: client
              containers: [{name: c, command: [sleep, infinity]}]
        """)
    )


ROUTE = textwrap.dedent("""\
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: web-split, namespace: shop}
    spec:
      parentRefs: [{group: "", kind: Service, name: web, port: 80}]
      rules:
        - matches: [{headers: [{name: x-canary, value: "yes"}]}]
          backendRefs: [{name: web-v2, port: 80}]
        - backendRefs:
            - {name: web-v1, port: 80, weight: 90}
            - {name: web-v2, port: 80, weight: 10}
""")

# L7 DENY at the waypoint of any request to `web` with header `x-evil: yes` (403).
NO_EVIL = textwrap.dedent("""\
    apiVersion: security.nodemesh.io/v1
    kind: AuthorizationPolicy
    metadata: {name: web-no-evil, namespace: shop}
    spec:
      targetRefs: [{kind: Service, group: "", name: web}]
      action: DENY
      rules:
        - when: [{key: "request.headers[x-evil]", values: ["yes"]}]
""")
POLICY = (
    textwrap.dedent("""\
        apiVersion: security.nodemesh.io/v1
        kind: AuthorizationPolicy
        metadata: {name: web-public, namespace: shop}
        spec:
          targetRefs: [{kind: Service, group: "", name: web}]
          action: ALLOW
          rules:
            - to: [{operation: {methods: [GET], paths: ["/public*"]}}]
        ---
    """)
    + NO_EVIL
)


def curl_many(cluster, count: int, *args: str) -> list[tuple[int, str]]:
    """`count` GETs to http://web/ from the client pod, one curl process; [(status, body)]."""
    urls = " ".join(["http://web/"] * count)
    script = (
        f'for u in {urls}; do echo "url = \\"$u\\""; done | curl -sS -K - '
        + " ".join(args)
        + " -w '\\n@@%{http_code}@@\\n'"
    )
    out = cluster.meshctl("exec", "client", "-n", "shop", "--", "sh", "-c", script, timeout=300)
    results = []
    for chunk in out.stdout.split("@@\n")[:-1]:
        body, _, code = chunk.rpartition("\n@@")
        results.append((int(code), body.strip()))
    return results


def status(cluster, *curl_args: str) -> int:
    out = cluster.meshctl(
        "exec",
        "client",
        "-n",
        "shop",
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        *curl_args,
    )
    return int(out.stdout)


def waypoint_metrics(cluster) -> str:
    """The waypoint pod's Prometheus text (15020)."""
    wp = next(p for p in pods(cluster, "shop") if p["metadata"]["name"].startswith("waypoint-"))
    return cluster.meshctl(
        "exec",
        wp["metadata"]["name"],
        "-n",
        "shop",
        "--",
        "curl",
        "-s",
        "http://127.0.0.1:15020/metrics",
    ).stdout


def waypoint_requests(cluster, labels: str = "") -> float:
    """istio_requests_total{reporter="waypoint"}, summed over the series whose labels also match
    the regular expression `labels` (a fragment such as 'response_flags="DI"')."""
    series = r'^istio_requests_total\{([^}]*reporter="waypoint"[^}]*)\} (\S+)$'
    return sum(
        float(m.group(2))
        for m in re.finditer(series, waypoint_metrics(cluster), re.M)
        if re.search(labels, m.group(1))
    )


def test_routes_policies_and_telemetry_through_a_real_waypoint(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    apply_text(cluster, tmp_path, ROUTE, "route.yaml")

    # A header match sends every matching request to v2 (also proves the route has arrived).
    until(
        lambda: {b for _, b in curl_many(cluster, 5, "-H", "'x-canary: yes'")} == {"web-v2 node1"},
        timeout=30,
        what="the route reached the waypoint",
    )
    before = waypoint_requests(cluster)
    sent = 0
    canary = curl_many(cluster, 50, "-H", "'x-canary: yes'")
    assert {b for _, b in canary} == {"web-v2 node1"}
    sent += 50

    # A 90/10 weighted split: 900 ± 60 of 1,000 to v1.
    results = curl_many(cluster, 1000)
    assert all(code == 200 for code, _ in results)
    v1 = sum(1 for _, body in results if body == "web-v1 node2")
    assert 840 <= v1 <= 960, v1
    sent += 1000

    # L7 authorization at the waypoint: GET /public allowed, POST /admin refused, DENY wins.
    apply_text(cluster, tmp_path, POLICY, "policy.yaml")
    polls = []

    def refused() -> bool:
        polls.append(1)
        return status(cluster, "-X", "POST", "http://web/admin") == 403

    until(refused, what="the policy reached the waypoint")
    sent += len(polls)
    assert status(cluster, "http://web/public") == 200
    assert status(cluster, "-X", "POST", "http://web/admin") == 403
    assert status(cluster, "-H", "x-evil: yes", "http://web/public") == 403
    sent += 3

    # istio_requests_total{reporter="waypoint"} counts exactly the requests sent, and names the
    # client workload (from its agent's CONNECT baggage) and the backend it reached.
    assert waypoint_requests(cluster) - before == sent
    named = '(?=.*source_workload="client")(?=.*source_workload_namespace="shop")'
    assert waypoint_requests(cluster, named + '(?=.*destination_workload="web-v1")') >= 840


def slow_app() -> str:
    """A pod that answers every GET after 2 s, behind Service `slow`, and a 500 ms route to it."""
    server = [sys.executable, str(APPS / "http_server.py"), "8080", "--delay", "2"]
    return http_workload("slow", "node2", server) + textwrap.dedent("""\
        apiVersion: gateway.networking.k8s.io/v1
        kind: HTTPRoute
        metadata: {name: slow-timeout, namespace: shop}
        spec:
          parentRefs: [{group: "", kind: Service, name: slow, port: 80}]
          rules:
            - backendRefs: [{name: slow, port: 80}]
              timeouts: {request: 500ms}
    """)


def faults(fault: str) -> str:
    """TrafficPolicy `web-faults` on Service web with `fault` (YAML flow mapping) as spec.faults."""
    return textwrap.dedent(f"""\
        apiVersion: networking.nodemesh.io/v1
        kind: TrafficPolicy
        metadata: {{name: web-faults, namespace: shop}}
        spec:
          targetRefs: [{{group: "", kind: Service, name: web}}]
          faults: {fault}
    """)


def fetch(cluster, url: str) -> tuple[int, str, float]:
    """One GET from the client pod: (status, body, seconds curl took)."""
    out = cluster.meshctl(
        "exec",
        "client",
        "-n",
        "shop",
        "--",
        "curl",
        "-sS",
        "-w",
        "\n@@%{http_code} %{time_total}",
        url,
    ).stdout
    body, _, tail = out.rpartition("\n@@")
    code, seconds = tail.split()
    return int(code), body.strip(), float(seconds)


def test_traffic_policy_faults_and_route_timeouts_through_a_real_waypoint(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app() + "---\n" + slow_app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", "--enroll-namespace", timeout=150)
    abort = faults("{abort: {percentage: 50, httpStatus: 503}}")
    apply_text(cluster, tmp_path, abort, "abort.yaml")

    # Abort 50 % with 503: the TrafficPolicy went registry -> controller -> xDS -> waypoint.
    until(
        lambda: 503 in {code for code, _ in curl_many(cluster, 20)},
        what="the abort fault reached the waypoint",
    )
    codes = [code for code, _ in curl_many(cluster, 200)]
    aborted = codes.count(503)
    assert codes.count(200) + aborted == 200, sorted(set(codes))
    assert 60 <= aborted <= 140, aborted  # Binomial(200, 0.5): 100 ± 7; this is ± 5.6 sd

    # HTTPRoute timeouts.request 500ms to a pod that takes 2 s: the waypoint answers 504.
    until(lambda: status(cluster, "http://slow/") == 504, what="the route reached the waypoint")
    assert fetch(cluster, "http://slow/")[:2] == (504, "upstream request timeout")

    # The policy replaced by a 2 s delay on every request: slower, and no abort any more.
    apply_text(
        cluster, tmp_path, faults("{delay: {percentage: 100, fixedDelay: 2s}}"), "delay.yaml"
    )

    def delayed() -> bool:
        fetch(cluster, "http://web/")  # a request for the new policy to act on
        return waypoint_requests(cluster, 'response_flags="DI"') > 0

    until(delayed, what="the delay fault reached the waypoint")
    code, body, seconds = fetch(cluster, "http://web/")
    assert code == 200 and body.startswith("web-v"), (code, body)
    assert seconds >= 1.5, seconds  # a generous lower bound on the 2 s delay; no upper bound
