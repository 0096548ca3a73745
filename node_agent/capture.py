"""Capture of enrolled pods: bpf/ compiled once by a child, attached to each pod, read back.

The agent never loads BCC or LLVM: they would stay resident (~170 MB) for one compile at start.
`CaptureProgram` runs `python -m node_agent.capture compile` (node_agent.bpf_compile) instead: the
child compiles bpf/ with BCC, pins every program and map under <pin_root>/_compiled/, prints a
manifest and exits. The agent opens those pins and from then on works through libbpf
(node_agent.libbpf): map lookups and updates, the ring buffer, links.

Per pod, four programs are attached through BPF links (see bpf/README.md for why these):

    connect4  → pod cgroup   outbound TCP connect() rewritten to 127.0.0.1:15001 in the pod netns
    connect6  → pod cgroup   the same for IPv4 reached through dual-stack IPv6 sockets
    sock_ops  → pod cgroup   re-keys the original destination by the client's address
    sk_lookup → pod netns    inbound SYNs to the pod IP handed to the agent's 15006 listener

With the links, `attach_pod` sets up reply routing in the pod netns (node_agent.pod_routing:
connmark + policy route) so the agent can deliver to the app from the client's own address, and
registers each such delivery in nodemesh_deliveries_v1 (`PodCapture.deliver_from`) so sk_lookup
does not capture the agent's own SYN. `detach` removes the routing; `release` keeps it.

Links detach exactly what they attached (other programs on the same cgroup or netns stay).
Everything lives under the agent's own pin_root:

    <pin_root>/_compiled/  programs and maps: replaced by the next compile, unpinned by close()
    <pin_root>/<pod_id>/   links: `attach_pod` of a restarted agent swaps its new program into a
                           pinned link atomically (no instant without capture) when the link still
                           points at the pod's cgroup or netns, and replaces it otherwise;
                           close(detach=False) keeps them for the next agent to adopt

After a crash, `cleanup_all()` (`python -m node_agent.capture cleanup`) detaches and unpins both.

The agent's listeners are its own: it opens them inside the pod netns
(`nodemesh.local.netns.socket_in_netns`) and hands the inbound one to `PodCapture`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes as ct
import logging
import os
import re
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from node_agent import bpf_compile, libbpf, pod_routing
from node_agent import bpf_types as bt
from node_agent.bpf_compile import BPF_DIR
from nodemesh import bpffs
from nodemesh.local.netns import netns_path, socket_in_netns

BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "nodemesh"
log = logging.getLogger("nodemesh.agent.capture")
COMPILED_DIR = "_compiled"  # never a pod id: those start with a letter or a digit
AGENT_MARK = 0x539  # SO_MARK on the agent's own sockets: never captured
SO_NETNS_COOKIE = 71
_POD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

program_id = libbpf.obj_id  # the kernel's id of a program fd, as `bpftool prog` shows it
attached_programs = libbpf.prog_query  # ids of the programs on a cgroup or netns


class CaptureError(RuntimeError):
    """Capture cannot start or go on; the message says what to check. Failures of a single BPF
    call raise node_agent.libbpf.BpfError, which names the object and the kernel's errno."""


def netns_cookie_of(sock: socket.socket) -> int:
    return struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]


@dataclass(frozen=True)
class Original:
    """What the agent learns of a connection accepted on a pod's outbound listener."""

    destination: tuple[str, int]  # where the client meant to go
    socket_cookie: int  # the client socket's: the key of its capture event
    pod_id: str | None  # the pod it came from, when attached by this program
    client: tuple[str, int]  # the peer address of the accepted socket (127.0.0.1, port)
    netns_cookie: int


