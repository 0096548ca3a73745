"""Capture on the real kernel: connect4/6 + sock_ops (outbound) and sk_lookup (inbound) per pod.

Each test builds its own node netns and two pod sandboxes (netns + cgroup) named after the test.
The test process plays the node agent: it is in neither pod's cgroup, and opens its listeners
inside the pods' namespaces. Pod processes are real, started in a pod's netns and cgroup through
`nodemesh.local.launch`, so the cgroup programs see them exactly as they will see applications.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from bcc import BPF

from node_agent import bpf_types as bt
from node_agent import capture as cap
from node_agent import libbpf
from nodemesh import bpffs
from nodemesh.local import cgroups, netns, network
from nodemesh.local.addressing import cluster_netns_prefix, plan_cluster, veth_name
from nodemesh.local.launch import launch_argv
from tests.netns.cluster_helpers import cluster_name_for

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0
BPF_F_ALLOW_MULTI = 2

# A pod's client: connect, say hello, print the answer. argv: ip port bind_port mark family
# (family 6: a dual-stack IPv6 socket reaching the IPv4 destination as ::ffff:ip, as Java does)
CLIENT = """
import socket, sys
ip, port, bind_port, mark = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if sys.argv[5] == "6":
    s, ip = socket.socket(socket.AF_INET6), "::ffff:" + ip
else:
    s = socket.socket()
s.settimeout(10)
if mark:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
if bind_port:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if s.family == socket.AF_INET6 else "0.0.0.0", bind_port))
s.connect((ip, port))
s.sendall(b"hello")
print(s.recv(100).decode(), flush=True)
"""
UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"dns?")
"""


@dataclass
class Pod:
    label: str
    netns: str
    ip: str
    cgroup: Path

    @property
    def pod_id(self) -> str:
        return f"pod-{self.label}"

    def listen(self, ip: str, port: int, type_: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of the agent (the test process) inside this pod's netns."""
        listen = 16 if type_ == socket.SOCK_STREAM else None
        sock = netns.socket_in_netns(self.netns, type_=type_, bind=(ip, port), listen=listen)
        sock.settimeout(TIMEOUT)
        return sock

    def connect_from_outside_cgroup(self, ip: str, port: int) -> socket.socket:
        """A connection from this pod's netns that no cgroup program sees."""
        sock = netns.socket_in_netns(self.netns)
        sock.settimeout(TIMEOUT)
        sock.connect((ip, port))
        return sock

    def run(self, code: str, *args: object) -> subprocess.Popen:
        """A real process in the pod's netns and cgroup."""
        cmd = [sys.executable, "-c", code, *map(str, args)]
        argv = launch_argv(sys.executable, self.netns, cmd, cgroup=str(self.cgroup))
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def client(
        self, ip: str, port: int, bind_port: int = 0, mark: int = 0, family: int = 4
    ) -> subprocess.Popen:
        return self.run(CLIENT, ip, port, bind_port, mark, family)


@dataclass
class Topology:
    a: Pod
    b: Pod
    pin_root: Path


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"pod client failed ({proc.returncode}): {err}"
    return out.strip()


def serve_one(listener: socket.socket, reply: bytes) -> socket.socket:
    """Accept one connection, read the client's hello, answer; return the connection."""
    conn, _ = listener.accept()
    conn.settimeout(TIMEOUT)
    assert conn.recv(100) == b"hello"
    conn.sendall(reply)
    return conn


def nothing_pending(listener: socket.socket) -> bool:
    listener.setblocking(False)
    try:
        listener.accept()[0].close()
        return False
    except BlockingIOError:
        return True
    finally:
        listener.settimeout(TIMEOUT)


def attached(pod: Pod) -> dict[str, list[int]]:
    return {
        "connect4": cap.attached_programs(pod.cgroup, bt.ATTACH_INET4_CONNECT),
        "connect6": cap.attached_programs(pod.cgroup, bt.ATTACH_INET6_CONNECT),
        "sock_ops": cap.attached_programs(pod.cgroup, bt.ATTACH_SOCK_OPS),
        "sk_lookup": cap.attached_programs(netns.netns_path(pod.netns), bt.ATTACH_SK_LOOKUP),
    }


def pinned_id(path: Path) -> int:
    fd = libbpf.obj_get(path)
    try:
        return libbpf.obj_id(fd)
    finally:
        os.close(fd)


def pins_in(root: Path) -> list[str]:
    """What is pinned under `root`, leaving out the kernel's iterators at a bpffs mount root."""
    return sorted(p.name for p in root.iterdir() if p.name not in bpffs.KERNEL_FILES)


NOTHING = {"connect4": [], "connect6": [], "sock_ops": [], "sk_lookup": []}


def _remove_everything(prefix: str, cgroup_root: Path, pin_root: Path) -> None:
    cap.cleanup_all(pin_root)
    if not bpffs.release(pin_root) and pin_root.is_dir() and not os.path.ismount(pin_root):
        pin_root.rmdir()  # a directory left without its mount by a crashed run
    cgroups.remove_tree(cgroup_root)  # kills every pod process first
    for name in netns.list_netns(prefix):
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def topo(request):
    plan = plan_cluster(cluster_name_for(request.node.nodeid), 1)
    node, prefix = plan.nodes[0], cluster_netns_prefix(plan.name)
    cgroup_root = cgroups.cgroup2_root() / f"nodemesh-{plan.name}"
    # A bpffs of the test's own, not the agents' (nodemesh.bpffs.LOCAL_ROOT) nor /sys/fs/bpf.
    pin_root = Path(f"/run/nodemesh/bpf-test-{plan.name}")
    _remove_everything(prefix, cgroup_root, pin_root)  # remains of a crashed earlier run
    try:
        network.create_cluster_network(plan)
        pods = []
        for i, label in enumerate("ab"):
            uid = f"{label}{i}{plan.name}"
            ip = f"198.18.1.{10 + i}"
            network.create_pod_network(
                network.PodNet(plan.pod_netns(uid), node.netns, veth_name(uid), ip, node.gateway)
            )
            pods.append(Pod(label, plan.pod_netns(uid), ip, cgroups.ensure(cgroup_root / label)))
        yield Topology(pods[0], pods[1], pin_root)
    finally:
        _remove_everything(prefix, cgroup_root, pin_root)
        left = netns.list_netns(prefix) + [str(p) for p in (cgroup_root, pin_root) if p.exists()]
        assert not left, f"teardown left {left}"


@pytest.fixture
def agent(topo):
    program = cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root)
    try:
        yield program
    finally:
        program.close()


