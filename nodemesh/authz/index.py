"""The policies an enforcer holds, compiled and indexed by where they apply. Pure.

Built once per config push (`PolicyIndex.build`), then only read: the agent asks what applies to
a workload (`applicable`), a waypoint what applies to a Service behind it (`at_waypoint`). The
answer is memoized per key, so a connection or request costs a dict lookup plus rule matching.

Scope follows Istio ambient. A policy attaches one of two ways:

- Selector scope (no targetRefs): it applies to workloads, and node agents enforce it. A policy
  in the root namespace reaches every namespace, any other only its own; no selector picks every
  workload there, a selector those whose labels it matches.
- targetRefs: a `Gateway` (group gateway.networking.k8s.io) named like a waypoint covers every
  request through that waypoint; a `Service` (group "" or "core") covers requests to that Service
  through its waypoint. Waypoints enforce these; agents never do. A ref must name an object in
  the policy's own namespace (a root-namespace policy may name any): an unusable ref is reported
  in `problems` and attaches to nothing.

One bridge joins the two, and it is nodemesh's, not Istio's: a selector-scope policy with *no*
selector that needs HTTP attributes is deferred to the waypoint. The agent skips it for
connections its destination's waypoint forwarded, and the waypoint enforces it on every Service
of the policy's namespace (all of them for the root namespace), against the real client. Istio
ambient leaves such a policy to ztunnel, where an ALLOW with HTTP rules denies all waypoint
traffic; the controller already sends these to waypoints (`controller.scope.for_waypoint`).
A policy *with* a label selector cannot be deferred, since a waypoint sees Services, not pod
labels: the agent enforces it conservatively even behind a waypoint, and its denial says to
attach the policy with targetRefs instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from controller.model import (
    DEFAULT_ROOT_NAMESPACE,
    DEFAULT_TRUST_DOMAIN,
    AuthorizationPolicy,
    PeerAuthentication,
    TargetRef,
    Workload,
    selector_matches,
)
from nodemesh.authz.compile import CompiledPolicy, compile_policy
from nodemesh.authz.peer_authn import PeerAuthnIndex, PeerMode

GATEWAY_GROUP = "gateway.networking.k8s.io"
_MEMO_LIMIT = 4096  # distinct keys remembered; an enforcer sees far fewer
_ACTIONS = ("DENY", "ALLOW", "AUDIT")

AttachKey = tuple[str, str, str]  # ("Service" | "Gateway", namespace, name)


@dataclass(frozen=True, slots=True)
class Applicable:
    """The policies that apply to one destination, split by action, in the index's order."""

    deny: tuple[CompiledPolicy, ...]
    allow: tuple[CompiledPolicy, ...]
    audit: tuple[CompiledPolicy, ...]

    @property
    def empty(self) -> bool:
        """No policy applies: the verdict is allow, whatever the facts (see evaluate)."""
        return not (self.deny or self.allow or self.audit)

    @classmethod
    def of(cls, policies: Iterable[CompiledPolicy]) -> Applicable:
        unique: dict[str, CompiledPolicy] = {}
        for policy in policies:
            unique.setdefault(policy.key, policy)  # attached twice (Gateway and Service): once
        chosen = unique.values()
        split = {action: tuple(p for p in chosen if p.action == action) for action in _ACTIONS}
        return cls(split["DENY"], split["ALLOW"], split["AUDIT"])


