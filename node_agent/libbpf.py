"""The few libbpf calls the agent makes, through ctypes, with errors that name the object.

Theory of operation: the agent never compiles BPF. A one-shot child (node_agent.bpf_compile) loads
the programs and maps and pins them in bpffs; the agent opens the pins (`obj_get`) and from then on
works on plain file descriptors with the system's libbpf (`libbpf.so.1`; 1.1 is the floor, for
`bpf_link_create` on a netns). Everything here is a thin, typed wrapper of one libbpf function:

    pins      obj_get, obj_pin                   links   link_create, link_update, link_detach
    info      obj_id, map_info, link_info        query   prog_query (what a cgroup/netns runs)
    maps      Map.lookup / update / delete       ring    RingBuffer.poll / consume / close

libbpf 1.x returns -errno from these calls (and NULL with errno set from `ring_buffer__new`);
`_check` turns that into a `BpfError` that says what was being done to which object, the kernel's
errno text, and, for the errnos an operator can act on, what to do next.

Per-CPU maps hold one value per *possible* CPU, so their buffers are sized from
/sys/devices/system/cpu/possible (`possible_cpus`), parsed here rather than through BCC.
"""

from __future__ import annotations

import ctypes as ct
import errno
import functools
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIBBPF = "libbpf.so.1"
POSSIBLE_CPUS = Path("/sys/devices/system/cpu/possible")
BPF_ANY = 0
_CPU_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")

_HINTS = {
    errno.EPERM: "needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)",
    errno.EACCES: "needs root (CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN)",
    errno.ENOENT: "nothing is pinned there",
    errno.EEXIST: "a pin of that name exists already; unlink it first",
    errno.E2BIG: "the map is full; raise its NODEMESH_MAX_* size",
    errno.ENOSPC: "the map is full; raise its NODEMESH_MAX_* size",
}


class BpfError(RuntimeError):
    """A libbpf call failed. `errno` is the kernel's; the message names the object."""

    def __init__(self, what: str, err: int) -> None:
        hint = _HINTS.get(err)
        super().__init__(f"{what}: {os.strerror(err)}" + (f" ({hint})" if hint else ""))
        self.errno = err


_SAMPLE_FN = ct.CFUNCTYPE(ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_size_t)
_U32P = ct.POINTER(ct.c_uint32)
# name: (restype, argtypes), as declared in libbpf's bpf.h and libbpf.h.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "bpf_obj_pin": (ct.c_int, [ct.c_int, ct.c_char_p]),
    "bpf_obj_get": (ct.c_int, [ct.c_char_p]),
    "bpf_obj_get_info_by_fd": (ct.c_int, [ct.c_int, ct.c_void_p, _U32P]),
    "bpf_prog_query": (ct.c_int, [ct.c_int, ct.c_int, ct.c_uint32, _U32P, _U32P, _U32P]),
    "bpf_link_create": (ct.c_int, [ct.c_int, ct.c_int, ct.c_int, ct.c_void_p]),
    "bpf_link_update": (ct.c_int, [ct.c_int, ct.c_int, ct.c_void_p]),
    "bpf_link_detach": (ct.c_int, [ct.c_int]),
    "bpf_map_lookup_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p]),
    "bpf_map_update_elem": (ct.c_int, [ct.c_int, ct.c_void_p, ct.c_void_p, ct.c_uint64]),
    "bpf_map_delete_elem": (ct.c_int, [ct.c_int, ct.c_void_p]),
    "ring_buffer__new": (ct.c_void_p, [ct.c_int, _SAMPLE_FN, ct.c_void_p, ct.c_void_p]),
    "ring_buffer__poll": (ct.c_int, [ct.c_void_p, ct.c_int]),
    "ring_buffer__consume": (ct.c_int, [ct.c_void_p]),
    "ring_buffer__epoll_fd": (ct.c_int, [ct.c_void_p]),
    "ring_buffer__free": (None, [ct.c_void_p]),
}