@dataclass(eq=False)
class PodCapture:
    """One pod's attachment. `detach()` undoes exactly what `attach_pod` did; twice is harmless."""

    program: CaptureProgram
    pod_id: str
    pod_ip: str
    netns_cookie: int
    pin_dir: Path
    links: dict[str, int] = field(default_factory=dict)
    netns: str | None = None  # where reply routing was installed (None: not installed)

    @property
    def routed(self) -> bool:
        """Can the agent deliver to this pod's app from a client's address (IP_TRANSPARENT)?"""
        return self.netns is not None

    def deliver_from(self, source: tuple[str, int]) -> bool:
        """Let the agent's socket bound to `source` (client ip, its port) through sk_lookup, for
        the connect() that follows. False, and nothing registered, when that source is already
        registered for another pod (deliver the old way then). Call `delivered` once connected."""
        deliveries = self.program.maps[bt.MAP_DELIVERIES]
        key, pod_ip = bt.Addr.of(*source), bt.ip4_to_u32(self.pod_ip)
        held = deliveries.lookup(key)
        if held is not None and held.value != pod_ip:
            return False
        deliveries.update(key, ct.c_uint32(pod_ip))
        return True

    def delivered(self, source: tuple[str, int]) -> None:
        """The connect() from `source` is over: a later SYN from that address is captured again."""
        self.program.maps[bt.MAP_DELIVERIES].delete(bt.Addr.of(*source))

    def set_inbound_listener(self, listener: socket.socket) -> None:
        """Steer inbound connections to `listener`, the agent's 15006 socket in the pod netns."""
        key = ct.c_uint32(bt.ip4_to_u32(self.pod_ip))
        self.program.maps[bt.MAP_INBOUND].update(key, ct.c_uint64(listener.fileno()))

    def counters(self) -> bt.CounterValues:
        per_cpu = self.program.maps[bt.MAP_COUNTERS].lookup(ct.c_uint64(self.netns_cookie))
        if per_cpu is None:
            return bt.CounterValues()
        names = [name for name, _ in bt.Counters._fields_]
        return bt.CounterValues(**{n: sum(getattr(c, n) for c in per_cpu) for n in names})

    def release(self) -> None:
        """Forget this attachment without detaching: the pinned links stay for re-adoption."""
        for fd in self.links.values():
            os.close(fd)
        self.links.clear()

    def detach(self) -> None:
        for name, fd in list(self.links.items()):
            libbpf.link_detach(fd)
            (self.pin_dir / name).unlink(missing_ok=True)
            del self.links[name]
        with contextlib.suppress(OSError):
            self.pin_dir.rmdir()
        if self.netns is not None:
            pod_routing.remove(self.netns)
            self.netns = None
        self.forget_ip()
        self.program.maps[bt.MAP_COUNTERS].delete(ct.c_uint64(self.netns_cookie))
        if self.program.pods.get(self.pod_id) is self:
            del self.program.pods[self.pod_id]

    def forget_ip(self) -> None:
        ip = ct.c_uint32(bt.ip4_to_u32(self.pod_ip))
        self.program.maps[bt.MAP_INBOUND].delete(ip)
        self.program.maps[bt.MAP_PODS].delete(ip)


