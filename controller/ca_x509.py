"""The certificates the CA builds: a self-managed root, and leaves for keys proven by a CSR.

Only this module decides what goes into a certificate the mesh issues (names, lifetimes, usages,
key identifiers); ECDSA P-256 and SHA-256 throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.ca_signer import CaError, Signer
from nodemesh.identity import NodeId, SpiffeId

ROOT_VALIDITY = timedelta(days=3652)  # ten years
CLOCK_SKEW = timedelta(minutes=5)  # certificates start this early so a peer slightly behind accepts


def new_root_signer(
    trust_domain: str, now: datetime, previous_roots: Sequence[x509.Certificate]
) -> Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nodemesh"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"nodemesh root CA {trust_domain}"[:64]),
        ]
    )
    usage = _key_usage(key_cert_sign=True, crl_sign=True)
    cert = (
        _builder(name, name, key.public_key(), now - CLOCK_SKEW, now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_uri_san(f"spiffe://{trust_domain}"), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Signer(cert, key, (), cert, (cert, *previous_roots))


def issue_leaf(
    signer: Signer,
    public_key: ec.EllipticCurvePublicKey,
    identity: SpiffeId | NodeId,
    now: datetime,
    ttl: timedelta,
    dns_names: tuple[str, ...] = (),
) -> x509.Certificate:
    """An X.509-SVID: the URI SAN is the identity; the subject only says who issued it."""
    not_before = max(now - CLOCK_SKEW, signer.cert.not_valid_before_utc)
    not_after = min(now + ttl, signer.not_after)
    if not_after <= now:
        raise CaError(
            f"the CA's chain expired at {signer.not_after:%Y-%m-%d %H:%M}Z; rotate the root or "
            "plug in a renewed CA"
        )
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nodemesh")])
    eku = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = _key_usage(digital_signature=True, key_encipherment=True)
    return (
        _builder(subject, signer.cert.subject, public_key, not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(signer.cert), critical=False)
        .add_extension(_uri_san(str(identity), dns_names), critical=False)
        .sign(signer.key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())  # 159 random bits: unguessable, positive
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _key_usage(
    *, digital_signature=False, key_encipherment=False, key_cert_sign=False, crl_sign=False
) -> x509.KeyUsage:
    """The four usages nodemesh sets; KeyUsage itself wants all nine, in order."""
    unused = False  # content_commitment, data_encipherment, key_agreement, en/decipher_only
    return x509.KeyUsage(
        digital_signature, unused, key_encipherment, unused, unused, key_cert_sign, crl_sign,
        unused, unused,
    )  # fmt: skip


def _uri_san(uri: str, dns_names: tuple[str, ...] = ()) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    return x509.SubjectAlternativeName(names + [x509.DNSName(n) for n in dns_names])


def _authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """Match the issuer's own SKI when it has one, so chain builders find the right root."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
    """The CSR's key, once its self-signature proves the requester holds the private half."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        signed = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise CaError(f"the CSR is not a PEM certificate signing request: {error}") from None
    if not signed:
        raise CaError("the CSR's signature does not verify: the key it carries did not sign it")
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise CaError(
            f"the CSR carries {_describe_key(key)}; nodemesh issues certificates for ECDSA "
            "P-256 (secp256r1) keys only"
        )
    return key


def _describe_key(key: object) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an ECDSA {key.curve.name} key"
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA {key.key_size}-bit key"
    return f"a {type(key).__name__}"
