"""The local cluster's runtime daemon: kubelet, kube-proxy, cluster DNS and the Deployment
controller of a local cluster, in one asyncio process per cluster.

Theory of operation: `meshctl apply` writes the store and sends SIGHUP. The daemon then reconciles:
it plans pods (nodemesh.local.workloads), creates and removes pod sandboxes, supervises container
processes, recomputes Service endpoints from ready pods, installs kube-proxy rules in every node
namespace (only when they changed) and swaps the DNS zone. After each pass it publishes
`status.json` with `observedGeneration`, which `meshctl apply` waits for. Container state changes
(started, ready, exited) also wake the loop, so endpoints follow readiness.

Before it creates anything, the daemon records it in `runtime.json`; a restarted daemon re-adopts
the sandboxes listed there (restarting their containers), and `meshctl local down` can remove
everything even if the daemon is gone.

As kubelet does with projected service-account tokens, the daemon gives each pod a token when it
starts the pod's containers and withdraws it (from the controller's table) as soon as the pod is
being deleted; re-adopted pods keep theirs (nodemesh.local.credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import uuid
from pathlib import Path

from nodemesh.local import cgroups, kubeproxy, netns
from nodemesh.local.addressing import ClusterPlan, NodePlan, allocate_pod_ip, veth_name
from nodemesh.local.credentials import PodTokens
from nodemesh.local.dns import ZoneSnapshot
from nodemesh.local.dns_server import ClusterDnsServer
from nodemesh.local.pods import Pod, PodRecord
from nodemesh.local.prometheus_config import PrometheusPaths
from nodemesh.local.prometheus_targets import scrape_targets
from nodemesh.local.services import PodView, build_services, dns_records, kubeproxy_ports
from nodemesh.local.state import StateDir, read_json, write_json_atomic
from nodemesh.local.status import pending_status, pod_status
from nodemesh.local.store import Store
from nodemesh.local.workloads import RunningPod, plan_pods
from nodemesh.tasks import TaskSet

log = logging.getLogger("nodemesh.runtime")
POLL_SECONDS = 1.0
SHUTDOWN_GRACE = 5.0
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' vowel-free suffix alphabet


def load_plan(state: StateDir) -> ClusterPlan:
    data = read_json(state.cluster_file)
    if not isinstance(data, dict):
        raise SystemExit(f"no cluster {state.cluster!r}: {state.cluster_file} is missing")
    nodes = tuple(NodePlan(**n) for n in data["nodes"])
    return ClusterPlan(name=data["name"], hub_netns=data["hub_netns"], nodes=nodes)


def cluster_cgroup(cluster: str) -> Path:
    return cgroups.cgroup2_root() / f"nodemesh-{cluster}"


class Runtime:
    def __init__(self, state: StateDir) -> None:
        self.state = state
        self.plan = load_plan(state)
        self.store = Store(state)
        self.cgroup = cluster_cgroup(state.cluster)
        self.pods: dict[str, Pod] = {}
        self.tokens = PodTokens(state)
        self.dns = ClusterDnsServer(ZoneSnapshot.build([], []))
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks = TaskSet("runtime")
        self._pending: list = []
        self._services: list = []
        self._kp_scripts: dict[str, str] = {}
        self._observed = 0
        self._published: dict | None = None
        self._targets: list | None = None

    # -- task and wake helpers ------------------------------------------------------------------
    def spawn(self, coro, name: str) -> asyncio.Task:
        """Create a task and keep a reference until it finishes (no fire-and-forget)."""
        return self._tasks.spawn(coro, name)

    def wake(self) -> None:
        self._wake.set()

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self) -> None:
        cgroups.ensure(self.cgroup / "runtime")
        (self.cgroup / "runtime" / "cgroup.procs").write_text(str(os.getpid()))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.wake)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self._start_dns()
        self._adopt()
        log.info("runtime for cluster %s up: %d nodes", self.plan.name, len(self.plan.nodes))
        while not self._stop.is_set():
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            await asyncio.sleep(0.02)  # let a burst of changes land in one pass
            self._wake.clear()
        await self.shutdown()

    async def shutdown(self) -> None:
        log.info("stopping: terminating %d pods", len(self.pods))
        stops = asyncio.gather(*(p.stop() for p in self.pods.values()), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stops, SHUTDOWN_GRACE)  # whatever is left, `down` kills
        self.dns.close()
        self._tasks.cancel()
        await self._tasks.wait()
        self._publish(ready=False)

    def _start_dns(self) -> None:
        for node in self.plan.nodes:
            udp = netns.socket_in_netns(node.netns, type_=socket.SOCK_DGRAM, bind=("0.0.0.0", 53))
            tcp = netns.socket_in_netns(node.netns, bind=("0.0.0.0", 53), listen=64)
            self.spawn(self.dns.serve_udp(udp), f"dns-udp/{node.name}")
            self.spawn(self.dns.serve_tcp(tcp), f"dns-tcp/{node.name}")

    def _adopt(self) -> None:
        """Take over the sandboxes a previous daemon left; restart their containers."""
        data = read_json(self.state.runtime_file, {"pods": []})
        for raw in data.get("pods", []):
            rec = PodRecord(**raw)
            pod = Pod(rec, self.wake)
            if not netns.netns_exists(rec.netns):
                pod.remove_sandbox()
                continue
            cgroups.kill_tree(Path(rec.cgroup))
            self.pods[rec.uid] = pod
            pod.start(self.tokens.issue(rec.binding, Path(rec.log_dir)))
            log.info("re-adopted pod %s/%s (%s)", rec.namespace, rec.name, rec.ip)
        self._persist()
        self.tokens.save()  # once, after every pod: the table never lists only some of them

    def _persist(self) -> None:
        write_json_atomic(
            self.state.runtime_file, {"pods": [p.rec.to_json() for p in self.pods.values()]}
        )

    # -- reconcile ------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        generation, objects = self.store.snapshot()
        running = [
            RunningPod(
                uid=p.rec.uid,
                name=p.rec.name,
                namespace=p.rec.namespace,
                node=p.rec.node,
                labels=p.rec.labels,
                spec_hash=p.rec.spec_hash,
                owner=p.rec.owner,
                ready=p.ready,
                terminating=p.terminating,
                created=p.rec.created,
            )
            for p in self.pods.values()
        ]
        plan = plan_pods(objects, running, [n.name for n in self.plan.nodes], self._suffix)
        for uid in plan.delete:
            pod = self.pods[uid]
            pod.terminating = True
            self.spawn(self._delete_pod(pod), f"delete/{pod.rec.name}")
        self._pending = [i for i in plan.create if i.node is None]
        for intent in plan.create:
            if intent.node is not None:
                await self._create_pod(intent)
        await self._sync_services(objects)
        self._observed = generation
        self._publish()

    @staticmethod
    def _suffix() -> str:
        return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))

    async def _create_pod(self, intent) -> None:
        node = self.plan.node(intent.node)
        uid = str(uuid.uuid4())
        host = bool(intent.spec.get("hostNetwork"))
        used = {p.rec.ip for p in self.pods.values() if p.rec.node == node.name}
        rec = PodRecord(
            uid=uid,
            name=intent.name,
            namespace=intent.namespace,
            node=node.name,
            node_netns=node.netns,
            node_ip=node.address,
            ip=node.address if host else allocate_pod_ip(node.pod_cidr, used),
            gateway=node.gateway,
            netns=node.netns if host else self.plan.pod_netns(uid),
            veth="" if host else veth_name(uid),
            host_network=host,
            cgroup=str(self.cgroup / "pods" / f"{intent.namespace}_{intent.name}_{uid[:8]}"),
            log_dir=str(self.state.pod_dir(intent.namespace, intent.name, uid)),
            labels=intent.labels,
            annotations=intent.annotations,
            spec=intent.spec,
            spec_hash=intent.spec_hash,
            owner=intent.owner,
        )
        pod = Pod(rec, self.wake)
        self.pods[uid] = pod
        self._persist()  # recorded before it exists, so a crash mid-way still gets cleaned up
        try:
            await asyncio.to_thread(pod.create_sandbox)
        except Exception:
            log.exception("cannot create sandbox for pod %s/%s", rec.namespace, rec.name)
            del self.pods[uid]
            self._persist()
            return
        if self._start_new(pod):
            log.info("pod %s/%s on %s at %s", rec.namespace, rec.name, node.name, rec.ip)

    def _start_new(self, pod: Pod) -> bool:
        """Give a new pod its token, then start its containers; a pod with no token is removed."""
        rec = pod.rec
        try:
            token_file = self.tokens.issue(rec.binding, Path(rec.log_dir))
            self.tokens.save()  # before the containers start: they may use the token at once
        except OSError:
            log.exception("cannot write the token of pod %s/%s", rec.namespace, rec.name)
            pod.terminating = True
            self.spawn(self._delete_pod(pod), f"delete/{rec.name}")  # the next pass retries
            return False
        pod.start(token_file)
        return True

    async def _delete_pod(self, pod: Pod) -> None:
        self.tokens.revoke(pod.rec.uid)  # a terminating pod bootstraps no new identity
        self.tokens.save()
        await pod.stop()
        await asyncio.to_thread(pod.remove_sandbox)
        shutil.rmtree(pod.rec.log_dir, ignore_errors=True)
        self.pods.pop(pod.rec.uid, None)
        self._persist()
        log.info("pod %s/%s removed", pod.rec.namespace, pod.rec.name)
        self.wake()

    async def _sync_services(self, objects: list[dict]) -> None:
        views = [
            PodView(
                name=p.rec.name,
                namespace=p.rec.namespace,
                ip=p.rec.ip,
                node=p.rec.node,
                labels=p.rec.labels,
                containers=tuple(p.rec.spec["containers"]),
                ready=p.ready,
            )
            for p in self.pods.values()
        ]
        self._services = build_services(objects, views)
        script = kubeproxy.render_ruleset(kubeproxy_ports(self._services, log.error))
        for node in self.plan.nodes:
            if self._kp_scripts.get(node.name) != script:
                await asyncio.to_thread(kubeproxy.apply_ruleset, node.netns, script)
                self._kp_scripts[node.name] = script
        svc_records, pod_records = dns_records(self._services, views)
        self.dns.update(ZoneSnapshot.build(svc_records, pod_records))

    def _publish(self, ready: bool = True) -> None:
        doc = {
            "cluster": self.plan.name,
            "runtimePid": os.getpid(),
            "runtimeReady": ready,
            "observedGeneration": self._observed,
            "nodes": [n.to_json() for n in self.plan.nodes],
            "pods": [pod_status(p) for p in self.pods.values()]
            + [pending_status(i) for i in self._pending],
            "services": [s.to_json() for s in self._services],
        }
        if doc != self._published:
            write_json_atomic(self.state.status_file, doc)
            self._published = doc
            self._publish_targets(doc["pods"])

    def _publish_targets(self, pods: list[dict]) -> None:
        """Prometheus' file_sd targets (nodemesh.local.prometheus_targets), rewritten on change."""
        targets = scrape_targets(pods)
        if targets != self._targets:
            write_json_atomic(PrometheusPaths.of(self.state.path).targets, targets)
            self._targets = targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodemesh.local.runtime")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--state-root", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    state = StateDir(args.cluster, args.state_root)
    state.pid_file.write_text(str(os.getpid()))
    asyncio.run(Runtime(state).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