def test_outbound_lands_on_the_agent_with_its_original_destination(topo, agent):
    a, b = topo.a, topo.b
    out_a, out_b = a.listen("127.0.0.1", 15001), b.listen("127.0.0.1", 15001)
    agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip)

    # Both clients draw the same source port; only the pod's netns tells them apart.
    client_a = a.client(b.ip, 8080, bind_port=40000)
    client_b = b.client(a.ip, 9090, bind_port=40000)
    conn_a = serve_one(out_a, b"agent of a")
    conn_b = serve_one(out_b, b"agent of b")
    assert conn_a.getpeername() == conn_b.getpeername() == ("127.0.0.1", 40000)
    assert agent.original_destination(conn_b) == (a.ip, 9090)
    assert agent.original_destination(conn_a) == (b.ip, 8080)
    assert finish(client_a) == "agent of a"
    assert finish(client_b) == "agent of b"
    with pytest.raises(LookupError):  # read once, then forgotten
        agent.original_destination(conn_a)

    client = a.client(b.ip, 8443, family=6)  # connect6 catches IPv4 behind a dual-stack socket
    conn = serve_one(out_a, b"agent of a, v6 socket")
    assert conn.getpeername()[0] == "127.0.0.1"
    assert agent.original_destination(conn) == (b.ip, 8443)
    assert finish(client) == "agent of a, v6 socket"


def test_inbound_goes_to_the_transparent_listener_except_hbone(topo, agent):
    a, b = topo.a, topo.b
    inbound, hbone = b.listen("127.0.0.1", 15006), b.listen("0.0.0.0", 15008)
    app, app_excluded = b.listen("0.0.0.0", 8080), b.listen("0.0.0.0", 9000)
    agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)
    agent.exclude(port=9000, direction=bt.Direction.INBOUND)

    client = a.connect_from_outside_cgroup(b.ip, 8080)
    conn, peer = inbound.accept()
    assert conn.getsockname() == (b.ip, 8080)
    assert peer == client.getsockname()

    a.connect_from_outside_cgroup(b.ip, 15008)
    assert hbone.accept()[0].getsockname() == (b.ip, 15008)
    a.connect_from_outside_cgroup(b.ip, 9000)
    assert app_excluded.accept()[0].getsockname() == (b.ip, 9000)
    # The agent delivering to the app from inside the pod (over lo) must not loop back to itself.
    b.connect_from_outside_cgroup(b.ip, 8080)
    assert app.accept()[0].getsockname() == (b.ip, 8080)
    assert nothing_pending(inbound)


