"""WorkloadBootstrap over real gRPC and TLS on loopback: a pod token buys its first certificate.

The pod tokens are made as the local runtime makes them (nodemesh.local.credentials.PodTokens)
and checked by the controller's ServiceAccountTokenAuthenticator, so the files both sides speak
are exercised end to end. Renewal then goes through CertificateService over mutual TLS.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from prometheus_client import CollectorRegistry

from controller.auth import NodeTokenAuthenticator, ServiceAccountTokenAuthenticator
from controller.ca import CertificateAuthority
from controller.certs_service import CertificateServices, add_to_servers
from controller.listeners import ServingCertificates, make_listeners
from controller.metrics import ControllerMetrics
from nodemesh import controlplane
from nodemesh.identity import SpiffeId, identity_of_certificate
from nodemesh.local.credentials import PodBinding, PodTokens, digest, pod_tokens_path
from nodemesh.local.state import StateDir
from nodemesh.proto import ca_pb2, ca_pb2_grpc

TD = "cluster.local"
WAYPOINT = PodBinding("shop", "shop-waypoint", "shop-waypoint-x7k2p", "uid-wp", "node2")
CONTROLLER_POD = PodBinding(
    "nodemesh-system", "nodemesh-controller", "nodemesh-controller", "uid-ctl", "node1"
)


class Harness:
    """A controller's certificate services on loopback, with one local cluster's pod tokens."""

    def __init__(self, tmp_path, *, workload_tokens=True, gone=()):
        self.tmp = tmp_path
        self.ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
        self.state = StateDir("ours", tmp_path)
        self.tokens = PodTokens(self.state)
        (tmp_path / "node-tokens.json").write_text(f'{{"{digest("node1-token")}": "node1"}}')
        authenticator = ServiceAccountTokenAuthenticator(
            pod_tokens_path(self.state), pod_exists=lambda p: p.uid not in gone
        )
        self.metrics = ControllerMetrics(CollectorRegistry())
        self.services = CertificateServices(
            self.ca,
            NodeTokenAuthenticator(tmp_path / "node-tokens.json"),
            lambda node: set(),
            self.metrics,
            workload_tokens=authenticator if workload_tokens else None,
        )

    def start_pod(self, binding: PodBinding, tokens: PodTokens | None = None) -> str:
        tokens = tokens or self.tokens
        pod_dir = tokens.state.pod_dir(binding.namespace, binding.pod, binding.uid)
        path = tokens.issue(binding, pod_dir)
        tokens.save()
        return controlplane.read_token(path)

    def refused(self, reason: str) -> float:
        return self.metrics.refused.labels(reason)._value.get()

    def issued(self) -> float:
        return self.metrics.issued.labels("workload")._value.get()

    async def __aenter__(self):
        self.listeners = make_listeners(ServingCertificates(self.ca), "127.0.0.1", 0, 0)
        add_to_servers(self.services, self.listeners.bootstrap, self.listeners.mtls)
        await self.listeners.mtls.start()
        await self.listeners.bootstrap.start()
        self.boot_addr = f"127.0.0.1:{self.listeners.bootstrap_port}"
        self.mtls_addr = f"127.0.0.1:{self.listeners.mtls_port}"
        return self

    async def __aexit__(self, *exc):
        await self.listeners.mtls.stop(0)
        await self.listeners.bootstrap.stop(0)

    async def bootstrap(self, token: str, **kw) -> controlplane.KeyAndCert:
        return await controlplane.bootstrap_workload(
            self.boot_addr, self.ca.trust_bundle_pem(), token, controlplane.new_key(), **kw
        )

    async def refusal(self, token: str | None) -> grpc.aio.AioRpcError:
        """The error a raw WorkloadBootstrap call with `token` (None: no metadata) gets."""
        key = controlplane.new_key()
        meta = [("authorization", f"Bearer {token}")] if token is not None else []
        async with controlplane.bootstrap_channel(self.boot_addr, self.ca.trust_bundle_pem()) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ca_pb2_grpc.WorkloadBootstrapStub(ch).Bootstrap(
                    ca_pb2.WorkloadBootstrapRequest(csr=controlplane.csr_pem(key)),
                    metadata=meta,
                    timeout=5,
                )
        return err.value


def run(coro):
    return asyncio.run(coro)


def leaf(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(chain_pem)


def test_a_pod_token_gets_exactly_its_service_account_identity(tmp_path):
    h = Harness(tmp_path)
    token = h.start_pod(WAYPOINT)

    async def go():
        async with h:
            return await h.bootstrap(token, ttl_seconds=3600)

    issued = run(go())
    cert = leaf(issued.chain_pem)
    assert identity_of_certificate(cert) == SpiffeId(TD, "shop", "shop-waypoint")
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 3600 <= lifetime.total_seconds() <= 3600 + 600  # asked-for TTL (+ the CA's skew)
    assert issued.not_after == int(cert.not_valid_after_utc.timestamp())
    assert issued.bundle_pem == h.ca.trust_bundle_pem()
    key = serialization.load_pem_private_key(issued.key_pem, None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    [record] = h.services.issued
    assert record["identity"] == "spiffe://cluster.local/ns/shop/sa/shop-waypoint"
    assert record["requestedBy"] == "pod shop/shop-waypoint-x7k2p on node2 (sa shop-waypoint)"
    assert h.issued() == 1


def test_the_csrs_subject_and_sans_are_ignored(tmp_path):
    h = Harness(tmp_path)
    token = h.start_pod(WAYPOINT)
    key = controlplane.new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=admin"))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(f"spiffe://{TD}/ns/kube-system/sa/admin"),
                    x509.DNSName("nodemesh-controller.nodemesh-system.svc"),
                ]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )

    async def go():
        bundle = h.ca.trust_bundle_pem()
        async with h, controlplane.bootstrap_channel(h.boot_addr, bundle) as ch:
            return await ca_pb2_grpc.WorkloadBootstrapStub(ch).Bootstrap(
                ca_pb2.WorkloadBootstrapRequest(
                    csr=csr.public_bytes(serialization.Encoding.PEM).decode()
                ),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=5,
            )

    cert = leaf(run(go()).cert_chain[0].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://{TD}/ns/shop/sa/shop-waypoint"
    ]
    assert san.get_values_for_type(x509.DNSName) == []
    assert "admin" not in cert.subject.rfc4514_string()


def test_bad_stale_and_foreign_tokens_are_unauthenticated(tmp_path):
    h = Harness(tmp_path)
    stale = h.start_pod(WAYPOINT)
    h.tokens.revoke(WAYPOINT.uid)  # the pod was deleted
    h.tokens.save()
    other_cluster = PodTokens(StateDir("theirs", tmp_path))
    foreign = h.start_pod(WAYPOINT, other_cluster)

    async def go():
        async with h:
            cases = {"missing": None, "garbage": "not-a-token", "stale": stale, "foreign": foreign}
            cases["node-credential"] = "node1-token"
            return {name: await h.refusal(token) for name, token in cases.items()}

    errors = run(go())
    for name, err in errors.items():
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, name
    assert "NODEMESH_TOKEN_FILE" in errors["missing"].details()
    assert "another cluster, or to a pod that is gone" in errors["stale"].details()
    assert h.refused("bad_workload_credential") == 5
    assert h.issued() == 0


def test_a_token_whose_pod_is_gone_is_refused(tmp_path):
    h = Harness(tmp_path, gone={WAYPOINT.uid})
    token = h.start_pod(WAYPOINT)

    async def go():
        async with h:
            return await h.refusal(token)

    err = run(go())
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "shop/shop-waypoint-x7k2p on node2" in err.details()
    assert "no longer exists" in err.details()


def test_the_controllers_own_identity_is_never_bootstrapped(tmp_path):
    h = Harness(tmp_path)
    token = h.start_pod(CONTROLLER_POD)

    async def go():
        async with h:
            return await h.refusal(token)

    err = run(go())
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "controller's own identity" in err.details()
    assert h.refused("reserved_identity") == 1
    assert h.issued() == 0


def test_the_waypoint_renews_as_itself_over_mtls_and_nothing_more(tmp_path):
    h = Harness(tmp_path)
    token = h.start_pod(WAYPOINT)
    own = f"spiffe://{TD}/ns/shop/sa/shop-waypoint"

    async def go():
        async with h:
            first = await h.bootstrap(token)
            async with controlplane.mtls_channel(h.mtls_addr, first) as ch:
                renewed = await controlplane.workload_certificate(ch, own)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/web")
            return first, renewed, err.value

    first, renewed, err = run(go())
    assert identity_of_certificate(leaf(renewed.chain_pem)) == SpiffeId(TD, "shop", "shop-waypoint")
    assert renewed.key_pem != first.key_pem  # a new key for every certificate
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "may only renew its own identity" in err.details()


def test_a_controller_without_workload_credentials_does_not_serve_it(tmp_path):
    h = Harness(tmp_path, workload_tokens=False)
    token = h.start_pod(WAYPOINT)

    async def go():
        async with h:
            return await h.refusal(token)

    assert run(go()).code() == grpc.StatusCode.UNIMPLEMENTED
