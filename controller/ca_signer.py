"""What every part of the CA shares: its error type, the signing state, and PEM/issuer primitives.

The CA is split by concern (building certificates, loading operator material, verifying chains,
persisting files; see controller.ca); this module is the vocabulary they have in common, kept apart
so none of them has to import the CertificateAuthority that uses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CaError(Exception):
    """The CA cannot load, issue or verify; the message names the file or input to fix."""


@dataclass(frozen=True)
class Signer:
    """Everything one signature needs; replaced whole, never mutated."""

    cert: x509.Certificate  # the certificate whose key signs leaves: a root or an intermediate
    key: CaKey
    intermediates: tuple[x509.Certificate, ...]  # above `cert`, below `root`, in order
    root: x509.Certificate  # the root `cert` chains to
    roots: tuple[x509.Certificate, ...]  # the trust bundle: every accepted root

    @property
    def presented(self) -> tuple[x509.Certificate, ...]:
        """The certificates sent after a leaf: everything between it and the root."""
        own = () if self.cert == self.root else (self.cert,)
        return own + self.intermediates

    @property
    def not_after(self) -> datetime:
        """A leaf must not outlive any certificate above it, or its chain breaks first."""
        chain = (self.cert, *self.intermediates, self.root)
        return min(cert.not_valid_after_utc for cert in chain)


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def cert_name(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string() or "(empty subject)")


def parse_certs(data: bytes, where: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CaError(f"{where}: no PEM certificates could be read ({error})") from None


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
