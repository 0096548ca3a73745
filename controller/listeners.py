"""The controller's two gRPC listeners and its own serving certificate.

  - the mutual-TLS listener (15012): every client presents a certificate chaining to the mesh's
    trust bundle; expired, foreign-CA or missing client certificates fail the TLS handshake, so
    such a client never reaches a service. Serves config streams and workload certificates.
  - the bootstrap listener (15011): TLS with the controller's certificate only, because gRPC can
    either require client certificates or not ask for them. It serves only the two bootstrap
    services, where a bearer token stands in for the certificate the caller does not have yet:
    NodeBootstrap (a node credential buys the node's control-plane certificate) and
    WorkloadBootstrap (a pod's service-account token buys a waypoint its first certificate).
    Everything else, renewals included, needs the mTLS listener.

The serving certificate is issued by the controller's own CA at start-up to a key that never leaves
this process, for the name clients check (`CONTROLLER_NAME`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.ca import CertificateAuthority
from nodemesh.controlplane import CONTROLLER_NAME
from nodemesh.identity import SpiffeId

CONTROLLER_NAMESPACE = "nodemesh-system"
CONTROLLER_SA = "nodemesh-controller"
MTLS_PORT = 15012
BOOTSTRAP_PORT = 15011


@dataclass(frozen=True)
class ServingCredentials:
    key_pem: bytes
    chain_pem: bytes


def serving_credentials(ca: CertificateAuthority, ttl=timedelta(days=7)) -> ServingCredentials:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )
    identity = SpiffeId(ca.trust_domain, CONTROLLER_NAMESPACE, CONTROLLER_SA)
    issued = ca.sign_csr(
        csr.public_bytes(serialization.Encoding.PEM),
        identity,
        ttl=ttl,
        dns_names=(CONTROLLER_NAME, "localhost"),
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ServingCredentials(key_pem=key_pem, chain_pem=issued.chain_pem)


class ServingCertificates:
    """The listeners' certificate and client trust bundle, renewed while the controller runs.

    gRPC consults `fetch` at TLS handshakes; it returns a new configuration once the certificate
    is past half its life or the CA's trust bundle changed (a root rotation), else None (keep the
    current one). So a long-running controller never serves an expired certificate and starts
    trusting a new root without a restart.
    """

    def __init__(self, ca: CertificateAuthority, ttl=timedelta(days=7), clock=time.time) -> None:
        self.ca, self.ttl, self.clock = ca, ttl, clock
        self._issue()

    def _issue(self) -> None:
        self.current = serving_credentials(self.ca, self.ttl)
        self.bundle = self.ca.trust_bundle_pem()
        self.renew_at = self.clock() + self.ttl.total_seconds() / 2

    def configuration(self):
        return grpc.ssl_server_certificate_configuration(
            [(self.current.key_pem, self.current.chain_pem)], root_certificates=self.bundle
        )

    def fetch(self):
        if self.clock() < self.renew_at and self.ca.trust_bundle_pem() == self.bundle:
            return None
        self._issue()
        return self.configuration()

    def server_credentials(self, *, require_client_auth: bool):
        return grpc.dynamic_ssl_server_credentials(
            self.configuration(), self.fetch, require_client_authentication=require_client_auth
        )


GRPC_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@dataclass
class Listeners:
    mtls: grpc.aio.Server
    bootstrap: grpc.aio.Server
    mtls_port: int
    bootstrap_port: int


def make_listeners(
    certs: ServingCertificates, host: str, mtls_port: int, bootstrap_port: int
) -> Listeners:
    """Bind both listeners (port 0 picks a free one); services are added by the caller."""
    mtls = grpc.aio.server(options=GRPC_OPTIONS)
    bound_mtls = mtls.add_secure_port(
        f"{host}:{mtls_port}", certs.server_credentials(require_client_auth=True)
    )
    bootstrap = grpc.aio.server(options=GRPC_OPTIONS)
    bound_boot = bootstrap.add_secure_port(
        f"{host}:{bootstrap_port}", certs.server_credentials(require_client_auth=False)
    )
    return Listeners(mtls, bootstrap, bound_mtls, bound_boot)
