"""The controller process: registry → model → pushes, plus the certificate authority.

Start-up order matters for restarts: the CA is loaded from disk first (a restart never makes a
new root), then the registry is read and translated, so the first subscriber to reconnect gets a
complete snapshot, not an empty one; only then do the listeners open.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from envoy.service.discovery.v3 import ads_pb2_grpc
from google.protobuf import json_format
from prometheus_client import CollectorRegistry, start_http_server

from controller.auth import NodeTokenAuthenticator, ServiceAccountTokenAuthenticator
from controller.auth_kube import (
    AGENT_USER,
    ServiceAccountTokenReviewAuthenticator,
    TokenReviewAuthenticator,
)
from controller.ca import CertificateAuthority
from controller.certs_service import CertificateServices, add_to_servers
from controller.distributor import Distributor, subscriber_for, wanted_for
from controller.flows_relay import FlowRelay
from controller.leader import ElectionConfig, LeaseElector
from controller.listeners import BOOTSTRAP_PORT, MTLS_PORT, ServingCertificates, make_listeners
from controller.metrics import ControllerMetrics
from controller.registry_kube import KubeRegistry, api_client_from
from controller.registry_local import LocalRegistry
from controller.resources import from_resource, to_message
from controller.translate import translate
from controller.trust_bundle_kube import KubeTrustBundlePublisher
from controller.waypoints import LocalStoreDeployer, WaypointTemplate
from controller.waypoints_kube import DEFAULT_IMAGE, KubeWaypointDeployer, kube_template
from nodemesh import admin, logsetup
from nodemesh.identity import parse_any
from nodemesh.local import cluster
from nodemesh.local.credentials import pod_recorded, pod_tokens_path
from nodemesh.local.runtime import load_plan
from nodemesh.local.state import StateDir
from nodemesh.local.system import controller_address

log = logging.getLogger("nodemesh.controller")
POLL = 0.05
SYNC_TIMEOUT = 30.0
DEFAULT_KUBE_CA_DIR = "/var/lib/nodemesh/ca"  # a persistent volume or Secret mount in Kubernetes
PROG = "python -m controller"


class Controller:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.bundles: KubeTrustBundlePublisher | None = None  # Kubernetes mode only
        if args.local_state:
            state = Path(args.local_state)
            ca_dir = Path(args.ca_dir or state / "ca")
            self.registry = LocalRegistry(state)
            tokens = NodeTokenAuthenticator(state / "credentials" / "node-tokens.json")
            workload_tokens = _local_workload_tokens(StateDir(state.name, state.parent))
            self.waypoints = _local_waypoints(StateDir(state.name, state.parent))
        else:
            api = api_client_from(args.kubeconfig, in_cluster=args.in_cluster)
            ca_dir = Path(args.ca_dir or DEFAULT_KUBE_CA_DIR)
            self.registry = KubeRegistry(api)
            # Callers building args by hand (tests) may leave --agent-user out: its default.
            tokens = TokenReviewAuthenticator(api, user=args.agent_user)
            workload_tokens = ServiceAccountTokenReviewAuthenticator(api)
            # Every replica serves certificates and config; only the leader writes to the API
            # server (waypoint Deployments). Without --leader-elect, the one replica writes.
            self.elector = (
                LeaseElector(api, args.leader_namespace, ElectionConfig(args.leader_id))
                if args.leader_elect
                else None
            )
            self.waypoints = KubeWaypointDeployer(
                api,
                kube_template(args.waypoint_image, args.trust_domain, logsetup.level_name()),
                self.elector.is_leader if self.elector else lambda: True,
            )
            # Waypoint pods and agents mount the trust bundle ConfigMap; the leader writes it.
            self.bundles = KubeTrustBundlePublisher(
                api,
                lambda: self.ca.trust_bundle_pem().decode(),
                args.leader_namespace,
                self.elector.is_leader if self.elector else lambda: True,
            )
            if self.elector:
                self.elector.on_change = self._leadership_changed
        self.ca = CertificateAuthority.load_or_create(ca_dir, args.trust_domain)
        self.metrics = ControllerMetrics(CollectorRegistry())
        self.metrics.root_expiry.set(self.ca.root_not_after.timestamp())
        self.certs = CertificateServices(
            self.ca,
            tokens,
            self.registry.service_accounts_on,
            self.metrics,
            workload_tokens=workload_tokens,
        )
        self.distributor = Distributor(self.metrics)
        self.flows = FlowRelay(self.metrics, self._known_waypoint)  # every component's events
        self.errors: list = []

    def _leadership_changed(self, leading: bool) -> None:
        self.waypoints.leadership_changed(leading)
        self.bundles.leadership_changed(leading)

    def refresh(self) -> bool:
        """Re-translate when the registry changed; publish only if the model changed."""
        if not self.registry.changed():
            return False
        started = time.monotonic()
        objects = self.registry.objects()
        result = translate(objects, trust_domain=self.args.trust_domain)
        if self.waypoints is not None:
            self.waypoints.reconcile(objects)
        if self.bundles is not None:
            self.bundles.reconcile(objects)
        self.errors = list(result.errors)
        self.metrics.translate_errors.set(len(self.errors))
        for err in result.errors:
            log.warning("left out of the mesh model: %s", err)
        old = self.distributor.snapshot
        if old is not None and old.version == result.snapshot.version:
            return False
        self.distributor.publish(result.snapshot, started)
        log.info(
            "model %s: %d workloads, %d services",
            result.snapshot.version,
            len(result.snapshot.workloads),
            len(result.snapshot.services),
        )
        return True

    def _known_waypoint(self, key: str) -> bool:
        """Whether "namespace/name" is a waypoint of the current model (flow reporters)."""
        snap = self.distributor.snapshot
        return snap is not None and key in snap.waypoints_by_key

    def routes(self) -> dict:
        def config(query):
            who = query.get("subscriber", [""])[0]
            snap = self.distributor.snapshot
            if snap is None:
                return {}
            identity = parse_any(who) if who.startswith("spiffe://") else None
            if identity is None:
                raise KeyError(
                    "pass ?subscriber=spiffe://<td>/nodemesh/node/<node> or a waypoint id"
                )
            _, _, scope = subscriber_for(identity)
            return {
                t: {n: json_format.MessageToDict(_decode(t, r.payload)) for n, r in res.items()}
                for t, res in wanted_for(snap, scope(snap)).items()
            }

        return {
            "/healthz": lambda q: {"ok": True},
            "/debug/subscribers": lambda q: {
                "version": getattr(self.distributor.snapshot, "version", None),
                "subscribers": self.distributor.states(),
            },
            "/debug/config": config,
            "/debug/registry": lambda q: {"errors": [str(e) for e in self.errors]},
            "/debug/certs": lambda q: {"issued": list(self.certs.issued)},
            **self.flows.routes(),  # /debug/flows (long-poll), /debug/flows/sources
            "/debug/ca": lambda q: {
                "trustDomain": self.ca.trust_domain,
                "rootNotAfter": self.ca.root_not_after.isoformat(),
                "trustBundle": self.ca.trust_bundle_pem().decode(),
            },
        }

    async def start(self) -> None:
        """Open every listener; afterwards `ports` says where they are (port 0 picks one)."""
        if isinstance(self.registry, KubeRegistry):
            self.registry.start()
            if self.elector:
                self.elector.start()
            self.waypoints.start()
            self.bundles.start()
            synced = await asyncio.to_thread(self.registry.wait_synced, SYNC_TIMEOUT)
            if not synced:
                log.warning(
                    "the API server has not listed every kind after %ss; serving what "
                    "is known and catching up",
                    SYNC_TIMEOUT,
                )
        self.refresh()
        args = self.args
        self.listeners = make_listeners(
            ServingCertificates(self.ca), args.listen, args.mtls_port, args.bootstrap_port
        )
        add_to_servers(self.certs, self.listeners.bootstrap, self.listeners.mtls)
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            self.distributor, self.listeners.mtls
        )
        self.flows.add_to_server(self.listeners.mtls)
        await self.listeners.mtls.start()
        await self.listeners.bootstrap.start()
        if args.metrics_port >= 0:
            start_http_server(args.metrics_port, args.listen, registry=self.metrics.registry)
        self.admin = await admin.serve(
            admin.AdminServer(self.routes()), "127.0.0.1", args.admin_port
        )
        self.ports = {
            "mtls": self.listeners.mtls_port,
            "bootstrap": self.listeners.bootstrap_port,
            "admin": self.admin.sockets[0].getsockname()[1],
        }
        self._poller = asyncio.ensure_future(self._poll())
        log.info("controller up: %s", self.ports)

    async def _poll(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:
                log.exception("registry refresh failed; serving the last good model")
            await asyncio.sleep(POLL)

    async def stop(self, grace: float = 2.0) -> None:
        self._poller.cancel()
        if isinstance(self.registry, KubeRegistry):
            await asyncio.to_thread(self.waypoints.stop)
            await asyncio.to_thread(self.bundles.stop)
            if self.elector:  # a clean stop releases the Lease: a successor takes over at once
                await asyncio.to_thread(self.elector.stop)
            await asyncio.to_thread(self.registry.stop)
        self.admin.close()
        await self.listeners.mtls.stop(grace)
        await self.listeners.bootstrap.stop(grace)

    async def run(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.stop()


def _local_waypoints(state: StateDir) -> LocalStoreDeployer | None:
    """Local mode runs each waypoint as a pod the controller writes into the store; the pods
    dial the controller at node1's address, where local mode runs it (nodemesh.local.system)."""
    try:
        address = controller_address(load_plan(state))
    except (SystemExit, LookupError, TypeError) as exc:  # load_plan exits when there is no plan
        log.warning("not deploying waypoints: no usable cluster plan in %s (%s)", state.path, exc)
        return None
    template = WaypointTemplate(sys.executable, address, str(state.path))
    return LocalStoreDeployer(state, template, cluster.wake_runtime)