def test_loopback_udp_marked_and_excluded_traffic_is_not_captured(topo, agent):
    a, b = topo.a, topo.b
    outbound = a.listen("127.0.0.1", 15001)
    local_app, remote_app = a.listen("127.0.0.1", 8080), b.listen("0.0.0.0", 8080)
    remote_excluded, dns = b.listen("0.0.0.0", 7070), b.listen("0.0.0.0", 53, socket.SOCK_DGRAM)
    pod = agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    agent.exclude(ip=b.ip, port=7070, direction=bt.Direction.OUTBOUND)

    for family in (4, 6):  # 127.0.0.1, and ::ffff:127.0.0.1 through a dual-stack socket
        client = a.client("127.0.0.1", 8080, family=family)
        serve_one(local_app, b"local")
        assert finish(client) == "local"
    client = a.client(b.ip, 8080, mark=cap.AGENT_MARK)
    serve_one(remote_app, b"direct")
    assert finish(client) == "direct"
    client = a.client(b.ip, 7070)
    serve_one(remote_excluded, b"excluded")
    assert finish(client) == "excluded"
    finish(a.run(UDP_CLIENT, b.ip, 53))
    data, (source_ip, _) = dns.recvfrom(100)
    assert (data, source_ip) == (b"dns?", a.ip)
    # The agent's own sockets in the pod netns are outside the pod cgroup: no program runs.
    a.connect_from_outside_cgroup(b.ip, 8080)
    assert remote_app.accept()[0].getsockname() == (b.ip, 8080)
    assert nothing_pending(outbound)
    counters = pod.counters()
    assert (counters.captured_outbound, counters.passed) == (0, 4)  # loopback x2, mark, excluded


def test_counters_and_events(topo, agent):
    a, b = topo.a, topo.b
    outbound, inbound = a.listen("127.0.0.1", 15001), b.listen("127.0.0.1", 15006)
    pod_a = agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    pod_b = agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)

    client = a.client(b.ip, 8080)
    conn = serve_one(outbound, b"ok")
    assert finish(client) == "ok"
    source = a.connect_from_outside_cgroup(b.ip, 8081).getsockname()
    inbound.accept()

    assert (pod_a.counters().captured_outbound, pod_b.counters().captured_inbound) == (1, 1)
    events = []
    while len(events) < 2:
        new = agent.poll_events(timeout_ms=int(TIMEOUT * 1000))
        assert new, f"no capture event within {TIMEOUT}s; got {events}"
        events += new
    by_direction = {e.direction: e for e in events}
    out, inb = by_direction[bt.Direction.OUTBOUND], by_direction[bt.Direction.INBOUND]
    # connect4 writes before the source port is chosen: the agent joins by socket cookie.
    assert (out.pod_id, out.original_dst, out.src[1]) == (a.pod_id, (b.ip, 8080), 0)
    assert out.socket_cookie == agent.take_original(conn).socket_cookie != 0
    assert (inb.pod_id, inb.src, inb.original_dst) == (b.pod_id, source, (b.ip, 8081))
    assert out.captured and inb.captured and inb.listener == ("127.0.0.1", 15006)


def test_a_client_reusing_its_port_after_time_wait_is_still_captured(topo, agent):
    """The agent closes first, so its side of the connection sits in TIME_WAIT; the client's next
    SYN from the same port must reach the agent again, not the app (nor be dropped)."""
    a, b = topo.a, topo.b
    inbound, app = b.listen("127.0.0.1", 15006), b.listen("0.0.0.0", 8080)
    agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)
    for _ in range(2):
        client = netns.socket_in_netns(a.netns, bind=("0.0.0.0", 41000))
        client.settimeout(TIMEOUT)
        client.connect((b.ip, 8080))
        conn, peer = inbound.accept()
        assert peer == (a.ip, 41000)
        conn.close()  # agent first: TIME_WAIT on the pod's side
        assert client.recv(10) == b""
        client.close()
    assert nothing_pending(app)