class CaptureProgram:
    """The datapath of one agent: compiled once (by a child), attached to any number of pods."""

    def __init__(
        self,
        *,
        outbound_port: int = 15001,
        hbone_port: int = 15008,
        mark: int = AGENT_MARK,
        max_pods: int = 1024,
        max_flows: int = 65536,
        event_pages: int = 64,
        pin_root: Path = PIN_ROOT,
        bpffs_mount: Path = BPFFS,
        bpf_dir: Path = BPF_DIR,
    ):
        """`bpffs_mount`: where a bpffs is mounted if `pin_root` is not on one yet (local mode
        passes nodemesh's own, nodemesh.bpffs.LOCAL_ROOT; Kubernetes nodes have /sys/fs/bpf).
        `event_pages`: size of the capture-event ring buffer in 4 KiB pages (a power of two;
        73 events a page)."""
        self.pin_root = Path(pin_root)
        self.bpffs_mount = Path(bpffs_mount)
        self.compiled_dir = self.pin_root / COMPILED_DIR
        self.mark = mark
        self.pods: dict[str, PodCapture] = {}
        self._events: list[bt.CaptureEvent] = []
        cflags = bpf_compile.cflags_for(
            Path(bpf_dir),
            outbound_port=outbound_port,
            hbone_port=hbone_port,
            mark=mark,
            max_pods=max_pods,
            max_flows=max_flows,
            event_pages=event_pages,
        )
        bpffs.ensure(self.bpffs_mount)
        try:
            self.loaded = bpf_compile.load_in_child(self.compiled_dir, Path(bpf_dir), cflags)
        except bpf_compile.CompileError as exc:
            raise CaptureError(f"cannot load the capture programs: {exc}") from exc
        try:
            self.progs = {h.name: self.loaded.programs[h.name] for h in bt.HOOKS}
            cpus = len(libbpf.possible_cpus())
            self.maps = {
                n: self._map(n, cpus if n in bt.PERCPU_MAPS else 1) for n in bt.MAP_LAYOUTS
            }
            events = self.loaded.maps[bt.MAP_EVENTS]
            self._ring: libbpf.RingBuffer | None = libbpf.RingBuffer(
                events, bt.MAP_EVENTS, self._on_event
            )
        except BaseException:
            self.loaded.close()
            raise

    def _map(self, name: str, cpus: int) -> libbpf.Map:
        """The map, once its key and value sizes are checked against node_agent/bpf_types.py."""
        fd, (key, value) = self.loaded.maps[name], bt.MAP_LAYOUTS[name]
        info = libbpf.map_info(fd)
        if (info.key_size, info.value_size) != (ct.sizeof(key), ct.sizeof(value)):
            raise CaptureError(
                f"{name}: bpf/ has key/value sizes {info.key_size}/{info.value_size},"
                f" node_agent/bpf_types.py {ct.sizeof(key)}/{ct.sizeof(value)}: change both"
            )
        return libbpf.Map(fd, name, key, value, cpus)

    def __enter__(self) -> CaptureProgram:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def program_ids(self) -> dict[str, int]:
        return {name: self.loaded.manifest.programs[name].id for name in self.progs}

    def attach_pod(
        self,
        pod_id: str,
        cgroup_path: Path | str,
        netns_name: str,
        *,
        pod_ip: str,
        inbound_listener: socket.socket | None = None,
    ) -> PodCapture:
        """Capture the pod's traffic; adopts (or replaces) links a previous agent pinned."""
        if not _POD_ID.match(pod_id):
            raise CaptureError(f"pod id {pod_id!r} cannot name a pin directory")
        old = self.pods.pop(pod_id, None)
        if old is not None:  # adopted below through its pins, without a gap in capture
            old.release()
            if old.pod_ip != pod_ip:
                old.forget_ip()
        with socket_in_netns(netns_name, socket.AF_INET, socket.SOCK_DGRAM, reuse=False) as s:
            cookie = netns_cookie_of(s)
        pod = PodCapture(self, pod_id, pod_ip, cookie, self.pin_root / pod_id)
        targets = {"cgroup": Path(cgroup_path), "netns": netns_path(netns_name)}
        try:
            pod.pin_dir.mkdir(parents=True, exist_ok=True)
            counters = self.maps[bt.MAP_COUNTERS]
            counters.update(ct.c_uint64(cookie), counters.value())
            self.maps[bt.MAP_PODS].update(ct.c_uint32(bt.ip4_to_u32(pod_ip)), bt.Pod(cookie))
            if inbound_listener is not None:
                pod.set_inbound_listener(inbound_listener)
            for hook in bt.HOOKS:
                pin = pod.pin_dir / hook.name
                pod.links[hook.name] = self._link(hook, pin, targets[hook.target])
        except BaseException:
            pod.detach()
            raise
        pod.netns = self._route_replies(netns_name)
        self.pods[pod_id] = pod
        return pod

    def _route_replies(self, netns_name: str) -> str | None:
        """Reply routing for transparent delivery; without it the pod keeps plain delivery."""
        try:
            pod_routing.install(netns_name, agent_mark=self.mark)
        except pod_routing.PodRoutingError as exc:
            log.warning("%s", exc)
            return None
        return netns_name

    def _link(self, hook: bt.Hook, pin: Path, target: Path) -> int:
        prog_fd = self.progs[hook.name]
        target_fd = os.open(target, os.O_RDONLY)
        try:
            target_id = os.fstat(target_fd).st_ino  # = cgroup id, = netns inode
            adopted = _adopt(pin, hook, prog_fd, target_id) if pin.exists() else None
            if adopted is not None:
                return adopted
            fd = libbpf.link_create(prog_fd, target_fd, hook.attach_type, f"{hook.name} {target}")
            try:
                libbpf.obj_pin(fd, pin)
            except libbpf.BpfError:
                libbpf.link_detach(fd)
                raise
            return fd
        finally:
            os.close(target_fd)

    def exclude(
        self, *, ip: str | None = None, port: int | None = None, direction=bt.Direction.BOTH
    ) -> None:
        """Never capture (ip, port) in `direction`; None is a wildcard (not both)."""
        if not ip and not port:
            raise CaptureError("an exclusion needs an address or a port; to stop all, detach")
        self.maps[bt.MAP_EXCLUSIONS].update(bt.Addr.of(ip, port), ct.c_uint32(int(direction)))

    def unexclude(self, *, ip: str | None = None, port: int | None = None) -> None:
        self.maps[bt.MAP_EXCLUSIONS].delete(bt.Addr.of(ip, port))

    def original_destination(self, accepted: socket.socket) -> tuple[str, int]:
        """Where the client of a connection accepted on a pod's outbound listener meant to go.

        Reads and forgets the record: ask once per connection."""
        return self.take_original(accepted).destination

    def take_original(self, accepted: socket.socket) -> Original:
        """The original destination, with what joins the connection to its capture event."""
        peer_ip, peer_port = accepted.getpeername()[:2]
        netns_cookie = netns_cookie_of(accepted)
        key = bt.FlowKey(netns_cookie, bt.ip4_to_u32(peer_ip), peer_port, 0)
        found = self.maps[bt.MAP_ORIG_DST].lookup(key)
        if found is None:
            raise LookupError(
                f"no original destination for client {peer_ip}:{peer_port}: was it accepted on"
                " the outbound listener (127.0.0.1:15001) of an enrolled pod, and asked only once?"
            )
        self.maps[bt.MAP_ORIG_DST].delete(key)
        pod = self.pod_of(netns_cookie)
        return Original(found.pair(), found.socket_cookie, pod, (peer_ip, peer_port), netns_cookie)

    def pod_of(self, netns_cookie: int) -> str | None:
        """The id of the attached pod with that netns cookie, if any."""
        pod = next((p for p in self.pods.values() if p.netns_cookie == netns_cookie), None)
        return pod.pod_id if pod else None

    # -- capture events ---------------------------------------------------------------------------
    def poll_events(self, timeout_ms: int = 0) -> list[bt.CaptureEvent]:
        """Capture events that arrived since the last call, waiting up to `timeout_ms` for one."""
        self._ring_or_fail().poll(timeout_ms)
        events, self._events = self._events, []
        return events

    def consume_events(self) -> list[bt.CaptureEvent]:
        """What the ring holds now, without waiting (for an event loop watching `events_fd`)."""
        self._ring_or_fail().consume()
        events, self._events = self._events, []
        return events

    def events_fd(self) -> int:
        """An fd that polls readable while capture events wait (the ring's epoll fd)."""
        return self._ring_or_fail().fileno()

    def _ring_or_fail(self) -> libbpf.RingBuffer:
        if self._ring is None:
            raise CaptureError("capture events read after close()")
        return self._ring

    def _on_event(self, record: bytes) -> None:
        self._events.append(bt.CaptureEvent.from_bytes(record, self.pod_of))

    def event_drops(self) -> int:
        """Events the hooks could not write because the ring was full, since the compile."""
        per_cpu = self.maps[bt.MAP_EVENT_DROPS].lookup(ct.c_uint32(0))
        return sum(per_cpu) if per_cpu is not None else 0

    def reason_counts(self) -> dict[bt.Reason, int]:
        """Decisions of every pod by reason (captures and passes), since the compile."""
        reasons = self.maps[bt.MAP_REASONS]
        counts = {}
        for reason in bt.Reason:
            per_cpu = reasons.lookup(ct.c_uint32(reason))
            counts[reason] = sum(per_cpu) if per_cpu is not None else 0
        return counts

    def close(self, detach: bool = True) -> None:
        """Release the programs and unpin them. detach=False keeps every pod captured through
        its pinned links (which hold the programs), for an agent that is being replaced: the
        next one adopts them. Twice is harmless."""
        for pod in list(self.pods.values()):
            if detach:
                pod.detach()
            else:
                pod.release()
        self.pods.clear()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        self.loaded.close()


