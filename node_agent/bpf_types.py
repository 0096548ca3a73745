"""Python mirror of bpf/: the structs, maps and entry points the eBPF hooks share with the agent.

Change this module and bpf/nodemesh_types.h (structs), bpf/nodemesh_maps.h (maps) or the hook
files (entry points) together; `LAYOUT_VERSION` and the `_v1` suffix of every map name follow the
C side. The agent (`node_agent.capture`) checks each map's key and value size against these
classes when it opens the maps the compiler child pinned (`node_agent.bpf_compile`), and the child
pins one program per `HOOKS` entry under its `name`, so a one-sided change fails at start-up
instead of corrupting lookups.

Byte order, as in C: IPv4 addresses are stored in network order (the four bytes of the address as
they appear on the wire), ports in host order.
"""

from __future__ import annotations

import ctypes as ct
import enum
import socket
import sys
from dataclasses import dataclass

LAYOUT_VERSION = 2

MAP_PENDING = "nodemesh_pending_v1"
MAP_ORIG_DST = "nodemesh_orig_dst_v2"
MAP_EXCLUSIONS = "nodemesh_exclusions_v1"
MAP_PODS = "nodemesh_pods_v1"
MAP_INBOUND = "nodemesh_inbound_v1"
MAP_DELIVERIES = "nodemesh_deliveries_v1"  # the agent's transparent deliveries
MAP_COUNTERS = "nodemesh_counters_v1"
MAP_EVENTS = "nodemesh_events_v2"  # the ring buffer (no key/value sizes to check)
MAP_REASONS = "nodemesh_reasons_v1"
MAP_EVENT_DROPS = "nodemesh_event_drops_v1"
PERCPU_MAPS = frozenset({"nodemesh_counters_v1", MAP_REASONS, MAP_EVENT_DROPS})


# enum bpf_prog_type and enum bpf_attach_type (include/uapi/linux/bpf.h)
PROG_TYPE_SOCK_OPS, PROG_TYPE_CGROUP_SOCK_ADDR, PROG_TYPE_SK_LOOKUP = 13, 18, 30
ATTACH_SOCK_OPS, ATTACH_INET4_CONNECT, ATTACH_INET6_CONNECT, ATTACH_SK_LOOKUP = 3, 10, 11, 36


@dataclass(frozen=True)
class Hook:
    """One entry point of bpf/ and where it attaches in a pod."""

    name: str  # also the name of its pinned link
    func: str  # the C function
    prog_type: int
    attach_type: int
    target: str  # "cgroup" (the pod's cgroup directory) or "netns" (the pod's netns file)


HOOKS = (
    Hook(
        "connect4", "nodemesh_connect4", PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH_INET4_CONNECT, "cgroup"
    ),
    Hook(
        "connect6", "nodemesh_connect6", PROG_TYPE_CGROUP_SOCK_ADDR, ATTACH_INET6_CONNECT, "cgroup"
    ),
    Hook("sock_ops", "nodemesh_sock_ops", PROG_TYPE_SOCK_OPS, ATTACH_SOCK_OPS, "cgroup"),
    Hook("sk_lookup", "nodemesh_sk_lookup", PROG_TYPE_SK_LOOKUP, ATTACH_SK_LOOKUP, "netns"),
)


class Direction(enum.IntFlag):
    """NODEMESH_DIR_*: the direction of a capture, and the bits of an exclusion."""

    OUTBOUND = 1
    INBOUND = 2
    BOTH = 3


class Reason(enum.IntEnum):
    """NODEMESH_REASON_*: what a hook decided about one connection, and why.

    REDIRECTED is the capture; every other reason left the connection alone. LOOPBACK and
    FROM_POD are counted but write no event (see bpf/nodemesh_types.h)."""

    REDIRECTED = 1
    LOOPBACK = 2
    AGENT_MARK = 3
    EXCLUDED = 4
    NO_RECORD = 5
    FROM_POD = 6
    PROBE_SOURCE = 7
    HBONE_PORT = 8
    NO_LISTENER = 9
    ASSIGN_FAILED = 10

    @property
    def label(self) -> str:
        """The metric label and flow-event spelling: "agent-mark"."""
        return self.name.lower().replace("_", "-")

    @property
    def captured(self) -> bool:
        return self is Reason.REDIRECTED


