"""Moved: the rule compiler and matcher now live in `nodemesh.authz`, shared with the waypoint.

This module keeps the old import path working for code written against it; new code imports
from `nodemesh.authz` (`rules` for the tree, `compile` for `compile_rule`, `facts` for `Facts`).
"""

from nodemesh.authz.compile import compile_rule
from nodemesh.authz.facts import SPIFFE_SCHEME, Facts, IpKey, parse_ip, principal_of
from nodemesh.authz.matchers import POLICY_LOCAL_TRUST_DOMAIN
from nodemesh.authz.rules import AttributeCheck, CompiledRule, Match

__all__ = [
    "POLICY_LOCAL_TRUST_DOMAIN",
    "SPIFFE_SCHEME",
    "AttributeCheck",
    "CompiledRule",
    "Facts",
    "IpKey",
    "Match",
    "compile_rule",
    "parse_ip",
    "principal_of",
]
