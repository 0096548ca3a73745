"""kube-proxy rules against a real kernel: one router "node" netns and three "pod" netns.

Topology (all names ``nmkp-<random>-<role>``, all addresses inside 198.18.0.0/15)::

    s1 198.18.1.1/32 --\\
    s2 198.18.1.2/32 ---+-- node (198.18.0.1 on every veth, ip_forward=1, kube-proxy table)
    c  198.18.1.3/32 --/

Every pod has a default route via 198.18.0.1 and the node has a /32 route per pod, as in the local
cluster. s1 and s2 run a TCP server that answers ``<name> <peer ip>`` and closes. Connections are
made by short helper processes inside a netns so the test process never changes namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from nodemesh.local.kubeproxy import (
    DEFAULT_TABLE,
    Endpoint,
    KubeProxyError,
    ServicePort,
    apply_ruleset,
    delete_ruleset,
    render_ruleset,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create network namespaces"),
    pytest.mark.skipif(
        shutil.which("ip") is None or shutil.which("nft") is None, reason="needs iproute2 and nft"
    ),
]

NODE_IP = "198.18.0.1"
POD_IPS = {"s1": "198.18.1.1", "s2": "198.18.1.2", "c": "198.18.1.3"}
VIP = "198.19.0.10"
SERVER_PORT = 8080
CMD_TIMEOUT = 10.0

SERVER = """
import socket, sys
name = sys.argv[1]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[2])))
srv.listen(128)
print("ready", flush=True)
while True:
    conn, peer = srv.accept()
    with conn:
        conn.settimeout(2)
        conn.sendall(f"{name} {peer[0]}\\n".encode())
"""

# Prints one line per attempt: "OK <server> <peer seen by server>" or "ERR <errno> <seconds>".
CLIENT = """
import errno, socket, sys, time
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for _ in range(count):
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            data = b""
            while not data.endswith(b"\\n"):
                chunk = conn.recv(100)
                if not chunk:
                    break
                data += chunk
        print("OK", data.decode().strip(), flush=True)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno, "") if exc.errno else type(exc).__name__
        print("ERR", name, f"{time.monotonic() - start:.3f}", flush=True)
"""


def sh(*argv: str) -> str:
    """Run a command (``sh("ip -n X link set lo up")`` is split on spaces) and return stdout."""
    cmd = argv[0].split() if len(argv) == 1 else list(argv)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Topology:
    prefix: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    def ns(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def node(self) -> str:
        return self.ns("node")

    def build(self) -> None:
        node = self.node
        for role in ("node", *POD_IPS):
            sh(f"ip netns add {self.ns(role)}")
            self.created.append(self.ns(role))
            sh(f"ip -n {self.ns(role)} link set lo up")
        sh(f"ip netns exec {node} sysctl -qw net.ipv4.ip_forward=1")
        for role, ip in POD_IPS.items():
            pod, veth = self.ns(role), f"v-{role}"
            sh(f"ip -n {node} link add {veth} type veth peer name eth0 netns {pod}")
            sh(f"ip -n {node} addr add {NODE_IP}/32 dev {veth}")
            sh(f"ip -n {node} link set {veth} up")
            sh(f"ip -n {node} route add {ip}/32 dev {veth}")
            sh(f"ip -n {pod} addr add {ip}/32 dev eth0")
            sh(f"ip -n {pod} link set eth0 up")
            sh(f"ip -n {pod} route add {NODE_IP}/32 dev eth0")
            sh(f"ip -n {pod} route add default via {NODE_IP} dev eth0")

    def python_in(self, role: str, code: str, *args: object) -> list[str]:
        return ["ip", "netns", "exec", self.ns(role), sys.executable, "-c", code, *map(str, args)]

    def start_server(self, role: str) -> None:
        argv = self.python_in(role, SERVER, role, SERVER_PORT)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], CMD_TIMEOUT)
        assert ready and proc.stdout.readline().strip() == "ready", f"server in {role} failed"

    def connect(self, role: str, host: str, port: int, count: int = 1) -> list[str]:
        """``count`` sequential connections from ``role``'s netns, one result line each."""
        return sh(*self.python_in(role, CLIENT, host, port, count, 2)).splitlines()

    def nft_list(self, what: str = "ruleset") -> str:
        return sh(f"ip netns exec {self.node} nft list {what}")

    def teardown(self) -> None:
        """Kill what we started and everything left in our netns, then delete them; never raise."""
        for proc in self.procs:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=CMD_TIMEOUT)
        for name in self.created:
            pids = subprocess.run(
                ["ip", "netns", "pids", name],
                capture_output=True,
                text=True,
                check=False,
                timeout=CMD_TIMEOUT,
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, check=False, timeout=CMD_TIMEOUT
            )


