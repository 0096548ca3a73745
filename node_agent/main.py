"""`python -m node_agent`: run the node agent (see node_agent.agent).

Two modes, chosen by the arguments:

- local (`--local-state DIR`): the node token and trust bundle come from the local cluster's
  state directory, pins go under <pin-root>/<cluster>/<node>;
- Kubernetes (`--token-file` and `--bundle`, as the DaemonSet passes them): the node credential is
  the pod's projected service-account token (audience "nodemesh"; the controller's TokenReview
  learns the node from it), re-read at every bootstrap attempt because the kubelet rotates it;
  the trust bundle is the mounted ConfigMap; pins go under <pin-root>/nodemesh; the CNI plugin is
  served on /var/run/nodemesh/cni.sock and its sandboxes kept under /var/run/nodemesh.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from prometheus_client import disable_created_metrics

from node_agent.agent import AgentSettings, NodeAgent
from node_agent.cni.protocol import DEFAULT_AGENT_SOCKET
from nodemesh import bpffs, logsetup
from nodemesh.controlplane import read_token
from nodemesh.eventloop import event_loop_factory
from nodemesh.hbone.gate import install_fast_frame_repr

PROG = "python -m node_agent"
KUBE_RUN_DIR = Path(DEFAULT_AGENT_SOCKET).parent  # /var/run/nodemesh, shared with the plugin
KUBE_PIN_DIR = "nodemesh"  # pins under <pin-root>/nodemesh in Kubernetes mode


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG)
    p.add_argument("--node", required=True)
    p.add_argument("--controller", required=True, help="controller host (its listeners' address)")
    p.add_argument(
        "--local-state",
        type=Path,
        help="local mode: the cluster state directory (the node token and the trust bundle)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="Kubernetes mode: the pod's projected service-account token (audience 'nodemesh'), "
        "the node credential; re-read at every bootstrap",
    )
    p.add_argument("--bundle", type=Path, help="Kubernetes mode: the trust bundle PEM")
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument(
        "--pin-root",
        type=Path,
        default=bpffs.LOCAL_ROOT,
        help="bpffs for pinned capture links (mounted if needed); pins go under "
        "<pin-root>/<cluster>/<node> (local) or <pin-root>/nodemesh (Kubernetes)",
    )
    p.add_argument(
        "--cni-socket",
        default=None,
        help="serve nodemesh's CNI plugin on this unix socket; pods' netns and cgroups then "
        f"come from the plugin (default: none in local mode, {DEFAULT_AGENT_SOCKET} in "
        "Kubernetes mode)",
    )
    p.add_argument(
        "--sandbox-state",
        type=Path,
        help="file keeping the sandboxes the plugin reported, across agent restarts "
        "(default: <local-state>/nodes/<node>/sandboxes.json, or "
        f"{KUBE_RUN_DIR}/sandboxes.json in Kubernetes mode)",
    )
    p.add_argument(
        "--keep-capture-on-exit",
        action="store_true",
        help="leave capture attached on SIGTERM (an upgrade hands pods over)",
    )
    args = p.parse_args(argv)
    kube = args.token_file is not None or args.bundle is not None
    if args.local_state is not None and kube:
        p.error("pass either --local-state (local mode) or --token-file and --bundle, not both")
    if args.local_state is None and (args.token_file is None or args.bundle is None):
        p.error(
            "pass --local-state (local mode), or both --token-file (the projected token) and "
            "--bundle (the trust bundle) in Kubernetes mode"
        )
    return args


def settings_from(args: argparse.Namespace) -> AgentSettings:
    """The agent's settings, reading the credential files now (called per start attempt)."""
    if args.local_state is None:
        return _kube_settings(args)
    state = args.local_state
    return AgentSettings(
        node=args.node,
        controller=args.controller,
        token=(state / "nodes" / args.node / "token").read_text().strip(),
        bundle_pem=(state / "ca" / "trust-bundle.pem").read_bytes(),
        trust_domain=args.trust_domain,
        pin_root=str(args.pin_root / state.name / args.node),
        bpffs_mount=str(args.pin_root),
        cni_socket=args.cni_socket or "",
        sandbox_state=str(args.sandbox_state or state / "nodes" / args.node / "sandboxes.json"),
    )


def _kube_settings(args: argparse.Namespace) -> AgentSettings:
    return AgentSettings(
        node=args.node,
        controller=args.controller,
        token=read_token(args.token_file),  # the kubelet rotates it: never cache it
        token_file=str(args.token_file),  # renewals read it again
        bundle_pem=args.bundle.read_bytes(),
        trust_domain=args.trust_domain,
        pin_root=str(args.pin_root / KUBE_PIN_DIR),
        bpffs_mount=str(args.pin_root),
        cni_socket=DEFAULT_AGENT_SOCKET if args.cni_socket is None else args.cni_socket,
        sandbox_state=str(args.sandbox_state or KUBE_RUN_DIR / "sandboxes.json"),
    )


async def run(args: argparse.Namespace) -> None:
    log = logging.getLogger("nodemesh.agent")
    while True:  # the controller may still be starting (no trust bundle yet, port closed)
        agent = None
        try:
            agent = NodeAgent(settings_from(args))
            await agent.start()
            break
        except Exception as exc:
            log.warning("start failed, retrying in 1s: %s", exc)
            if agent is not None:
                await agent.stop()
            await asyncio.sleep(1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await agent.stop(detach=not args.keep_capture_on_exit)


def main(argv: list[str] | None = None) -> int:
    logsetup.configure(PROG)
    install_fast_frame_repr()
    disable_created_metrics()  # Istio's series have no *_created twins; they double cardinality
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(parse_args(argv)))
    return 0
