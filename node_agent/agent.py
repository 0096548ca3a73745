"""The node agent: bootstraps its identity, follows the controller's config, runs enrolled pods.

Theory of operation: the agent trades its node credential for a node certificate, opens one
config stream (node_agent.state.AgentConfig applies it), and after every change reconciles the
set of enrolled pods on its node: a pod that appears (enrolled, with a sandbox) gets a workload
certificate for its service account, capture programs and a PodDataplane; a pod that leaves the
mesh (namespace label removed, pod deleted) gets them removed, live, without restarting the
pod. BPF programs are compiled on the first enrolled pod, so a node without mesh pods costs
nothing. A restarted agent re-adopts pods through their pinned capture links.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from prometheus_client import CollectorRegistry, start_http_server

from controller import scope
from node_agent import cni_server
from node_agent.capture import CaptureProgram
from node_agent.capture_events import CaptureEvents
from node_agent.pod import PodContext, PodDataplane
from node_agent.policy import PolicyIndex
from node_agent.routing import RoundRobin
from node_agent.sandboxes import SandboxStore
from node_agent.state import AgentConfig
from node_agent.telemetry import AgentMetrics, ConnectionTable
from nodemesh import admin, bpffs, controlplane
from nodemesh.controlplane import KeyAndCert
from nodemesh.flows import FlowRing
from nodemesh.flows.agent import AgentFlows
from nodemesh.flows.relay_client import FlowReporter, ReporterMetrics
from nodemesh.flows_admin import flows_route
from nodemesh.tasks import TaskSet
from nodemesh.xds.stream import ConfigStream

log = logging.getLogger("nodemesh.agent")


def access_log(line: str) -> None:
    """One JSON line per connection on stdout: the agent pod's log is its access log."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


RENEW_FRACTION = 0.5  # renew at half-life, as DESIGN asks
RENEW_CHECK_SECONDS = 30.0


def renewal_due(kc: KeyAndCert, now: float) -> bool:
    """Past RENEW_FRACTION of the certificate's own lifetime (whatever TTL the CA gave)."""
    start = x509.load_pem_x509_certificate(kc.chain_pem).not_valid_before_utc.timestamp()
    return now >= start + (kc.not_after - start) * RENEW_FRACTION


@dataclass
class AgentSettings:
    node: str
    controller: str  # host of the controller's listeners
    token: str  # node credential
    bundle_pem: bytes  # trust bundle for the first (bootstrap) connection
    trust_domain: str = "cluster.local"
    bootstrap_port: int = 15011
    mtls_port: int = 15012
    pin_root: str = "/sys/fs/bpf/nodemesh"
    bpffs_mount: str = "/sys/fs/bpf"  # mounted here if pin_root is on no bpffs
    metrics_port: int = 15020  # Prometheus, on the node's addresses
    admin_port: int = 15000  # read-only admin, 127.0.0.1 only
    cni_socket: str = ""  # serve the CNI plugin here (Kubernetes mode); "" = no plugin
    sandbox_state: str = ""  # where pods' sandboxes persist across restarts ("": memory)
    token_file: str = ""  # Kubernetes: the projected token, re-read at each renewal ("": token)


