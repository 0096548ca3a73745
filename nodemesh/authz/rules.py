"""Compiled AuthorizationPolicy rules, and facts matched against them. Pure.

A rule is a small tree, the shape istiod hands ztunnel (pilot `ambient/authorization.go`) and
Envoy's RBAC filter walks:

    rule     = every clause holds                     (from, to, and one clause per `when`)
    clause   = any of its matches holds               (the `from` sources, the `to` operations)
    match    = every test holds                       (the fields of one source or operation)
    test     = some include value matches (if any are listed) and no exclude value does

Every test knows whether it is L7. Evaluated with HTTP facts (the waypoint), every test runs.
Evaluated without (the node agent), L7 tests are skipped, that is counted as holding: a DENY
rule is then enforced on its L4 parts alone (it errs on the side of denying), and an ALLOW rule
holding any L7 test is not `decidable`, so it never matches. Which of the two a rule gets is the
evaluator's choice (`nodemesh.authz.evaluate`); this module only answers "does it match" and "why".

Parts that could not be compiled are left out of the tree and named on the rule: `invalid`
values that do not parse, `unsupported` condition keys. A rule naming either is never decidable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nodemesh.authz.facts import Facts


@dataclass(frozen=True, slots=True)
class AttributeCheck:
    """One attribute against include/exclude values (ztunnel's `matches_internal`)."""

    label: str  # "port", "path", ... (for reasons)
    l7: bool  # needs HTTP facts; skipped (counted as holding) without them
    value: Callable[[Facts], object]  # the tested attribute
    shown: Callable[[Facts], str]  # the attribute as the operator reads it ("" to hide it)
    include: Callable[[object], bool] | None  # None: no include values were listed
    exclude: Callable[[object], bool] | None  # None: no exclude values were listed

    def __call__(self, facts: Facts) -> bool:
        if self.l7 and facts.http is None:
            return True  # unknown here: see the module docstring
        value = self.value(facts)
        if self.include is not None and not self.include(value):
            return False
        return self.exclude is None or not self.exclude(value)

    def describe(self, facts: Facts) -> str:
        shown = self.shown(facts)
        return f"{self.label} {shown}" if shown else self.label


Match = tuple[AttributeCheck, ...]  # every test holds; () holds for everything


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One `Rule` of a policy, as matchers plus the parts that could not be compiled."""

    index: int  # position in the policy's rules (reasons say "rule 0")
    clauses: tuple[tuple[Match, ...], ...]  # every clause holds; within one, any match holds
    l7: tuple[str, ...]  # HTTP attributes used, in Istio's spelling ("methods", "request.*")
    invalid: tuple[str, ...]  # values left out because they do not parse ("source IP: 'x'")
    unsupported: tuple[str, ...] = ()  # condition keys nodemesh cannot evaluate

    @property
    def complete(self) -> bool:
        """True if the rule can be decided without HTTP facts (the node agent's view)."""
        return not self.l7 and not self.invalid and not self.unsupported

    def decidable(self, facts: Facts) -> bool:
        """True if `matches(facts)` is the whole rule, so an ALLOW or AUDIT may rely on it."""
        if self.invalid or self.unsupported:
            return False
        return facts.http is not None or not self.l7

    def matches(self, facts: Facts) -> bool:
        """Whether the compiled part matches; parts that cannot be checked count as holding."""
        for clause in self.clauses:
            for match in clause:
                if _holds(match, facts):
                    break  # every test of this match held: the clause holds
            else:
                return False  # no match of this clause held
        return True

    def explain(self, facts: Facts) -> str:
        """What matched, for a rule that matches: "port 8080, namespace shop matched"."""
        seen: dict[str, None] = {}
        for clause in self.clauses:
            match = next(m for m in clause if _holds(m, facts))
            for test in match:
                if not test.l7 or facts.http is not None:
                    seen[test.describe(facts)] = None
        if not seen:
            what = "connection" if facts.http is None else "request"
            layer = "L4 " if facts.http is None else ""
            return f"the rule has no {layer}conditions, so it matches every {what}"
        return ", ".join(seen) + " matched"


def _holds(match: Match, facts: Facts) -> bool:
    return all(test(facts) for test in match)
