"""Capture of enrolled pods: loads bpf/ with BCC once, attaches it to each pod, reads it back.

Per pod, four programs are attached through BPF links (see bpf/README.md for why these):

    connect4  → pod cgroup   outbound TCP connect() rewritten to 127.0.0.1:15001 in the pod netns
    connect6  → pod cgroup   the same for IPv4 reached through dual-stack IPv6 sockets
    sock_ops  → pod cgroup   re-keys the original destination by the client's address
    sk_lookup → pod netns    inbound SYNs to the pod IP handed to the agent's 15006 listener

Links detach exactly what they attached (other programs on the same cgroup or netns stay), and are
pinned under <pin_root>/<pod_id>/ so that a restarted agent adopts them: `attach_pod` swaps the
new program into the pinned link atomically (no instant without capture) when the link still
points at the pod's cgroup or netns, and replaces it otherwise. After a crash, `cleanup_all()`
(`python -m node_agent.capture cleanup`) detaches and unpins everything.

The agent's listeners are its own: it opens them inside the pod netns
(`nodemesh.local.netns.socket_in_netns`) and hands the inbound one to `PodCapture`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes as ct
import os
import re
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bcc import BPF
from bcc.libbcc import lib as libbcc
from bcc.utils import get_possible_cpus

from node_agent import bpf_types as bt
from nodemesh import bpffs
from nodemesh.local.netns import netns_path, socket_in_netns

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
# Compiled as one text: BCC rewrites map calls only in its main file, so the shared helpers header
# comes first and each hook's own #include of it is then a no-op.
SOURCES = ("nodemesh_lib.h", "sock_connect.c", "sock_ops.c", "sk_lookup.c")
BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "nodemesh"
AGENT_MARK = 0x539  # SO_MARK on the agent's own sockets: never captured
SO_NETNS_COOKIE = 71
_POD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_libbpf = ct.CDLL("libbpf.so.1", use_errno=True)
for _name in ("bpf_obj_pin", "bpf_obj_get", "bpf_link_detach", "bpf_prog_query"):
    getattr(_libbpf, _name).restype = ct.c_int
_libbpf.bpf_obj_pin.argtypes = [ct.c_int, ct.c_char_p]
_libbpf.bpf_obj_get.argtypes = [ct.c_char_p]


class CaptureError(RuntimeError):
    """A BPF operation failed; the message names the object and what the kernel said."""


def _ok(ret: int, what: str) -> int:
    if ret < 0:  # libbpf 1.x returns -errno
        raise CaptureError(f"{what}: {os.strerror(-ret)}")
    return ret


def _info(fd: int) -> bytes:
    """bpf_obj_get_info_by_fd: the common prefix of prog, map and link info is (type, id)."""
    buf, size = ct.create_string_buffer(256), ct.c_uint32(256)
    _ok(_libbpf.bpf_obj_get_info_by_fd(fd, buf, ct.byref(size)), "bpf_obj_get_info_by_fd")
    return buf.raw


def _close_link(fd: int) -> None:
    _libbpf.bpf_link_detach(fd)  # fails harmlessly once the target is gone, or for a non-link
    os.close(fd)


def _link_target(info: bytes, hook: bt.Hook) -> int:
    """cgroup id (u64) or netns inode (u32) from struct bpf_link_info; 0 once the target died."""
    return struct.unpack_from("<Q" if hook.target == "cgroup" else "<I", info, 16)[0]


def program_id(fd: int) -> int:
    return struct.unpack_from("<I", _info(fd), 4)[0]


def attached_programs(target: Path, attach_type: int) -> list[int]:
    """Ids of the programs attached to a cgroup directory or netns file (like `bpftool`)."""
    fd = os.open(target, os.O_RDONLY)
    try:
        ids, count, flags = (ct.c_uint32 * 64)(), ct.c_uint32(64), ct.c_uint32()
        ret = _libbpf.bpf_prog_query(fd, attach_type, 0, ct.byref(flags), ids, ct.byref(count))
        _ok(ret, f"query programs on {target}")
        return list(ids[: count.value])
    finally:
        os.close(fd)


def netns_cookie_of(sock: socket.socket) -> int:
    return struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]


class _Map:
    """A map of the loaded module, accessed with the ctypes types of node_agent.bpf_types."""

    def __init__(self, bpf: BPF, name: str, percpu: bool = False):
        self.name, self.fd = name, libbcc.bpf_table_fd(bpf.module, name.encode())
        key, leaf = bt.MAP_LAYOUTS[name]
        key_size, leaf_size = struct.unpack_from("<II", _info(self.fd), 8)
        if (key_size, leaf_size) != (ct.sizeof(key), ct.sizeof(leaf)):
            raise CaptureError(f"{name}: bpf/ and node_agent/bpf_types.py disagree on the layout")
        self.key, self.leaf = key, leaf * len(get_possible_cpus()) if percpu else leaf

    def lookup(self, key):
        value = self.leaf()
        ret = _libbpf.bpf_map_lookup_elem(self.fd, ct.byref(key), ct.byref(value))
        return value if ret == 0 else None

    def update(self, key, value) -> None:
        ret = _libbpf.bpf_map_update_elem(self.fd, ct.byref(key), ct.byref(value), 0)
        _ok(ret, f"update {self.name}")

    def delete(self, key) -> None:
        _libbpf.bpf_map_delete_elem(self.fd, ct.byref(key))  # absent is fine


@dataclass(eq=False)
class PodCapture:
    """One pod's attachment. `detach()` undoes exactly what `attach_pod` did; twice is harmless."""

    program: CaptureProgram
    pod_id: str
    pod_ip: str
    netns_cookie: int
    pin_dir: Path
    links: dict[str, int] = field(default_factory=dict)

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
            _close_link(fd)
            (self.pin_dir / name).unlink(missing_ok=True)
            del self.links[name]
        with contextlib.suppress(OSError):
            self.pin_dir.rmdir()
        self.forget_ip()
        self.program.maps[bt.MAP_COUNTERS].delete(ct.c_uint64(self.netns_cookie))
        if self.program.pods.get(self.pod_id) is self:
            del self.program.pods[self.pod_id]

    def forget_ip(self) -> None:
        ip = ct.c_uint32(bt.ip4_to_u32(self.pod_ip))
        self.program.maps[bt.MAP_INBOUND].delete(ip)
        self.program.maps[bt.MAP_PODS].delete(ip)