@functools.cache
def lib() -> ct.CDLL:
    """libbpf with every prototype declared, loaded on first use (unit tests never need it)."""
    handle = ct.CDLL(LIBBPF, use_errno=True)
    for name, (restype, argtypes) in _PROTOTYPES.items():
        func = getattr(handle, name)
        func.restype, func.argtypes = restype, argtypes
    return handle


def _check(ret: int, what: str) -> int:
    if ret < 0:  # libbpf 1.x: -errno
        raise BpfError(what, -ret)
    return ret


# -- pins and object info -------------------------------------------------------------------------
def obj_get(path: Path | str) -> int:
    """A new fd on the object pinned at `path` (program, map or link)."""
    return _check(lib().bpf_obj_get(os.fsencode(path)), f"open pinned {path}")


def obj_pin(fd: int, path: Path | str) -> None:
    _check(lib().bpf_obj_pin(fd, os.fsencode(path)), f"pin {path}")


class MapInfo(ct.Structure):
    """The head of struct bpf_map_info; the kernel fills as much as the caller asks for."""

    _fields_ = [
        ("type", ct.c_uint32),
        ("id", ct.c_uint32),
        ("key_size", ct.c_uint32),
        ("value_size", ct.c_uint32),
        ("max_entries", ct.c_uint32),
        ("map_flags", ct.c_uint32),
        ("name", ct.c_char * 16),
    ]


class _LinkTarget(ct.Union):
    _fields_ = [("cgroup_id", ct.c_uint64), ("netns_ino", ct.c_uint32)]


class LinkInfo(ct.Structure):
    """The head of struct bpf_link_info: the union after prog_id is 8-byte aligned."""

    _fields_ = [
        ("type", ct.c_uint32),
        ("id", ct.c_uint32),
        ("prog_id", ct.c_uint32),
        ("_pad", ct.c_uint32),
        ("target", _LinkTarget),
    ]


class _ObjHead(ct.Structure):
    """What prog, map and link info have in common: (type, id)."""

    _fields_ = [("type", ct.c_uint32), ("id", ct.c_uint32)]


def _info(fd: int, info: ct.Structure, what: str) -> Any:
    size = ct.c_uint32(ct.sizeof(info))
    _check(lib().bpf_obj_get_info_by_fd(fd, ct.byref(info), ct.byref(size)), what)
    return info


def obj_id(fd: int) -> int:
    """The kernel's id of a program, map or link (what `bpftool prog` lists)."""
    return _info(fd, _ObjHead(), f"info of fd {fd}").id


def map_info(fd: int) -> MapInfo:
    return _info(fd, MapInfo(), f"map info of fd {fd}")


def link_info(fd: int) -> LinkInfo:
    return _info(fd, LinkInfo(), f"link info of fd {fd}")


# -- links and attachment queries -----------------------------------------------------------------
def link_create(prog_fd: int, target_fd: int, attach_type: int, what: str) -> int:
    return _check(lib().bpf_link_create(prog_fd, target_fd, attach_type, None), f"link {what}")


def link_update(link_fd: int, prog_fd: int, what: str) -> None:
    """Swap the program a link runs; atomic, so the target is never without one."""
    _check(lib().bpf_link_update(link_fd, prog_fd, None), f"update link {what}")


def link_detach(fd: int) -> None:
    """Detach and close; fails harmlessly once the target is gone, or for a non-link fd."""
    lib().bpf_link_detach(fd)
    os.close(fd)


def prog_query(target: Path, attach_type: int) -> list[int]:
    """Ids of the programs attached to a cgroup directory or netns file (like `bpftool`)."""
    fd = os.open(target, os.O_RDONLY)
    try:
        ids, count, flags = (ct.c_uint32 * 64)(), ct.c_uint32(64), ct.c_uint32()
        ret = lib().bpf_prog_query(fd, attach_type, 0, ct.byref(flags), ids, ct.byref(count))
        _check(ret, f"query programs on {target}")
        return list(ids[: count.value])
    finally:
        os.close(fd)


