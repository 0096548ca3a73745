"""Install nodemesh's chained CNI plugin on a node, and remove it again.

Theory of operation. The cluster's own CNI (Calico, Cilium, flannel, kindnet...) writes a network
configuration into /etc/cni/net.d; the container runtime uses the file that sorts first. nodemesh
does not replace it: it appends `{"type": "nodemesh-cni", ...}` to that file's `plugins` list, so
the runtime runs our plugin after the cluster's, with the pod's addresses in `prevResult`
(node_agent/cni/__init__.py says what the plugin does). A single-plugin `.conf` file is turned
into a `.conflist` of the same stem, because only a list can chain.

- Idempotent: an entry already there is replaced by the current one (never duplicated), so
  re-running after an upgrade or a crash converges; a file already in the wanted state is not
  rewritten at all.
- Removed on exit: the plugin fails closed (an unreachable agent fails the pod's ADD with "try
  again later"), so an entry left behind after the agent is gone would stop every new pod on the
  node. The watcher removes it on SIGTERM; pods started while an agent restarts are adopted later.
- Kept in place: some CNIs rewrite their conflist when they restart; `--watch` checks again every
  few seconds and re-adds the entry.

The plugin runs on the host, outside any container: the installer copies the wrapper script to
the CNI bin directory and the stdlib-only plugin package (node_agent/cni/) to NODEMESH_HOME
(/opt/nodemesh), where the wrapper looks for it. The host needs a python3 (3.11+).

The planning functions are pure (file names and texts in, writes and removals out); `main` is the
I/O shell: it reads the directory, applies the plan with atomic renames, and loops.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("nodemesh.cni_install")

PLUGIN_TYPE = "nodemesh-cni"
CONF_SUFFIXES = (".conflist", ".conf", ".json")  # what libcni reads, in the runtime's name order
DEFAULT_HOME = "/opt/nodemesh"
WATCH_INTERVAL = 5.0


class CniInstallError(Exception):
    """The node's CNI configuration cannot be chained; the message names the file and the fix."""


@dataclass(frozen=True)
class Changes:
    """What to do in the configuration directory: write these texts, remove these files."""

    write: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.write and not self.remove


def default_entry(agent_socket: str = "", exclude_namespaces: tuple[str, ...] = ()) -> dict:
    """Our plugins[] entry; keys the plugin reads (node_agent.cni.protocol) only when set."""
    entry: dict[str, Any] = {"type": PLUGIN_TYPE}
    if agent_socket:
        entry["agentSocket"] = agent_socket
    if exclude_namespaces:
        entry["excludeNamespaces"] = list(exclude_namespaces)
    return entry


def primary(files: Mapping[str, str]) -> str | None:
    """The configuration the runtime uses: the first CNI file by name (libcni's rule)."""
    names = sorted(name for name in files if name.endswith(CONF_SUFFIXES))
    return names[0] if names else None


def plan_install(files: Mapping[str, str], entry: dict) -> Changes:
    name = primary(files)
    if name is None:
        raise CniInstallError(
            "no CNI network configuration (*.conflist, *.conf) found: nodemesh chains after the "
            "cluster's CNI plugin, so install that first (the agent retries until it appears)"
        )
    conf = _parse(name, files[name])
    chained = with_entry(conf, entry)
    if "plugins" in conf:
        if chained == conf:
            return Changes()
        return Changes(write={name: _dump(chained)})
    # A single-plugin .conf cannot chain: write it as a .conflist of the same stem instead.
    stem = name.rsplit(".", 1)[0]
    return Changes(write={f"{stem}.conflist": _dump(chained)}, remove=(name,))


def plan_uninstall(files: Mapping[str, str]) -> Changes:
    """Remove our entry from every configuration that has it (the primary may have changed)."""
    write = {}
    for name in sorted(files):
        if not name.endswith(CONF_SUFFIXES):
            continue
        try:
            conf = _parse(name, files[name])
        except CniInstallError:
            continue  # not ours to fix, and certainly not ours to remove
        if "plugins" in conf and without_entry(conf) != conf:
            write[name] = _dump(without_entry(conf))
    return Changes(write=write)


def with_entry(conf: dict, entry: dict) -> dict:
    """`conf` as a conflist whose last plugin is `entry` (an older entry of ours replaced)."""
    if "plugins" in conf:
        plugins = conf["plugins"]
        if not isinstance(plugins, list):
            raise CniInstallError("'plugins' must be a list of plugin configurations")
        others = [p for p in plugins if not _ours(p)]
        return {**conf, "plugins": [*others, entry]}
    if "type" not in conf:
        raise CniInstallError("neither 'plugins' nor 'type': not a CNI network configuration")
    inner = {key: value for key, value in conf.items() if key not in ("cniVersion", "name")}
    out = {"cniVersion": conf.get("cniVersion", "1.0.0"), "name": conf.get("name", "")}
    return {**out, "plugins": [inner, entry]}


