"""The one-shot compiler: a child of the agent turns bpf/ into pinned programs and maps, then exits.

Theory of operation: BCC compiles through libLLVM and libclang. Mapped into the long-running agent
they cost ~85 MB of file pages, and LLVM's heap stays behind after the compile (most of another
~86 MB), for programs that are compiled once. So the compile happens in a child, and the agent
only ever holds fds:

    agent (node_agent.capture)                 child: python -m node_agent.capture compile ...
    child_argv(pin_dir, bpf_dir, cflags) ──▶   compile_and_pin: BCC compiles SOURCES with the
                                               cflags, loads each bpf_types.HOOKS entry with its
                                               attach type, pins every program and map it made
    Manifest.from_json(last stdout line) ◀──   prints Manifest.to_json() and exits; LLVM goes too
    libbpf.obj_get(each pinned path)

The kernel keeps the objects alive through their pins, so nothing is lost when the child exits,
and the ids in the manifest let the agent check it opened what this child made. The pin directory
belongs to the compiler: whatever it holds comes from an earlier run (a crashed or replaced agent)
and is replaced; the agent that read the manifest (`load_in_child`, which returns the opened fds
as `Loaded`) unpins it again when it closes, except for pins a newer compile already replaced.

Only `compile_and_pin` imports bcc, and only the child calls it: the agent imports this module for
the manifest and the command line and maps no LLVM.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes as ct
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from node_agent import bpf_types as bt
from node_agent import libbpf

BPF_DIR = Path(__file__).resolve().parent.parent / "bpf"
# Compiled as one text: BCC rewrites map calls only in its main file, so the shared helpers header
# comes first and each hook's own #include of it is then a no-op.
SOURCES = ("nodemesh_lib.h", "sock_connect.c", "sock_ops.c", "sk_lookup.c")
COMMAND = "compile"  # the subcommand of `python -m node_agent.capture` that runs the child
TIMEOUT = 120.0  # seconds; a cold compile takes a few on an idle machine
_SOURCE_ROOT = Path(__file__).resolve().parent.parent  # holds node_agent/ and nodemesh/


class CompileError(RuntimeError):
    """The child failed, timed out or printed no usable manifest; the message ends with the
    child's stderr, where BCC's compiler errors and Python's traceback are."""


class ManifestError(ValueError):
    """The child's output is not the manifest the agent expects: a bug or a version mix-up (agent
    and child run the same code, so neither the kernel nor the operator is to blame)."""


@dataclass(frozen=True)
class Pinned:
    """One object the child pinned: where, and the kernel's id of it (as `bpftool` shows)."""

    path: str
    id: int


@dataclass(frozen=True)
class Manifest:
    """What the child made: programs by hook name, maps by map name."""

    programs: dict[str, Pinned]
    maps: dict[str, Pinned]

    def to_json(self) -> str:
        """One line, so that the agent can take the last line of stdout whatever came before."""
        doc = {
            "programs": {n: asdict(p) for n, p in self.programs.items()},
            "maps": {n: asdict(p) for n, p in self.maps.items()},
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"compiler manifest is not JSON ({exc}): {text[:200]!r}") from None
        if not isinstance(doc, dict):
            raise ManifestError(f"compiler manifest must be a JSON object, got {text[:200]!r}")
        return cls(_section(doc, "programs"), _section(doc, "maps"))

    def pinned(self) -> Iterator[Pinned]:
        yield from self.programs.values()
        yield from self.maps.values()

    def check(self, pin_dir: Path, programs: Iterable[str], maps: Iterable[str]) -> None:
        """Every expected object is there, and every pin lies in `pin_dir` (the agent unpins
        them on close, so a path elsewhere must never be accepted)."""
        missing = [f"program {n}" for n in programs if n not in self.programs]
        missing += [f"map {n}" for n in maps if n not in self.maps]
        if missing:
            raise ManifestError(
                f"the compiler pinned no {', '.join(missing)}: bpf/ and"
                " node_agent/bpf_types.py disagree on the hooks and maps"
            )
        for pinned in self.pinned():
            if Path(pinned.path).parent != Path(pin_dir):
                raise ManifestError(f"compiler manifest: {pinned.path} is not in {pin_dir}")


def _section(doc: dict[str, Any], key: str) -> dict[str, Pinned]:
    entries = doc.get(key)
    if not isinstance(entries, dict) or not entries:
        raise ManifestError(f"compiler manifest: {key!r} must be a non-empty object")
    return {name: _pinned(f"{key}.{name}", entry) for name, entry in entries.items()}


