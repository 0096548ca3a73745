"""Checking a presented certificate chain against a trust bundle, and reading its identity.

cryptography's RFC 5280 client verifier does the work where the installed release has one;
older releases get a manual check of signatures, validity and CA flags, which is all a nodemesh
chain uses. `verify_chain` is the one chosen at import (tests patch it here to run both).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509

from controller.ca_signer import CaError, cert_name, issued_by, parse_certs
from nodemesh.identity import IdentityError, NodeId, SpiffeId, identity_of_certificate

MAX_CHAIN_DEPTH = 8


def verify_leaf(
    chain_pem: bytes, bundle_pem: bytes, *, at: datetime | None = None
) -> SpiffeId | NodeId:
    """Check a presented chain (leaf first) against a trust bundle; return the leaf's identity."""
    chain = parse_certs(chain_pem, "the certificate chain")
    roots = parse_certs(bundle_pem, "the trust bundle")
    when = at if at is not None else datetime.now(UTC)
    verify_chain(chain[0], chain[1:], roots, when)
    try:
        return identity_of_certificate(chain[0])
    except IdentityError as error:
        raise CaError(f"the certificate verifies but carries no valid identity: {error}") from None


def verify_with_policy(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    """cryptography's RFC 5280 path validation: signatures, validity, CA flags, key usages."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    builder = PolicyBuilder().store(Store(list(roots))).time(at).max_chain_depth(MAX_CHAIN_DEPTH)
    try:
        builder.build_client_verifier().verify(leaf, list(intermediates))
    except VerificationError as error:
        raise CaError(f"the chain does not verify against the trust bundle: {error}") from None


def verify_manually(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    """For cryptography releases without a client verifier: signatures, validity and CA flags
    only (no name or path-length constraints), which is all a nodemesh chain uses."""
    if _is_ca(leaf):
        raise CaError(f"the certificate chain does not verify: the leaf {cert_name(leaf)} is a CA")
    cert, pool = leaf, list(intermediates)
    for _ in range(MAX_CHAIN_DEPTH):
        _check_time(cert, at)
        root = next((r for r in roots if _is_ca(r) and issued_by(cert, r)), None)
        if root is not None:
            _check_time(root, at)
            return
        parent = next((c for c in pool if _is_ca(c) and issued_by(cert, c)), None)
        if parent is None:
            raise CaError(
                f"the certificate chain does not verify: no trusted root issued {cert_name(cert)}"
            )
        pool.remove(parent)
        cert = parent
    raise CaError(f"the certificate chain is longer than {MAX_CHAIN_DEPTH} certificates")


def _check_time(cert: x509.Certificate, at: datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise CaError(
            f"the certificate chain does not verify: {cert_name(cert)} is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _has_client_verifier() -> bool:
    try:
        from cryptography.x509.verification import PolicyBuilder
    except ImportError:
        return False
    return hasattr(PolicyBuilder, "build_client_verifier")


verify_chain = verify_with_policy if _has_client_verifier() else verify_manually
