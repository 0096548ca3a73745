"""L4 authorization at the node agent: Istio's AuthorizationPolicy and PeerAuthentication. Pure.

The agent calls this for every inbound connection, after the TLS handshake (or on plaintext), with
the destination `Workload` and a `PolicyIndex` built once per config push:

    index = PolicyIndex.build(policies, trust_domain=..., root_namespace=...)   # per push
    decision = decide(conn, workload, index)          # = admit_plaintext, then authorize

The engine (compiled rules, facts, the index, DENY-before-ALLOW evaluation, decision types) is
shared with the waypoint and lives in `nodemesh.authz`; this module is the agent's view of it:
a `Connection` becomes facts with no HTTP part, which is what makes the engine conservative.
Every `Decision` carries a `DecisionCode` (a metric label), the policy and rule responsible, and
a reason an operator can act on; denials are never silent (DESIGN.md, Security notes).

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
- Values that do not parse (only `when` values can reach here unvalidated), and `when` keys
  nodemesh does not know, fail closed: an ALLOW rule holding one never matches; a DENY rule
  ignores that test. Both are listed in `PolicyIndex.problems`.
- Via a waypoint. A connection the destination's waypoint forwards (`via_waypoint`, the workload
  has a waypoint) skips the policies deferred to that waypoint: those with no selector that need
  HTTP attributes, which the waypoint enforced against the real client (`nodemesh.authz.index`).
  A policy with a label selector stays with the agent even then (a waypoint sees Services, not
  pod labels), enforced as above; attach it with targetRefs to have the waypoint enforce it.
  Pure-L4 policies are still evaluated, and their source is the waypoint's identity, as in Istio
  ambient: write such policies for the waypoint's service account, or attach them to the waypoint
  with targetRefs.
- Trust domain. A principal written with Istio's default trust domain ("cluster.local/ns/...")
  also matches the mesh's own trust domain, as Istio's trust-domain handling does for sidecars.

PeerAuthentication (`nodemesh.authz.peer_authn`): workload-selector policy > namespace policy >
root-namespace (mesh) policy > PERMISSIVE, UNSET inheriting, `portLevelMtls` overriding per port.
DISABLE admits plaintext like PERMISSIVE (the agent never originates plaintext to an enrolled pod,
so there is nothing else for it to switch off).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from controller.model import Workload
from nodemesh.authz import (
    CompiledPolicy,
    Decision,
    DecisionCode,
    Facts,
    PolicyIndex,
    Subject,
    evaluate,
)

__all__ = [
    "Connection",
    "Decision",
    "DecisionCode",
    "PolicyIndex",
    "admit_plaintext",
    "authorize",
    "decide",
    "peer_authentication_mode",
]


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


def authorize(conn: Connection, workload: Workload, policies: PolicyIndex) -> Decision:
    """Istio's AuthorizationPolicy verdict for `conn` to `workload` (see the module docstring)."""
    via_waypoint = conn.via_waypoint and bool(workload.waypoint)
    facts = Facts.of(
        conn.source_identity if not conn.plaintext else None,
        conn.source_ip,
        conn.destination_ip,
        conn.destination_port,
    )
    subject = Subject(
        _name(workload),
        _who(conn),
        conn.destination_port,
        l7_hint=partial(_l7_hint, workload, via_waypoint),
    )
    return evaluate(policies.applicable(workload, via_waypoint), facts, subject)


def _l7_hint(workload: Workload, via_waypoint: bool, policy: CompiledPolicy) -> str:
    """What to do about an ALLOW rule whose HTTP attributes the agent cannot check."""
    if via_waypoint:
        return (
            f"its waypoint {workload.waypoint!r} does not enforce a policy that selects pods by "
            "label (it sees Services, not pods); attach the policy to the Service or to the "
            "waypoint with targetRefs instead of a selector"
        )
    if workload.waypoint:
        return (
            f"only its waypoint {workload.waypoint!r} can, and this connection did not come "
            "through it"
        )
    return (
        "add a waypoint (label the namespace or Service nodemesh.io/use-waypoint) to enforce it, "
        "or remove the HTTP attributes"
    )


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
