"""DENY before ALLOW: the verdict on one connection or request. Pure.

Istio's order, the same at the agent and at the waypoint:

1. DENY: any matching DENY rule denies.
2. ALLOW: if any ALLOW policy applies, one of its rules must match, else deny.
3. No ALLOW policy applies: allow.

AUDIT never changes the verdict; the AUDIT policies that matched are listed on it. CUSTOM never
gets here (the manifest validator refuses it).

How much of a rule can be checked depends on the facts (`nodemesh.authz.rules`). With HTTP
facts (the waypoint) every attribute is evaluated. Without (the agent), a DENY rule is enforced
on its L4 parts, its HTTP parts counting as matched, while an ALLOW or AUDIT rule with HTTP
parts never matches; when such an ALLOW rule would have matched on L4, the denial says so
(DENIED_L7_WITHOUT_WAYPOINT) with the enforcer's hint on what to do. Values that do not parse
and unsupported condition keys fail closed everywhere in the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.authz.compile import CompiledPolicy
from nodemesh.authz.decision import Decision, DecisionCode
from nodemesh.authz.facts import Facts
from nodemesh.authz.index import Applicable
from nodemesh.authz.rules import CompiledRule


@dataclass(frozen=True, slots=True)
class Subject:
    """Who asks for what, in the words reasons use (the facts hold the values matched)."""

    destination: str  # "shop/cart-1" (a workload), "Service shop/cart" (behind a waypoint)
    caller: str  # "spiffe://cluster.local/ns/web/sa/frontend (198.18.0.5)"
    port: int  # destination port
    # The agent's advice when only an ALLOW rule with HTTP attributes could allow (see above).
    l7_hint: Callable[[CompiledPolicy], str] | None = None


def evaluate(applicable: Applicable, facts: Facts, subject: Subject) -> Decision:
    """The verdict of `applicable` on `facts` (see the module docstring)."""
    audit = tuple(p.key for p in applicable.audit if _allows(p, facts) is not None)
    for policy in applicable.deny:
        for rule in policy.rules:
            if rule.matches(facts):
                reason = _denied_by(rule, policy, facts)
                return _deny(DecisionCode.DENIED_BY_DENY, policy, rule, audit, reason)
    if not applicable.allow:
        if not audit:
            return allowed_without_policy(subject.destination)
        reason = _NO_POLICY_REASON + subject.destination
        return Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, reason, audit=audit)
    for policy in applicable.allow:
        rule = _allows(policy, facts)
        if rule is not None:
            reason = f"allowed by ALLOW policy {policy.key} rule {rule.index}: "
            reason += rule.explain(facts)
            code = DecisionCode.ALLOWED_BY_POLICY
            return Decision(True, "ALLOW", code, reason, policy.key, rule.index, audit)
    return _no_allow_match(applicable.allow, facts, subject, audit)


_NO_POLICY_REASON = "allowed: no DENY policy matched and no ALLOW policy applies to "


@functools.lru_cache(maxsize=1024)
def allowed_without_policy(destination: str) -> Decision:
    """The verdict when nothing denies and no ALLOW policy applies to `destination`.

    One shared (frozen) Decision per destination: a request to a Service no policy applies to
    is the common case at a waypoint, and callers that know `Applicable.empty` can skip building
    facts and evaluating altogether. The cache is bounded and holds only pure values.
    """
    reason = _NO_POLICY_REASON + destination
    return Decision(True, "ALLOW", DecisionCode.ALLOWED_NO_POLICY, reason)


def _allows(policy: CompiledPolicy, facts: Facts) -> CompiledRule | None:
    """The first rule of an ALLOW or AUDIT policy that surely matches, if any."""
    for rule in policy.rules:
        if rule.decidable(facts) and rule.matches(facts):
            return rule
    return None


def _denied_by(rule: CompiledRule, policy: CompiledPolicy, facts: Facts) -> str:
    reason = f"denied by DENY policy {policy.key} rule {rule.index}: {rule.explain(facts)}"
    if rule.l7 and facts.http is None:
        reason += (
            f"; its HTTP attributes ({', '.join(rule.l7)}) cannot be checked by the node agent "
            "and count as matched, so the DENY errs on the side of denying"
        )
    if rule.invalid:
        reason += f"; unparseable values ignored ({', '.join(rule.invalid)})"
    if rule.unsupported:
        reason += f"; unsupported conditions count as matched ({', '.join(rule.unsupported)})"
    return reason


def _no_allow_match(
    allow: tuple[CompiledPolicy, ...], facts: Facts, subject: Subject, audit: tuple[str, ...]
) -> Decision:
    if facts.http is None and subject.l7_hint is not None:
        for policy in allow:
            for rule in policy.rules:
                if rule.l7 and not (rule.invalid or rule.unsupported) and rule.matches(facts):
                    reason = (
                        f"denied: ALLOW policy {policy.key} rule {rule.index} matches "
                        f"{subject.caller} on L4 but also needs HTTP attributes "
                        f"({', '.join(rule.l7)}) that the node agent cannot check; "
                        + subject.l7_hint(policy)
                    )
                    code = DecisionCode.DENIED_L7_WITHOUT_WAYPOINT
                    return _deny(code, policy, rule, audit, reason)
    keys = ", ".join(p.key for p in allow)
    reason = (
        f"denied: ALLOW policies apply to {subject.destination} ({keys}) and none matched "
        f"{subject.caller} to port {subject.port}"
    )
    return Decision(False, "DENY", DecisionCode.DENIED_NO_ALLOW_MATCH, reason, audit=audit)


def _deny(
    code: DecisionCode,
    policy: CompiledPolicy,
    rule: CompiledRule,
    audit: tuple[str, ...],
    reason: str,
) -> Decision:
    return Decision(False, "DENY", code, reason, policy.key, rule.index, audit)