# -- maps -----------------------------------------------------------------------------------------
def parse_cpu_list(text: str) -> list[int]:
    """The kernel's cpulist format ("0-3,6,8-9\\n") as sorted CPU numbers.

    Raises ValueError on anything else, because a wrong count would silently misread every
    per-CPU value."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        matched = _CPU_RANGE.fullmatch(part)
        if matched is None:
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. '0-3,6')")
        low, high = int(matched[1]), int(matched[2] or matched[1])
        if high < low:
            raise ValueError(f"not a CPU list: {text!r} (range {part} runs backwards)")
        cpus.update(range(low, high + 1))
    return sorted(cpus)


def possible_cpus(path: Path = POSSIBLE_CPUS) -> list[int]:
    """The CPUs a per-CPU map keeps a value for (all possible ones, not only online ones)."""
    return parse_cpu_list(path.read_text())


class Map:
    """A map reached through its fd, with ctypes key and value types (a value array for
    per-CPU maps: one slot per possible CPU)."""

    def __init__(self, fd: int, name: str, key: type, value: type, cpus: int = 1) -> None:
        self.fd, self.name, self.key = fd, name, key
        self.value = value * cpus if cpus > 1 else value

    def lookup(self, key: Any) -> Any | None:
        """The value, or None when the key is absent."""
        value = self.value()
        ret = lib().bpf_map_lookup_elem(self.fd, ct.byref(key), ct.byref(value))
        if ret == -errno.ENOENT:
            return None
        _check(ret, f"look up in {self.name}")
        return value

    def update(self, key: Any, value: Any) -> None:
        ret = lib().bpf_map_update_elem(self.fd, ct.byref(key), ct.byref(value), BPF_ANY)
        _check(ret, f"update {self.name}")

    def delete(self, key: Any) -> None:
        """Remove the key; an absent key is not an error (deleting is idempotent)."""
        ret = lib().bpf_map_delete_elem(self.fd, ct.byref(key))
        if ret != -errno.ENOENT:
            _check(ret, f"delete from {self.name}")


# -- ring buffer ----------------------------------------------------------------------------------
class RingBuffer:
    """A BPF ring buffer map read through libbpf: `on_record(bytes)` runs for each record.

    The record is copied out, because libbpf reuses the memory once the callback returns. An
    exception in `on_record` stops consumption and is raised again from `poll`/`consume`, instead
    of being printed and lost inside a ctypes callback."""

    def __init__(self, map_fd: int, name: str, on_record: Callable[[bytes], None]) -> None:
        self.name, self._on_record = name, on_record
        self._error: BaseException | None = None
        self._callback = _SAMPLE_FN(self._sample)  # kept alive as long as libbpf may call it
        handle = lib().ring_buffer__new(map_fd, self._callback, None, None)
        if not handle:
            raise BpfError(f"open ring buffer {name}", ct.get_errno() or errno.EINVAL)
        self._rb: int | None = handle

    def _sample(self, _ctx: int, data: int, size: int) -> int:
        try:
            self._on_record(ct.string_at(data, size))
            return 0
        except BaseException as exc:  # re-raised by _done; a ctypes callback must return an int
            self._error = exc
            return -errno.ECANCELED

    def _done(self, ret: int, what: str) -> int:
        error, self._error = self._error, None
        if error is not None:
            raise error
        if ret == -errno.EINTR:  # a signal arrived while waiting: no records, not a failure
            return 0
        return _check(ret, f"{what} {self.name}")

    def poll(self, timeout_ms: int) -> int:
        """Wait up to `timeout_ms` for records and hand each to `on_record`; how many there were."""
        return self._done(lib().ring_buffer__poll(self._handle(), timeout_ms), "poll")

    def consume(self) -> int:
        """Hand over what is there without waiting (for an event loop watching `fileno()`)."""
        return self._done(lib().ring_buffer__consume(self._handle()), "consume")

    def fileno(self) -> int:
        """An epoll fd that becomes readable when records arrive."""
        return _check(lib().ring_buffer__epoll_fd(self._handle()), f"epoll fd of {self.name}")

    def _handle(self) -> int:
        if self._rb is None:
            raise BpfError(f"ring buffer {self.name} is closed", errno.EBADF)
        return self._rb

    def close(self) -> None:
        if self._rb is not None:
            lib().ring_buffer__free(self._rb)
            self._rb = None