@pytest.fixture
def topo() -> Iterator[Topology]:
    topology = Topology(prefix=f"nmkp-{secrets.token_hex(3)}")
    try:
        topology.build()
        topology.start_server("s1")
        topology.start_server("s2")
        yield topology
    finally:
        topology.teardown()


def web(*servers: str, port: int = 80, port_name: str = "http") -> ServicePort:
    endpoints = tuple(Endpoint(POD_IPS[s], SERVER_PORT) for s in servers)
    return ServicePort("default", "web", port_name, "TCP", VIP, port, endpoints)


def servers_reached(lines: list[str]) -> set[str]:
    assert all(line.startswith("OK ") for line in lines), lines
    return {line.split()[1] for line in lines}


def test_vip_balances_across_endpoints_and_follows_updates(topo: Topology) -> None:
    apply_ruleset(topo.node, render_ruleset([web("s1", "s2")]))
    assert servers_reached(topo.connect("c", VIP, 80, count=40)) == {"s1", "s2"}

    apply_ruleset(topo.node, render_ruleset([web("s1")]))
    assert servers_reached(topo.connect("c", VIP, 80, count=20)) == {"s1"}


def test_hairpin_endpoint_reaches_itself_through_the_vip(topo: Topology) -> None:
    apply_ruleset(topo.node, render_ruleset([web("s1")]))
    [line] = topo.connect("s1", VIP, 80)
    # The server sees the node's address: masquerade made the reply return through the node.
    assert line == f"OK s1 {NODE_IP}"
    # Traffic that is not hairpinned keeps its source address.
    assert topo.connect("c", VIP, 80) == [f"OK s1 {POD_IPS['c']}"]


def test_port_without_endpoints_and_unknown_port_are_refused_fast(topo: Topology) -> None:
    ports = [web("s1", "s2"), web(port=443, port_name="https")]
    apply_ruleset(topo.node, render_ruleset(ports))
    for port in (443, 81):  # no endpoints; not a port of the service at all
        [line] = topo.connect("c", VIP, port)
        kind, errname, seconds = line.split()
        assert (kind, errname) == ("ERR", "ECONNREFUSED"), line
        assert float(seconds) < 1.0
    assert servers_reached(topo.connect("c", VIP, 80, count=4)) <= {"s1", "s2"}


UDP_PROBE = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
sock.connect((sys.argv[1], int(sys.argv[2])))
sock.send(b"ping")
try:
    sock.recv(100)
    print("reply")
except OSError as exc:
    print(type(exc).__name__)
"""


def test_udp_port_without_endpoints_gets_port_unreachable(topo: Topology) -> None:
    dns = ServicePort("kube-system", "dns", "dns", "UDP", VIP, 53, ())
    apply_ruleset(topo.node, render_ruleset([dns]))
    # The ICMP port unreachable surfaces on a connected UDP socket as ECONNREFUSED.
    assert sh(*topo.python_in("c", UDP_PROBE, VIP, 53)).strip() == "ConnectionRefusedError"


def test_node_processes_reach_the_vip_through_the_output_chain(topo: Topology) -> None:
    # connect() needs a route for the VIP before any hook runs; real nodes have a default route.
    sh(f"ip -n {topo.node} route add 198.19.0.0/16 dev v-c src {NODE_IP}")
    apply_ruleset(topo.node, render_ruleset([web("s2"), web(port=443, port_name="https")]))
    assert topo.connect("node", VIP, 80) == [f"OK s2 {NODE_IP}"]
    [line] = topo.connect("node", VIP, 443)
    assert line.split()[:2] == ["ERR", "ECONNREFUSED"], line


def test_apply_is_idempotent_and_delete_removes_the_table(topo: Topology) -> None:
    script = render_ruleset([web("s1", "s2")])
    apply_ruleset(topo.node, script)
    first = topo.nft_list()
    assert 'comment "default/web:http -> 198.18.1.2:8080"' in first  # operators can read it
    apply_ruleset(topo.node, script)
    assert topo.nft_list() == first
    assert servers_reached(topo.connect("c", VIP, 80, count=4)) <= {"s1", "s2"}

    delete_ruleset(topo.node)
    assert DEFAULT_TABLE not in topo.nft_list("tables")
    delete_ruleset(topo.node)  # absent table: still fine
    [line] = topo.connect("c", VIP, 80)
    assert line.startswith("ERR"), line


def test_apply_failure_names_the_netns_and_quotes_nft() -> None:
    missing = f"nmkp-{secrets.token_hex(3)}-absent"
    with pytest.raises(KubeProxyError, match=rf"netns {missing}: failed to apply"):
        apply_ruleset(missing, render_ruleset([]))
