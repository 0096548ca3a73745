"""node_agent.policy: Istio AuthorizationPolicy / PeerAuthentication verdicts at the node agent.

Policies are written as Kubernetes-shaped dicts and go through controller.translate, so the tests
exercise the normalized model the agent really receives; the Hypothesis tests build the model
dataclasses directly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.model import (
    AuthorizationPolicy,
    Condition,
    Operation,
    Rule,
    Source,
    Workload,
    freeze_labels,
    rules_need_l7,
)
from controller.translate import translate
from node_agent.policy import (
    Connection,
    DecisionCode,
    PolicyIndex,
    admit_plaintext,
    authorize,
    decide,
    peer_authentication_mode,
)
from tests.unit.controller.test_translate import authz

ROOT = "nodemesh-system"
WEB = "spiffe://cluster.local/ns/web/sa/frontend"  # the usual caller
OTHER = "spiffe://cluster.local/ns/other/sa/backend"
WAYPOINT = "spiffe://cluster.local/ns/shop/sa/waypoint"
NODE = "spiffe://cluster.local/nodemesh/node/node1"  # a node agent: never a principal
DST = "198.18.1.2"
SRC = "198.18.0.5"

Code = DecisionCode


# --- builders -------------------------------------------------------------------------------------


def workload(
    ns: str = "shop", labels: dict | None = None, *, name: str = "cart-1", waypoint: str = ""
) -> Workload:
    return Workload(
        uid=f"uid-{ns}-{name}",
        name=name,
        namespace=ns,
        node="node1",
        addresses=(DST,),
        service_account="cart",
        identity=f"spiffe://cluster.local/ns/{ns}/sa/cart",
        labels=freeze_labels({"app": "cart"} if labels is None else labels),
        enrolled=True,
        waypoint=waypoint,
        ready=True,
        netns="",
        cgroup="",
        owner="",
    )


CART = workload()


def mtls(identity: str | None = WEB, port: int = 8080, *, src: str = SRC, **kw) -> Connection:
    return Connection(identity, src, kw.pop("dst", DST), port, tls=True, **kw)


def plain(port: int = 8080, *, src: str = SRC, **kw) -> Connection:
    return Connection(None, src, kw.pop("dst", DST), port, tls=False, **kw)


def policy(action: str = "ALLOW", rules: list | None = None, *, name="p", ns="shop", **spec):
    spec["action"] = action
    if rules is not None:
        spec["rules"] = rules
    return authz(spec, name=name, ns=ns)


def peer(mode: str | None = None, *, name="pa", ns="shop", selector=None, ports=None) -> dict:
    spec: dict = {}
    if mode is not None:
        spec["mtls"] = {"mode": mode}
    if selector is not None:
        spec["selector"] = {"matchLabels": selector}
    if ports is not None:
        spec["portLevelMtls"] = {str(port): {"mode": m} for port, m in ports.items()}
    return {
        "apiVersion": "security.nodemesh.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }


def index(*objects: dict, trust_domain: str = "cluster.local", root: str = ROOT) -> PolicyIndex:
    result = translate(list(objects), root_namespace=root)
    assert result.errors == ()
    snapshot = result.snapshot
    return PolicyIndex.build(
        snapshot.authorization_policies + snapshot.peer_authentications,
        trust_domain=trust_domain,
        root_namespace=root,
    )


def src(**source) -> dict:
    return {"from": [{"source": source}]}


def to(**operation) -> dict:
    return {"to": [{"operation": operation}]}


def when(key: str, values=None, not_values=None) -> dict:
    condition: dict = {"key": key}
    if values is not None:
        condition["values"] = values
    if not_values is not None:
        condition["notValues"] = not_values
    return {"when": [condition]}


# --- every field, its not-form and wildcards (one ALLOW rule) -------------------------------------

FIELD_ROWS = [
    # principals: the SPIFFE ID without its scheme; wildcards; plaintext has none
    ("principal-exact", src(principals=["cluster.local/ns/web/sa/frontend"]), mtls(WEB), True),
    ("principal-other", src(principals=["cluster.local/ns/web/sa/frontend"]), mtls(OTHER), False),
    ("principal-plaintext", src(principals=["cluster.local/ns/web/sa/frontend"]), plain(), False),
    ("principal-prefix", src(principals=["cluster.local/ns/web/*"]), mtls(WEB), True),
    ("principal-prefix-miss", src(principals=["cluster.local/ns/web/*"]), mtls(OTHER), False),
    ("principal-suffix", src(principals=["*/sa/frontend"]), mtls(WEB), True),
    ("principal-suffix-miss", src(principals=["*/sa/frontend"]), mtls(OTHER), False),
    ("principal-any", src(principals=["*"]), mtls(OTHER), True),
    ("principal-any-plaintext", src(principals=["*"]), plain(), False),
    ("principal-values-or", src(principals=["x/ns/a/sa/b", "*/sa/backend"]), mtls(OTHER), True),
    # one wildcard, at one end: "*/ns/other/*" is the suffix "/ns/other/*", taken literally
    ("principal-two-wildcards", src(principals=["*/ns/other/*"]), mtls(OTHER), False),
    ("principal-node-id", src(principals=["*"]), mtls(NODE), False),
    (
        "principal-tls-no-id",
        src(principals=["*"]),
        Connection(None, SRC, DST, 8080, tls=True),
        False,
    ),
    ("principal-id-no-tls", src(principals=["*"]), Connection(WEB, SRC, DST, 8080), False),
    ("notPrincipals-excluded", src(notPrincipals=["cluster.local/ns/web/*"]), mtls(WEB), False),
    ("notPrincipals-other", src(notPrincipals=["cluster.local/ns/web/*"]), mtls(OTHER), True),
    # ztunnel: nothing to exclude on plaintext, so a not-field matches it
    ("notPrincipals-plaintext", src(notPrincipals=["cluster.local/ns/web/*"]), plain(), True),
    ("notPrincipals-any-mtls", src(notPrincipals=["*"]), mtls(WEB), False),
    ("notPrincipals-any-plaintext", src(notPrincipals=["*"]), plain(), True),
    # namespaces: the peer identity's namespace
    ("namespace-exact", src(namespaces=["web"]), mtls(WEB), True),
    ("namespace-miss", src(namespaces=["web"]), mtls(OTHER), False),
    ("namespace-plaintext", src(namespaces=["web"]), plain(), False),
    ("namespace-prefix", src(namespaces=["we*"]), mtls(WEB), True),
    ("namespace-suffix", src(namespaces=["*eb"]), mtls(WEB), True),
    ("namespace-any", src(namespaces=["*"]), mtls(OTHER), True),
    ("namespace-any-plaintext", src(namespaces=["*"]), plain(), False),
    ("notNamespaces-excluded", src(notNamespaces=["web"]), mtls(WEB), False),
    ("notNamespaces-other", src(notNamespaces=["web"]), mtls(OTHER), True),
    ("notNamespaces-plaintext", src(notNamespaces=["web"]), plain(), True),
    # ipBlocks: source address, CIDR or exact, both families
    ("ipBlocks-cidr", src(ipBlocks=["198.18.0.0/24"]), mtls(), True),
    ("ipBlocks-cidr-miss", src(ipBlocks=["198.18.0.0/24"]), mtls(src="198.18.9.1"), False),
    ("ipBlocks-host-bits", src(ipBlocks=["198.18.0.77/24"]), mtls(), True),
    ("ipBlocks-exact", src(ipBlocks=["198.18.0.5"]), plain(), True),
    ("ipBlocks-exact-miss", src(ipBlocks=["198.18.0.6"]), plain(), False),
    ("ipBlocks-v6", src(ipBlocks=["2001:db8::/32"]), mtls(src="2001:db8::7"), True),
    ("ipBlocks-v6-vs-v4", src(ipBlocks=["2001:db8::/32"]), mtls(), False),
    ("ipBlocks-v4-mapped", src(ipBlocks=["198.18.0.0/24"]), mtls(src="::ffff:198.18.0.5"), True),
    ("ipBlocks-bad-source", src(ipBlocks=["0.0.0.0/0"]), mtls(src="garbage"), False),
    ("notIpBlocks-excluded", src(notIpBlocks=["198.18.0.0/24"]), mtls(), False),
    ("notIpBlocks-other", src(notIpBlocks=["198.18.0.0/24"]), mtls(src="10.0.0.1"), True),
    # ports: destination port, strings
    ("ports", to(ports=["8080"]), mtls(port=8080), True),
    ("ports-miss", to(ports=["8080"]), mtls(port=9090), False),
    ("ports-or", to(ports=["80", "8080"]), plain(8080), True),
    ("notPorts-excluded", to(notPorts=["8080"]), mtls(port=8080), False),
    ("notPorts-other", to(notPorts=["8080"]), mtls(port=9090), True),
    # when: the L4 keys, values and notValues
    ("when-source.ip", when("source.ip", ["198.18.0.0/16"]), mtls(), True),
    ("when-source.ip-miss", when("source.ip", ["10.0.0.0/8"]), mtls(), False),
    ("when-source.ip-not", when("source.ip", not_values=["198.18.0.5"]), mtls(), False),
    ("when-source.namespace", when("source.namespace", ["w*"]), mtls(WEB), True),
    ("when-source.namespace-miss", when("source.namespace", ["w*"]), mtls(OTHER), False),
    ("when-source.namespace-plain", when("source.namespace", ["*"]), plain(), False),
    ("when-source.namespace-not-plain", when("source.namespace", None, ["web"]), plain(), True),
    ("when-source.principal", when("source.principal", ["*/sa/frontend"]), mtls(WEB), True),
    ("when-source.principal-not", when("source.principal", None, ["*"]), mtls(WEB), False),
    ("when-destination.ip", when("destination.ip", [DST]), mtls(), True),
    ("when-destination.ip-miss", when("destination.ip", ["198.18.1.3"]), mtls(), False),
    ("when-destination.ip-not", when("destination.ip", None, ["198.18.1.0/24"]), mtls(), False),
    ("when-destination.port", when("destination.port", ["8080"]), mtls(port=8080), True),
    ("when-destination.port-not", when("destination.port", None, ["8080"]), mtls(), False),
    ("when-values-and-not", when("destination.port", ["8080", "9090"], ["9090"]), mtls(), True),
    # combinations: fields of one source AND, sources OR, from/to/when AND
    (
        "source-fields-and",
        src(namespaces=["web"], ipBlocks=["10.0.0.0/8"]),
        mtls(WEB),
        False,
    ),
    (
        "sources-or",
        {"from": [{"source": {"namespaces": ["x"]}}, {"source": {"ipBlocks": ["198.18.0.0/24"]}}]},
        mtls(WEB),
        True,
    ),
    ("from-and-to", {**src(namespaces=["web"]), **to(ports=["9090"])}, mtls(WEB, 8080), False),
    ("from-and-to-match", {**src(namespaces=["web"]), **to(ports=["8080"])}, mtls(WEB), True),
    (
        "operations-or",
        {"to": [{"operation": {"ports": ["9090"]}}, {"operation": {"ports": ["8080"]}}]},
        mtls(),
        True,
    ),
    (
        "conditions-and",
        {
            "when": [
                {"key": "source.namespace", "values": ["web"]},
                {"key": "destination.port", "values": ["9090"]},
            ]
        },
        mtls(WEB),
        False,
    ),
]


@pytest.mark.parametrize(
    ("rule", "conn", "allowed"), [row[1:] for row in FIELD_ROWS], ids=[row[0] for row in FIELD_ROWS]
)
def test_each_field_matches_like_ztunnel(rule, conn, allowed):
    decision = authorize(conn, CART, index(policy("ALLOW", [rule])))
    assert decision.allowed is allowed
    assert decision.code is (Code.ALLOWED_BY_POLICY if allowed else Code.DENIED_NO_ALLOW_MATCH)


@pytest.mark.parametrize(
    ("action", "rules", "allowed", "code"),
    [
        ("ALLOW", None, False, Code.DENIED_NO_ALLOW_MATCH),  # no rules: allows nothing
        ("ALLOW", [], False, Code.DENIED_NO_ALLOW_MATCH),
        ("ALLOW", [{}], True, Code.ALLOWED_BY_POLICY),  # an empty rule matches everything
        ("DENY", None, True, Code.ALLOWED_NO_POLICY),  # no rules: denies nothing
        ("DENY", [{}], False, Code.DENIED_BY_DENY),
        ("AUDIT", None, True, Code.ALLOWED_NO_POLICY),
        ("AUDIT", [{}], True, Code.ALLOWED_NO_POLICY),  # AUDIT never decides
    ],
    ids=[
        "allow-none",
        "allow-empty-list",
        "allow-empty-rule",
        "deny-none",
        "deny-empty-rule",
        "audit-none",
        "audit-empty-rule",
    ],
)
def test_empty_rule_lists_and_empty_rules(action, rules, allowed, code):
    for conn in (mtls(), plain()):
        decision = authorize(conn, CART, index(policy(action, rules)))
        assert (decision.allowed, decision.code) == (allowed, code)


# --- order: DENY, then ALLOW, then allow ----------------------------------------------------------


def test_deny_on_a_port_wins_over_an_allow_for_the_principal():
    idx = index(
        policy("DENY", [to(ports=["8080"])], name="deny-admin"),
        policy("ALLOW", [src(principals=["cluster.local/ns/web/sa/frontend"])], name="allow-web"),
    )
    denied = authorize(mtls(WEB, 8080), CART, idx)
    assert denied == denied.__class__(
        allowed=False,
        action="DENY",
        code=Code.DENIED_BY_DENY,
        reason="denied by DENY policy shop/deny-admin rule 0: port 8080 matched",
        policy="shop/deny-admin",
        rule=0,
    )
    allowed = authorize(mtls(WEB, 9090), CART, idx)
    assert (allowed.code, allowed.policy, allowed.rule) == (
        Code.ALLOWED_BY_POLICY,
        "shop/allow-web",
        0,
    )
    assert allowed.reason == (
        "allowed by ALLOW policy shop/allow-web rule 0: "
        "principal cluster.local/ns/web/sa/frontend matched"
    )
    other = authorize(mtls(OTHER, 9090), CART, idx)
    assert (other.allowed, other.code, other.policy) == (False, Code.DENIED_NO_ALLOW_MATCH, None)
    assert "shop/allow-web" in other.reason and OTHER in other.reason


def test_a_mesh_wide_deny_wins_over_a_namespace_allow_and_any_allow_suffices():
    idx = index(
        policy("DENY", [src(ipBlocks=["10.0.0.0/8"])], name="no-ten", ns=ROOT),
        policy("ALLOW", [src(namespaces=["web"])], name="a"),
        policy("ALLOW", [src(namespaces=["other"])], name="b"),
    )
    assert authorize(mtls(WEB, src="10.1.1.1"), CART, idx).policy == f"{ROOT}/no-ten"
    assert authorize(mtls(WEB), CART, idx).policy == "shop/a"
    assert authorize(mtls(OTHER), CART, idx).policy == "shop/b"
    assert not authorize(plain(), CART, idx).allowed


def test_reasons_name_what_matched():
    rule = {**src(namespaces=["web"], principals=["*"]), **to(ports=["8080"])}
    decision = authorize(mtls(WEB), CART, index(policy("DENY", [{}, rule], name="d")))
    assert decision.reason == "denied by DENY policy shop/d rule 0: " + (
        "the rule has no L4 conditions, so it matches every connection"
    )
    decision = authorize(mtls(WEB), CART, index(policy("DENY", [rule], name="d")))
    assert decision.reason == (
        "denied by DENY policy shop/d rule 0: principal cluster.local/ns/web/sa/frontend, "
        "namespace web, port 8080 matched"
    )
    decision = authorize(plain(), CART, index(policy("DENY", [src(notNamespaces=["web"])])))
    assert decision.reason.endswith("namespace (none: plaintext) matched")


# --- scope ----------------------------------------------------------------------------------------

SCOPE_ROWS = [
    ("mesh-wide", dict(ns=ROOT), workload(), True),
    ("mesh-wide-other-namespace", dict(ns=ROOT), workload("web"), True),
    (
        "root-selector-any-namespace",
        dict(ns=ROOT, selector={"matchLabels": {"app": "cart"}}),
        workload("web"),
        True,
    ),
    (
        "root-selector-miss",
        dict(ns=ROOT, selector={"matchLabels": {"app": "db"}}),
        workload(),
        False,
    ),
    ("namespace-wide", dict(), workload(), True),
    ("namespace-wide-other-namespace", dict(), workload("web"), False),
    ("selector", dict(selector={"matchLabels": {"app": "cart"}}), workload(), True),
    ("selector-miss", dict(selector={"matchLabels": {"app": "cart"}}), workload(labels={}), False),
    (
        "selector-subset",
        dict(selector={"matchLabels": {"app": "cart"}}),
        workload(labels={"app": "cart", "v": "2"}),
        True,
    ),
    (
        "selector-needs-all",
        dict(selector={"matchLabels": {"app": "cart", "v": "2"}}),
        workload(),
        False,
    ),
    (
        "target-refs-are-for-waypoints",
        dict(targetRefs=[{"kind": "Service", "group": "", "name": "cart"}]),
        workload(),
        False,
    ),
    (
        "target-refs-in-root",
        dict(ns=ROOT, targetRefs=[{"kind": "Gateway", "name": "wp"}]),
        workload(),
        False,
    ),
]


@pytest.mark.parametrize(
    ("where", "destination", "applies"),
    [row[1:] for row in SCOPE_ROWS],
    ids=[row[0] for row in SCOPE_ROWS],
)
def test_scope(where, destination, applies):
    # A deny-all ALLOW policy (no rules) shows whether it applies.
    decision = authorize(mtls(), destination, index(policy("ALLOW", None, **where)))
    assert decision.allowed is not applies


def test_a_custom_root_namespace_is_mesh_wide():
    idx = index(policy("ALLOW", None, ns="mesh-root"), root="mesh-root")
    assert not authorize(mtls(), workload("anywhere"), idx).allowed
    assert authorize(mtls(), workload("anywhere"), index(policy("ALLOW", None, ns="mesh-root")))


def test_one_index_serves_workloads_with_different_labels():
    idx = index(policy("ALLOW", None, selector={"matchLabels": {"app": "db"}}))
    for _ in range(2):  # the second round comes from the memo
        assert not authorize(mtls(), workload(labels={"app": "db"}), idx).allowed
        assert authorize(mtls(), workload(labels={"app": "cart"}), idx).allowed


# --- AUDIT ----------------------------------------------------------------------------------------


def test_audit_policies_are_reported_and_never_decide():
    idx = index(
        policy("AUDIT", [to(ports=["8080"])], name="audit-8080"),
        policy("AUDIT", [to(ports=["9090"])], name="audit-9090"),
        policy("AUDIT", [to(methods=["GET"])], name="audit-http"),  # the agent cannot tell
    )
    decision = authorize(mtls(port=8080), CART, idx)
    assert (decision.allowed, decision.code) == (True, Code.ALLOWED_NO_POLICY)
    assert decision.audit == ("shop/audit-8080",)
    deny = index(policy("AUDIT", [{}], name="audit-all"), policy("DENY", [{}], name="deny-all"))
    decision = authorize(plain(), CART, deny)
    assert (decision.allowed, decision.audit) == (False, ("shop/audit-all",))
    idx = index(policy("AUDIT", [{}], name="audit"), policy("ALLOW", None, name="allow-none"))
    decision = authorize(plain(), CART, idx)
    assert (decision.code, decision.audit) == (Code.DENIED_NO_ALLOW_MATCH, ("shop/audit",))


# --- HTTP attributes without a waypoint -----------------------------------------------------------

L7_PARTS = [
    src(requestPrincipals=["iss/sub"]),
    src(notRequestPrincipals=["*"]),
    src(remoteIpBlocks=["198.18.0.0/16"]),
    src(notRemoteIpBlocks=["10.0.0.0/8"]),
    to(hosts=["cart.shop"]),
    to(notHosts=["x"]),
    to(methods=["GET"]),
    to(notMethods=["DELETE"]),
    to(paths=["/api/*"]),
    to(notPaths=["/admin"]),
    when("request.headers[x-user]", ["alice"]),
    when("request.auth.claims[iss]", ["me"]),
    when("connection.sni", ["cart.shop"]),
]
L7_IDS = [
    "requestPrincipals",
    "notRequestPrincipals",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
    "hosts",
    "notHosts",
    "methods",
    "notMethods",
    "paths",
    "notPaths",
    "request.headers[x-user]",
    "request.auth.claims[iss]",
    "connection.sni",
]


@pytest.mark.parametrize("l7", L7_PARTS, ids=L7_IDS)
def test_an_allow_rule_with_http_attributes_never_matches_at_the_agent(l7):
    decision = authorize(mtls(WEB), CART, index(policy("ALLOW", [l7], name="allow-http")))
    assert (decision.allowed, decision.code) == (False, Code.DENIED_L7_WITHOUT_WAYPOINT)
    assert (decision.policy, decision.rule) == ("shop/allow-http", 0)
    assert "add a waypoint" in decision.reason and L7_IDS[L7_PARTS.index(l7)] in decision.reason


@pytest.mark.parametrize("l7", L7_PARTS, ids=L7_IDS)
def test_a_deny_rule_with_http_attributes_is_enforced_on_its_l4_parts(l7):
    idx = index(
        policy(
            "DENY",
            [{**l7, **to(ports=["8080"])}]
            if "to" not in l7
            else [{**l7, **src(namespaces=["web"])}],
            name="deny-http",
        )
    )
    denied_conn, allowed_conn = (
        (mtls(WEB, 8080), mtls(WEB, 9090)) if "to" not in l7 else (mtls(WEB), mtls(OTHER))
    )
    denied = authorize(denied_conn, CART, idx)
    assert (denied.code, denied.policy, denied.rule) == (Code.DENIED_BY_DENY, "shop/deny-http", 0)
    assert "HTTP attributes" in denied.reason and "errs on the side of denying" in denied.reason
    assert authorize(allowed_conn, CART, idx).code is Code.ALLOWED_NO_POLICY


@pytest.mark.parametrize("l7", L7_PARTS, ids=L7_IDS)
def test_an_http_only_deny_denies_everything_unlike_ztunnel(l7):
    # ztunnel skips the empty match istiod sends for an HTTP-only part (istio/istio#61126): a
    # silent no-op. nodemesh denies instead; see the module docstring.
    decision = authorize(plain(), CART, index(policy("DENY", [l7])))
    assert decision.code is Code.DENIED_BY_DENY


def test_an_http_rule_only_explains_the_denial_when_its_l4_part_matches():
    idx = index(
        policy("ALLOW", [{**src(namespaces=["web"]), **to(methods=["GET"])}, to(ports=["9090"])])
    )
    assert authorize(mtls(WEB, 8080), CART, idx).code is Code.DENIED_L7_WITHOUT_WAYPOINT
    assert authorize(mtls(OTHER, 8080), CART, idx).code is Code.DENIED_NO_ALLOW_MATCH
    assert authorize(mtls(OTHER, 9090), CART, idx).code is Code.ALLOWED_BY_POLICY


# --- through a waypoint ---------------------------------------------------------------------------


def test_a_connection_from_the_waypoint_skips_the_policies_the_waypoint_enforced():
    behind = workload(waypoint="wp")
    idx = index(
        policy("ALLOW", [{**src(namespaces=["web"]), **to(methods=["GET"])}], name="http"),
        policy("DENY", [to(paths=["/admin"])], name="no-admin"),
    )
    via = mtls(WAYPOINT, via_waypoint=True)
    assert authorize(via, behind, idx).code is Code.ALLOWED_NO_POLICY
    bypass = authorize(mtls(WEB), behind, idx)  # straight to the pod: the agent enforces both
    assert bypass.code is Code.DENIED_BY_DENY
    only_allow = index(policy("ALLOW", [{**src(namespaces=["web"]), **to(methods=["GET"])}]))
    bypass = authorize(mtls(WEB), behind, only_allow)
    assert bypass.code is Code.DENIED_L7_WITHOUT_WAYPOINT
    assert "waypoint 'wp'" in bypass.reason and "did not come through it" in bypass.reason
    # via_waypoint means nothing for a workload without a waypoint
    assert authorize(via, CART, only_allow).code is Code.DENIED_NO_ALLOW_MATCH


def test_l4_policies_see_the_waypoints_identity():
    behind = workload(waypoint="wp")
    for_client = index(policy("ALLOW", [src(namespaces=["web"])]))
    assert not authorize(mtls(WAYPOINT, via_waypoint=True), behind, for_client).allowed
    for_waypoint = index(policy("ALLOW", [src(principals=["cluster.local/ns/shop/sa/waypoint"])]))
    assert authorize(mtls(WAYPOINT, via_waypoint=True), behind, for_waypoint).allowed


# --- values that do not parse, trust domains ------------------------------------------------------


def test_unparseable_when_values_fail_closed_and_are_reported():
    allow = index(policy("ALLOW", [when("source.ip", ["198.18.0.300"])], name="bad"))
    assert not authorize(mtls(), CART, allow).allowed
    assert allow.problems == (
        "AuthorizationPolicy shop/bad rule 0: cannot parse source IP: '198.18.0.300'; "
        "the agent never matches the rule",
    )
    deny = index(policy("DENY", [{**to(ports=["8080"]), **when("destination.port", ["http"])}]))
    assert authorize(mtls(port=8080), CART, deny).code is Code.DENIED_BY_DENY
    assert authorize(mtls(port=9090), CART, deny).allowed
    assert "ignores these tests" in deny.problems[0]


@pytest.mark.parametrize(
    ("trust_domain", "identity", "allowed"),
    [
        ("example.org", "spiffe://example.org/ns/web/sa/frontend", True),  # cluster.local = ours
        ("example.org", "spiffe://foreign.org/ns/web/sa/frontend", False),
        ("example.org", WEB, True),  # the literal cluster.local still matches itself
        ("cluster.local", "spiffe://example.org/ns/web/sa/frontend", False),
    ],
)
def test_cluster_local_in_a_principal_means_the_mesh_trust_domain(trust_domain, identity, allowed):
    rule = src(principals=["cluster.local/ns/web/sa/frontend"])
    idx = index(policy("ALLOW", [rule]), trust_domain=trust_domain)
    assert authorize(mtls(identity), CART, idx).allowed is allowed


# --- PeerAuthentication ---------------------------------------------------------------------------

CART_ONLY = {"app": "cart"}
PEER_ROWS = [
    ("default", [], CART, 8080, "PERMISSIVE"),
    ("mesh", [peer("STRICT", ns=ROOT)], CART, 8080, "STRICT"),
    ("mesh-unset", [peer("UNSET", ns=ROOT)], CART, 8080, "PERMISSIVE"),
    (
        "namespace-over-mesh",
        [peer("STRICT", ns=ROOT), peer("PERMISSIVE")],
        CART,
        8080,
        "PERMISSIVE",
    ),
    ("namespace-unset-inherits", [peer("STRICT", ns=ROOT), peer()], CART, 8080, "STRICT"),
    ("namespace", [peer("STRICT")], CART, 8080, "STRICT"),
    ("other-namespace", [peer("STRICT", ns="web")], CART, 8080, "PERMISSIVE"),
    (
        "workload-over-namespace",
        [peer("STRICT"), peer("DISABLE", name="w", selector=CART_ONLY)],
        CART,
        8080,
        "DISABLE",
    ),
    (
        "workload-over-mesh",
        [peer("PERMISSIVE", ns=ROOT), peer("STRICT", name="w", selector=CART_ONLY)],
        CART,
        8080,
        "STRICT",
    ),
    (
        "workload-unset-inherits",
        [peer("STRICT"), peer("UNSET", name="w", selector=CART_ONLY)],
        CART,
        8080,
        "STRICT",
    ),
    (
        "workload-selector-miss",
        [peer("STRICT"), peer("DISABLE", name="w", selector={"app": "db"})],
        CART,
        8080,
        "STRICT",
    ),
    (
        "port-override",
        [peer("STRICT", selector=CART_ONLY, ports={8080: "PERMISSIVE"})],
        CART,
        8080,
        "PERMISSIVE",
    ),
    (
        "port-override-other-port",
        [peer("STRICT", selector=CART_ONLY, ports={8080: "PERMISSIVE"})],
        CART,
        9090,
        "STRICT",
    ),
    (
        "port-strict-in-permissive",
        [peer("PERMISSIVE", ns=ROOT), peer(selector=CART_ONLY, ports={8080: "STRICT"})],
        CART,
        8080,
        "STRICT",
    ),
    (
        "port-strict-other-port",
        [peer("PERMISSIVE", ns=ROOT), peer(selector=CART_ONLY, ports={8080: "STRICT"})],
        CART,
        9090,
        "PERMISSIVE",
    ),
    (
        "port-unset-inherits",
        [peer("STRICT", ns=ROOT), peer("DISABLE", selector=CART_ONLY, ports={8080: "UNSET"})],
        CART,
        8080,
        "DISABLE",
    ),
    (
        "root-selector-ignored",
        [peer("STRICT", ns=ROOT, selector=CART_ONLY)],
        CART,
        8080,
        "PERMISSIVE",
    ),
    (
        "root-workload",
        [peer("STRICT", ns=ROOT), peer("DISABLE", name="w", ns=ROOT, selector=CART_ONLY)],
        workload(ROOT),
        8080,
        "STRICT",
    ),
    (
        "first-by-name-wins",
        [peer("STRICT", name="a"), peer("PERMISSIVE", name="b")],
        CART,
        8080,
        "STRICT",
    ),
]


@pytest.mark.parametrize(
    ("peer_authns", "destination", "port", "mode"),
    [row[1:] for row in PEER_ROWS],
    ids=[row[0] for row in PEER_ROWS],
)
def test_peer_authentication_precedence(peer_authns, destination, port, mode):
    assert peer_authentication_mode(destination, index(*peer_authns), port) == mode


@pytest.mark.parametrize(
    ("peer_authns", "conn", "code", "source"),
    [
        ([], plain(), Code.ALLOWED_PLAINTEXT_PERMISSIVE, None),
        (
            [peer("PERMISSIVE", name="perm")],
            plain(),
            Code.ALLOWED_PLAINTEXT_PERMISSIVE,
            "shop/perm",
        ),
        ([peer("DISABLE")], plain(), Code.ALLOWED_PLAINTEXT_PERMISSIVE, "shop/pa"),
        ([peer("STRICT", name="strict")], plain(), Code.DENIED_PLAINTEXT_STRICT, "shop/strict"),
        ([peer("STRICT", ns=ROOT)], plain(), Code.DENIED_PLAINTEXT_STRICT, f"{ROOT}/pa"),
        ([peer("STRICT")], mtls(), Code.ALLOWED_MTLS, None),
        (
            [peer("STRICT")],
            Connection(None, SRC, DST, 8080, tls=True),
            Code.DENIED_PLAINTEXT_STRICT,
            "shop/pa",
        ),
        (
            [peer("STRICT", selector=CART_ONLY, ports={9090: "PERMISSIVE"})],
            plain(9090),
            Code.ALLOWED_PLAINTEXT_PERMISSIVE,
            "shop/pa",
        ),
        (
            [peer("STRICT", selector=CART_ONLY, ports={9090: "PERMISSIVE"})],
            plain(8080),
            Code.DENIED_PLAINTEXT_STRICT,
            "shop/pa",
        ),
    ],
    ids=[
        "default",
        "permissive",
        "disable",
        "strict",
        "mesh-strict",
        "strict-mtls",
        "strict-tls-without-identity",
        "port-exception",
        "port-exception-other-port",
    ],
)
def test_admit_plaintext(peer_authns, conn, code, source):
    decision = admit_plaintext(conn, CART, index(*peer_authns))
    assert (decision.code, decision.policy) == (code, source)
    assert decision.allowed is (code is not Code.DENIED_PLAINTEXT_STRICT)


def test_a_strict_refusal_names_the_policy_and_the_fix():
    decision = admit_plaintext(plain(9090), CART, index(peer("STRICT", name="lockdown")))
    assert decision.reason == (
        "denied: plaintext from 198.18.0.5 to shop/cart-1 port 9090, but PeerAuthentication "
        "shop/lockdown sets mTLS mode STRICT namespace-wide; enroll the client in the mesh, or "
        "set mode PERMISSIVE for this port"
    )


def test_decide_applies_peer_authentication_before_authorization():
    idx = index(
        peer("STRICT"),
        policy("ALLOW", [{}], name="allow-all"),
        policy("DENY", [src(namespaces=["other"])], name="deny-other"),
    )
    assert decide(plain(), CART, idx).code is Code.DENIED_PLAINTEXT_STRICT
    assert decide(mtls(WEB), CART, idx).code is Code.ALLOWED_BY_POLICY
    assert decide(mtls(OTHER), CART, idx).code is Code.DENIED_BY_DENY
    assert decide(plain(), CART, index(policy("ALLOW", [{}]))).code is Code.ALLOWED_BY_POLICY


# --- properties -----------------------------------------------------------------------------------

_NAMESPACES = [ROOT, "shop", "web"]
_text = st.sampled_from
_sources = st.builds(
    Source,
    principals=st.lists(
        _text(["cluster.local/ns/web/sa/frontend", "*", "*/sa/backend"]), max_size=2
    ).map(tuple),
    not_principals=st.lists(_text(["cluster.local/ns/web/*", "*"]), max_size=1).map(tuple),
    namespaces=st.lists(_text(["web", "other", "w*", "*"]), max_size=2).map(tuple),
    not_namespaces=st.lists(_text(["web", "other"]), max_size=1).map(tuple),
    ip_blocks=st.lists(_text(["198.18.0.0/24", "10.0.0.0/8", "198.18.7.9"]), max_size=2).map(tuple),
    not_ip_blocks=st.lists(_text(["198.18.0.5", "10.0.0.0/8"]), max_size=1).map(tuple),
    request_principals=st.lists(_text(["iss/sub"]), max_size=1).map(tuple),
)
_operations = st.builds(
    Operation,
    ports=st.lists(_text(["80", "8080", "9090"]), max_size=2).map(tuple),
    not_ports=st.lists(_text(["8080"]), max_size=1).map(tuple),
    methods=st.lists(_text(["GET"]), max_size=1).map(tuple),
)
_conditions = st.builds(
    Condition,
    key=_text(["source.ip", "source.namespace", "destination.port", "request.headers[x]"]),
    values=st.lists(_text(["web", "8080", "198.18.0.0/16", "nope"]), min_size=1, max_size=2).map(
        tuple
    ),
)
_rules = st.builds(
    Rule,
    sources=st.lists(_sources, max_size=2).map(tuple),
    operations=st.lists(_operations, max_size=2).map(tuple),
    conditions=st.lists(_conditions, max_size=1).map(tuple),
)
_policy_parts = st.tuples(
    _text(["ALLOW", "DENY", "AUDIT"]),
    _text(_NAMESPACES),
    _text([None, (("app", "cart"),), (("app", "db"),)]),
    st.lists(_rules, max_size=3).map(tuple),
)
_connections = st.builds(
    lambda identity, source_ip, port, via: Connection(
        identity, source_ip, DST, port, via_waypoint=via, tls=identity is not None
    ),
    _text([WEB, OTHER, WAYPOINT, None]),
    _text(["198.18.0.5", "198.18.7.9", "10.1.2.3"]),
    _text([80, 8080, 9090]),
    st.booleans(),
)


def _model(parts, name: str) -> AuthorizationPolicy:
    action, namespace, selector, rules = parts
    return AuthorizationPolicy(
        name, namespace, selector, (), action, rules, namespace == ROOT, rules_need_l7(rules)
    )


def _policies(all_parts) -> list[AuthorizationPolicy]:
    return [_model(parts, f"p{i}") for i, parts in enumerate(all_parts)]


def _matching_deny(conn: Connection, how: int) -> AuthorizationPolicy:
    rules = [
        Rule(),
        Rule(operations=(Operation(ports=(str(conn.destination_port),)),)),
        Rule(sources=(Source(ip_blocks=(conn.source_ip,)),)),
        Rule(conditions=(Condition("destination.ip", (DST,)),)),
        Rule(sources=(Source(not_namespaces=("nobody",)),)),
    ]
    rule = rules[how]
    return AuthorizationPolicy("zz-deny", "shop", None, (), "DENY", (rule,), False, False)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_policy_parts, max_size=6),
    _connections,
    st.booleans(),
    st.integers(0, 4),
)
def test_a_matching_deny_always_wins(all_parts, conn, has_waypoint, how):
    destination = workload(waypoint="wp" if has_waypoint else "")
    idx = PolicyIndex.build([*_policies(all_parts), _matching_deny(conn, how)])
    decision = authorize(conn, destination, idx)
    assert (decision.allowed, decision.action, decision.code) == (
        False,
        "DENY",
        Code.DENIED_BY_DENY,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_policy_parts, max_size=6),
    _connections,
    st.booleans(),
    st.sampled_from(
        [
            (),  # no rules: matches nothing
            (Rule(operations=(Operation(ports=("1",)),)),),
            (Rule(sources=(Source(principals=("cluster.local/ns/nobody/sa/none",)),)),),
            (Rule(sources=(Source(ip_blocks=("203.0.113.0/24",)),)),),
        ]
    ),
    st.randoms(use_true_random=False),
)
def test_an_allow_that_matches_nothing_never_turns_a_deny_into_an_allow(
    all_parts, conn, has_waypoint, rules, random
):
    destination = workload(waypoint="wp" if has_waypoint else "")
    policies = _policies(all_parts)
    before = authorize(conn, destination, PolicyIndex.build(policies))
    extra = AuthorizationPolicy("zz-allow", "shop", None, (), "ALLOW", rules, False, False)
    shuffled = [*policies, extra]
    random.shuffle(shuffled)
    after = authorize(conn, destination, PolicyIndex.build(shuffled))
    if not before.allowed:
        assert not after.allowed
    # whatever the order the agent received the policies in, the verdict is the same
    assert after == authorize(conn, destination, PolicyIndex.build([*policies, extra]))
