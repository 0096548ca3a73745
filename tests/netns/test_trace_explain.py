"""`meshctl trace --explain` agrees with real traffic, on a real local cluster (issue 6).

One 2-node cluster; namespace `shop` enrolled, with waypoint `waypoint` used by Service `api`
only (Service `echo` is reached directly), Services `empty` (no endpoint) and `cart` (names a
waypoint that does not exist); namespace `plain` outside the mesh with an echo pod and a client.
Each case is run both ways, `meshctl trace ... --explain -o json` and a real curl from the client
pod, in two phases: no policy, then an L4 ALLOW, an L7 policy at the waypoint and STRICT mTLS.
An explained FORWARDED must be a 200; an explained DENIED or UNROUTABLE a refused connection
(curl's 000) or the waypoint's 403. The explained verdicts are also pinned in the table, so the
two cannot agree by both being wrong the same way.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass

import pytest

from tests.netns.test_local_cluster import ECHO_SERVER, apply_text, pods
from tests.netns.test_mesh import until

pytestmark = pytest.mark.netns


SERVICE_ACCOUNTS = [("shop", "echo"), ("shop", "api"), ("shop", "client"), ("shop", "other")]
SERVICE_ACCOUNTS += [("plain", "old")]


def app() -> str:
    server = json.dumps(["python3", "-u", "-c", ECHO_SERVER])
    echo = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}}}}}
        spec:
          nodeName: node2
          serviceAccountName: {name}
          containers:
            - name: echo
              command: {server}
              env: [{{name: POD_NAME, value: {name}}}, {{name: NODE_NAME, value: node2}}]
              ports: [{{name: http, containerPort: 8080}}]
              readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
        ---
    """)
    client = textwrap.dedent("""\
        apiVersion: v1
        kind: Pod
        metadata: {{name: {name}, namespace: {ns}}}
        spec:
          nodeName: node1
          serviceAccountName: {sa}
          containers: [{{name: c, command: [sleep, infinity]}}]
        ---
    """)
    service = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: shop, labels: {labels}}}
        spec:
          selector: {{app: {app}}}
          ports: [{{name: http, port: 80, targetPort: 8080}}]
        ---
    """)
    return (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: "
        "{nodemesh.io/dataplane-mode: ambient}}\n---\n"
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n---\n"
        + "".join(
            f"apiVersion: v1\nkind: ServiceAccount\n"
            f"metadata: {{name: {sa}, namespace: {ns}}}\n---\n"
            for ns, sa in SERVICE_ACCOUNTS
        )
        + echo.format(name="echo", ns="shop", server=server)
        + echo.format(name="api", ns="shop", server=server)
        + echo.format(name="old", ns="plain", server=server)
        + client.format(name="client", ns="shop", sa="client")
        + client.format(name="other", ns="shop", sa="other")
        + client.format(name="outsider", ns="plain", sa="default")
        + service.format(name="echo", app="echo", labels="{}")
        + service.format(name="api", app="api", labels="{nodemesh.io/use-waypoint: waypoint}")
        + service.format(name="empty", app="nobody", labels="{}")
        + service.format(name="cart", app="echo", labels="{nodemesh.io/use-waypoint: gone}")
    )


POLICIES = textwrap.dedent("""\
    apiVersion: security.nodemesh.io/v1
    kind: AuthorizationPolicy
    metadata: {name: echo-allow-client, namespace: shop}
    spec:
      selector: {matchLabels: {app: echo}}
      action: ALLOW
      rules:
        - from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]
    ---
    apiVersion: security.nodemesh.io/v1
    kind: AuthorizationPolicy
    metadata: {name: api-public, namespace: shop}
    spec:
      targetRefs: [{kind: Service, group: "", name: api}]
      action: ALLOW
      rules:
        - to: [{operation: {methods: [GET], paths: ["/public*"]}}]
    ---
    apiVersion: security.nodemesh.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: shop}
    spec: {mtls: {mode: STRICT}}
