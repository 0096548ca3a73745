"""L4 authorization at the node agent: Istio's AuthorizationPolicy and PeerAuthentication. Pure.

The agent calls this for every inbound connection, after the TLS handshake (or on plaintext), with
the destination `Workload` and a `PolicyIndex` built once per config push:

    index = PolicyIndex.build(policies, trust_domain=..., root_namespace=...)   # per push
    decision = decide(conn, workload, index)          # = admit_plaintext, then authorize

Every `Decision` carries a `DecisionCode` (a metric label), the policy and rule responsible, and a
reason an operator can act on; denials are never silent (DESIGN.md, Security notes).

Semantics are Istio's (security.istio.io/v1), as ztunnel enforces them (istiod's ambient
`authorization.go` compiling rules, ztunnel's `rbac.rs` matching them):

- Scope. A policy applies to a workload if it lives in the root namespace (every namespace) or in
  the workload's namespace, and has no selector or one its labels match. Policies with targetRefs
  attach to waypoints and are ignored here.
- Order. DENY: any matching rule denies. ALLOW: if any ALLOW policy applies, one of its rules must
  match, else deny. No ALLOW policy: allow. CUSTOM cannot reach the agent (the validator refuses
  it). AUDIT never changes the decision; matching AUDIT policies are listed on it (ztunnel receives
  no AUDIT policies; reporting them is nodemesh's addition).
- Rules. A policy with no rules matches nothing (ALLOW with no rules denies all); an empty rule
  `{}` matches everything. Within a rule from/to/when are ANDed, sources (operations) ORed, fields
  of one source ANDed, values of one field ORed; `not*` values exclude.
- Plaintext has no principal and no namespace. As in ztunnel (`rbac.rs` tests `not_principals`,
  `not_namespaces`): `principals`/`namespaces` (even `*`) never match it, and `notPrincipals`/
  `notNamespaces` always do, since there is nothing to exclude. So `DENY notNamespaces: [shop]`
  denies plaintext, and `ALLOW notNamespaces: [bad]` allows it; require `principals: ["*"]` to
  allow only mTLS peers. (Istio's own docs recommend exactly this ALLOW-positive/DENY-negative use.)
- HTTP attributes (no waypoint in the path). In an ALLOW policy a rule using any of them never
  matches at the agent (istiod drops it: "rules matching HTTP attributes are omitted"), so the
  connection is denied unless another rule allows it, with DENIED_L7_WITHOUT_WAYPOINT if that rule
  would have matched on its L4 parts. In a DENY policy a rule is evaluated on its L4 parts alone,
  the HTTP parts counting as matched: the agent errs on the side of denying. Here nodemesh
  deliberately differs from ztunnel in one case: when a whole source, operation or condition is
  HTTP-only (`DENY from notRequestPrincipals: ["*"]`), istiod sends ztunnel an empty match, which
  ztunnel skips, so the DENY silently does nothing (istio/istio#61126). A security policy that
  quietly allows is the worse failure, and DESIGN.md promises the agent denies what it cannot
  check; so nodemesh treats the empty part as matched and the DENY denies. AUDIT rules with HTTP
  attributes are not reported by the agent (it cannot know they matched).
- Values that do not parse (only `when` values can reach here unvalidated) are handled like HTTP
  attributes: an ALLOW rule holding one never matches; a DENY rule ignores that test.
- Via a waypoint. A connection the destination's waypoint forwards (`via_waypoint`, the workload
  has a waypoint) skips every policy that needs HTTP attributes: the controller sent those to the
  waypoint, which enforced them against the real client. Pure-L4 policies are still evaluated, and
  their source is the waypoint's identity, as in Istio ambient: write such policies for the
  waypoint's service account, or attach them to the waypoint with targetRefs.
- Trust domain. A principal written with Istio's default trust domain ("cluster.local/ns/...")
  also matches the mesh's own trust domain, as Istio's trust-domain handling does for sidecars.

PeerAuthentication: workload-selector policy > namespace policy > root-namespace (mesh) policy >
PERMISSIVE; UNSET inherits from the next level; `portLevelMtls` of the selector policy overrides
per destination port (UNSET there inherits too). A selector policy in the root namespace is
ignored, as istiod does. Istio breaks ties between two policies of one level by creation time; the
model carries none, so the first by name wins. DISABLE admits plaintext like PERMISSIVE (the agent
never originates plaintext to an enrolled pod, so there is nothing else for it to switch off).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum, auto
from typing import Literal

from controller.model import (
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    AuthorizationPolicy,
    Labels,
    PeerAuthentication,
    Workload,
    rule_needs_l7,
    selector_matches,
)
from node_agent.policy_rules import CompiledRule, Facts, compile_rule

_MEMO_LIMIT = 4096  # distinct (namespace, labels) pairs remembered; a node has far fewer


class DecisionCode(StrEnum):
    """Why a connection was allowed or denied; stable values for metric labels and logs."""

    ALLOWED_NO_POLICY = auto()  # no DENY matched and no ALLOW policy applies
    ALLOWED_BY_POLICY = auto()  # an ALLOW rule matched
    ALLOWED_MTLS = auto()  # admit_plaintext: the peer is a verified mTLS identity
    ALLOWED_PLAINTEXT_PERMISSIVE = auto()  # admit_plaintext: PERMISSIVE (or DISABLE) for the port
    DENIED_BY_DENY = auto()  # a DENY rule matched
    DENIED_NO_ALLOW_MATCH = auto()  # ALLOW policies apply and none matched
    DENIED_L7_WITHOUT_WAYPOINT = auto()  # only an ALLOW rule with HTTP attributes could allow it
    DENIED_PLAINTEXT_STRICT = auto()  # plaintext to a port under STRICT mTLS


@dataclass(frozen=True, slots=True)
class Connection:
    """An inbound connection as the agent sees it once the peer (if any) is verified."""

    source_identity: str | None  # verified peer SPIFFE ID; None for plaintext
    source_ip: str  # source address (the waypoint's when via_waypoint)
    destination_ip: str  # the destination pod address
    destination_port: int  # the destination pod port
    via_waypoint: bool = False  # arrived from the destination's waypoint (identity verified)
    tls: bool = False  # arrived over the mesh's mutual TLS

    @property
    def plaintext(self) -> bool:
        """No verified identity: STRICT refuses it and identity constraints cannot match it."""
        return not (self.tls and self.source_identity)


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one connection, with what an operator needs to understand it."""

    allowed: bool
    action: Literal["ALLOW", "DENY"]  # what the agent does with the connection
    code: DecisionCode
    reason: str  # "denied by DENY policy shop/deny-admin rule 0: port 8080 matched"
    policy: str | None = None  # "namespace/name" of the deciding policy, if one decided
    rule: int | None = None  # index of the deciding rule in that policy
    audit: tuple[str, ...] = ()  # AUDIT policies ("namespace/name") that matched