def test_detach_restores_plain_traffic_and_leaves_nothing_attached(topo, agent):
    a, b = topo.a, topo.b
    outbound, inbound = a.listen("127.0.0.1", 15001), b.listen("127.0.0.1", 15006)
    app = b.listen("0.0.0.0", 8080)
    pod_a = agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
    pod_b = agent.attach_pod(b.pod_id, b.cgroup, b.netns, pod_ip=b.ip, inbound_listener=inbound)
    # Someone else's program on the same cgroup: detaching the pod must leave it alone.
    foreign = BPF(text=b"int allow(struct bpf_sock_addr *ctx) { return 1; }")
    allow = foreign.load_func(b"allow", BPF.CGROUP_SOCK_ADDR, attach_type=bt.ATTACH_INET4_CONNECT)
    cgroup_fd = os.open(a.cgroup, os.O_RDONLY)
    BPF.attach_func(allow, cgroup_fd, bt.ATTACH_INET4_CONNECT, BPF_F_ALLOW_MULTI)
    try:
        ours = agent.program_ids()
        assert set(attached(a)["connect4"]) == {ours["connect4"], cap.program_id(allow.fd)}
        assert attached(b) == {name: [ours[name]] for name in ours}
        client = a.client(b.ip, 8080)
        serve_one(outbound, b"captured")
        assert finish(client) == "captured"

        pod_a.detach()
        pod_b.detach()
        pod_a.detach()  # idempotent

        assert attached(a) == {**NOTHING, "connect4": [cap.program_id(allow.fd)]}
        assert attached(b) == NOTHING
        assert pins_in(topo.pin_root) == [cap.COMPILED_DIR]  # the agent's own, until close()
        client = a.client(b.ip, 8080)
        conn = serve_one(app, b"plain")
        assert conn.getpeername()[0] == a.ip
        assert finish(client) == "plain"
        assert nothing_pending(outbound) and nothing_pending(inbound)
    finally:
        BPF.detach_func(allow, cgroup_fd, bt.ATTACH_INET4_CONNECT)
        os.close(cgroup_fd)
        foreign.cleanup()


AGENT = """
import sys, time
from node_agent.capture import CaptureProgram
program = CaptureProgram(pin_root=sys.argv[1], bpffs_mount=sys.argv[1])
pod = program.attach_pod(sys.argv[2], sys.argv[3], sys.argv[4], pod_ip=sys.argv[5])
print(program.program_ids()["connect4"], flush=True)
time.sleep(600)
"""


def test_a_restarted_agent_adopts_the_pinned_links_and_cleanup_removes_them(topo):
    a, b = topo.a, topo.b
    crashed = subprocess.Popen(
        [sys.executable, "-c", AGENT, topo.pin_root, a.pod_id, a.cgroup, a.netns, a.ip],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        old_id = int(crashed.stdout.readline())
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            crashed.kill()
        crashed.stdout.close()
    assert attached(a)["connect4"] == [old_id]  # the pins kept capture alive without an agent
    compiled = topo.pin_root / cap.COMPILED_DIR
    assert pinned_id(compiled / "connect4") == old_id  # left by the crash, for now

    pins = {p.name: p.stat().st_ino for p in (topo.pin_root / a.pod_id).iterdir()}

    agent = cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root)
    try:
        outbound = a.listen("127.0.0.1", 15001)
        agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)
        agent.attach_pod(a.pod_id, a.cgroup, a.netns, pod_ip=a.ip)  # again: still one of each
        new_ids = agent.program_ids()
        assert old_id not in new_ids.values()
        assert {name: pinned_id(compiled / name) for name in new_ids} == new_ids  # replaced
        assert attached(a) == {name: [pid] for name, pid in new_ids.items()}
        # Adopted, not re-created: the same pinned links, with the new programs swapped in.
        assert {p.name: p.stat().st_ino for p in (topo.pin_root / a.pod_id).iterdir()} == pins
        client = a.client(b.ip, 8080)
        conn = serve_one(outbound, b"adopted")
        assert agent.original_destination(conn) == (b.ip, 8080)
        assert finish(client) == "adopted"
    finally:
        agent.close(detach=False)  # a graceful hand-over: capture stays for the next agent
    assert attached(a) == {name: [pid] for name, pid in new_ids.items()}
    assert not compiled.exists()  # the programs live on in the links alone

    removed = cap.cleanup_all(topo.pin_root)  # what an operator runs after a crash
    assert sorted(Path(p).name for p in removed) == sorted(NOTHING)
    assert attached(a) == NOTHING
    assert pins_in(topo.pin_root) == []