class NodeAgent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.config = AgentConfig()
        self.pick = RoundRobin()
        self.pods: dict[str, PodDataplane] = {}
        self.certs: dict[str, KeyAndCert] = {}
        self.capture: CaptureProgram | None = None
        self.sandboxes = SandboxStore(settings.sandbox_state)  # netns/cgroup from CNI
        self._cni = None
        self._policy_generation = -1
        self._policies = PolicyIndex.build([], trust_domain=settings.trust_domain)
        self._changed = asyncio.Event()
        self._stream = ConfigStream(f"agent~{settings.node}", scope.TYPE_URLS, self._on_config)
        self._tasks = TaskSet(f"agent/{settings.node}")
        self._admin = None
        self._channel = None
        self._metrics_server = None
        self.registry = CollectorRegistry()
        self.metrics = AgentMetrics(self.registry)
        self.flows = FlowRing()  # flow events of this node's connections: /debug/flows
        hooks = self.flow_hooks = AgentFlows(settings.node, self.flows)
        self.capture_events: CaptureEvents | None = None  # eBPF decisions → flows, metrics
        self.flow_reporter = FlowReporter(self.flows, ReporterMetrics(self.registry))  # → relay
        self.connections = ConnectionTable(self.metrics, access_log, hooks=hooks)

    # -- config ---------------------------------------------------------------------------------
    def _on_config(self, type_url, upserts, removals) -> dict:
        rejected = self.config.apply(type_url, upserts, removals)
        self.metrics.config_generation.set(self.config.generation)
        for name, reason in rejected.items():
            log.warning("rejected %s %s: %s", type_url.rsplit(".", 1)[-1], name, reason)
        self._changed.set()
        return rejected

    def policies(self) -> PolicyIndex:
        """The compiled policies of the current state, rebuilt once per config change."""
        if self._policy_generation != self.config.generation:
            state = self.config.state
            self._policies = PolicyIndex.build(
                [*state.authorization, *state.peer_authentication],
                trust_domain=self.settings.trust_domain,
            )
            self._policy_generation = self.config.generation
        return self._policies

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Bootstrap, bind the admin and metrics listeners, then start following config.

        Listeners are bound before any task starts, so a failure leaves nothing running."""
        s = self.settings
        self.node_identity = await controlplane.bootstrap(
            f"{s.controller}:{s.bootstrap_port}", s.bundle_pem, s.node, s.token
        )
        log.info("node %s bootstrapped", s.node)
        self._admin = await admin.serve(admin.AdminServer(self.routes()), "127.0.0.1", s.admin_port)
        if s.metrics_port >= 0:
            self._metrics_server, _ = start_http_server(s.metrics_port, registry=self.registry)
        self._channel = controlplane.mtls_channel(
            f"{s.controller}:{s.mtls_port}", self.node_identity
        )
        address = f"{s.controller}:{s.mtls_port}"
        config = self._stream.run(lambda: controlplane.mtls_channel(address, self.node_identity))
        self._tasks.spawn(config, "config-stream")
        flows = self.flow_reporter.run(
            lambda: controlplane.mtls_channel(address, self.node_identity)
        )
        self._tasks.spawn(flows, "flow-reports")  # stopped with the other tasks
        self._tasks.spawn(self._reconcile_loop(), "reconcile")
        self._tasks.spawn(self._renew_loop(), "renew")
        if s.cni_socket:
            cni = cni_server.CniService(
                self.sandboxes,
                lambda: self.config.state.local,
                self.pods.__contains__,
                self._changed.set,
            )
            self._cni = await cni_server.serve(s.cni_socket, cni)
            self._tasks.spawn(cni_server.adopt_loop(cni), "adopt")

    async def stop(self, *, detach: bool = True) -> None:
        """Graceful: drain every pod's tunnels, then remove capture (detach=False keeps it)."""
        if self._cni is not None:
            self._cni.close()
        self._tasks.cancel()
        await self._tasks.wait()
        await asyncio.gather(*(p.stop() for p in self.pods.values()), return_exceptions=True)
        if self.capture_events is not None:
            self.capture_events.stop()
        if self.capture is not None:
            self.capture.close(detach=detach)
        if self._admin is not None:
            self._admin.close()
        if self._metrics_server is not None:
            await asyncio.to_thread(self._metrics_server.shutdown)
            self._metrics_server.server_close()
        if self._channel is not None:
            await self._channel.close()

    def routes(self) -> dict:
        """The admin endpoint: what this agent runs, holds and carries right now."""
        return {
            "/healthz": lambda q: {"ok": True, "synced": self._stream.synced()},
            "/debug/workloads": lambda q: [
                {
                    "uid": uid,
                    "name": f"{d.workload.namespace}/{d.workload.name}",
                    "address": d.ip,
                    "identity": d.workload.identity,
                    "capture": self.capture.pods[uid].counters()
                    if self.capture and uid in self.capture.pods
                    else None,
                }
                for uid, d in self.pods.items()
            ],
            "/debug/certs": lambda q: {
                "node": {
                    "pem": self.node_identity.chain_pem.decode(),
                    "notAfter": self.node_identity.not_after,
                },
                "workloads": [
                    {"identity": ident, "notAfter": kc.not_after, "pem": kc.chain_pem.decode()}
                    for ident, kc in sorted(self.certs.items())
                ],
            },
            "/debug/connections": lambda q: self.connections.snapshot(),
            "/debug/flows": flows_route(self.flows),  # long-poll: ?since=N&limit=M&wait=S
            "/debug/config": lambda q: {
                "generation": self.config.generation,
                "stream": {t: c.state() for t, c in self._stream.clients.items()},
            },
        }

    async def _reconcile_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed; will retry on the next change")
                await asyncio.sleep(1)
                self._changed.set()

    # -- pods -------------------------------------------------------------------------------------
    def wanted(self) -> dict:
        return {
            uid: w
            for uid, w in self.sandboxes.merged(self.config.state.local).items()
            if w.enrolled and w.netns and w.cgroup and w.addresses
        }

    async def reconcile(self) -> None:
        wanted = self.wanted()
        for uid in [u for u in self.pods if u not in wanted]:
            await self._remove(uid)
        for uid, workload in wanted.items():
            if uid not in self.pods:
                await self._add(workload)

    def _program(self) -> CaptureProgram:
        if self.capture is None:
            if not bpffs.on_bpffs(Path(self.settings.bpffs_mount)):
                log.warning(
                    "%s is not a bpffs in this mount namespace: pins will not outlive "
                    "this agent (was the cluster brought up by 'meshctl local up'?)",
                    self.settings.bpffs_mount,
                )
            started = time.monotonic()
            self.capture = CaptureProgram(
                pin_root=self.settings.pin_root, bpffs_mount=self.settings.bpffs_mount
            )
            log.info("capture programs compiled in %.1fs", time.monotonic() - started)
        return self.capture

    def _watch_capture(self, program: CaptureProgram) -> CaptureEvents:
        """Capture decisions become flow events (point `captured`) and metrics, once."""
        if self.capture_events is None:
            self.capture_events = CaptureEvents(
                program,
                self.flow_hooks.capture,
                lambda uid: getattr(self.pods.get(uid), "workload", None),
            )
            self.capture_events.start(asyncio.get_running_loop())
            self.flow_hooks.captures = self.capture_events
            self.metrics.watch_capture(program.reason_counts, program.event_drops)
        return self.capture_events

    async def _renew_loop(self) -> None:
        """Renew certificates at half-life; pods switch to the new one for new connections
        while open tunnels carry on (nothing is dropped)."""
        while True:
            await asyncio.sleep(RENEW_CHECK_SECONDS)
            try:
                await self.renew_due(time.time())
            except Exception:
                log.exception("certificate renewal failed; retrying in %ss", RENEW_CHECK_SECONDS)

    async def renew_due(self, now: float) -> None:
        s = self.settings
        if renewal_due(self.node_identity, now):
            # The kubelet rotates a projected token in place (it expires within hours, the node
            # certificate renews at half of its day): read it again rather than reuse the first.
            token = controlplane.read_token(s.token_file) if s.token_file else s.token
            self.node_identity = await controlplane.bootstrap(
                f"{s.controller}:{s.bootstrap_port}", s.bundle_pem, s.node, token
            )
            old, self._channel = (
                self._channel,
                controlplane.mtls_channel(f"{s.controller}:{s.mtls_port}", self.node_identity),
            )
            await old.close(grace=5)
            log.info("renewed the node certificate of %s", s.node)
        for identity, held in list(self.certs.items()):
            if not renewal_due(held, now):
                continue
            renewed = await self._certificate(identity, force=True)
            for dataplane in self.pods.values():
                if dataplane.workload.identity == identity:
                    dataplane.pool.update_identity(renewed)
                    dataplane.hbone.update_identity(renewed)
            log.info("renewed %s (valid until %s)", identity, time.ctime(renewed.not_after))

    async def _certificate(self, identity: str, force: bool = False) -> KeyAndCert:
        cached = self.certs.get(identity)
        if cached is not None and not force and not renewal_due(cached, time.time()):
            return cached
        issued = await controlplane.workload_certificate(self._channel, identity)
        self.certs[identity] = issued
        self.metrics.certificate_expiry.labels(identity).set(issued.not_after)
        return issued

    async def _add(self, workload) -> None:
        program = await asyncio.to_thread(self._program)
        events = self._watch_capture(program)
        identity = await self._certificate(workload.identity)
        ctx = PodContext(
            state=lambda: self.config.state,
            policies=self.policies,
            pick=self.pick,
            original_destination=events.original_destination,
            connections=self.connections,
            capture=program.pods.get,
        )
        dataplane = PodDataplane(workload, identity, ctx)
        await dataplane.start()
        program.attach_pod(
            workload.uid,
            workload.cgroup,
            workload.netns,
            pod_ip=workload.addresses[0],
            inbound_listener=dataplane.inbound_sock,
        )
        self.pods[workload.uid] = dataplane
        self.metrics.captured_pods.set(len(self.pods))
        log.info(
            "enrolled %s/%s (%s) as %s",
            workload.namespace,
            workload.name,
            workload.addresses[0],
            workload.identity,
        )

    async def _remove(self, uid: str) -> None:
        dataplane = self.pods.pop(uid)
        self.metrics.captured_pods.set(len(self.pods))
        if self.capture is not None and uid in self.capture.pods:
            self.capture.pods[uid].detach()
        await dataplane.stop()
        log.info("un-enrolled %s/%s", dataplane.workload.namespace, dataplane.workload.name)