@dataclass(frozen=True, slots=True)
class _Policy:
    key: str  # "namespace/name"
    action: str  # ALLOW, DENY or AUDIT
    selector: Labels | None
    needs_l7: bool  # enforced by the waypoint for connections that come through it
    rules: tuple[CompiledRule, ...]


@dataclass(frozen=True, slots=True)
class _Applicable:
    """The policies that apply to one (namespace, labels, via waypoint), split by action."""

    deny: tuple[_Policy, ...]
    allow: tuple[_Policy, ...]
    audit: tuple[_Policy, ...]


@dataclass(frozen=True, eq=False)
class PolicyIndex:
    """The policies an agent holds, compiled and indexed once per push; evaluation only reads it.

    Policies are stored by namespace; what applies to a workload is computed once per
    (namespace, labels) and remembered, so a connection costs dict lookups and rule matching.
    """

    trust_domain: str
    root_namespace: str
    problems: tuple[str, ...]  # values that did not compile, to log once per push
    _root: tuple[_Policy, ...]  # AuthorizationPolicies of the root namespace (mesh scope)
    _by_namespace: Mapping[str, tuple[_Policy, ...]]  # the others, by namespace
    _peer_mesh: PeerAuthentication | None  # root namespace, no selector
    _peer_namespace: Mapping[str, PeerAuthentication]  # namespace -> its no-selector policy
    _peer_selected: Mapping[str, tuple[PeerAuthentication, ...]]  # namespace -> selector policies
    _memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        policies: Iterable[AuthorizationPolicy | PeerAuthentication],
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        root_namespace: str = DEFAULT_ROOT_NAMESPACE,
    ) -> PolicyIndex:
        """Compile `policies` (both kinds, any order). A policy is mesh-scoped if it lives in
        `root_namespace` or the controller marked it `is_root` (its own root namespace setting)."""
        authz: list[AuthorizationPolicy] = []
        peer: list[PeerAuthentication] = []
        for policy in policies:
            (authz if isinstance(policy, AuthorizationPolicy) else peer).append(policy)
        is_root = lambda p: p.is_root or p.namespace == root_namespace  # noqa: E731
        problems: list[str] = []
        root: list[_Policy] = []
        by_namespace: dict[str, list[_Policy]] = {}
        for policy in sorted(authz, key=lambda p: (p.namespace, p.name)):
            if policy.target_refs:
                continue  # attached to a waypoint or Service: the waypoint enforces it
            compiled = _compile(policy, trust_domain, problems)
            (root if is_root(policy) else by_namespace.setdefault(policy.namespace, [])).append(
                compiled
            )
        mesh, namespaced, selected = None, {}, {}
        for pa in sorted(peer, key=lambda p: (p.namespace, p.name)):
            if pa.selector is None and is_root(pa):
                mesh = mesh or pa
            elif pa.selector is None:
                namespaced.setdefault(pa.namespace, pa)
            elif not is_root(pa):
                selected.setdefault(pa.namespace, []).append(pa)
        return cls(
            trust_domain=trust_domain,
            root_namespace=root_namespace,
            problems=tuple(problems),
            _root=tuple(root),
            _by_namespace={ns: tuple(ps) for ns, ps in by_namespace.items()},
            _peer_mesh=mesh,
            _peer_namespace=namespaced,
            _peer_selected={ns: tuple(ps) for ns, ps in selected.items()},
        )

    def applicable(self, workload: Workload, via_waypoint: bool = False) -> _Applicable:
        """The policies that apply to `workload` (memoized: called per connection)."""
        key = (workload.namespace, workload.labels, via_waypoint)
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = self._select(workload, via_waypoint)
        return found

    def _select(self, workload: Workload, via_waypoint: bool) -> _Applicable:
        candidates = self._root + self._by_namespace.get(workload.namespace, ())
        chosen = [
            p
            for p in candidates
            if selector_matches(p.selector, workload.labels) and not (via_waypoint and p.needs_l7)
        ]
        split = {action: tuple(p for p in chosen if p.action == action) for action in _ACTIONS}
        return _Applicable(split["DENY"], split["ALLOW"], split["AUDIT"])

    def peer_mode(self, workload: Workload, port: int) -> tuple[str, str | None, str]:
        """(mode, deciding PeerAuthentication or None, where it set it) for one workload port."""
        mode, source, scope = "PERMISSIVE", None, "default"
        for level, pa in (
            ("mesh-wide", self._peer_mesh),
            ("namespace-wide", self._peer_namespace.get(workload.namespace)),
        ):
            if pa is not None and pa.mode != "UNSET":
                mode, source, scope = pa.mode, pa.key, level
        selected = self._selected_peer_authentication(workload)
        if selected is not None:
            if selected.mode != "UNSET":
                mode, source, scope = selected.mode, selected.key, "for the workload"
            port_mode = dict(selected.port_level).get(port, "UNSET")
            if port_mode != "UNSET":
                mode, source, scope = port_mode, selected.key, f"for port {port}"
        return mode, source, scope

    def _selected_peer_authentication(self, workload: Workload) -> PeerAuthentication | None:
        if workload.namespace == self.root_namespace:
            return None  # istiod ignores selector policies in the root namespace
        for pa in self._peer_selected.get(workload.namespace, ()):
            if selector_matches(pa.selector, workload.labels):
                return pa
        return None


