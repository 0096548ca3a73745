"""Child processes for loopback benchmarks: started, awaited, and always stopped.

Theory of operation: a benchmark that leaves an nginx or a waypoint running after a failure
poisons the next run (ports taken, CPU stolen), so every server the bench starts is a `Child`
used as a context manager: `__exit__` terminates it (SIGTERM, then SIGKILL after a grace period)
whatever happened inside. As a second line of defence each child asks the kernel for SIGTERM when
the benchmark process dies (PR_SET_PDEATHSIG), which also covers a benchmark killed with SIGKILL.
Readiness is "the port accepts a connection", polled until a deadline, failing early with the
child's own stderr when it exits instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
READY_TIMEOUT = 10.0
STOP_GRACE = 5.0


class BenchError(Exception):
    """The benchmark could not set up or run a path; the message says what to check."""


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the kernel just handed out on host, released again for a child to bind.

    A small race (another process may take one in between) is accepted: a clash fails loudly
    when the child cannot bind, never silently.
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the benchmark goes away."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Child:
    """One server process; its stderr goes to a file kept for error messages."""

    def __init__(self, name: str, argv: Sequence[str], stderr: Path, cwd: Path | None = None):
        self.name, self.argv, self.stderr_path, self.cwd = name, list(argv), stderr, cwd
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Child:
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=self.cwd,
                preexec_fn=_die_with_parent,  # safe: the benchmark starts no threads
            )
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} was never started")
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def failure(self, what: str) -> BenchError:
        """A BenchError carrying the tail of the child's stderr, the first thing to read."""
        tail = self.stderr_path.read_text(errors="replace").strip()[-800:] or "(no stderr)"
        return BenchError(f"{self.name} {what}: {tail}")

    def read_line(self, timeout: float = READY_TIMEOUT) -> str:
        """The child's next stdout line (a readiness announcement), within timeout seconds."""
        if self.proc is None or self.proc.stdout is None:
            raise BenchError(f"{self.name} was never started")
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode(errors="replace") if readable else ""
        if not line:
            raise self.failure(f"announced nothing on stdout within {timeout} s")
        return line

    def wait_listening(self, ports: Sequence[int], host: str = "127.0.0.1") -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        for port in ports:
            while not _accepts(host, port):
                if self.proc is not None and self.proc.poll() is not None:
                    raise self.failure(f"exited with status {self.proc.returncode} at start-up")
                if time.monotonic() > deadline:
                    raise self.failure(f"did not listen on {host}:{port} in {READY_TIMEOUT} s")
                time.sleep(0.02)


def _accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True
