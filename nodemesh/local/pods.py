"""A running pod: its sandbox (netns, veth, cgroup, /etc files) and its containers.

Like kubelet, the runtime gives every container its pod's service-account token: the file's path
is in `NODEMESH_TOKEN_FILE` (the token itself is minted and tracked by
nodemesh.local.credentials), so a waypoint can trade it for its first certificate.

A pod's DNS set-up mirrors Kubernetes' ClusterFirst policy: resolv.conf points at the cluster DNS
served on the node's gateway address, with the pod namespace's search list and ndots:5, and
/etc/hosts names the pod itself. Both files sit in /etc/netns/<pod netns>/, where the launcher (and
`ip netns exec`) bind them over the host's.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from nodemesh.local import cgroups, network
from nodemesh.local.addressing import DNS_DOMAIN
from nodemesh.local.containers import BASE_ENV, Container, PodContext
from nodemesh.local.credentials import TOKEN_FILE_ENV, PodBinding
from nodemesh.local.launch import ETC_NETNS


@dataclass
class PodRecord:
    """What the runtime persists about a pod so a restarted runtime can find and remove it."""

    uid: str
    name: str
    namespace: str
    node: str
    node_netns: str
    node_ip: str
    ip: str
    gateway: str
    netns: str
    veth: str
    cgroup: str
    log_dir: str
    labels: dict
    annotations: dict
    spec: dict
    spec_hash: str
    owner: str | None
    created: float = field(default_factory=time.time)
    host_network: bool = False  # runs in the node's netns: no veth, no /etc files, node's IP

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @property
    def podnet(self) -> network.PodNet:
        return network.PodNet(self.netns, self.node_netns, self.veth, self.ip, self.gateway)

    @property
    def service_account(self) -> str:
        return self.spec.get("serviceAccountName") or "default"

    @property
    def binding(self) -> PodBinding:
        """What this pod's service-account token stands for."""
        return PodBinding(self.namespace, self.service_account, self.name, self.uid, self.node)


def resolv_conf(namespace: str, nameserver: str) -> str:
    search = f"{namespace}.svc.{DNS_DOMAIN} svc.{DNS_DOMAIN} {DNS_DOMAIN}"
    return f"nameserver {nameserver}\nsearch {search}\noptions ndots:5\n"


def hosts_file(rec: PodRecord) -> str:
    return (
        f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{rec.ip}\t{rec.name}\n"
    )


def field_value(path: str, rec: PodRecord) -> str:
    """The Kubernetes downward-API value for an env var's fieldRef.fieldPath."""
    simple = {
        "metadata.name": rec.name,
        "metadata.namespace": rec.namespace,
        "metadata.uid": rec.uid,
        "spec.nodeName": rec.node,
        "spec.serviceAccountName": rec.service_account,
        "status.podIP": rec.ip,
        "status.hostIP": rec.node_ip,
    }
    if path in simple:
        return simple[path]
    for prefix, source in (
        ("metadata.labels", rec.labels),
        ("metadata.annotations", rec.annotations),
    ):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(source.get(path[len(prefix) + 2 : -2], ""))
    return ""


def container_env(spec: dict, rec: PodRecord, token_file: Path | None = None) -> dict[str, str]:
    """A container's environment: base, the pod's token file, then the manifest's own env."""
    env = {**BASE_ENV, "HOSTNAME": rec.name}
    if token_file is not None:
        env[TOKEN_FILE_ENV] = str(token_file)
    for item in spec.get("env") or []:
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif "valueFrom" in item:
            env[item["name"]] = field_value(item["valueFrom"]["fieldRef"]["fieldPath"], rec)
    return env


class Pod:
    """Creates, runs and removes one pod."""

    def __init__(self, rec: PodRecord, on_change) -> None:
        self.rec = rec
        self.terminating = False
        self.containers: list[Container] = []
        self._tasks: list[asyncio.Task] = []
        self._on_change = on_change

    @property
    def etc_dir(self) -> Path:
        return ETC_NETNS / self.rec.netns

    def create_sandbox(self) -> None:
        """Blocking: network, /etc files and cgroup. Removes what it made if a step fails.

        A hostNetwork pod gets only its cgroup: it shares the node's namespace (and, as in
        Kubernetes with the default dnsPolicy, resolves names the way its node does).
        """
        rec = self.rec
        try:
            Path(rec.cgroup).mkdir(parents=True, exist_ok=True)
            if rec.host_network:
                return
            self.etc_dir.mkdir(parents=True, exist_ok=True)
            (self.etc_dir / "resolv.conf").write_text(resolv_conf(rec.namespace, rec.gateway))
            (self.etc_dir / "hosts").write_text(hosts_file(rec))
            network.create_pod_network(rec.podnet)
        except BaseException:
            self.remove_sandbox()
            raise

    def remove_sandbox(self) -> None:
        cgroups.remove_tree(Path(self.rec.cgroup))
        if self.rec.host_network:
            return  # the namespace is the node's: never delete it
        network.delete_pod_network(self.rec.podnet)
        shutil.rmtree(self.etc_dir, ignore_errors=True)

    def start(self, token_file: Path | None = None) -> None:
        """Start every container; each gets `token_file` (the pod's token) in its env."""
        rec = self.rec
        ctx = PodContext(
            name=rec.name,
            namespace=rec.namespace,
            netns=rec.netns,
            node_netns=rec.node_netns,
            ip=rec.ip,
            restart_policy=rec.spec.get("restartPolicy", "Always"),
            containers=rec.spec["containers"],
            grace_seconds=float(rec.spec.get("terminationGracePeriodSeconds", 30)),
        )
        for spec in rec.spec["containers"]:
            container = Container(
                pod=ctx,
                spec=spec,
                cgroup=Path(rec.cgroup) / spec["name"],
                log_path=Path(rec.log_dir) / f"{spec['name']}.log",
                env=container_env(spec, rec, token_file),
                on_change=self._on_change,
            )
            self.containers.append(container)
            self._tasks.append(
                asyncio.create_task(container.run(), name=f"{rec.name}/{spec['name']}")
            )

    async def stop(self) -> None:
        self.terminating = True
        await asyncio.gather(*(c.stop() for c in self.containers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def ready(self) -> bool:
        return (
            not self.terminating
            and bool(self.containers)
            and all(c.status.state == "Running" and c.status.ready for c in self.containers)
        )