class CaptureProgram:
    """The datapath of one agent: compiled once, attached to any number of pods."""

    def __init__(
        self,
        *,
        outbound_port: int = 15001,
        hbone_port: int = 15008,
        mark: int = AGENT_MARK,
        max_pods: int = 1024,
        max_flows: int = 65536,
        pin_root: Path = PIN_ROOT,
        bpffs_mount: Path = BPFFS,
        bpf_dir: Path = BPF_DIR,
    ):
        """`bpffs_mount`: where a bpffs is mounted if `pin_root` is not on one yet (local mode
        passes nodemesh's own, nodemesh.bpffs.LOCAL_ROOT; Kubernetes nodes have /sys/fs/bpf)."""
        self.pin_root = Path(pin_root)
        self.bpffs_mount = Path(bpffs_mount)
        cflags = [
            f"-I{bpf_dir}",
            f"-DNODEMESH_OUTBOUND_PORT={outbound_port}",
            f"-DNODEMESH_HBONE_PORT={hbone_port}",
            f"-DNODEMESH_MARK={mark:#x}",
            f"-DNODEMESH_MAX_PODS={max_pods}",
            f"-DNODEMESH_MAX_FLOWS={max_flows}",
        ]
        text = "".join(f'#line 1 "{n}"\n{(Path(bpf_dir) / n).read_text()}' for n in SOURCES)
        self.bpf = BPF(text=text.encode(), cflags=cflags)
        self.progs = {
            h.name: self.bpf.load_func(h.func.encode(), h.prog_type, attach_type=h.attach_type)
            for h in bt.HOOKS
        }
        self.maps = {n: _Map(self.bpf, n, percpu=n == bt.MAP_COUNTERS) for n in bt.MAP_LAYOUTS}
        self.pods: dict[str, PodCapture] = {}
        self._events: list[bt.CaptureEvent] = []
        self.bpf[bt.MAP_EVENTS.encode()].open_ring_buffer(self._on_event)

    def __enter__(self) -> CaptureProgram:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def program_ids(self) -> dict[str, int]:
        return {name: program_id(p.fd) for name, p in self.progs.items()}

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
            bpffs.ensure(self.bpffs_mount)
            pod.pin_dir.mkdir(parents=True, exist_ok=True)
            self.maps[bt.MAP_COUNTERS].update(
                ct.c_uint64(cookie), self.maps[bt.MAP_COUNTERS].leaf()
            )
            self.maps[bt.MAP_PODS].update(ct.c_uint32(bt.ip4_to_u32(pod_ip)), bt.Pod(cookie))
            if inbound_listener is not None:
                pod.set_inbound_listener(inbound_listener)
            for hook in bt.HOOKS:
                pod.links[hook.name] = self._link(
                    hook, pod.pin_dir / hook.name, targets[hook.target]
                )
        except BaseException:
            pod.detach()
            raise
        self.pods[pod_id] = pod
        return pod

    def _link(self, hook: bt.Hook, pin: Path, target: Path) -> int:
        prog_fd = self.progs[hook.name].fd
        target_fd = os.open(target, os.O_RDONLY)
        try:
            target_id = os.fstat(target_fd).st_ino  # = cgroup id, = netns inode
            if pin.exists():
                fd = _ok(_libbpf.bpf_obj_get(str(pin).encode()), f"open {pin}")
                if _link_target(_info(fd), hook) == target_id:
                    _ok(_libbpf.bpf_link_update(fd, prog_fd, None), f"update {pin}")
                    return fd
                # Pinned for an earlier incarnation of the pod (another cgroup/netns), or defunct.
                _close_link(fd)
                pin.unlink()
            fd = _ok(_libbpf.bpf_link_create(prog_fd, target_fd, hook.attach_type, None), hook.name)
            try:
                _ok(_libbpf.bpf_obj_pin(fd, str(pin).encode()), f"pin {pin}")
            except CaptureError:
                _close_link(fd)
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

        Reads and forgets the record: ask once per connection.
        """
        peer_ip, peer_port = accepted.getpeername()[:2]
        key = bt.FlowKey(netns_cookie_of(accepted), bt.ip4_to_u32(peer_ip), peer_port, 0)
        found = self.maps[bt.MAP_ORIG_DST].lookup(key)
        if found is None:
            raise LookupError(
                f"no original destination for client {peer_ip}:{peer_port}: was it accepted on"
                " the outbound listener (127.0.0.1:15001) of an enrolled pod, and asked only once?"
            )
        self.maps[bt.MAP_ORIG_DST].delete(key)
        return found.pair()

    def poll_events(self, timeout_ms: int = 0) -> list[bt.CaptureEvent]:
        """Capture events that arrived since the last call, waiting up to `timeout_ms` for one."""
        self.bpf.ring_buffer_poll(timeout_ms)
        events, self._events = self._events, []
        return events

    def _on_event(self, _ctx, data, _size) -> int:
        raw = ct.cast(data, ct.POINTER(bt.Event)).contents
        pod = next((p for p in self.pods.values() if p.netns_cookie == raw.netns_cookie), None)
        self._events.append(bt.CaptureEvent.decode(raw, pod.pod_id if pod else None))
        return 0

    def close(self, detach: bool = True) -> None:
        """Release the programs. detach=False keeps every pod captured through its pinned links,
        for an agent that is being replaced: the next one adopts them."""
        for pod in list(self.pods.values()):
            if detach:
                pod.detach()
            else:
                pod.release()
        self.pods.clear()
        self.bpf.cleanup()


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
            fd = _libbpf.bpf_obj_get(str(path).encode())
            if fd >= 0:
                _close_link(fd)
            path.unlink()
            removed.append(str(path))
        if not os.path.ismount(dirpath):  # a bpffs mount point is released, not removed
            os.rmdir(dirpath)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node_agent.capture")
    parser.add_argument("command", choices=["cleanup"], help="remove every pinned capture object")
    parser.add_argument("--pin-root", type=Path, default=PIN_ROOT)
    args = parser.parse_args(argv)
    for path in cleanup_all(args.pin_root):
        print(f"removed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
