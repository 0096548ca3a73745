"""Client side of the controller's services, shared by node agents, waypoints and tests.

Keys are generated here and never leave the calling process: the controller sees only CSRs.

How a process gets its first certificate, then keeps one:
  - a node agent: `bootstrap` trades its node credential for the node's control-plane identity
    on the bootstrap listener (15011, server-auth TLS);
  - a waypoint: `bootstrap_workload` trades its pod's service-account token (the file
    $NODEMESH_TOKEN_FILE names, read with `read_token`) for the identity of its service account,
    on the same listener;
  - afterwards both renew over mutual TLS (15012) as themselves: `mtls_channel` with the current
    certificate, then `workload_certificate` for the same identity (a waypoint may renew only
    its own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nodemesh.proto import ca_pb2, ca_pb2_grpc

CONTROLLER_NAME = "nodemesh-controller.nodemesh-system.svc"
# Names the file holding the pod's service-account token; set by the local runtime (it must
# equal nodemesh.local.credentials.TOKEN_FILE_ENV) or by a Kubernetes pod template.
TOKEN_FILE_ENV = "NODEMESH_TOKEN_FILE"


class TokenFileError(Exception):
    """The pod's service-account token cannot be read; the message says what to set or check."""


@dataclass(frozen=True)
class KeyAndCert:
    """A private key and the certificate chain issued for it, with the trust bundle it came with."""

    key_pem: bytes
    chain_pem: bytes
    bundle_pem: bytes
    not_after: int


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_pem(key: ec.EllipticCurvePrivateKey) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _options() -> list[tuple[str, object]]:
    return [("grpc.ssl_target_name_override", CONTROLLER_NAME)]


def bootstrap_channel(address: str, bundle_pem: bytes) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(root_certificates=bundle_pem)
    return grpc.aio.secure_channel(address, creds, options=_options())


def mtls_channel(address: str, identity: KeyAndCert) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=identity.bundle_pem,
        private_key=identity.key_pem,
        certificate_chain=identity.chain_pem,
    )
    return grpc.aio.secure_channel(address, creds, options=_options())


def _issued(key, resp: ca_pb2.CertificateResponse) -> KeyAndCert:
    return KeyAndCert(
        key_pem=key_pem(key),
        chain_pem="".join(resp.cert_chain).encode(),
        bundle_pem=resp.trust_bundle.encode(),
        not_after=resp.not_after,
    )


async def bootstrap(
    address: str, bundle_pem: bytes, node: str, token: str, *, timeout: float = 10
) -> KeyAndCert:
    """Trade the node credential for the node's control-plane certificate."""
    key = new_key()
    async with bootstrap_channel(address, bundle_pem) as channel:
        stub = ca_pb2_grpc.NodeBootstrapStub(channel)
        resp = await stub.Bootstrap(
            ca_pb2.BootstrapRequest(node=node, csr=csr_pem(key)),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=timeout,
        )
    return _issued(key, resp)


def read_token(path: str | os.PathLike[str] | None) -> str:
    """The token in `path` (usually os.environ[TOKEN_FILE_ENV]).

    Read it again for every bootstrap attempt: Kubernetes rotates projected tokens in place.
    """
    if not path:
        raise TokenFileError(
            f"no service-account token: {TOKEN_FILE_ENV} is not set; the local runtime sets it "
            "for every container, in Kubernetes mount a projected token with audience "
            f"'nodemesh' and set {TOKEN_FILE_ENV} to its path"
        )
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise TokenFileError(
            f"cannot read the service-account token {path}: {exc.strerror or exc}; "
            "is the pod's token mounted there?"
        ) from exc
    if not token:
        raise TokenFileError(f"the service-account token file {path} is empty")
    return token


async def bootstrap_workload(
    address: str,
    bundle_pem: bytes,
    token: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    ttl_seconds: int = 0,
    timeout: float = 10,
) -> KeyAndCert:
    """Trade a pod's service-account token for its first certificate, for `key`.

    `address` is the controller's bootstrap listener (host:15011). The identity is the one the
    token is bound to, spiffe://<td>/ns/<namespace>/sa/<service account>: the request names
    none. Refusals arrive as grpc.aio.AioRpcError, UNAUTHENTICATED (bad or stale token) or
    PERMISSION_DENIED, with a message that says what to fix.
    """
    async with bootstrap_channel(address, bundle_pem) as channel:
        stub = ca_pb2_grpc.WorkloadBootstrapStub(channel)
        resp = await stub.Bootstrap(
            ca_pb2.WorkloadBootstrapRequest(csr=csr_pem(key), validity_seconds=ttl_seconds),
            metadata=[("authorization", f"Bearer {token}")],
            timeout=timeout,
        )
    return _issued(key, resp)


async def workload_certificate(
    channel: grpc.aio.Channel, identity: str, *, ttl_seconds: int = 0, timeout: float = 10
) -> KeyAndCert:
    """A certificate for `identity` (spiffe://…/ns/N/sa/S), over an mTLS channel."""
    key = new_key()
    stub = ca_pb2_grpc.CertificateServiceStub(channel)
    resp = await stub.CreateCertificate(
        ca_pb2.CertificateRequest(
            csr=csr_pem(key), identity=identity, validity_seconds=ttl_seconds
        ),
        timeout=timeout,
    )
    return _issued(key, resp)