@dataclass(frozen=True, eq=False)
class PolicyIndex:
    """Every AuthorizationPolicy and PeerAuthentication of one push, compiled and indexed."""

    trust_domain: str
    root_namespace: str
    problems: tuple[str, ...]  # what did not compile or attach, to log once per push
    _root: tuple[CompiledPolicy, ...]  # selector scope, root namespace (every namespace)
    _by_namespace: Mapping[str, tuple[CompiledPolicy, ...]]  # selector scope, the others
    _attached: Mapping[AttachKey, tuple[CompiledPolicy, ...]]  # targetRefs scope
    _peer: PeerAuthnIndex
    _memo: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        policies: Iterable[AuthorizationPolicy | PeerAuthentication],
        *,
        trust_domain: str = DEFAULT_TRUST_DOMAIN,
        root_namespace: str = DEFAULT_ROOT_NAMESPACE,
        enforcer: str = "the agent",
    ) -> PolicyIndex:
        """Compile `policies` (both kinds, any order). A policy is mesh-scoped if it lives in
        `root_namespace` or the controller marked it `is_root` (its own root namespace setting).
        `enforcer` names who reads the index in `problems` ("the agent", "the waypoint")."""
        authz: list[AuthorizationPolicy] = []
        peer: list[PeerAuthentication] = []
        for policy in policies:
            (authz if isinstance(policy, AuthorizationPolicy) else peer).append(policy)
        is_root = lambda p: p.is_root or p.namespace == root_namespace  # noqa: E731
        problems: list[str] = []
        root: list[CompiledPolicy] = []
        by_namespace: dict[str, list[CompiledPolicy]] = {}
        attached: dict[AttachKey, list[CompiledPolicy]] = {}
        for policy in sorted(authz, key=lambda p: (p.namespace, p.name)):
            compiled = compile_policy(policy, trust_domain, problems, enforcer)
            if policy.target_refs:
                for key in _attach_keys(policy, is_root(policy), problems):
                    attached.setdefault(key, []).append(compiled)
            elif is_root(policy):
                root.append(compiled)
            else:
                by_namespace.setdefault(policy.namespace, []).append(compiled)
        return cls(
            trust_domain=trust_domain,
            root_namespace=root_namespace,
            problems=tuple(problems),
            _root=tuple(root),
            _by_namespace={ns: tuple(ps) for ns, ps in by_namespace.items()},
            _attached={key: tuple(ps) for key, ps in attached.items()},
            _peer=PeerAuthnIndex.build(peer, root_namespace, is_root),
        )

    def applicable(self, workload: Workload, via_waypoint: bool = False) -> Applicable:
        """The selector-scope policies the agent enforces on a connection to `workload`;
        `via_waypoint`: the connection came through the workload's waypoint (identity checked),
        so the policies deferred to that waypoint are left out."""
        key = ("workload", workload.namespace, workload.labels, via_waypoint)
        return self._remember(key, lambda: self._for_workload(workload, via_waypoint))

    def at_waypoint(self, namespace: str, service: str, waypoint: str) -> Applicable:
        """The policies waypoint `waypoint` enforces on requests to Service `namespace/service`
        (nodemesh waypoints serve Services of their own namespace)."""
        key = ("waypoint", namespace, service, waypoint)
        return self._remember(key, lambda: self._for_waypoint(namespace, service, waypoint))

    def peer_mode(self, workload: Workload, port: int) -> PeerMode:
        """(mode, deciding PeerAuthentication or None, where it set it) for one workload port."""
        return self._peer.mode(workload, port)

    def _remember(self, key: tuple, select: Callable[[], Applicable]) -> Applicable:
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            found = self._memo[key] = select()
        return found

    def _for_workload(self, workload: Workload, via_waypoint: bool) -> Applicable:
        candidates = self._root + self._by_namespace.get(workload.namespace, ())
        return Applicable.of(
            p
            for p in candidates
            if selector_matches(p.selector, workload.labels) and not (via_waypoint and _deferred(p))
        )

    def _for_waypoint(self, namespace: str, service: str, waypoint: str) -> Applicable:
        deferred = self._root + self._by_namespace.get(namespace, ())
        return Applicable.of(
            [
                *self._attached.get(("Gateway", namespace, waypoint), ()),
                *self._attached.get(("Service", namespace, service), ()),
                *(p for p in deferred if _deferred(p)),
            ]
        )


def _deferred(policy: CompiledPolicy) -> bool:
    """Selector scope, no selector, HTTP attributes: the waypoint enforces it (module docstring)."""
    return policy.needs_l7 and policy.selector is None and not policy.target_refs


def _attach_keys(policy: AuthorizationPolicy, root: bool, problems: list[str]) -> list[AttachKey]:
    keys = []
    for ref in policy.target_refs:
        trouble = _ref_trouble(ref, policy.namespace, root)
        if trouble:
            problems.append(
                f"AuthorizationPolicy {policy.key}: targetRef {ref.kind} {ref.namespace}/"
                f"{ref.name} {trouble}; it attaches to nothing"
            )
        else:
            keys.append((ref.kind, ref.namespace, ref.name))
    return keys


def _ref_trouble(ref: TargetRef, namespace: str, root: bool) -> str:
    if ref.kind == "Gateway" and ref.group != GATEWAY_GROUP:
        return f"needs group {GATEWAY_GROUP} (a waypoint is a Gateway API Gateway)"
    if ref.kind == "Service" and ref.group not in ("", "core"):
        return 'needs group "" (the core API group of Services)'
    if ref.kind not in ("Gateway", "Service"):
        return "is not supported: attach to a Service or to a waypoint (kind Gateway)"
    if ref.namespace != namespace and not root:
        return f"is in another namespace than the policy ({namespace}); move the policy there"
    return ""