REASONS = 11  # NODEMESH_REASONS: entries of nodemesh_reasons_v1 (index 0 unused)

# What each reason means to an operator, for flow events and `meshctl trace`.
REASON_TEXT = {
    Reason.REDIRECTED: "redirected to the agent's listener",
    Reason.LOOPBACK: "loopback destination, not mesh traffic",
    Reason.AGENT_MARK: f"socket carries the agent's mark {0x539:#x}",
    Reason.EXCLUDED: "destination excluded from capture",
    Reason.NO_RECORD: "original-destination map full (raise NODEMESH_MAX_FLOWS)",
    Reason.FROM_POD: "from the pod itself (the agent delivering)",
    Reason.PROBE_SOURCE: "from the kubelet's probe address",
    Reason.HBONE_PORT: "to the HBONE port, which the agent serves itself",
    Reason.NO_LISTENER: "the agent has no inbound listener in the pod",
    Reason.ASSIGN_FAILED: "the kernel refused the agent's listener (bpf_sk_assign)",
}


class HookCode(enum.IntEnum):
    """NODEMESH_HOOK_*: the program that wrote an event."""

    CONNECT4 = 1
    CONNECT6 = 2
    SK_LOOKUP = 3


def ip4_to_u32(ip: str) -> int:
    """The address as the kernel keeps it in a __u32: network-order bytes read natively."""
    return int.from_bytes(socket.inet_aton(ip), sys.byteorder)


def u32_to_ip4(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4, sys.byteorder))


class Addr(ct.Structure):
    """struct nodemesh_addr_v1: an original destination, or an exclusion (0 = any)."""

    _fields_ = [("ip4", ct.c_uint32), ("port", ct.c_uint16), ("pad", ct.c_uint16)]

    @classmethod
    def of(cls, ip: str | None, port: int | None) -> Addr:
        return cls(ip4_to_u32(ip) if ip else 0, port or 0, 0)

    def pair(self) -> tuple[str, int]:
        return u32_to_ip4(self.ip4), self.port


class OrigDst(ct.Structure):
    """struct nodemesh_orig_dst_v2: an original destination and the client socket's cookie."""

    _fields_ = [
        ("ip4", ct.c_uint32),
        ("port", ct.c_uint16),
        ("pad", ct.c_uint16),
        ("socket_cookie", ct.c_uint64),
    ]

    def pair(self) -> tuple[str, int]:
        return u32_to_ip4(self.ip4), self.port


class FlowKey(ct.Structure):
    """struct nodemesh_flow_key_v1: (pod netns cookie, client address) of a redirected flow."""

    _fields_ = [
        ("netns_cookie", ct.c_uint64),
        ("ip4", ct.c_uint32),
        ("port", ct.c_uint16),
        ("pad", ct.c_uint16),
    ]


class Pod(ct.Structure):
    """struct nodemesh_pod_v1, keyed by the pod's IP (a __u32) in nodemesh_pods_v1."""

    _fields_ = [("netns_cookie", ct.c_uint64)]


class Counters(ct.Structure):
    """struct nodemesh_counters_v1: one per CPU per pod, keyed by the pod's netns cookie."""

    _fields_ = [
        ("captured_outbound", ct.c_uint64),
        ("captured_inbound", ct.c_uint64),
        ("passed", ct.c_uint64),
    ]


class Event(ct.Structure):
    """struct nodemesh_event_v2: one record of the ring buffer."""

    _fields_ = [
        ("time_ns", ct.c_uint64),
        ("netns_cookie", ct.c_uint64),
        ("socket_cookie", ct.c_uint64),
        ("src_ip4", ct.c_uint32),
        ("dst_ip4", ct.c_uint32),
        ("listener_ip4", ct.c_uint32),
        ("src_port", ct.c_uint16),
        ("dst_port", ct.c_uint16),
        ("listener_port", ct.c_uint16),
        ("direction", ct.c_uint8),
        ("reason", ct.c_uint8),
        ("hook", ct.c_uint8),
        ("pad", ct.c_uint8 * 3),
    ]


