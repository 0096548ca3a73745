"""Loading CA material we are given, and refusing what would only fail later.

A self-managed root is read back from its directory; a plugged-in CA comes from the operator's
files, possibly an intermediate with its chain and a separate bundle of roots. Either way the key
must match the certificate, the certificate must be a currently valid CA for our trust domain, and
a chain must link up to a trusted root: each of those mistakes would otherwise surface only as
leaves no peer accepts, so each is reported here naming the file to fix.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from controller.ca_files import ROOT_CERT, ROOT_KEY, TRUST_BUNDLE, check_private_mode
from controller.ca_signer import CaError, CaKey, Signer, cert_name, issued_by, parse_certs


def load_self_managed(directory: Path, trust_domain: str, now: datetime) -> Signer:
    cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
    check_private_mode(key_path)
    cert, key = _read_one_cert(cert_path), _read_key(key_path)
    _check_signing_ca(cert, key, cert_path, key_path, now, trust_domain)
    bundle_path = directory / TRUST_BUNDLE
    kept = _read_certs(bundle_path) if bundle_path.exists() else []
    return Signer(cert, key, (), cert, (cert, *(c for c in kept if c != cert)))


def load_plugged_in(
    cert_path: Path,
    key_path: Path,
    trust_domain: str,
    now: datetime,
    *,
    chain_path: Path | None = None,
    bundle_path: Path | None = None,
) -> Signer:
    """The operator's CA, checked, with its chain (issuers up to the root, in order) linked."""
    cert, key = _read_one_cert(cert_path), _read_key(key_path)
    _check_signing_ca(cert, key, cert_path, key_path, now, trust_domain)
    above = _read_certs(Path(chain_path)) if chain_path else []
    intermediates = tuple(c for c in above if not _is_self_signed(c))
    for intermediate in intermediates:
        _check_is_ca(intermediate, Path(chain_path))
        _check_validity(intermediate, Path(chain_path), now)
    roots = _plugged_roots(cert, above, cert_path, bundle_path)
    root = _check_links(cert, intermediates, roots, cert_path)
    return Signer(cert, key, intermediates, root, tuple(roots))


def _check_signing_ca(
    cert: x509.Certificate,
    key: CaKey,
    cert_path: Path,
    key_path: Path,
    now: datetime,
    trust_domain: str,
) -> None:
    """Everything that would otherwise surface later as leaves no peer accepts."""
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise CaError(
            f"{key_path}: this private key does not belong to the certificate in {cert_path}; "
            "give the key the CA certificate was issued for"
        )
    _check_is_ca(cert, cert_path)
    _check_validity(cert, cert_path, now)
    _check_ca_trust_domain(cert, cert_path, trust_domain)


def _check_is_ca(cert: x509.Certificate, path: Path) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(
            f"{path}: {cert_name(cert)} is not a CA certificate (basicConstraints CA:TRUE is "
            "missing); give the CA's certificate, not a leaf"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        raise CaError(
            f"{path}: {cert_name(cert)} may not sign certificates (keyUsage keyCertSign is missing)"
        )


def _check_validity(cert: x509.Certificate, path: Path, now: datetime) -> None:
    if now > cert.not_valid_after_utc:
        raise CaError(
            f"{path}: {cert_name(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z; "
            "renew the CA certificate"
        )
    if now < cert.not_valid_before_utc:
        raise CaError(
            f"{path}: {cert_name(cert)} is not valid before "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z; check this machine's clock"
        )


def _check_ca_trust_domain(cert: x509.Certificate, path: Path, trust_domain: str) -> None:
    """A CA that names a SPIFFE trust domain must name ours; one that names none may serve any."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    spiffe = [uri for uri in uris if uri.startswith("spiffe://")]
    if spiffe and f"spiffe://{trust_domain}" not in spiffe:
        raise CaError(
            f"{path}: this CA is for {', '.join(spiffe)}, not trust domain {trust_domain!r}; "
            "use the trust domain the CA was made for"
        )


def _plugged_roots(
    cert: x509.Certificate,
    above: list[x509.Certificate],
    cert_path: Path,
    bundle_path: Path | None,
) -> list[x509.Certificate]:
    if bundle_path is not None:
        return _read_certs(Path(bundle_path))
    roots = [c for c in (cert, *above) if _is_self_signed(c)]
    if not roots:
        raise CaError(
            f"{cert_path} is an intermediate CA: give its chain up to the root with chain_path, "
            "or the root certificates with bundle_path"
        )
    return roots


def _check_links(
    cert: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    roots: Sequence[x509.Certificate],
    cert_path: Path,
) -> x509.Certificate:
    """Each certificate must be issued by the next, the last by a root; return that root."""
    path = (cert, *intermediates)
    for child, parent in itertools.pairwise(path):
        if not issued_by(child, parent):
            raise CaError(
                f"the chain of {cert_path} is broken: {cert_name(parent)} did not issue "
                f"{cert_name(child)}; list the intermediates from the CA's issuer up to the root"
            )
    top = path[-1]
    for root in roots:
        if top == root or issued_by(top, root):
            return root
    raise CaError(
        f"the chain of {cert_path} does not lead to any trusted root: nothing in the bundle "
        f"issued {cert_name(top)}"
    )


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and issued_by(cert, cert)


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- reading the files ---------------------------------------------------------------------------


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CaError(f"{path}: {what} file not found") from None
    except OSError as error:
        raise CaError(f"{path}: cannot read the {what}: {error.strerror}") from None


def _read_key(path: Path) -> CaKey:
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CaError(
            f"{path}: the private key is encrypted; give it unencrypted and protect the file "
            "with mode 0600 or a secret store instead"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise CaError(f"{path}: not a PEM private key ({error})") from None
    if not isinstance(key, CaKey):
        raise CaError(f"{path}: a {type(key).__name__} cannot sign here; use ECDSA P-256 or RSA")
    return key


def _read_certs(path: Path) -> list[x509.Certificate]:
    return parse_certs(_read(path, "certificate"), str(path))


def _read_one_cert(path: Path) -> x509.Certificate:
    certs = _read_certs(path)
    if len(certs) != 1:
        raise CaError(
            f"{path}: expected exactly one certificate, found {len(certs)}; put the CA's "
            "issuers in the chain file instead"
        )
    return certs[0]