def _pinned(where: str, entry: Any) -> Pinned:
    if not isinstance(entry, dict) or set(entry) != {"path", "id"}:
        raise ManifestError(f"compiler manifest: {where} must be {{'path': ..., 'id': ...}}")
    path, id_ = entry["path"], entry["id"]
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ManifestError(f"compiler manifest: {where}.path must be absolute, got {path!r}")
    if type(id_) is not int or id_ <= 0:
        raise ManifestError(f"compiler manifest: {where}.id must be a positive int, got {id_!r}")
    return Pinned(path, id_)


# -- the command line the agent builds and the child parses ---------------------------------------
def cflags_for(
    bpf_dir: Path,
    *,
    outbound_port: int,
    hbone_port: int,
    mark: int,
    max_pods: int,
    max_flows: int,
    event_pages: int = 64,
) -> list[str]:
    """The loader's configuration, as cflags (bpf/README.md lists them)."""
    if event_pages < 1 or event_pages & (event_pages - 1):
        raise ValueError(
            f"event_pages must be a power of two (ring buffer size), got {event_pages}"
        )
    return [
        f"-I{bpf_dir}",
        f"-DNODEMESH_OUTBOUND_PORT={outbound_port}",
        f"-DNODEMESH_HBONE_PORT={hbone_port}",
        f"-DNODEMESH_MARK={mark:#x}",
        f"-DNODEMESH_MAX_PODS={max_pods}",
        f"-DNODEMESH_MAX_FLOWS={max_flows}",
        f"-DNODEMESH_EVENT_PAGES={event_pages}",
    ]


