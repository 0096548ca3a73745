"""The certificate services over real gRPC with real TLS, on loopback.

Covers what the controller must refuse: bootstrap without or with a wrong node credential, a CSR
for an identity with no pod on the caller's node, a waypoint asking for someone else's identity,
and clients whose certificates are expired or from a foreign CA (their TLS handshake fails).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from prometheus_client import CollectorRegistry

from controller.auth import NodeTokenAuthenticator
from controller.ca import CertificateAuthority
from controller.certs_service import CertificateServices, add_to_servers
from controller.listeners import ServingCertificates, make_listeners
from controller.metrics import ControllerMetrics
from nodemesh import controlplane
from nodemesh.identity import NodeId, SpiffeId, identity_of_certificate
from nodemesh.local.credentials import digest

TD = "cluster.local"
TOKENS = {"node1": "token-of-node1", "node2": "token-of-node2"}
PODS_ON = {"node1": {("shop", "web")}, "node2": {("shop", "db")}}


class Harness:
    def __init__(self, tmp_path, clock=None):
        self.tmp = tmp_path
        self.ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
        tokens = tmp_path / "tokens.json"
        tokens.write_text("{" + ",".join(f'"{digest(t)}": "{n}"' for n, t in TOKENS.items()) + "}")
        self.metrics = ControllerMetrics(CollectorRegistry())
        self.services = CertificateServices(
            self.ca, NodeTokenAuthenticator(tokens), lambda n: PODS_ON.get(n, set()), self.metrics
        )

    async def __aenter__(self):
        self.serving = ServingCertificates(self.ca)
        self.listeners = make_listeners(self.serving, "127.0.0.1", 0, 0)
        add_to_servers(self.services, self.listeners.bootstrap, self.listeners.mtls)
        await self.listeners.mtls.start()
        await self.listeners.bootstrap.start()
        self.boot_addr = f"127.0.0.1:{self.listeners.bootstrap_port}"
        self.mtls_addr = f"127.0.0.1:{self.listeners.mtls_port}"
        return self

    async def __aexit__(self, *exc):
        await self.listeners.mtls.stop(0)
        await self.listeners.bootstrap.stop(0)

    async def node_identity(self, node="node1"):
        return await controlplane.bootstrap(
            self.boot_addr, self.ca.trust_bundle_pem(), node, TOKENS[node]
        )


def run(coro):
    return asyncio.run(coro)


def leaf_identity(chain_pem: bytes):
    return identity_of_certificate(x509.load_pem_x509_certificate(chain_pem))


def test_bootstrap_issues_the_node_identity_and_openssl_agrees(tmp_path):
    async def go():
        async with Harness(tmp_path) as h:
            issued = await h.node_identity("node2")
            return h, issued

    h, issued = run(go())
    assert leaf_identity(issued.chain_pem) == NodeId(TD, "node2")
    if shutil.which("openssl"):
        (tmp_path / "root.pem").write_bytes(h.ca.trust_bundle_pem())
        (tmp_path / "leaf.pem").write_bytes(issued.chain_pem)
        out = subprocess.run(
            ["openssl", "verify", "-CAfile", tmp_path / "root.pem", tmp_path / "leaf.pem"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    ("node", "token", "code"),
    [
        ("node1", None, grpc.StatusCode.UNAUTHENTICATED),
        ("node1", "not-a-token", grpc.StatusCode.UNAUTHENTICATED),
        ("node2", TOKENS["node1"], grpc.StatusCode.PERMISSION_DENIED),
    ],
    ids=["missing", "wrong", "other-node"],
)
def test_bootstrap_refuses_bad_node_credentials(tmp_path, node, token, code):
    async def go():
        async with Harness(tmp_path) as h:
            key = controlplane.new_key()
            async with controlplane.bootstrap_channel(h.boot_addr, h.ca.trust_bundle_pem()) as ch:
                from nodemesh.proto import ca_pb2, ca_pb2_grpc

                stub = ca_pb2_grpc.NodeBootstrapStub(ch)
                meta = [("authorization", f"Bearer {token}")] if token else []
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Bootstrap(
                        ca_pb2.BootstrapRequest(node=node, csr=controlplane.csr_pem(key)),
                        metadata=meta,
                        timeout=5,
                    )
                return err.value.code(), h

    got, h = run(go())
    assert got == code
    assert h.metrics.issued.labels("node")._value.get() == 0


def test_agent_gets_identities_of_pods_on_its_node_only(tmp_path):
    async def go():
        async with Harness(tmp_path) as h:
            node1 = await h.node_identity("node1")
            async with controlplane.mtls_channel(h.mtls_addr, node1) as ch:
                web = await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/web")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/db")
            return web, err.value

    web, err = run(go())
    assert leaf_identity(web.chain_pem) == SpiffeId(TD, "shop", "web")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "runs no pod with service account shop/db" in err.details()


def test_csr_subject_and_sans_are_ignored(tmp_path):
    """Whatever the CSR asks for, the certificate carries exactly the authorized identity."""
    from cryptography.hazmat.primitives import hashes, serialization

    from nodemesh.proto import ca_pb2, ca_pb2_grpc

    async def go():
        async with Harness(tmp_path) as h:
            node1 = await h.node_identity("node1")
            key = controlplane.new_key()
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name.from_rfc4514_string("CN=admin"))
                .add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.UniformResourceIdentifier(
                                f"spiffe://{TD}/ns/kube-system/sa/admin"
                            ),
                        ]
                    ),
                    critical=False,
                )
                .sign(key, hashes.SHA256())
            )
            async with controlplane.mtls_channel(h.mtls_addr, node1) as ch:
                stub = ca_pb2_grpc.CertificateServiceStub(ch)
                return await stub.CreateCertificate(
                    ca_pb2.CertificateRequest(
                        csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
                        identity=f"spiffe://{TD}/ns/shop/sa/web",
                    ),
                    timeout=5,
                )

    resp = run(go())
    cert = x509.load_pem_x509_certificate(resp.cert_chain[0].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://{TD}/ns/shop/sa/web"
    ]
    assert san.get_values_for_type(x509.DNSName) == []


def test_a_workload_identity_may_renew_only_itself(tmp_path):
    async def go():
        async with Harness(tmp_path) as h:
            node1 = await h.node_identity("node1")
            async with controlplane.mtls_channel(h.mtls_addr, node1) as ch:
                web = await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/web")
            async with controlplane.mtls_channel(h.mtls_addr, web) as ch:
                again = await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/web")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/db")
            return again, err.value

    again, err = run(go())
    assert leaf_identity(again.chain_pem) == SpiffeId(TD, "shop", "web")
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def _client_from(ca: CertificateAuthority, bundle: bytes, identity, ttl=timedelta(hours=1)):
    key = controlplane.new_key()
    issued = ca.sign_csr(controlplane.csr_pem(key).encode(), identity, ttl=ttl)
    return controlplane.KeyAndCert(controlplane.key_pem(key), issued.chain_pem, bundle, 0)


def _mtls_call_fails(h: Harness, client) -> grpc.StatusCode:
    async def go():
        async with controlplane.mtls_channel(h.mtls_addr, client) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await controlplane.workload_certificate(
                    ch, f"spiffe://{TD}/ns/shop/sa/web", timeout=5
                )
            return err.value.code()

    return go()


def test_foreign_ca_and_expired_client_certificates_fail_the_handshake(tmp_path):
    three_days_ago = lambda: time.time() - 3 * 86400  # noqa: E731
    # The mesh's root has existed for days, so a leaf it issued then has expired by now.
    past = CertificateAuthority.load_or_create(tmp_path / "mesh" / "ca", TD, clock=three_days_ago)

    async def go():
        async with Harness(tmp_path / "mesh") as h:
            foreign = CertificateAuthority.load_or_create(tmp_path / "foreign", TD)
            forged = _client_from(foreign, h.ca.trust_bundle_pem(), NodeId(TD, "node1"))
            expired = _client_from(past, h.ca.trust_bundle_pem(), NodeId(TD, "node1"))
            fresh = _client_from(h.ca, h.ca.trust_bundle_pem(), NodeId(TD, "node1"))
            codes = [await _mtls_call_fails(h, c) for c in (forged, expired)]
            async with controlplane.mtls_channel(h.mtls_addr, fresh) as ch:  # control: works
                await controlplane.workload_certificate(ch, f"spiffe://{TD}/ns/shop/sa/web")
            return codes, h

    codes, h = run(go())
    assert codes == [grpc.StatusCode.UNAVAILABLE] * 2  # no TLS session: nothing was served
    assert h.metrics.csr._value.get() == 1  # only the control call reached the service


def test_serving_certificate_renews_at_half_life_and_follows_root_rotation(tmp_path):
    now = [time.time()]
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", TD)
    serving = ServingCertificates(ca, ttl=timedelta(hours=2), clock=lambda: now[0])
    first = serving.current.chain_pem
    assert serving.fetch() is None  # young certificate, same bundle: keep it
    now[0] += 3601  # past half of two hours
    assert serving.fetch() is not None and serving.current.chain_pem != first
    assert serving.fetch() is None
    ca.rotate_root()
    assert serving.fetch() is not None  # the new root must be trusted for client certificates
    assert serving.bundle == ca.trust_bundle_pem()


def test_clients_still_connect_after_the_serving_certificate_was_renewed(tmp_path):
    async def go():
        async with Harness(tmp_path) as h:
            await h.node_identity("node1")
            h.serving.renew_at = 0  # due now: the next handshake gets a fresh certificate
            return await h.node_identity("node2")

    issued = run(go())
    assert leaf_identity(issued.chain_pem) == NodeId(TD, "node2")


def test_foreign_ca_and_expired_certificates_cannot_open_the_config_stream(tmp_path):
    """The same refusal for DeltaAggregatedResources itself, not only certificate calls."""
    from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

    from controller.distributor import Distributor

    past = CertificateAuthority.load_or_create(
        tmp_path / "mesh" / "ca", TD, clock=lambda: time.time() - 3 * 86400
    )

    async def open_stream(h: Harness, client) -> grpc.StatusCode | None:
        async with controlplane.mtls_channel(h.mtls_addr, client) as ch:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(ch).DeltaAggregatedResources()
            try:
                await call.write(
                    discovery_pb2.DeltaDiscoveryRequest(type_url="type.googleapis.com/x")
                )
                await asyncio.wait_for(call.read(), 2)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
            except TimeoutError:
                return None  # the stream is open and waiting: it was accepted
            finally:
                call.cancel()
            return None

    async def go():
        async with Harness(tmp_path / "mesh") as h:
            dist = Distributor(h.metrics)
            ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(dist, h.listeners.mtls)
            foreign = CertificateAuthority.load_or_create(tmp_path / "foreign", TD)
            bundle = h.ca.trust_bundle_pem()
            node = NodeId(TD, "node1")
            forged = await open_stream(h, _client_from(foreign, bundle, node))
            expired = await open_stream(h, _client_from(past, bundle, node))
            fresh = await open_stream(h, _client_from(h.ca, bundle, node))
            return forged, expired, fresh

    forged, expired, fresh = run(go())
    assert forged == grpc.StatusCode.UNAVAILABLE
    assert expired == grpc.StatusCode.UNAVAILABLE
    assert fresh is None  # control: a valid node certificate opens the stream