def _local_workload_tokens(state: StateDir) -> ServiceAccountTokenAuthenticator:
    """Pod tokens the local runtime issued; a pod must also still be in the runtime's records."""
    return ServiceAccountTokenAuthenticator(
        pod_tokens_path(state),
        pod_exists=lambda principal: pod_recorded(state, principal.uid),
    )


def _decode(type_url: str, payload: bytes):
    return to_message(from_resource(type_url, payload))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--local-state", help="local cluster state directory (store.json, status.json, credentials)"
    )
    source.add_argument("--kubeconfig", help="watch the Kubernetes API server of this kubeconfig")
    source.add_argument(
        "--in-cluster",
        action="store_true",
        help="watch the API server of the cluster this pod runs in",
    )
    p.add_argument("--ca-dir", help="CA directory (default: <local-state>/ca)")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument("--listen", default="0.0.0.0")
    p.add_argument("--mtls-port", type=int, default=MTLS_PORT)
    p.add_argument("--bootstrap-port", type=int, default=BOOTSTRAP_PORT)
    p.add_argument("--metrics-port", type=int, default=15014)
    p.add_argument("--admin-port", type=int, default=15000)
    p.add_argument(
        "--leader-elect",
        action="store_true",
        help="Kubernetes mode, several replicas: only the Lease holder deploys waypoints",
    )
    p.add_argument("--leader-namespace", default="nodemesh-system", help="namespace of the Lease")
    p.add_argument(
        "--leader-id", default=socket.gethostname(), help="this replica's name (default: hostname)"
    )
    p.add_argument(
        "--waypoint-image", default=DEFAULT_IMAGE, help="image of the waypoint Deployments"
    )
    p.add_argument(
        "--agent-user",
        default=AGENT_USER,
        help="Kubernetes mode: the node agents' service account as TokenReview names it "
        "(system:serviceaccount:<namespace>:<name>); only its tokens may act for a node",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logsetup.configure(PROG)
    asyncio.run(Controller(parse_args(argv)).run())
    return 0