def child_argv(pin_dir: Path, bpf_dir: Path, cflags: Iterable[str]) -> list[str]:
    """The same interpreter, so the child runs the agent's own code and finds the same bcc.
    `--cflag=` keeps a flag that starts with '-' from being read as an option."""
    head = [sys.executable, "-m", "node_agent.capture", COMMAND]
    paths = ["--pin-dir", str(pin_dir), "--bpf-dir", str(bpf_dir)]
    return [*head, *paths, *(f"--cflag={flag}" for flag in cflags)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pin-dir", type=Path, required=True, help="bpffs directory to pin into")
    parser.add_argument("--bpf-dir", type=Path, default=BPF_DIR, help="where the C sources are")
    parser.add_argument("--cflag", action="append", default=[], help="one compiler flag")


def child_main(args: argparse.Namespace) -> int:
    """The child's main: compile, pin, print the manifest as the last line of stdout."""
    manifest = compile_and_pin(args.pin_dir, args.bpf_dir, args.cflag)
    print(manifest.to_json(), flush=True)
    return 0


# -- the child's work -----------------------------------------------------------------------------
def source_text(bpf_dir: Path) -> bytes:
    """SOURCES as one text, each file under `#line 1 "<file>"` so errors name the real file."""
    return "".join(f'#line 1 "{n}"\n{(Path(bpf_dir) / n).read_text()}' for n in SOURCES).encode()


def compile_and_pin(pin_dir: Path, bpf_dir: Path, cflags: list[str]) -> Manifest:
    """Compile and load with BCC, pin everything under `pin_dir` (replacing what was there)."""
    from bcc import BPF  # here only: the child is the one process that may map LLVM

    bpf = BPF(text=source_text(bpf_dir), cflags=cflags)
    pin_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in pin_dir.iterdir():  # from an earlier agent; a still running one keeps its fds
        stale.unlink()
    programs = {}
    for hook in bt.HOOKS:
        func = bpf.load_func(hook.func.encode(), hook.prog_type, attach_type=hook.attach_type)
        programs[hook.name] = _pin(func.fd, pin_dir / hook.name)
    maps = {name: _pin(fd, pin_dir / name) for name, fd in _tables(bpf.module)}
    return Manifest(programs, maps)


def _pin(fd: int, path: Path) -> Pinned:
    libbpf.obj_pin(fd, path)
    return Pinned(str(path), libbpf.obj_id(fd))


def _tables(module: int) -> Iterator[tuple[str, int]]:
    """(name, fd) of every map BCC created for the module, declared or not in bpf_types."""
    bcc = ct.CDLL("libbcc.so.0")  # our own handle: bcc's shares the library, not the prototypes
    bcc.bpf_num_tables.restype, bcc.bpf_num_tables.argtypes = ct.c_size_t, [ct.c_void_p]
    bcc.bpf_table_name.restype = ct.c_char_p
    bcc.bpf_table_fd_id.restype = ct.c_int
    for func in (bcc.bpf_table_name, bcc.bpf_table_fd_id):
        func.argtypes = [ct.c_void_p, ct.c_size_t]
    for i in range(bcc.bpf_num_tables(module)):
        yield bcc.bpf_table_name(module, i).decode(), bcc.bpf_table_fd_id(module, i)


# -- the agent's side -----------------------------------------------------------------------------
@dataclass
class Loaded:
    """The agent's fds on what the child pinned, by program and map name."""

    pin_dir: Path
    manifest: Manifest
    programs: dict[str, int] = field(default_factory=dict)
    maps: dict[str, int] = field(default_factory=dict)

    def close(self) -> None:
        """Close the fds and unpin what is still this load's: pinned links keep the programs
        they run (and those their maps) alive without the pins. Twice is harmless."""
        for fd in [*self.programs.values(), *self.maps.values()]:
            os.close(fd)
        self.programs.clear()
        self.maps.clear()
        unpin(self.pin_dir, self.manifest)


def load_in_child(
    pin_dir: Path, bpf_dir: Path, cflags: list[str], timeout: float = TIMEOUT
) -> Loaded:
    """Run the child and open what it pinned. On any failure nothing stays pinned or open."""
    loaded = Loaded(pin_dir, _run_child(pin_dir, bpf_dir, cflags, timeout))
    try:
        for name, pinned in loaded.manifest.programs.items():
            loaded.programs[name] = _open(pinned, pin_dir)
        for name, pinned in loaded.manifest.maps.items():
            loaded.maps[name] = _open(pinned, pin_dir)
    except BaseException:
        loaded.close()
        raise
    return loaded


def _open(pinned: Pinned, pin_dir: Path) -> int:
    """An fd on the pinned object, if it is still the one the child reported (by id)."""
    fd = libbpf.obj_get(pinned.path)
    if libbpf.obj_id(fd) != pinned.id:
        os.close(fd)
        raise CompileError(
            f"{pinned.path} holds another object than the child pinned: does a second agent"
            f" use the pin root {pin_dir.parent}? Give each agent its own."
        )
    return fd


def _run_child(pin_dir: Path, bpf_dir: Path, cflags: list[str], timeout: float) -> Manifest:
    argv = child_argv(pin_dir, bpf_dir, cflags)
    path = [str(_SOURCE_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}  # the child runs this very code
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)
        if done.returncode != 0:
            raise CompileError(f"{' '.join(argv)} exited {done.returncode}\n{_tail(done.stderr)}")
        lines = done.stdout.strip().splitlines()
        manifest = Manifest.from_json(lines[-1] if lines else "")
        manifest.check(pin_dir, [h.name for h in bt.HOOKS], [*bt.MAP_LAYOUTS, bt.MAP_EVENTS])
        return manifest
    except subprocess.TimeoutExpired as exc:
        unpin(pin_dir)
        raise CompileError(
            f"{' '.join(argv)} ran longer than {timeout:.0f}s and was killed; is the machine"
            f" overloaded?\n{_tail(exc.stderr)}"
        ) from None
    except ManifestError as exc:
        unpin(pin_dir)
        raise CompileError(f"{exc}\n{_tail(done.stderr)}") from None
    except BaseException:
        unpin(pin_dir)
        raise


def _tail(stderr: str | bytes | None, limit: int = 4000) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr or ""
    return "child stderr: " + (text[-limit:].strip() or "(empty)")


def unpin(pin_dir: Path, manifest: Manifest | None = None) -> None:
    """Remove the pins: all of them (after a failed start nobody uses them), or with `manifest`
    only those that are still what it names; a newer agent's compile may have replaced some."""
    ids = {p.path: p.id for p in manifest.pinned()} if manifest else None
    for path in list(pin_dir.iterdir()) if pin_dir.is_dir() else []:
        if ids is None or (str(path) in ids and _pinned_id(path) == ids[str(path)]):
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: a newer agent's
        pin_dir.rmdir()


def _pinned_id(path: Path) -> int | None:
    try:
        fd = libbpf.obj_get(path)
    except libbpf.BpfError:
        return None
    try:
        return libbpf.obj_id(fd)
    finally:
        os.close(fd)
