"""The node agent's DaemonSet: capture, tunnels and L4 policy on every Linux node.

Privilege is spelled out capability by capability instead of `privileged: true`; the only
privileged container is the one-shot `mount-bpffs` init container (Cilium's pattern), because
Kubernetes allows Bidirectional mount propagation only in privileged containers and a bpffs the
agent mounted itself must be visible on the host, so pins outlive the agent's pod.

No hostPID: the agent reads other processes' namespaces and cgroups through the host's /proc,
mounted read-only at /host/proc, which shows every host PID without sharing the PID namespace.

Upgrades keep connections: maxUnavailable 1 replaces one node's agent at a time; the agent is
started with --keep-capture-on-exit, so capture programs stay pinned in /sys/fs/bpf across the
restart and the new agent re-adopts them; a long terminationGracePeriodSeconds lets the old agent
drain its HBONE tunnels before SIGKILL.
"""

from __future__ import annotations

from nodemesh.install import common
from nodemesh.install.values import Values

METRICS_PORT = 15020
HBONE_PORT = 15008
RUN_DIR = "/var/run/nodemesh"  # shared with the CNI plugin on the host (its socket lives here)
CNI_SOCKET = f"{RUN_DIR}/cni.sock"  # node_agent.cni.protocol.DEFAULT_AGENT_SOCKET
CNI_HOME = "/opt/nodemesh"  # where the plugin's wrapper finds node_agent/cni on the host
WRAPPER = "/usr/local/share/nodemesh/nodemesh-cni"  # in the agent image
HOST_PROC = "/host/proc"
HOST_CGROUP = "/host/sys/fs/cgroup"

# Each capability with the call that needs it; everything else is dropped.
CAPABILITIES = {
    "BPF": "bpf(): load programs, create and pin maps (BCC)",
    "PERFMON": "bpf(): tracing-class helpers and pointer access the verifier allows with it",
    "NET_ADMIN": "TC clsact/cls_bpf, sk_lookup links, policy routes, IP_TRANSPARENT sockets",
    "SYS_ADMIN": "setns() into pod network namespaces; attaching cgroup programs",
    "NET_RAW": "raw-socket probes and transparent binds inside pod namespaces",
    "SYS_PTRACE": "reading /proc/<pid>/ns/* and /proc/<pid>/cgroup of pods' processes",
}


def agent_objects(values: Values) -> list[dict]:
    return [_daemonset(values)]


def _host(name: str, path: str, kind: str = "Directory") -> dict:
    return {"name": name, "hostPath": {"path": path, "type": kind}}


def _volumes(values: Values) -> list[dict]:
    return [
        _host("bpffs", "/sys/fs/bpf", "DirectoryOrCreate"),
        _host("cgroup", "/sys/fs/cgroup"),
        _host("proc", "/proc"),
        _host("modules", "/lib/modules"),
        _host("usr-src", "/usr/src"),
        _host("cni-conf", values.cni.conf_dir, "DirectoryOrCreate"),
        _host("cni-bin", values.cni.bin_dir, "DirectoryOrCreate"),
        _host("cni-home", CNI_HOME, "DirectoryOrCreate"),
        _host("run", RUN_DIR, "DirectoryOrCreate"),
        common.token_volume(),
        common.trust_volume(),
        {"name": "tmp", "emptyDir": {}},  # BCC's and the compiler child's scratch files
    ]


def _agent_mounts() -> list[dict]:
    def mount(name: str, path: str, read_only: bool = True, **extra: str) -> dict:
        return {"name": name, "mountPath": path, "readOnly": read_only, **extra}

    return [
        # HostToContainer: sees the bpffs mount-bpffs made on the host; pins go to the host.
        mount("bpffs", "/sys/fs/bpf", False, mountPropagation="HostToContainer"),
        mount("cgroup", HOST_CGROUP, False, mountPropagation="HostToContainer"),
        mount("proc", HOST_PROC),
        mount("modules", "/lib/modules"),  # BCC compiles against the node's kernel headers,
        mount("usr-src", "/usr/src"),  # which /lib/modules/<release>/build points into
        mount("run", RUN_DIR, False),
        mount("nodemesh-token", common.TOKEN_DIR),
        mount("trust-bundle", common.TRUST_DIR),
        mount("tmp", "/tmp", False),
    ]