# Key and value types of each map, as the loader checks them against the compiled program.
MAP_LAYOUTS: dict[str, tuple[type, type]] = {
    MAP_PENDING: (ct.c_uint64, Addr),
    MAP_ORIG_DST: (FlowKey, OrigDst),
    MAP_EXCLUSIONS: (Addr, ct.c_uint32),
    MAP_PODS: (ct.c_uint32, Pod),
    MAP_INBOUND: (ct.c_uint32, ct.c_uint64),
    MAP_DELIVERIES: (Addr, ct.c_uint32),
    MAP_COUNTERS: (ct.c_uint64, Counters),
    MAP_REASONS: (ct.c_uint32, ct.c_uint64),
    MAP_EVENT_DROPS: (ct.c_uint32, ct.c_uint64),
}


@dataclass(frozen=True)
class CounterValues:
    """A pod's counters summed over CPUs."""

    captured_outbound: int = 0
    captured_inbound: int = 0
    passed: int = 0


_DIRECTIONS = {int(d): d for d in (Direction.OUTBOUND, Direction.INBOUND)}  # one per event


class EventDecodeError(ValueError):
    """A ring-buffer record this agent cannot read: bpf/ and this module disagree."""


@dataclass(frozen=True)
class CaptureEvent:
    """A decoded ring-buffer record; `pod_id` is resolved by the loader from the netns cookie.

    Outbound events come from connect4/6, before the kernel chose the source port: `src` is
    ("0.0.0.0", port) with the port the app bound, or 0. `socket_cookie` is the client socket's,
    which the agent gets back with the original destination of the connection it accepted."""

    time_ns: int  # CLOCK_BOOTTIME (bpf_ktime_get_boot_ns), see node_agent.capture_events
    pod_id: str | None
    netns_cookie: int
    socket_cookie: int  # 0 for inbound (sk_lookup has no socket yet)
    direction: Direction
    reason: Reason
    hook: HookCode
    src: tuple[str, int]
    original_dst: tuple[str, int]
    listener: tuple[str, int] | None  # where a captured connection went; None when passed

    @property
    def captured(self) -> bool:
        return self.reason.captured

    @classmethod
    def from_bytes(cls, record: bytes, pod_id_of=lambda cookie: None) -> CaptureEvent:
        """Decode one record; `pod_id_of(netns_cookie)` names the pod (None if unknown)."""
        if len(record) != ct.sizeof(Event):
            raise EventDecodeError(
                f"capture event of {len(record)} bytes, expected {ct.sizeof(Event)}:"
                " bpf/nodemesh_types.h and node_agent/bpf_types.py disagree"
            )
        raw = Event.from_buffer_copy(record)
        return cls.decode(raw, pod_id_of(raw.netns_cookie))

    @classmethod
    def decode(cls, raw: Event, pod_id: str | None) -> CaptureEvent:
        try:
            direction, reason, hook = (
                _DIRECTIONS[raw.direction],
                Reason(raw.reason),
                HookCode(raw.hook),
            )
        except (KeyError, ValueError) as exc:
            raise EventDecodeError(
                f"capture event with {exc}: is bpf/ newer than the agent?"
            ) from None
        return cls(
            time_ns=raw.time_ns,
            pod_id=pod_id,
            netns_cookie=raw.netns_cookie,
            socket_cookie=raw.socket_cookie,
            direction=direction,
            reason=reason,
            hook=hook,
            src=(u32_to_ip4(raw.src_ip4), raw.src_port),
            original_dst=(u32_to_ip4(raw.dst_ip4), raw.dst_port),
            listener=(u32_to_ip4(raw.listener_ip4), raw.listener_port) if reason.captured else None,
        )
