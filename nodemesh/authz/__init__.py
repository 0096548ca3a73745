"""Istio's AuthorizationPolicy and PeerAuthentication, one engine for agent and waypoint. Pure.

Theory of operation. Once per config push, each enforcer compiles the policies it received:

    index = PolicyIndex.build(policies, trust_domain=..., root_namespace=...)

Then, per connection (node agent) or per request (waypoint), it picks the policies that apply,
gathers the facts, and evaluates:

    agent:    evaluate(index.applicable(workload, via_waypoint), Facts.of(...), subject)
    waypoint: evaluate(index.at_waypoint(ns, service, waypoint),
                       Facts.of(..., http=HttpFacts.of(method, normalize_path(raw), ...)), subject)

and gets a `Decision` (allowed, DecisionCode, policy, rule, reason). The node agent's wrapper is
`node_agent.policy`; the waypoint's is `waypoint.authz`.

The modules, one concern each:

    facts        what is known about a connection (L4) and a request (L7), parsed once
    paths        request path normalization: one spelling per path, or PathError (400)
    matchers     Istio's value syntaxes: strings with one wildcard, hosts, headers, CIDRs, ports
    attributes   every attribute a rule can test, for `from`/`to` fields and `when` keys alike
    rules        compiled rule trees and how facts match them, L7 tests skipped without HTTP
    compile      AuthorizationPolicy -> CompiledPolicy, problems reported once per push
    index        where each policy applies: selector scope (agents), targetRefs (waypoints)
    peer_authn   PeerAuthentication's mTLS mode per workload port
    evaluate     DENY before ALLOW, AUDIT on the side
    decision     the Decision and its DecisionCode

Semantics are Istio's (security.istio.io/v1) as istiod compiles and ztunnel and Envoy enforce
them. The one rule that makes a single engine serve both enforcers: evaluated without HTTP facts
(the agent), an ALLOW rule that needs HTTP attributes never matches, and a DENY rule counts its
HTTP parts as matched, so the agent errs on the side of denying what it cannot check. With HTTP
facts (the waypoint) every part is evaluated for real. Deliberate departures from Istio are noted
where they live: host patterns also match the Host without its port (`facts`), HTTP-only parts
of a DENY rule deny at the agent (`node_agent.policy`), namespace-wide HTTP policies are
enforced by the waypoint (`index`), and no JWTs are validated (`attributes`).
"""

from nodemesh.authz.compile import CompiledPolicy, compile_policy, compile_rule
from nodemesh.authz.decision import Decision, DecisionCode
from nodemesh.authz.evaluate import Subject, allowed_without_policy, evaluate
from nodemesh.authz.facts import Facts, HttpFacts, parse_ip, principal_of
from nodemesh.authz.index import Applicable, PolicyIndex
from nodemesh.authz.paths import PathError, normalize_path, normalize_target
from nodemesh.authz.rules import AttributeCheck, CompiledRule

__all__ = [
    "Applicable",
    "AttributeCheck",
    "CompiledPolicy",
    "CompiledRule",
    "Decision",
    "DecisionCode",
    "Facts",
    "HttpFacts",
    "PathError",
    "PolicyIndex",
    "Subject",
    "allowed_without_policy",
    "compile_policy",
    "compile_rule",
    "evaluate",
    "normalize_path",
    "normalize_target",
    "parse_ip",
    "principal_of",
]
