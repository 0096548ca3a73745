"""AuthorizationPolicies compiled into rule trees, once per config push. Pure.

`compile_policy` turns one `controller.model.AuthorizationPolicy` into a `CompiledPolicy`: its
rules as `CompiledRule` trees (`nodemesh.authz.rules`), plus what the index needs to place it
(selector, targetRefs). Everything that can be parsed is parsed here, so evaluating a request
costs matcher calls only; what cannot be used is reported once, in `problems`, in words an
operator can act on, and the rule records it so the evaluator fails closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.model import (
    DEFAULT_TRUST_DOMAIN,
    AuthorizationPolicy,
    Condition,
    Labels,
    Operation,
    Rule,
    Source,
    TargetRef,
    rule_needs_l7,
)
from nodemesh.authz.attributes import ATTRIBUTES, FIELD_ATTRIBUTES, Attribute, resolve_condition
from nodemesh.authz.rules import AttributeCheck, CompiledRule, Match

_SOURCE_FIELDS = ("principals", "request_principals", "namespaces", "ip_blocks", "remote_ip_blocks")
_OPERATION_FIELDS = ("hosts", "ports", "methods", "paths")


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """One AuthorizationPolicy, ready to evaluate."""

    key: str  # "namespace/name"
    action: str  # ALLOW, DENY or AUDIT
    selector: Labels | None  # workload selector; None: every workload in scope
    target_refs: tuple[TargetRef, ...]  # attachments; empty: selector scope
    needs_l7: bool  # some rule uses HTTP attributes
    rules: tuple[CompiledRule, ...]


def compile_policy(
    policy: AuthorizationPolicy, trust_domain: str, problems: list[str], enforcer: str
) -> CompiledPolicy:
    """Compile `policy`; append what could not be compiled to `problems`, naming `enforcer`."""
    rules = tuple(compile_rule(rule, i, trust_domain) for i, rule in enumerate(policy.rules))
    for rule in rules:
        if rule.invalid or rule.unsupported:
            problems.append(_problem(policy, rule, enforcer))
    needs_l7 = any(rule_needs_l7(rule) for rule in policy.rules)
    return CompiledPolicy(
        policy.key, policy.action, policy.selector, policy.target_refs, needs_l7, rules
    )


def _problem(policy: AuthorizationPolicy, rule: CompiledRule, enforcer: str) -> str:
    what = []
    if rule.invalid:
        what.append(f"cannot parse {', '.join(rule.invalid)}")
    if rule.unsupported:
        what.append(f"does not support {', '.join(rule.unsupported)}")
    verdict = "ignores these tests" if policy.action == "DENY" else "never matches the rule"
    head = f"AuthorizationPolicy {policy.key} rule {rule.index}"
    return f"{head}: {'; '.join(what)}; {enforcer} {verdict}"


def compile_rule(rule: Rule, index: int, trust_domain: str = DEFAULT_TRUST_DOMAIN) -> CompiledRule:
    """One rule as a tree of matchers (see `nodemesh.authz.rules`)."""
    out = _Parts(trust_domain)
    clauses: list[tuple[Match, ...]] = []
    if rule.sources:
        clauses.append(tuple(out.fields(s, _SOURCE_FIELDS) for s in rule.sources))
    if rule.operations:
        clauses.append(tuple(out.fields(o, _OPERATION_FIELDS) for o in rule.operations))
    clauses.extend((out.condition(c),) for c in rule.conditions)
    return CompiledRule(
        index,
        tuple(clauses),
        tuple(dict.fromkeys(out.l7)),
        tuple(out.invalid),
        tuple(out.unsupported),
    )


class _Parts:
    """Collects the tests of one rule, and the names of what it used or could not use."""

    def __init__(self, trust_domain: str) -> None:
        self.trust_domain = trust_domain
        self.l7: list[str] = []  # HTTP attributes, as Istio spells them
        self.invalid: list[str] = []
        self.unsupported: list[str] = []

    def fields(self, entry: Source | Operation, names: tuple[str, ...]) -> Match:
        tests = []
        for name in names:
            include, exclude = getattr(entry, name), getattr(entry, "not_" + name)
            attribute = ATTRIBUTES[FIELD_ATTRIBUTES[name]]
            if attribute.l7:
                self.l7.extend(
                    _camel(n) for n, v in ((name, include), ("not_" + name, exclude)) if v
                )
            tests.extend(self._test(attribute, include, exclude))
        return tuple(tests)

    def condition(self, condition: Condition) -> Match:
        attribute = resolve_condition(condition.key)
        if isinstance(attribute, str):
            self.unsupported.append(attribute)
            return ()
        if attribute.l7:
            self.l7.append(condition.key)
        return tuple(self._test(attribute, condition.values, condition.not_values))

    def _test(
        self, attribute: Attribute, include: tuple[str, ...], exclude: tuple[str, ...]
    ) -> list[AttributeCheck]:
        if not include and not exclude:
            return []
        include_match, bad_include = _build(attribute, include, self.trust_domain)
        exclude_match, bad_exclude = _build(attribute, exclude, self.trust_domain)
        if bad_include or bad_exclude:
            # A half-parsed list would silently widen or narrow the rule: leave the test out and
            # let the evaluator fail closed, as it does for what it cannot check.
            self.invalid.extend(f"{attribute.label}: {v!r}" for v in bad_include + bad_exclude)
            return []
        check = AttributeCheck(
            attribute.label,
            attribute.l7,
            attribute.value,
            attribute.shown,
            include_match,
            exclude_match,
        )
        return [check]


def _build(attribute: Attribute, values: tuple[str, ...], trust_domain: str) -> tuple:
    """(matcher or None when no values were listed, values that do not parse)."""
    if not values:
        return None, []
    return attribute.build(values, trust_domain)


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(word.capitalize() for word in rest)
