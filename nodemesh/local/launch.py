"""Enter a pod and exec a command: `python -m nodemesh.local.launch --netns N --cgroup D -- CMD...`.

The order matters. The process first moves itself into the pod's cgroup (so eBPF programs attached
to that cgroup see it, and teardown can kill it), then joins the pod's network namespace, then takes
a private mount and UTS namespace to bind the pod's /etc files over the host's and to set the pod's
hostname, and finally execs the command, which keeps the pid, so the caller's wait() sees its real
exit status. The /etc files are taken from /etc/netns/<netns>/, the directory `ip netns exec` uses,
so an operator's `ip netns exec` into a pod resolves Service names the same way.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import socket
import sys
from pathlib import Path

from nodemesh.local import netns

MS_REC = 0x4000
MS_SLAVE = 1 << 19
MS_BIND = 0x1000
ETC_NETNS = Path("/etc/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source else None
    if _libc.mount(src, target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} on {target}: {os.strerror(err)}")


def enter_pod(netns_name: str, cgroup: str | None, hostname: str | None) -> None:
    """Move the current process into the pod; runs in the process that will exec the command."""
    if cgroup:
        Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    with open(netns.netns_path(netns_name)) as fh:
        netns.setns_fd(fh.fileno(), netns.CLONE_NEWNET)
    netns.unshare(netns.CLONE_NEWNS | netns.CLONE_NEWUTS)
    # Slave, not private: mounts the host makes later (a new pod's /run/netns/<name>, which the
    # node agent must open) still propagate in, while this process's /etc binds stay its own.
    _mount(None, "/", MS_REC | MS_SLAVE)
    etc = ETC_NETNS / netns_name
    if etc.is_dir():
        for entry in sorted(etc.iterdir()):
            _mount(str(entry), str(Path("/etc") / entry.name), MS_BIND)
    if hostname:
        socket.sethostname(hostname)


def launch_argv(
    python: str,
    netns_name: str,
    cmd: list[str],
    *,
    cgroup: str | None = None,
    hostname: str | None = None,
    workdir: str | None = None,
) -> list[str]:
    """The argv that runs `cmd` inside a pod through this module."""
    argv = [python, "-m", "nodemesh.local.launch", "--netns", netns_name]
    if cgroup:
        argv += ["--cgroup", cgroup]
    if hostname:
        argv += ["--hostname", hostname]
    if workdir:
        argv += ["--workdir", workdir]
    return [*argv, "--", *cmd]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nodemesh.local.launch")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--cgroup")
    parser.add_argument("--hostname")
    parser.add_argument("--workdir")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("no command given after --")
    try:
        enter_pod(args.netns, args.cgroup, args.hostname)
        if args.workdir:
            os.chdir(args.workdir)
        os.execvp(cmd[0], cmd)
    except FileNotFoundError as exc:
        print(f"nodemesh: {cmd[0]}: command not found ({exc})", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"nodemesh: cannot start {cmd[0]} in pod netns {args.netns}: {exc}", file=sys.stderr)
        return 126
    return 0  # not reached: exec replaced the process


if __name__ == "__main__":
    sys.exit(main())