def _adopt(pin: Path, hook: bt.Hook, prog_fd: int, target_id: int) -> int | None:
    """The pinned link with `prog_fd` swapped in, or None (unpinned) if it points elsewhere."""
    fd = libbpf.obj_get(pin)
    try:
        target = libbpf.link_info(fd).target
        if (target.cgroup_id if hook.target == "cgroup" else target.netns_ino) == target_id:
            libbpf.link_update(fd, prog_fd, str(pin))
            return fd
    except BaseException:
        os.close(fd)
        raise
    # Pinned for an earlier incarnation of the pod (another cgroup/netns), or defunct (id 0).
    libbpf.link_detach(fd)
    pin.unlink()
    return None


def cleanup_all(pin_root: Path = PIN_ROOT) -> list[str]:
    """Detach and unpin every object under `pin_root`, e.g. after an agent crashed."""
    removed: list[str] = []
    if not Path(pin_root).is_dir():
        return removed
    for dirpath, _dirs, files in sorted(os.walk(pin_root), key=lambda t: -len(t[0])):
        for name in files:
            if dirpath == str(pin_root) and name in bpffs.KERNEL_FILES:
                continue  # the kernel's own iterators at a bpffs mount root: not ours
            path = Path(dirpath, name)
            with contextlib.suppress(libbpf.BpfError):
                libbpf.link_detach(libbpf.obj_get(path))  # a no-op for programs and maps
            path.unlink()
            removed.append(str(path))
        if not os.path.ismount(dirpath):  # a bpffs mount point is released, not removed
            os.rmdir(dirpath)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node_agent.capture")
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser("cleanup", help="detach and unpin every pinned capture object")
    cleanup.add_argument("--pin-root", type=Path, default=PIN_ROOT)
    bpf_compile.add_arguments(
        commands.add_parser(bpf_compile.COMMAND, help="compile bpf/ and pin it (the agent's child)")
    )
    args = parser.parse_args(argv)
    if args.command == bpf_compile.COMMAND:
        return bpf_compile.child_main(args)
    for path in cleanup_all(args.pin_root):
        print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
