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
- Signing state is one frozen `Signer` swapped by a single assignment, so a signature issued
  during a rotation never mixes two roots.

ECDSA P-256 and SHA-256 everywhere; a plugged-in CA may hold an RSA key (enterprise CAs often do),
leaves are always P-256.

Files of a self-managed CA:

    root-cert.pem     the current root (the signing certificate)
    root-key.pem      its private key, mode 0600
    trust-bundle.pem  every trusted root, the current one first

This module is the CertificateAuthority itself; the work it delegates lives beside it, one concern
each: controller.ca_x509 builds certificates, controller.ca_material loads and checks the CA
material, controller.ca_verify checks presented chains, controller.ca_files writes the files, and
controller.ca_signer holds what they share (CaError, Signer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller import ca_verify
from controller.ca_files import ROOT_CERT, ROOT_KEY, TRUST_BUNDLE, make_private_dir, persist
from controller.ca_material import load_plugged_in, load_self_managed
from controller.ca_signer import CaError, CaKey, Signer, pem
from controller.ca_verify import MAX_CHAIN_DEPTH, verify_leaf
from controller.ca_x509 import (
    CLOCK_SKEW,
    ROOT_VALIDITY,
    csr_public_key,
    issue_leaf,
    new_root_signer,
)
from nodemesh.identity import IdentityError, NodeId, SpiffeId, check_trust_domain

# Defined beside the code that uses them, re-exported as the CA's public API.
__all__ = [
    "CLOCK_SKEW",
    "MAX_CHAIN_DEPTH",
    "ROOT_CERT",
    "ROOT_KEY",
    "ROOT_VALIDITY",
    "TRUST_BUNDLE",
    "CaError",
    "CaKey",
    "verify_leaf",
]

# Kept importable from here; to choose the verifier, patch controller.ca_verify.verify_chain.
_verify_with_policy = ca_verify.verify_with_policy
_verify_manually = ca_verify.verify_manually

DEFAULT_LEAF_TTL = timedelta(hours=24)

Clock = Callable[[], float]


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed leaf and what its holder presents in a TLS handshake."""

    cert_pem: bytes
    chain_pem: bytes  # the leaf, then any intermediates; never the root (peers have the bundle)
    not_before: datetime
    not_after: datetime
    serial: int
    identity: SpiffeId | NodeId


class CertificateAuthority:
    """Issues leaves for identities the controller has authorized; see the module docstring."""

    def __init__(
        self,
        trust_domain: str,
        signer: Signer,
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
        make_private_dir(directory)
        files = [directory / ROOT_CERT, directory / ROOT_KEY]
        present = [path for path in files if path.exists()]
        now = _now(clock)
        if len(present) == 2:
            signer = load_self_managed(directory, trust_domain, now)
        elif present:
            missing = next(path for path in files if path not in present)
            raise CaError(
                f"{present[0]} exists but {missing} does not; restore {missing.name} from a backup,"
                f" or move {directory} away to create a new CA (every certificate will change)"
            )
        else:
            signer = new_root_signer(trust_domain, now, previous_roots=())
            persist(directory, signer)
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
        signer = load_plugged_in(
            Path(cert_path),
            Path(key_path),
            trust_domain,
            now,
            chain_path=chain_path,
            bundle_path=bundle_path,
        )
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
        public_key = csr_public_key(csr_pem)
        signer = self._signer  # read once: a concurrent rotation cannot mix two roots in one leaf
        cert = issue_leaf(signer, public_key, identity, _now(self._clock), ttl, dns_names)
        cert_pem = pem(cert)
        return IssuedCertificate(
            cert_pem=cert_pem,
            chain_pem=cert_pem + b"".join(pem(c) for c in signer.presented),
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
        return b"".join(pem(root) for root in self._signer.roots)

    def rotate_root(self) -> None:
        """Sign with a new root from now on; the old roots stay trusted until retired."""
        directory = self._own_directory("rotate the root")
        with self._lock:
            old = self._signer
            signer = new_root_signer(self._trust_domain, _now(self._clock), old.roots)
            persist(directory, signer)
            self._signer = signer

    def retire_old_roots(self) -> None:
        """Trust only the current root; leaves signed by older roots stop verifying."""
        directory = self._own_directory("retire old roots")
        with self._lock:
            signer = replace(self._signer, roots=(self._signer.root,))
            persist(directory, signer)
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


def _now(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def _check_trust_domain(trust_domain: str) -> str:
    try:
        return check_trust_domain(trust_domain)
    except IdentityError as error:
        raise CaError(str(error)) from None