def _agent(values: Values) -> dict:
    metrics = {"httpGet": {"path": "/metrics", "port": METRICS_PORT}}
    return {
        "name": "agent",
        **common.image(values, "agent"),
        "command": ["python3", "-m", "node_agent"],
        "args": [
            "--node=$(NODE_NAME)",
            f"--controller={common.controller_host(values)}",
            f"--trust-domain={values.trust_domain}",
            "--pin-root=/sys/fs/bpf",
            "--keep-capture-on-exit",
            f"--cni-socket={CNI_SOCKET}",
            f"--sandbox-state={RUN_DIR}/sandboxes.json",  # survives agent restarts, not reboots
            f"--token-file={common.TOKEN_PATH}",
            f"--bundle={common.TRUST_DIR}/{common.TRUST_BUNDLE_KEY}",
        ],
        "env": common.env(values),
        # hostNetwork: these are the node's ports (HBONE from other nodes; metrics for Prometheus).
        "ports": [
            {"name": "hbone", "containerPort": HBONE_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        # The metrics listener opens once the agent has its certificate and first config
        # (node_agent.agent.NodeAgent.start); the admin endpoint is 127.0.0.1-only by design.
        "readinessProbe": {**metrics, "periodSeconds": 5},
        "livenessProbe": {**metrics, "periodSeconds": 10, "failureThreshold": 6},
        "startupProbe": {**metrics, "periodSeconds": 5, "failureThreshold": 60},
        "resources": values.agent.resources.as_k8s(),
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsUser": 0,  # cgroup files and /proc of other users' processes are root's
            "capabilities": {"drop": ["ALL"], "add": sorted(CAPABILITIES)},
            # Runtime default seccomp/AppArmor profiles refuse bpf(), perf_event_open() and
            # setns() whatever the capabilities; the capability list above is the boundary.
            "seccompProfile": {"type": "Unconfined"},
            "appArmorProfile": {"type": "Unconfined"},
        },
        "volumeMounts": _agent_mounts(),
    }


def _mount_bpffs(values: Values) -> dict:
    script = "grep -q ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf"
    return {
        "name": "mount-bpffs",
        **common.image(values, "agent"),
        "command": ["sh", "-c", script],
        "securityContext": {"privileged": True},  # mount(2) with Bidirectional propagation
        "volumeMounts": [
            {"name": "bpffs", "mountPath": "/sys/fs/bpf", "mountPropagation": "Bidirectional"}
        ],
    }


def _cni_installer(values: Values) -> dict:
    """A native sidecar (restartPolicy Always): keeps the chained entry in place while the
    agent runs (a CNI that rewrites its conflist loses it otherwise) and removes it on exit."""
    return {
        "name": "install-cni",
        **common.image(values, "agent"),
        "restartPolicy": "Always",
        "command": ["python3", "-m", "node_agent.cni_install"],
        "args": [
            "--conf-dir=/host/etc/cni/net.d",
            "--bin-dir=/host/opt/cni/bin",
            f"--binary={WRAPPER}",
            f"--home=/host{CNI_HOME}",
            f"--agent-socket={CNI_SOCKET}",
            "--watch",
        ],
        "env": [{"name": common.LOG_LEVEL_ENV, "value": values.log_level}],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            **common.RESTRICTED_CONTAINER,
            "runAsNonRoot": False,
            "runAsUser": 0,  # the CNI directories are root's on the host
        },
        "volumeMounts": [
            {"name": "cni-conf", "mountPath": "/host/etc/cni/net.d"},
            {"name": "cni-bin", "mountPath": "/host/opt/cni/bin"},
            {"name": "cni-home", "mountPath": f"/host{CNI_HOME}"},
        ],
    }


def _daemonset(values: Values) -> dict:
    name = common.AGENT
    init = [_mount_bpffs(values)]
    if values.cni.enabled:
        init.append(_cni_installer(values))
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": common.meta(values, name, name),
        "spec": {
            "selector": {"matchLabels": common.selector(name)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": common.pod_template(
                values,
                name,
                METRICS_PORT,
                {
                    "automountServiceAccountToken": False,
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "priorityClassName": "system-node-critical",
                    "terminationGracePeriodSeconds": (
                        values.agent.termination_grace_period_seconds
                    ),
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],  # every node, tainted ones too
                    "initContainers": init,
                    "containers": [_agent(values)],
                    "volumes": _volumes(values),
                },
            ),
        },
    }