_ACTIONS = ("DENY", "ALLOW", "AUDIT")


def _compile(policy: AuthorizationPolicy, trust_domain: str, problems: list[str]) -> _Policy:
    rules = tuple(compile_rule(rule, i, trust_domain) for i, rule in enumerate(policy.rules))
    for rule in rules:
        if rule.invalid:
            problems.append(
                f"AuthorizationPolicy {policy.key} rule {rule.index}: cannot parse "
                f"{', '.join(rule.invalid)}; the agent "
                + ("ignores these tests" if policy.action == "DENY" else "never matches the rule")
            )
    needs_l7 = any(rule_needs_l7(rule) for rule in policy.rules)
    return _Policy(policy.key, policy.action, policy.selector, needs_l7, rules)


# --- decisions ------------------------------------------------------------------------------------


def authorize(conn: Connection, workload: Workload, policies: PolicyIndex) -> Decision:
    """Istio's AuthorizationPolicy verdict for `conn` to `workload` (see the module docstring)."""
    via_waypoint = conn.via_waypoint and bool(workload.waypoint)
    applicable = policies.applicable(workload, via_waypoint)
    facts = Facts.of(
        conn.source_identity if not conn.plaintext else None,
        conn.source_ip,
        conn.destination_ip,
        conn.destination_port,
    )
    audit = tuple(
        p.key for p in applicable.audit if any(r.complete and r.matches(facts) for r in p.rules)
    )
    for policy in applicable.deny:
        for rule in policy.rules:
            if rule.matches(facts):
                reason = _denied_by(rule, policy, facts)
                return _deny(DecisionCode.DENIED_BY_DENY, policy, rule, audit, reason)
    if not applicable.allow:
        reason = f"allowed: no DENY policy matched and no ALLOW policy applies to {_name(workload)}"
        return Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, reason, audit=audit)
    for policy in applicable.allow:
        for rule in policy.rules:
            if rule.complete and rule.matches(facts):
                reason = f"allowed by ALLOW policy {policy.key} rule {rule.index}: "
                reason += rule.explain(facts)
                code = DecisionCode.ALLOWED_BY_POLICY
                return Decision(True, "ALLOW", code, reason, policy.key, rule.index, audit)
    return _no_allow_match(applicable.allow, workload, conn, facts, audit)


