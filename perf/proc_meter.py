"""CPU time and RSS of the processes under test, read from /proc as `top` would.

Theory of operation: a proxy's cost is the CPU it burns and the memory it holds while carrying a
known load, so the benchmark reads each process's user and kernel CPU ticks (/proc/<pid>/stat
fields 14 and 15) before and after a measured run, and its resident set (VmRSS in
/proc/<pid>/status) after it. A process "tree" (nginx's master and its workers) is summed. The
parsers are pure functions of the file text; only `ProcessMeter` reads files, through an
injectable reader so tests can feed it text.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
Reader = Callable[[str], str]


class ProcError(Exception):
    """A /proc file did not have the shape this kernel is expected to give it."""


def _read(path: str) -> str:
    return Path(path).read_text()


def parse_stat(text: str) -> tuple[int, int]:
    """(utime, stime) clock ticks from /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may itself hold spaces or ')', so fields are
    counted from the last ')'.
    """
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 13:
        raise ProcError(f"unexpected /proc/<pid>/stat line: {text[:80]!r}")
    return int(fields[11]), int(fields[12])


def parse_rss_kb(text: str) -> int:
    """VmRSS in kB from /proc/<pid>/status (0 for a kernel thread or a zombie, which have none)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_pids(pid: int, read: Reader = _read) -> list[int]:
    """pid and its descendants, from /proc/<pid>/task/<pid>/children.

    Only the main thread's children are followed: enough for nginx (a single-threaded master
    forking its workers) and for a Python process, which forks from its main thread.
    """
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(int(c) for c in read(f"/proc/{current}/task/{current}/children").split())
    return pids


@dataclass
class Usage:
    """CPU seconds accumulated over measured runs, and the wall time they took."""

    user: float = 0.0
    system: float = 0.0
    wall: float = 0.0

    @property
    def cores(self) -> float:
        """Average vCPUs used while measured."""
        return (self.user + self.system) / self.wall if self.wall > 0 else 0.0


class ProcessMeter:
    """CPU (user, kernel) of a fixed set of pids over the calls made through `measure`."""

    def __init__(
        self,
        pids: list[int],
        read: Reader = _read,
        clock: Callable[[], float] = time.monotonic,
        tick: int | None = None,
    ) -> None:
        self.pids, self.read, self.clock = pids, read, clock
        self.tick = tick or os.sysconf("SC_CLK_TCK")
        self.usage = Usage()

    def cpu_seconds(self) -> tuple[float, float]:
        user = system = 0
        for pid in self.pids:
            u, s = parse_stat(self.read(f"/proc/{pid}/stat"))
            user, system = user + u, system + s
        return user / self.tick, system / self.tick

    def rss_mb(self) -> float:
        return sum(parse_rss_kb(self.read(f"/proc/{pid}/status")) for pid in self.pids) / 1024

    def measure(self, fn: Callable[[], T]) -> T:
        """Run fn and add the CPU the pids used meanwhile to `usage`."""
        (u0, s0), t0 = self.cpu_seconds(), self.clock()
        result = fn()
        (u1, s1), t1 = self.cpu_seconds(), self.clock()
        self.usage.user += u1 - u0
        self.usage.system += s1 - s0
        self.usage.wall += t1 - t0
        return result
