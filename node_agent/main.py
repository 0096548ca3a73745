"""`python -m node_agent`: run the node agent (see node_agent.agent)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from prometheus_client import disable_created_metrics

from node_agent.agent import AgentSettings, NodeAgent
from nodemesh import bpffs
from nodemesh.eventloop import event_loop_factory
from nodemesh.hbone.gate import install_fast_frame_repr


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m node_agent")
    p.add_argument("--node", required=True)
    p.add_argument("--controller", required=True, help="controller host (its listeners' address)")
    p.add_argument(
        "--local-state",
        type=Path,
        required=True,
        help="local cluster state directory: the node token and the trust bundle",
    )
    p.add_argument("--trust-domain", default="cluster.local")
    p.add_argument(
        "--pin-root",
        type=Path,
        default=bpffs.LOCAL_ROOT,
        help="bpffs for pinned capture links (mounted if needed); pins go under "
        "<pin-root>/<cluster>/<node>",
    )
    p.add_argument(
        "--cni-socket",
        default="",
        help="serve nodemesh's CNI plugin on this unix socket (Kubernetes mode: "
        "/var/run/nodemesh/cni.sock); pods' netns and cgroups then come from the plugin",
    )
    p.add_argument(
        "--sandbox-state",
        type=Path,
        help="file keeping the sandboxes the plugin reported, across agent restarts "
        "(default: <local-state>/nodes/<node>/sandboxes.json)",
    )
    p.add_argument(
        "--keep-capture-on-exit",
        action="store_true",
        help="leave capture attached on SIGTERM (an upgrade hands pods over)",
    )
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> AgentSettings:
    state = args.local_state
    return AgentSettings(
        node=args.node,
        controller=args.controller,
        token=(state / "nodes" / args.node / "token").read_text().strip(),
        bundle_pem=(state / "ca" / "trust-bundle.pem").read_bytes(),
        trust_domain=args.trust_domain,
        pin_root=str(args.pin_root / state.name / args.node),
        bpffs_mount=str(args.pin_root),
        cni_socket=args.cni_socket,
        sandbox_state=str(args.sandbox_state or state / "nodes" / args.node / "sandboxes.json"),
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
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_fast_frame_repr()
    disable_created_metrics()  # Istio's series have no *_created twins; they double cardinality
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(parse_args(argv)))
    return 0