PROBE = """
import json, sys
from node_agent.capture import CaptureProgram
program = CaptureProgram(pin_root=sys.argv[1], bpffs_mount=sys.argv[1])
program.attach_pod(sys.argv[2], sys.argv[3], sys.argv[4], pod_ip=sys.argv[5])
program.poll_events(0)
libs = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line}
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({
    "bcc": sorted(m for m in sys.modules if m.split(".")[0] == "bcc"),
    "libs": sorted(p for p in libs if any(s in p for s in ("LLVM", "clang", "libbcc"))),
    "rss_kb": int(status["VmRSS"].split()[0]),
}))
program.close()
"""


def test_the_agent_process_loads_capture_without_bcc_or_llvm(topo):
    a = topo.a
    done = subprocess.run(
        [sys.executable, "-c", PROBE, topo.pin_root, a.pod_id, a.cgroup, a.netns, a.ip],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert (seen["bcc"], seen["libs"]) == ([], [])
    # With BCC in the process it was ~170 MB (LLVM's pages and heap); the bound is loose on purpose.
    assert seen["rss_kb"] < 100_000, seen
    assert attached(a) == NOTHING and pins_in(topo.pin_root) == []


def test_programs_and_maps_stay_pinned_while_the_agent_runs_and_close_unpins_them(topo):
    compiled = topo.pin_root / cap.COMPILED_DIR
    first = cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root)
    try:
        expected = sorted([h.name for h in bt.HOOKS] + [*bt.MAP_LAYOUTS, bt.MAP_EVENTS])
        assert sorted(p.name for p in compiled.iterdir()) == expected
        ids = first.program_ids()
        assert {name: pinned_id(compiled / name) for name in ids} == ids
        # A replacement starting before the old agent is gone compiles afresh into the same
        # directory; the old agent's close() must then leave the new pins alone.
        second = cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root)
        try:
            first.close()
            first.close()  # twice is harmless
            assert {name: pinned_id(compiled / name) for name in ids} == second.program_ids()
            assert len(list(compiled.iterdir())) == len(expected)
        finally:
            second.close()
    finally:
        first.close()
    assert pins_in(topo.pin_root) == []


def test_cleanup_after_a_crash_removes_programs_and_maps_too(topo):
    a = topo.a
    crashed = subprocess.Popen(
        [sys.executable, "-c", AGENT, topo.pin_root, a.pod_id, a.cgroup, a.netns, a.ip],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        crashed.stdout.readline()
        crashed.send_signal(signal.SIGKILL)
        crashed.wait(TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            crashed.kill()
        crashed.stdout.close()
    assert pins_in(topo.pin_root) == sorted([a.pod_id, cap.COMPILED_DIR])

    cleanup = subprocess.run(
        [sys.executable, "-m", "node_agent.capture", "cleanup", "--pin-root", topo.pin_root],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"{cap.COMPILED_DIR}/{bt.MAP_EVENTS}" in cleanup.stdout
    assert f"{a.pod_id}/connect4" in cleanup.stdout
    assert attached(a) == NOTHING
    assert pins_in(topo.pin_root) == []


def test_a_failed_compile_reports_the_compiler_error_and_pins_nothing(topo, tmp_path):
    broken = tmp_path / "bpf"
    shutil.copytree(REPO / "bpf", broken)
    source = broken / "sock_ops.c"
    source.write_text(source.read_text() + "\nint nodemesh_broken(void) { return undeclared; }\n")
    with pytest.raises(cap.CaptureError) as raised:
        cap.CaptureProgram(pin_root=topo.pin_root, bpffs_mount=topo.pin_root, bpf_dir=broken)
    message = str(raised.value)
    assert "child stderr" in message and "sock_ops.c" in message and "undeclared" in message
    assert pins_in(topo.pin_root) == []
