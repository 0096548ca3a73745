"""The mesh's certificate authority: short-lived SPIFFE certificates issued from CSRs.

Theory of operation:

- The caller decides identity, never the CSR. `sign_csr` takes the identity the controller has
  already authorized (a node agent asking for a service account with a pod on its node) and issues
  a leaf whose only URI SAN is that identity; the CSR's subject and SANs are ignored. The CSR proves
  one thing only: possession of the private key, which never leaves the process that made it.
- A CA comes from one of two places. `load_or_create` keeps a self-managed root in a directory
  (0700; key 0600, written so it is never readable by others, not even for an instant).
  `plug_in` uses a CA the operator brings, possibly an intermediate under their own root; its chain
  is then sent along with every leaf.
- The trust bundle is every root a peer must accept. `rotate_root` starts signing with a new root
  and keeps the old one in the bundle, so leaves signed by either keep verifying;
  `retire_old_roots` drops the old ones once every leaf they signed has been replaced (after at
  most one leaf TTL) and the new bundle has reached every peer.
- Signing state is one frozen `_Signer` swapped by a single assignment, so a signature issued
  during a rotation never mixes two roots.

ECDSA P-256 and SHA-256 everywhere; a plugged-in CA may hold an RSA key (enterprise CAs often do),
leaves are always P-256.

Files of a self-managed CA:

    root-cert.pem     the current root (the signing certificate)
    root-key.pem      its private key, mode 0600
    trust-bundle.pem  every trusted root, the current one first
"""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nodemesh.identity import IdentityError, NodeId, SpiffeId, check_trust_domain
from nodemesh.identity import identity_of_certificate as _identity_of_certificate

ROOT_CERT = "root-cert.pem"
ROOT_KEY = "root-key.pem"
TRUST_BUNDLE = "trust-bundle.pem"
DEFAULT_LEAF_TTL = timedelta(hours=24)
ROOT_VALIDITY = timedelta(days=3652)  # ten years
CLOCK_SKEW = timedelta(minutes=5)  # certificates start this early so a peer slightly behind accepts
MAX_CHAIN_DEPTH = 8

CaKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
Clock = Callable[[], float]


class CaError(Exception):
    """The CA cannot load, issue or verify; the message names the file or input to fix."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed leaf and what its holder presents in a TLS handshake."""

    cert_pem: bytes
    chain_pem: bytes  # the leaf, then any intermediates; never the root (peers have the bundle)
    not_before: datetime
    not_after: datetime
    serial: int
    identity: SpiffeId | NodeId


@dataclass(frozen=True)
class _Signer:
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


