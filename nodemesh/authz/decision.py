"""The verdict of authorization: allowed or not, why, and who decided. Pure values.

A `Decision` is what the agent logs and counts per connection and the waypoint per request.
Denials are never silent (DESIGN.md, Security notes): every one names its `DecisionCode` (a
stable metric label), the policy and rule responsible when one was, and a reason an operator can
act on. The reason is for logs only; what a client may see is chosen by the enforcer (the
waypoint's 403 body names the policy and rule and nothing else).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, auto
from typing import Literal


class DecisionCode(StrEnum):
    """Why a connection or request was allowed or denied; stable values for metrics and logs."""

    ALLOWED_NO_POLICY = auto()  # no DENY matched and no ALLOW policy applies
    ALLOWED_BY_POLICY = auto()  # an ALLOW rule matched
    ALLOWED_MTLS = auto()  # admit_plaintext: the peer is a verified mTLS identity
    ALLOWED_PLAINTEXT_PERMISSIVE = auto()  # admit_plaintext: PERMISSIVE (or DISABLE) for the port
    DENIED_BY_DENY = auto()  # a DENY rule matched
    DENIED_NO_ALLOW_MATCH = auto()  # ALLOW policies apply and none matched
    DENIED_L7_WITHOUT_WAYPOINT = auto()  # only an ALLOW rule with HTTP attributes could allow it
    DENIED_PLAINTEXT_STRICT = auto()  # plaintext to a port under STRICT mTLS


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict on one connection or request, with what an operator needs to understand it."""

    allowed: bool
    action: Literal["ALLOW", "DENY"]  # what the enforcer does with the connection or request
    code: DecisionCode
    reason: str  # "denied by DENY policy shop/deny-admin rule 0: port 8080 matched"
    policy: str | None = None  # "namespace/name" of the deciding policy, if one decided
    rule: int | None = None  # index of the deciding rule in that policy
    audit: tuple[str, ...] = ()  # AUDIT policies ("namespace/name") that matched
