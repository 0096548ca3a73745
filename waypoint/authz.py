"""Request-level authorization at the waypoint: AuthorizationPolicy on HTTP requests. Pure.

The waypoint is where rules with HTTP attributes (methods, paths, hosts, headers, `when` keys on
the request) are enforced for real: "at the destination's waypoint, 403 with a clear body, DENY
before ALLOW". The engine is `nodemesh.authz`, the one the node agent runs; this module only
turns a request into facts, asks the index which policies apply, and renders the refusal.

Where it sits in the request path, once per request, before routing (as Envoy's RBAC filter sits
before its router), with `index` built once per push by
`PolicyIndex.build(policies, trust_domain=..., enforcer="the waypoint")`:

    try:
        path = normalize_path(head.path)             # one spelling, shared with routing
    except PathError as error:
        return bad_request_response(error)           # 400: nothing else looks at the request
    decision = authorize_request(head, peer, service, index, waypoint=name, path=path)
    if not decision.allowed:
        return deny_response(decision)               # 403 naming the policy and rule
    ... route on `path`; forward `normalize_target(head.path)`; log `decision.reason`

Facts come from two places. The connection (`Peer`, proved by the HBONE layer): the client's
verified SPIFFE identity (principal and namespace), its original source address (source.ip),
and the address it dialled, a Service VIP and port (destination.ip, destination.port, `ports`).
The request (`RequestHead`): method, normalized path without query, Host, headers, and the remote
address, which is the source address unless `trusted_hops` proxies in front of the mesh append
to X-Forwarded-For (Envoy's `xff_num_trusted_hops`, which Istio sets from numTrustedProxies).

Which policies apply (`PolicyIndex.at_waypoint`): those attached with targetRefs to this
waypoint's Gateway or to the destination Service, and the namespace-wide HTTP policies the agent
defers to the waypoint. Selector-based policies are the node agent's (see nodemesh.authz.index).
"""

from __future__ import annotations

from controller.model import Service
from nodemesh.authz import (
    Decision,
    DecisionCode,
    Facts,
    HttpFacts,
    PathError,
    PolicyIndex,
    Subject,
    allowed_without_policy,
    evaluate,
    normalize_path,
    normalize_target,
    parse_ip,
)
from waypoint.messages import Headers, Peer, RequestHead

__all__ = [
    "PathError",
    "authorize_request",
    "bad_request_response",
    "deny_response",
    "normalize_path",
    "normalize_target",
    "remote_address",
    "request_facts",
]

Response = tuple[int, Headers, bytes]  # (status, headers, body), ready for either codec


def authorize_request(
    head: RequestHead,
    peer: Peer,
    service: Service,
    policies: PolicyIndex,
    *,
    waypoint: str,
    path: str | None = None,
    trusted_hops: int = 0,
) -> Decision:
    """The verdict on `head` from `peer` to `service` behind waypoint `waypoint`.

    `path` is the request's normalized path when the caller already has it (it must: routing
    uses the same one); without it the path is normalized here, which raises PathError.
    """
    path = normalize_path(head.path) if path is None else path
    destination = f"Service {service.namespace}/{service.name}"
    applicable = policies.at_waypoint(service.namespace, service.name, waypoint)
    if applicable.empty:  # the common case: skip the facts, the verdict cannot depend on them
        return allowed_without_policy(destination)
    facts = request_facts(head, peer, path=path, trusted_hops=trusted_hops)
    who = peer.identity or "plaintext"
    subject = Subject(
        destination=destination,
        caller=f"{head.method} {path} from {who} ({peer.address[0]})",
        port=facts.port,
    )
    return evaluate(applicable, facts, subject)


def request_facts(head: RequestHead, peer: Peer, *, path: str, trusted_hops: int = 0) -> Facts:
    """What policies may test about one request; `path` is the normalized path."""
    http = HttpFacts.of(
        head.method,
        path,
        head.authority,
        head.headers,
        scheme=head.scheme,
        remote_ip=remote_address(head, peer, trusted_hops),
        sni=peer.extra.get("sni", ""),
    )
    destination_ip, destination_port = peer.destination
    return Facts.of(peer.identity, peer.address[0], destination_ip, destination_port, http)


def remote_address(head: RequestHead, peer: Peer, trusted_hops: int = 0) -> str:
    """The original client: the address `trusted_hops` from the right of X-Forwarded-For.

    With no trusted proxy (the default) X-Forwarded-For is the client's own claim and is
    ignored: the remote address is the connection's source. A chain too short for
    `trusted_hops`, or an entry that is not an address, falls back to the source too, so a
    client can never choose the address a remoteIpBlocks test sees.
    """
    source = peer.address[0]
    if trusted_hops <= 0:
        return source
    chain = [
        hop.strip() for value in head.header_values("x-forwarded-for") for hop in value.split(",")
    ]
    if len(chain) < trusted_hops:
        return source
    candidate = chain[-trusted_hops]
    return candidate if parse_ip(candidate) is not None else source


def deny_response(decision: Decision) -> Response:
    """The 403 for a denied request, Envoy-style ("RBAC: access denied ...").

    The body names the AuthorizationPolicy and rule that denied, so a client's owner knows whom
    to ask, and nothing else: not the rule's contents, the reason or the other policies.
    """
    if decision.allowed:
        raise ValueError(f"deny_response needs a denial, got {decision.code}: answer the request")
    if decision.policy is not None and decision.rule is not None:
        text = f"RBAC: access denied by AuthorizationPolicy {decision.policy} rule {decision.rule}"
    elif decision.code is DecisionCode.DENIED_NO_ALLOW_MATCH:
        text = "RBAC: access denied: no ALLOW rule of the AuthorizationPolicies here matched"
    else:
        text = "RBAC: access denied"
    return _text_response(403, text)


def bad_request_response(error: PathError) -> Response:
    """The 400 for a path `normalize_path` refused; the body says what is wrong, not the path."""
    return _text_response(400, f"bad request: the path {error.reason}")


def _text_response(status: int, text: str) -> Response:
    body = (text + "\n").encode()
    headers = (("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))))
    return status, headers, body
