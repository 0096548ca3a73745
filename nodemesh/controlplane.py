"""Client side of the controller's services, shared by node agents, waypoints and tests.

Keys are generated here and never leave the calling process: the controller sees only CSRs.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nodemesh.proto import ca_pb2, ca_pb2_grpc

CONTROLLER_NAME = "nodemesh-controller.nodemesh-system.svc"


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
