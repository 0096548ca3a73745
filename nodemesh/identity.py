"""SPIFFE identities of workloads and node agents: parse, format, read from certificates. Pure.

Two shapes, disjoint by construction, so one can never pass for the other:

    spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>   a workload (SpiffeId)
    spiffe://<trust-domain>/nodemesh/node/<node>                  a node agent (NodeId)

A node agent's control-plane certificate carries a NodeId; it is deliberately not of the ns/sa
form, so no authorization policy written for workloads can ever match it.

Parsing is stricter than general URI parsing on purpose. Peers compare identities as strings
(authorization policies, logs, metrics labels), so each identity must have exactly one spelling:
anything that would give a second one (percent-encoding, an upper-case trust domain, dot or empty
segments, a port, userinfo, a query or a fragment) is rejected rather than normalised. The
character sets and limits are the SPIFFE ID specification's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

SCHEME = "spiffe://"
MAX_URI_LENGTH = 2048  # SPIFFE: URIs longer than 2048 bytes must be rejected
MAX_TRUST_DOMAIN_LENGTH = 255
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]+")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_WORKLOAD_FORM = "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
_NODE_FORM = "spiffe://<trust-domain>/nodemesh/node/<node>"


class IdentityError(ValueError):
    """Text or a certificate that does not carry exactly one valid nodemesh identity."""


def check_trust_domain(trust_domain: str) -> str:
    """Return the trust domain if SPIFFE allows it; case is not folded, so there is one spelling."""
    if not isinstance(trust_domain, str) or not trust_domain:
        raise IdentityError("the trust domain is empty")
    if len(trust_domain) > MAX_TRUST_DOMAIN_LENGTH:
        raise IdentityError(f"the trust domain is longer than {MAX_TRUST_DOMAIN_LENGTH} characters")
    if not _TRUST_DOMAIN.fullmatch(trust_domain):
        raise IdentityError(
            f"trust domain {trust_domain!r}: use lowercase letters, digits, dots, dashes and "
            "underscores only"
        )
    return trust_domain


def _check_segment(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise IdentityError(f"the {what} is empty")
    if value in (".", ".."):
        raise IdentityError(f"the {what} is a dot segment ({value!r})")
    if not _SEGMENT.fullmatch(value):
        raise IdentityError(
            f"{what} {value!r}: use letters, digits, dots, dashes and underscores only"
        )


@dataclass(frozen=True, order=True)
class SpiffeId:
    """A workload identity: the service account a pod runs as, in one trust domain."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        _check_segment("namespace", self.namespace)
        _check_segment("service account", self.service_account)

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    @classmethod
    def parse(cls, uri: str) -> SpiffeId:
        identity = parse_any(uri)
        if not isinstance(identity, SpiffeId):
            raise IdentityError(
                f"{_show(uri)} is a node agent identity, not a workload one ({_WORKLOAD_FORM})"
            )
        return identity


@dataclass(frozen=True)
class NodeId:
    """A node agent's identity on the control plane; never valid as a workload identity."""

    trust_domain: str
    node: str

    def __post_init__(self) -> None:
        check_trust_domain(self.trust_domain)
        _check_segment("node name", self.node)

    def __str__(self) -> str:
        return f"{SCHEME}{self.trust_domain}/nodemesh/node/{self.node}"

    @classmethod
    def parse(cls, uri: str) -> NodeId:
        identity = parse_any(uri)
        if not isinstance(identity, NodeId):
            raise IdentityError(
                f"{_show(uri)} is a workload identity, not a node agent one ({_NODE_FORM})"
            )
        return identity


def parse_any(uri: str) -> SpiffeId | NodeId:
    """Parse either identity shape; the path decides which, and any other path is an error."""
    try:
        trust_domain, segments = _split(uri)
        match segments:
            case ["ns", namespace, "sa", service_account]:
                return SpiffeId(trust_domain, namespace, service_account)
            case ["nodemesh", "node", node]:
                return NodeId(trust_domain, node)
        raise IdentityError(f"the path must be {_WORKLOAD_FORM} or {_NODE_FORM}")
    except IdentityError as error:
        raise IdentityError(f"{_show(uri)} is not a nodemesh identity: {error}") from None


def _split(uri: str) -> tuple[str, list[str]]:
    """Split into trust domain and path segments, refusing every alternative spelling."""
    if not isinstance(uri, str):
        raise IdentityError(f"expected a string, got {type(uri).__name__}")
    if len(uri) > MAX_URI_LENGTH:
        raise IdentityError(f"it is longer than {MAX_URI_LENGTH} characters")
    if not uri.startswith(SCHEME):
        if uri[: len(SCHEME)].lower() == SCHEME:
            raise IdentityError("the scheme must be written in lowercase: spiffe://")
        raise IdentityError("it must start with spiffe://")
    rest = uri[len(SCHEME) :]
    for char, what in (("%", "percent-encoding"), ("?", "a query"), ("#", "a fragment")):
        if char in rest:
            raise IdentityError(f"{what} is not allowed")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise IdentityError("userinfo is not allowed")
    if ":" in authority:
        raise IdentityError("a port is not allowed")
    check_trust_domain(authority)
    return authority, _path_segments(path) if slash else []


def _path_segments(path: str) -> list[str]:
    segments = path.split("/")
    for segment in segments:
        if not segment:
            raise IdentityError("empty path segments (double or trailing slashes) are not allowed")
        if segment in (".", ".."):
            raise IdentityError("dot segments are not allowed")
    return segments


def _show(uri: object) -> str:
    """Quote the offending text for an error message, cut so a huge input cannot flood a log."""
    text = repr(uri)
    return text if len(text) <= 120 else text[:117] + "..."


def identity_of_certificate(cert: x509.Certificate) -> SpiffeId | NodeId:
    """The identity a certificate proves: its one URI SAN (SPIFFE X.509-SVID), never its subject."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise IdentityError(
            "the certificate has no subjectAltName; a SPIFFE certificate carries its identity "
            "in exactly one URI SAN"
        ) from None
    except ValueError as error:
        raise IdentityError(f"the certificate's extensions do not parse: {error}") from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise IdentityError(
            f"the certificate must carry exactly one URI SAN, found {len(uris)}: {uris}"
        )
    return parse_any(uris[0])