class CertificateAuthority:
    """Issues leaves for identities the controller has authorized; see the module docstring."""

    def __init__(
        self,
        trust_domain: str,
        signer: _Signer,
        *,
        directory: Path | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._trust_domain = _check_trust_domain(trust_domain)
        self._signer = signer
        self._directory = directory  # None for a plugged-in CA: its files belong to the operator
        self._clock = clock
        self._lock = threading.Lock()  # serializes rotations; signing reads self._signer once

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls, directory: Path, trust_domain: str, *, clock: Clock = time.time
    ) -> CertificateAuthority:
        """Load the self-managed root from `directory`, or create and persist one there."""
        _check_trust_domain(trust_domain)
        directory = Path(directory)
        _make_private_dir(directory)
        files = [directory / ROOT_CERT, directory / ROOT_KEY]
        present = [path for path in files if path.exists()]
        now = _now(clock)
        if len(present) == 2:
            signer = _load_self_managed(directory, trust_domain, now)
        elif present:
            missing = next(path for path in files if path not in present)
            raise CaError(
                f"{present[0]} exists but {missing} does not; restore {missing.name} from a backup,"
                f" or move {directory} away to create a new CA (every certificate will change)"
            )
        else:
            signer = _new_root_signer(trust_domain, now, previous_roots=())
            _persist(directory, signer)
        return cls(trust_domain, signer, directory=directory, clock=clock)

    @classmethod
    def plug_in(
        cls,
        cert_path: Path,
        key_path: Path,
        trust_domain: str,
        *,
        chain_path: Path | None = None,
        bundle_path: Path | None = None,
        clock: Clock = time.time,
    ) -> CertificateAuthority:
        """Use the operator's CA. `chain_path` lists its issuers up to the root, in order (a root
        found there is trusted unless `bundle_path` names the roots explicitly)."""
        _check_trust_domain(trust_domain)
        now = _now(clock)
        cert_path, key_path = Path(cert_path), Path(key_path)
        cert, key = _read_one_cert(cert_path), _read_key(key_path)
        _check_signing_ca(cert, key, cert_path, key_path, now, trust_domain)
        above = _read_certs(Path(chain_path)) if chain_path else []
        intermediates = tuple(c for c in above if not _is_self_signed(c))
        for intermediate in intermediates:
            _check_is_ca(intermediate, Path(chain_path))
            _check_validity(intermediate, Path(chain_path), now)
        roots = _plugged_roots(cert, above, cert_path, bundle_path)
        root = _check_links(cert, intermediates, roots, cert_path)
        signer = _Signer(cert, key, intermediates, root, tuple(roots))
        return cls(trust_domain, signer, clock=clock)

    # --- issuing ---------------------------------------------------------------------------------

    def sign_csr(
        self,
        csr_pem: bytes,
        identity: SpiffeId | NodeId,
        *,
        ttl: timedelta = DEFAULT_LEAF_TTL,
        dns_names: tuple[str, ...] = (),
    ) -> IssuedCertificate:
        """Issue a leaf for `identity` (already authorized by the caller) to the CSR's key.

        `dns_names` is for the controller's own serving certificate only: gRPC clients check the
        server by name. Workload certificates carry the URI SAN alone.
        """
        self._check_identity(identity)
        if ttl <= timedelta(0):
            raise CaError(f"the certificate lifetime must be positive, got {ttl}")
        public_key = _csr_public_key(csr_pem)
        signer = self._signer  # read once: a concurrent rotation cannot mix two roots in one leaf
        cert = _issue_leaf(signer, public_key, identity, _now(self._clock), ttl, dns_names)
        cert_pem = _pem(cert)
        return IssuedCertificate(
            cert_pem=cert_pem,
            chain_pem=cert_pem + b"".join(_pem(c) for c in signer.presented),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            serial=cert.serial_number,
            identity=identity,
        )

    def _check_identity(self, identity: SpiffeId | NodeId) -> None:
        if not isinstance(identity, SpiffeId | NodeId):
            raise CaError(f"expected a SpiffeId or NodeId, got {type(identity).__name__}")
        if identity.trust_domain != self._trust_domain:
            raise CaError(
                f"{identity} is outside this CA's trust domain {self._trust_domain!r}; "
                "a CA signs only its own trust domain's identities"
            )

    # --- trust bundle and rotation ---------------------------------------------------------------

    def trust_bundle_pem(self) -> bytes:
        """Every root a peer must accept: the current one and any kept during a rotation."""
        return b"".join(_pem(root) for root in self._signer.roots)

    def rotate_root(self) -> None:
        """Sign with a new root from now on; the old roots stay trusted until retired."""
        directory = self._own_directory("rotate the root")
        with self._lock:
            old = self._signer
            signer = _new_root_signer(self._trust_domain, _now(self._clock), old.roots)
            _persist(directory, signer)
            self._signer = signer

    def retire_old_roots(self) -> None:
        """Trust only the current root; leaves signed by older roots stop verifying."""
        directory = self._own_directory("retire old roots")
        with self._lock:
            signer = replace(self._signer, roots=(self._signer.root,))
            _persist(directory, signer)
            self._signer = signer

    def _own_directory(self, action: str) -> Path:
        if self._directory is None:
            raise CaError(
                f"cannot {action} of a plugged-in CA: its files belong to the operator; plug in "
                "the new CA with a bundle_path holding both the old and the new root"
            )
        return self._directory

    @property
    def trust_domain(self) -> str:
        return self._trust_domain

    @property
    def root_not_after(self) -> datetime:
        return self._signer.root.not_valid_after_utc


# --- certificates we build -----------------------------------------------------------------------


def _new_root_signer(
    trust_domain: str, now: datetime, previous_roots: Sequence[x509.Certificate]
) -> _Signer:
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
    return _Signer(cert, key, (), cert, (cert, *previous_roots))


