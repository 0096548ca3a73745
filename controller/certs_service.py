"""The certificate services: bootstrap (token in) and workload certificates (mTLS caller).

The controller, never the CSR, decides what identity a certificate carries:
  - NodeBootstrap: a valid node credential for node N gets spiffe://<td>/nodemesh/node/N, and
    only if the request names N too.
  - WorkloadBootstrap: a valid service-account token gets the identity of the pod it is bound
    to, spiffe://<td>/ns/<namespace>/sa/<service account>: a waypoint's first certificate. The
    token alone decides; the request names no identity. The controller's own identity is never
    issued this way.
  - CertificateService: the caller is whoever its verified client certificate says. A node agent
    (NodeId) may get the identity of a service account that has a pod on its own node right now;
    a waypoint or workload (SpiffeId) may get only its own identity back (renewal).
Refusals are counted by reason and answered PERMISSION_DENIED / UNAUTHENTICATED with a message
that tells an operator what to check.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import timedelta

import grpc
from cryptography import x509

from controller.auth import (
    AuthError,
    NodeAuthenticator,
    WorkloadAuthenticator,
    WorkloadPrincipal,
    bearer_token,
)
from controller.ca import CaError, CertificateAuthority
from controller.listeners import CONTROLLER_NAMESPACE, CONTROLLER_SA
from controller.metrics import ControllerMetrics
from nodemesh.identity import IdentityError, NodeId, SpiffeId, identity_of_certificate
from nodemesh.proto import ca_pb2, ca_pb2_grpc

log = logging.getLogger("nodemesh.controller.ca")
MAX_TTL = timedelta(hours=24)
MIN_TTL = timedelta(minutes=10)
ISSUED_RECORDS = 1000
# Service accounts whose identity no token buys: a pod holding the controller's token must not
# become a client the mesh takes for the controller.
RESERVED_ACCOUNTS = frozenset({(CONTROLLER_NAMESPACE, CONTROLLER_SA)})


def ttl_from(seconds: int) -> timedelta:
    """The requested lifetime, within [10 min, 24 h]; 0 means the default (24 h)."""
    if seconds <= 0:
        return MAX_TTL
    return max(MIN_TTL, min(MAX_TTL, timedelta(seconds=seconds)))


def caller_identity(context) -> SpiffeId | NodeId:
    """The identity of the TLS-verified client certificate of this call."""
    pems = context.auth_context().get("x509_pem_cert") or []
    if not pems:
        raise AuthError("no client certificate on this connection")
    try:
        return identity_of_certificate(x509.load_pem_x509_certificate(pems[0]))
    except (ValueError, IdentityError) as exc:
        raise AuthError(f"client certificate carries no usable identity: {exc}") from exc


def _response(issued, ca: CertificateAuthority) -> ca_pb2.CertificateResponse:
    return ca_pb2.CertificateResponse(
        cert_chain=[issued.cert_pem.decode(), *_split(issued.chain_pem, skip=issued.cert_pem)],
        trust_bundle=ca.trust_bundle_pem().decode(),
        not_after=int(issued.not_after.timestamp()),
    )


def _split(chain_pem: bytes, skip: bytes) -> list[str]:
    marker = b"-----END CERTIFICATE-----"
    parts = [p.strip() + b"\n" + marker + b"\n" for p in chain_pem.split(marker) if p.strip()]
    return [p.decode().strip() + "\n" for p in parts if p.strip() != skip.strip()]


class _Refusal(Exception):
    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason = code, reason


class CertificateServices:
    """Every servicer shares the CA, the authorization sources and the metrics.

    `workload_tokens` is optional: without it WorkloadBootstrap is not served (UNIMPLEMENTED).
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        tokens: NodeAuthenticator,
        service_accounts_on: Callable[[str], set[tuple[str, str]]],
        metrics: ControllerMetrics,
        *,
        workload_tokens: WorkloadAuthenticator | None = None,
    ) -> None:
        self.ca = ca
        self.tokens = tokens
        self.workload_tokens = workload_tokens
        self.service_accounts_on = service_accounts_on
        self.metrics = metrics
        # What was signed, newest last: `meshctl certs` shows it until agents serve their own.
        self.issued: deque[dict] = deque(maxlen=ISSUED_RECORDS)

    async def _refuse(self, context, exc: _Refusal):
        self.metrics.refused.labels(exc.reason).inc()
        log.warning("certificate refused (%s): %s", exc.reason, exc)
        await context.abort(exc.code, str(exc))

    def _sign(self, csr: str, identity, seconds: int, kind: str, caller: str = ""):
        try:
            issued = self.ca.sign_csr(csr.encode(), identity, ttl=ttl_from(seconds))
        except CaError as exc:
            raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad_csr", str(exc)) from exc
        self.issued.append(
            {
                "identity": str(identity),
                "kind": kind,
                "requestedBy": caller or str(identity),
                "serial": f"{issued.serial:x}",
                "notBefore": issued.not_before.isoformat(),
                "notAfter": issued.not_after.isoformat(),
                "pem": issued.cert_pem.decode(),
            }
        )
        self.metrics.issued.labels(kind).inc()
        self.metrics.leaf_expiry.labels(kind).set(issued.not_after.timestamp())
        log.info("issued %s certificate for %s until %s", kind, identity, issued.not_after)
        return _response(issued, self.ca)

    # -- NodeBootstrap -----------------------------------------------------------------------
    async def Bootstrap(self, request, context):  # gRPC method name
        self.metrics.csr.inc()
        try:
            try:
                token = bearer_token(context.invocation_metadata())
                # TokenReview is a blocking HTTP call: keep it off the event loop.
                node = await asyncio.to_thread(self.tokens.authenticate, token)
            except AuthError as exc:
                raise _Refusal(
                    grpc.StatusCode.UNAUTHENTICATED, "bad_node_credential", str(exc)
                ) from exc
            if request.node != node:
                raise _Refusal(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "wrong_node",
                    f"this credential belongs to node {node!r}, not {request.node!r}",
                )
            try:
                identity = NodeId(self.ca.trust_domain, node)
            except IdentityError as exc:  # a node name that cannot be an identity path segment
                raise _Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad_node_name", str(exc)) from exc
            return self._sign(request.csr, identity, request.validity_seconds, "node")
        except _Refusal as exc:
            await self._refuse(context, exc)

    # -- WorkloadBootstrap (served through WorkloadBootstrapService) ------------------------------
    async def bootstrap_workload(self, request, context):
        self.metrics.csr.inc()
        try:
            principal = await self._workload_principal(context)
            identity = self._workload_identity(principal)
            return self._sign(
                request.csr, identity, request.validity_seconds, "workload", str(principal)
            )
        except _Refusal as exc:
            await self._refuse(context, exc)

    async def _workload_principal(self, context) -> WorkloadPrincipal:
        if self.workload_tokens is None:
            raise _Refusal(
                grpc.StatusCode.UNIMPLEMENTED,
                "no_workload_credentials",
                "this controller checks no service-account tokens",
            )
        try:
            token = bearer_token(context.invocation_metadata())
            # TokenReview is a blocking HTTP call: keep it off the event loop.
            return await asyncio.to_thread(self.workload_tokens.authenticate, token)
        except AuthError as exc:
            raise _Refusal(
                grpc.StatusCode.UNAUTHENTICATED, "bad_workload_credential", str(exc)
            ) from exc

    def _workload_identity(self, principal: WorkloadPrincipal) -> SpiffeId:
        """The identity the token's pod runs as, unless it is one no pod may hold."""
        try:
            identity = SpiffeId(
                self.ca.trust_domain, principal.namespace, principal.service_account
            )
        except IdentityError as exc:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "unusable_identity",
                f"{principal} has no usable identity: {exc}",
            ) from exc
        if (principal.namespace, principal.service_account) in RESERVED_ACCOUNTS:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "reserved_identity",
                f"{identity} is the controller's own identity and is never issued to a pod; "
                "run the waypoint under a service account of its own",
            )
        return identity

    # -- CertificateService -------------------------------------------------------------------
    async def CreateCertificate(self, request, context):  # gRPC method name
        self.metrics.csr.inc()
        try:
            try:
                caller = caller_identity(context)
                wanted = SpiffeId.parse(request.identity)
            except (AuthError, IdentityError) as exc:
                raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, "bad_identity", str(exc)) from exc
            self._authorize(caller, wanted)
            return self._sign(
                request.csr, wanted, request.validity_seconds, "workload", str(caller)
            )
        except _Refusal as exc:
            await self._refuse(context, exc)

    def _authorize(self, caller, wanted: SpiffeId) -> None:
        if wanted.trust_domain != self.ca.trust_domain:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "foreign_trust_domain",
                f"{wanted} is not in trust domain {self.ca.trust_domain!r}",
            )
        if isinstance(caller, NodeId):
            accounts = self.service_accounts_on(caller.node)
            if (wanted.namespace, wanted.service_account) not in accounts:
                raise _Refusal(
                    grpc.StatusCode.PERMISSION_DENIED,
                    "no_pod_on_node",
                    f"node {caller.node!r} runs no pod with service account "
                    f"{wanted.namespace}/{wanted.service_account}; an agent may only get "
                    "identities of pods on its own node",
                )
        elif caller != wanted:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "not_own_identity",
                f"{caller} may only renew its own identity, not {wanted}",
            )


class WorkloadBootstrapService:
    """The WorkloadBootstrap servicer: its own object, because NodeBootstrap's method has the
    same name (Bootstrap) and gRPC finds handlers by method name on the servicer."""

    def __init__(self, services: CertificateServices) -> None:
        self.services = services

    async def Bootstrap(self, request, context):  # gRPC method name
        return await self.services.bootstrap_workload(request, context)


def add_to_servers(services: CertificateServices, bootstrap_server, mtls_server) -> None:
    """Bootstrap services on the server-auth-only listener; CertificateService behind mTLS."""
    ca_pb2_grpc.add_NodeBootstrapServicer_to_server(services, bootstrap_server)
    if services.workload_tokens is not None:
        ca_pb2_grpc.add_WorkloadBootstrapServicer_to_server(
            WorkloadBootstrapService(services), bootstrap_server
        )
    ca_pb2_grpc.add_CertificateServiceServicer_to_server(services, mtls_server)