""")


@dataclass(frozen=True)
class Case:
    source: str  # "namespace/pod"
    target: str  # what `meshctl trace` is given
    url: str  # what curl is given ({echo_ip} and {old_ip} are filled in)
    verdict: str  # the explained verdict this case pins
    method: str = "GET"
    path: str = "/"
    port: int | None = None


OPEN = [
    Case("shop/client", "svc/echo", "http://echo/", "FORWARDED"),
    Case("shop/client", "svc/api", "http://api/", "FORWARDED"),
    Case("shop/client", "empty", "http://empty/", "UNROUTABLE"),
    Case("shop/client", "cart", "http://cart/", "UNROUTABLE"),
    Case("shop/client", "plain/old", "http://{old_ip}:8080/", "FORWARDED"),
    Case("plain/outsider", "pod/shop/echo", "http://{echo_ip}:8080/", "FORWARDED"),
]
LOCKED = [
    Case("shop/client", "svc/echo", "http://echo/", "FORWARDED"),
    Case("shop/other", "svc/echo", "http://echo/", "DENIED"),
    Case("shop/client", "svc/api", "http://api/public/x", "FORWARDED", path="/public/x"),
    Case("shop/client", "svc/api", "http://api/admin", "DENIED", method="POST", path="/admin"),
    Case("plain/outsider", "pod/shop/echo", "http://{echo_ip}:8080/", "DENIED"),
]


def explained(cluster, case: Case) -> dict:
    args = ["trace", case.source, case.target, "--explain", "-o", "json"]
    args += ["--http", case.method, case.path]
    return json.loads(cluster.meshctl(*args).stdout)


def curled(cluster, case: Case, addresses: dict) -> str:
    """ "200", "403", or "000" (no HTTP answer: the connection was refused or reset)."""
    namespace, pod = case.source.split("/")
    out = cluster.meshctl(
        "exec",
        pod,
        "-n",
        namespace,
        "--",
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "-X",
        case.method,
        case.url.format(**addresses),
        check=False,
        timeout=30,
    )
    return out.stdout.strip() or "000"


def agrees(verdict: str, status: str) -> bool:
    """Explained FORWARDED ⇔ the request succeeds; DENIED/UNROUTABLE ⇔ refused or 403."""
    return status == "200" if verdict == "FORWARDED" else status in ("000", "403")


def check_phase(cluster, cases: list[Case], addresses: dict) -> None:
    verdicts = {case: explained(cluster, case)["verdict"] for case in cases}
    pinned = {c: (v, c.verdict) for c, v in verdicts.items() if v != c.verdict}
    assert not pinned, f"explained verdicts differ from the table: {pinned}"
    seen: dict[Case, str] = {}

    def all_agree() -> bool:  # config reaches agents and waypoint a little after the store
        seen.update({c: curled(cluster, c, addresses) for c in cases})
        return all(agrees(verdicts[c], seen[c]) for c in cases)

    try:
        until(all_agree, timeout=45, what="real traffic agrees with --explain")
    except AssertionError:
        table = "\n".join(
            f"{c.source} → {c.url}: explained {verdicts[c]}, curl {seen.get(c)}" for c in cases
        )
        raise AssertionError(f"--explain and real traffic disagree:\n{table}") from None


def test_explain_agrees_with_real_traffic_on_allow_and_deny_cases(local_cluster, tmp_path):
    cluster = local_cluster
    cluster.meshctl("local", "up", "--nodes", "2")
    apply_text(cluster, tmp_path, app())
    cluster.meshctl("waypoint", "apply", "-n", "shop", timeout=150)
    addresses = {
        "echo_ip": _pod_ip(cluster, "shop", "echo"),
        "old_ip": _pod_ip(cluster, "plain", "old"),
    }
    check_phase(cluster, OPEN, addresses)

    apply_text(cluster, tmp_path, POLICIES, "policies.yaml")
    check_phase(cluster, LOCKED, addresses)
    denied = explained(cluster, LOCKED[3])
    assert denied["hops"][-1]["component"] == "waypoint-authz"
    assert denied["hops"][-1]["status"] == 403
    strict = explained(cluster, LOCKED[4])
    assert strict["hops"][-1]["policy"] == "shop/default"


def _pod_ip(cluster, namespace: str, name: str) -> str:
    def ip():
        found = [p for p in pods(cluster, namespace) if p["metadata"]["name"] == name]
        return found and (found[0].get("status") or {}).get("podIP")

    return until(ip, timeout=60, what=f"pod {namespace}/{name} has an IP")