def without_entry(conf: dict) -> dict:
    plugins = conf.get("plugins")
    if not isinstance(plugins, list):
        return conf
    return {**conf, "plugins": [p for p in plugins if not _ours(p)]}


def _ours(plugin: object) -> bool:
    return isinstance(plugin, dict) and plugin.get("type") == PLUGIN_TYPE


def _parse(name: str, text: str) -> dict:
    try:
        conf = json.loads(text)
    except ValueError as exc:
        raise CniInstallError(f"{name}: not valid JSON ({exc}); fix or remove the file") from None
    if not isinstance(conf, dict):
        raise CniInstallError(f"{name}: must hold a JSON object, got {type(conf).__name__}")
    return conf


def _dump(conf: dict) -> str:
    return json.dumps(conf, indent=2) + "\n"


# ---- I/O ---------------------------------------------------------------------------------------


def read_dir(conf_dir: Path) -> dict[str, str]:
    return {
        path.name: path.read_text()
        for path in sorted(conf_dir.iterdir())
        if path.is_file() and path.name.endswith(CONF_SUFFIXES)
    }


def apply_changes(conf_dir: Path, changes: Changes) -> None:
    """Writes first, then removals: the runtime always finds a usable configuration."""
    for name, text in changes.write.items():
        _write_atomic(conf_dir / name, text.encode(), 0o644)
    for name in changes.remove:
        (conf_dir / name).unlink(missing_ok=True)


def install_plugin(wrapper: Path, bin_dir: Path, home: Path) -> None:
    """The wrapper into the CNI bin dir; node_agent/cni (stdlib only) under `home`."""
    package = Path(__file__).resolve().parent
    _write_atomic(bin_dir / PLUGIN_TYPE, wrapper.read_bytes(), 0o755)
    target = home / "node_agent"
    (target / "cni").mkdir(parents=True, exist_ok=True)
    _write_atomic(target / "__init__.py", (package / "__init__.py").read_bytes(), 0o644)
    for source in sorted((package / "cni").glob("*.py")):
        _write_atomic(target / "cni" / source.name, source.read_bytes(), 0o644)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Readers (the runtime) see the old file or the new one, never half of one."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def sync(conf_dir: Path, entry: dict) -> bool:
    """One pass of install: True when a file changed."""
    changes = plan_install(read_dir(conf_dir), entry)
    apply_changes(conf_dir, changes)
    for name in changes.write:
        log.info("chained %s into %s", PLUGIN_TYPE, conf_dir / name)
    return not changes.empty


def uninstall(conf_dir: Path, bin_dir: Path) -> None:
    changes = plan_uninstall(read_dir(conf_dir))
    apply_changes(conf_dir, changes)
    for name in changes.write:
        log.info("removed %s from %s", PLUGIN_TYPE, conf_dir / name)
    (bin_dir / PLUGIN_TYPE).unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node_agent.cni_install")
    p.add_argument("--conf-dir", type=Path, default=Path("/etc/cni/net.d"))
    p.add_argument("--bin-dir", type=Path, default=Path("/opt/cni/bin"))
    p.add_argument("--home", type=Path, default=Path(DEFAULT_HOME), help="plugin package dir")
    p.add_argument(
        "--binary",
        type=Path,
        default=Path(__file__).resolve().parent / "cni" / PLUGIN_TYPE,
        help="the nodemesh-cni wrapper script to install",
    )
    p.add_argument("--agent-socket", default="", help="agentSocket in the entry (plugin default)")
    p.add_argument("--watch", action="store_true", help="keep the entry in place until SIGTERM")
    p.add_argument("--uninstall", action="store_true", help="remove the entry and the plugin")
    p.add_argument("--interval", type=float, default=WATCH_INTERVAL)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("NODEMESH_LOG_LEVEL", "info").upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(argv)
    if args.uninstall:
        uninstall(args.conf_dir, args.bin_dir)
        return 0
    install_plugin(args.binary, args.bin_dir, args.home)
    entry = default_entry(args.agent_socket)
    if not args.watch:
        try:
            sync(args.conf_dir, entry)
        except CniInstallError as exc:
            log.error("%s", exc)
            return 1
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.is_set():
        try:
            sync(args.conf_dir, entry)
        except (CniInstallError, OSError) as exc:
            log.warning("not chained yet, retrying in %ss: %s", args.interval, exc)
        stop.wait(args.interval)
    uninstall(args.conf_dir, args.bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