def _denied_by(rule: CompiledRule, policy: _Policy, facts: Facts) -> str:
    reason = f"denied by DENY policy {policy.key} rule {rule.index}: {rule.explain(facts)}"
    if rule.l7:
        reason += (
            f"; its HTTP attributes ({', '.join(rule.l7)}) cannot be checked by the node agent "
            "and count as matched, so the DENY errs on the side of denying"
        )
    if rule.invalid:
        reason += f"; unparseable values ignored ({', '.join(rule.invalid)})"
    return reason


def _no_allow_match(
    allow: tuple[_Policy, ...],
    workload: Workload,
    conn: Connection,
    facts: Facts,
    audit: tuple[str, ...],
) -> Decision:
    for policy in allow:
        for rule in policy.rules:
            if rule.l7 and not rule.invalid and rule.matches(facts):
                where = (
                    f"only its waypoint {workload.waypoint!r} can, and this connection did not "
                    "come through it"
                    if workload.waypoint
                    else "add a waypoint (label the namespace or Service "
                    "nodemesh.io/use-waypoint) to enforce it, or remove the HTTP attributes"
                )
                reason = (
                    f"denied: ALLOW policy {policy.key} rule {rule.index} matches {_who(conn)} on "
                    f"L4 but also needs HTTP attributes ({', '.join(rule.l7)}) that the node "
                    f"agent cannot check; {where}"
                )
                return _deny(DecisionCode.DENIED_L7_WITHOUT_WAYPOINT, policy, rule, audit, reason)
    keys = ", ".join(p.key for p in allow)
    reason = (
        f"denied: ALLOW policies apply to {_name(workload)} ({keys}) and none matched "
        f"{_who(conn)} to port {conn.destination_port}"
    )
    return Decision(False, "DENY", DecisionCode.DENIED_NO_ALLOW_MATCH, reason, audit=audit)


def _deny(
    code: DecisionCode, policy: _Policy, rule: CompiledRule, audit: tuple[str, ...], reason: str
) -> Decision:
    return Decision(False, "DENY", code, reason, policy.key, rule.index, audit)


def peer_authentication_mode(workload: Workload, policies: PolicyIndex, port: int) -> str:
    """The effective mTLS mode (STRICT, PERMISSIVE or DISABLE) of `workload`'s `port`."""
    return policies.peer_mode(workload, port)[0]


def admit_plaintext(conn: Connection, workload: Workload, policies: PolicyIndex) -> Decision:
    """PeerAuthentication's verdict: STRICT refuses a connection with no verified identity."""
    if not conn.plaintext:
        reason = f"mutual TLS peer {conn.source_identity}"
        return Decision(True, "ALLOW", DecisionCode.ALLOWED_MTLS, reason)
    mode, source, scope = policies.peer_mode(workload, conn.destination_port)
    if mode != "STRICT":
        reason = f"plaintext admitted: mTLS mode {mode} ({_mode_origin(source, scope)})"
        return Decision(True, "ALLOW", DecisionCode.ALLOWED_PLAINTEXT_PERMISSIVE, reason, source)
    reason = (
        f"denied: plaintext from {conn.source_ip} to {_name(workload)} port "
        f"{conn.destination_port}, but PeerAuthentication {source} sets mTLS mode STRICT "
        f"{scope}; enroll the client in the mesh, or set mode PERMISSIVE for this port"
    )
    return Decision(False, "DENY", DecisionCode.DENIED_PLAINTEXT_STRICT, reason, source)


def decide(conn: Connection, workload: Workload, policies: PolicyIndex) -> Decision:
    """The inbound verdict: PeerAuthentication first (as ztunnel's STRICT policy), then authz."""
    admitted = admit_plaintext(conn, workload, policies)
    return authorize(conn, workload, policies) if admitted.allowed else admitted


def _mode_origin(source: str | None, scope: str) -> str:
    return (
        "no PeerAuthentication applies"
        if source is None
        else f"PeerAuthentication {source} {scope}"
    )


def _name(workload: Workload) -> str:
    return f"{workload.namespace}/{workload.name}"


def _who(conn: Connection) -> str:
    identity = conn.source_identity if not conn.plaintext else "plaintext"
    return f"{identity} ({conn.source_ip})"