def _issue_leaf(
    signer: _Signer,
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


def _csr_public_key(csr_pem: bytes) -> ec.EllipticCurvePublicKey:
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


# --- certificates we are given -------------------------------------------------------------------


def _load_self_managed(directory: Path, trust_domain: str, now: datetime) -> _Signer:
    cert_path, key_path = directory / ROOT_CERT, directory / ROOT_KEY
    _check_private_mode(key_path)
    cert, key = _read_one_cert(cert_path), _read_key(key_path)
    _check_signing_ca(cert, key, cert_path, key_path, now, trust_domain)
    bundle_path = directory / TRUST_BUNDLE
    kept = _read_certs(bundle_path) if bundle_path.exists() else []
    return _Signer(cert, key, (), cert, (cert, *(c for c in kept if c != cert)))


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
            f"{path}: {_name(cert)} is not a CA certificate (basicConstraints CA:TRUE is "
            "missing); give the CA's certificate, not a leaf"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        raise CaError(
            f"{path}: {_name(cert)} may not sign certificates (keyUsage keyCertSign is missing)"
        )


def _check_validity(cert: x509.Certificate, path: Path, now: datetime) -> None:
    if now > cert.not_valid_after_utc:
        raise CaError(
            f"{path}: {_name(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z; "
            "renew the CA certificate"
        )
    if now < cert.not_valid_before_utc:
        raise CaError(
            f"{path}: {_name(cert)} is not valid before "
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
        if not _issued_by(child, parent):
            raise CaError(
                f"the chain of {cert_path} is broken: {_name(parent)} did not issue "
                f"{_name(child)}; list the intermediates from the CA's issuer up to the root"
            )
    top = path[-1]
    for root in roots:
        if top == root or _issued_by(top, root):
            return root
    raise CaError(
        f"the chain of {cert_path} does not lead to any trusted root: nothing in the bundle "
        f"issued {_name(top)}"
    )


def _issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _issued_by(cert, cert)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _name(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string() or "(empty subject)")


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- verification --------------------------------------------------------------------------------


def verify_leaf(
    chain_pem: bytes, bundle_pem: bytes, *, at: datetime | None = None
) -> SpiffeId | NodeId:
    """Check a presented chain (leaf first) against a trust bundle; return the leaf's identity."""
    chain = _parse_certs(chain_pem, "the certificate chain")
    roots = _parse_certs(bundle_pem, "the trust bundle")
    when = at if at is not None else datetime.now(UTC)
    _verify_chain(chain[0], chain[1:], roots, when)
    try:
        return _identity_of_certificate(chain[0])
    except IdentityError as error:
        raise CaError(f"the certificate verifies but carries no valid identity: {error}") from None


def _verify_with_policy(
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


def _verify_manually(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    at: datetime,
) -> None:
    """For cryptography releases without a client verifier: signatures, validity and CA flags
    only (no name or path-length constraints), which is all a nodemesh chain uses."""
    if _is_ca(leaf):
        raise CaError(f"the certificate chain does not verify: the leaf {_name(leaf)} is a CA")
    cert, pool = leaf, list(intermediates)
    for _ in range(MAX_CHAIN_DEPTH):
        _check_time(cert, at)
        root = next((r for r in roots if _is_ca(r) and _issued_by(cert, r)), None)
        if root is not None:
            _check_time(root, at)
            return
        parent = next((c for c in pool if _is_ca(c) and _issued_by(cert, c)), None)
        if parent is None:
            raise CaError(
                f"the certificate chain does not verify: no trusted root issued {_name(cert)}"
            )
        pool.remove(parent)
        cert = parent
    raise CaError(f"the certificate chain is longer than {MAX_CHAIN_DEPTH} certificates")


def _check_time(cert: x509.Certificate, at: datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise CaError(
            f"the certificate chain does not verify: {_name(cert)} is valid only from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        )


def _has_client_verifier() -> bool:
    try:
        from cryptography.x509.verification import PolicyBuilder
    except ImportError:
        return False
    return hasattr(PolicyBuilder, "build_client_verifier")


_verify_chain = _verify_with_policy if _has_client_verifier() else _verify_manually


# --- files ---------------------------------------------------------------------------------------


def _make_private_dir(directory: Path) -> None:
    """The CA directory is the controller's alone; tighten it even if it already existed."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    except OSError as error:
        raise CaError(f"{directory}: cannot create the CA directory: {error}") from None


def _check_private_mode(key_path: Path) -> None:
    mode = key_path.stat().st_mode & 0o777
    if mode & 0o077:
        raise CaError(
            f"{key_path} is readable by others (mode {mode:o}); run chmod 600 {key_path}, "
            "and consider the key compromised if others could read it"
        )


def _persist(directory: Path, signer: _Signer) -> None:
    """Bundle first: a crash part-way leaves trust wider, never narrower than the signing root."""
    bundle = b"".join(_pem(root) for root in signer.roots)
    _write_atomic(directory / TRUST_BUNDLE, bundle, 0o644)
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomic(directory / ROOT_KEY, key_pem, 0o600)
    _write_atomic(directory / ROOT_CERT, _pem(signer.cert), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Create a fresh temp file at its final mode (O_EXCL: never someone else's file), then
    rename it over the target, so readers see the old or the new content, never a mix."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(temp, flags, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise CaError(f"{path}: cannot write: {error}") from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
    return _parse_certs(_read(path, "certificate"), str(path))


def _read_one_cert(path: Path) -> x509.Certificate:
    certs = _read_certs(path)
    if len(certs) != 1:
        raise CaError(
            f"{path}: expected exactly one certificate, found {len(certs)}; put the CA's "
            "issuers in the chain file instead"
        )
    return certs[0]


def _parse_certs(data: bytes, where: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise CaError(f"{where}: no PEM certificates could be read ({error})") from None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def _check_trust_domain(trust_domain: str) -> str:
    try:
        return check_trust_domain(trust_domain)
    except IdentityError as error:
        raise CaError(str(error)) from None
