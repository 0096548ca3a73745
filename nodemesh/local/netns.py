"""Network-namespace primitives: run `ip` batches in a netns, and make sockets inside one.

setns(2) changes the namespace of the calling thread only, and a socket stays in the namespace it
was created in. So `socket_in_netns` enters a namespace on a short-lived helper thread, creates (and
optionally binds) the socket there, and hands it back to the caller's event loop in the root
namespace. This is how the runtime serves DNS and runs probes inside node namespaces without a
process per node, and how the node agent will open listeners inside pods.
"""

from __future__ import annotations

import ctypes
import os
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)  # in Python's socket module from 3.12

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A namespace operation failed; the message carries the command and what the kernel said."""


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def netns_exists(name: str) -> bool:
    return netns_path(name).exists()


def list_netns(prefix: str = "") -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def setns_fd(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"setns failed: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise NetnsError(f"unshare failed: {os.strerror(err)}")


def run(cmd: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    """Run a command, returning stdout; a failure raises NetnsError with its stderr."""
    try:
        proc = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise NetnsError(f"{' '.join(cmd)}: timed out after {timeout:g}s") from exc
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)}: {proc.stderr.strip() or f'exit {proc.returncode}'}")
    return proc.stdout


def ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
    """Apply many `ip` commands in one process (one fork instead of dozens)."""
    if not lines:
        return
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-batch", "-"]
    run(cmd, stdin="\n".join(lines) + "\n")


def sysctls(netns: str, values: dict[str, str]) -> None:
    """Write sysctls of a namespace through /proc/sys as seen from inside it."""

    def write() -> None:
        for key, value in values.items():
            Path("/proc/sys", *key.split(".")).write_text(value)

    call_in_netns(netns, write)


def call_in_netns(netns: str, fn, *args):
    """Run fn(*args) on a helper thread that has entered `netns`; return its result."""
    result: dict[str, object] = {}

    def body() -> None:
        try:
            with open(netns_path(netns)) as fh:
                setns_fd(fh.fileno(), CLONE_NEWNET)
            result["value"] = fn(*args)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=body, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def socket_in_netns(
    netns: str,
    family: int = socket.AF_INET,
    type_: int = socket.SOCK_STREAM,
    bind: tuple[str, int] | None = None,
    listen: int | None = None,
    reuse: bool = True,
    transparent: bool = False,
) -> socket.socket:
    """Create a socket that lives in `netns` (optionally bound and listening), non-blocking.

    `transparent` sets IP_TRANSPARENT before the bind, so `bind` may name an address that is not
    local to the namespace: the node agent delivers to an app from its client's own address."""

    def make() -> socket.socket:
        sock = socket.socket(family, type_)
        try:
            if reuse:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if transparent:
                sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
            if bind is not None:
                sock.bind(bind)
            if listen is not None:
                sock.listen(listen)
            sock.setblocking(False)
            return sock
        except BaseException:
            sock.close()
            raise

    return call_in_netns(netns, make)


def netns_pids(netns: str) -> list[int]:
    """Pids of processes whose network namespace is `netns` (like `ip netns pids`)."""
    try:
        target = os.stat(netns_path(netns))
    except FileNotFoundError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            pids.append(int(entry.name))
    return pids
