"""`python -m waypoint`: run one waypoint proxy (see waypoint.app)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from prometheus_client import disable_created_metrics

from nodemesh import logsetup
from nodemesh.controlplane import TOKEN_FILE_ENV
from nodemesh.eventloop import event_loop_factory
from nodemesh.hbone.gate import install_fast_frame_repr
from waypoint.app import Waypoint, WaypointSettings

PROG = "python -m waypoint"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG)
    p.add_argument("--name", required=True, help="the waypoint (Gateway) name")
    p.add_argument("--namespace", required=True)
    p.add_argument("--controller", required=True, help="controller host (its listeners' address)")
    p.add_argument(
        "--local-state", type=Path, help="local cluster state directory (the trust bundle)"
    )
    p.add_argument("--bundle", type=Path, help="trust bundle PEM (Kubernetes mode)")
    p.add_argument("--pod-ip", default=os.environ.get("POD_IP", ""))
    p.add_argument("--token-file", default=os.environ.get(TOKEN_FILE_ENV, ""))
    p.add_argument("--trust-domain", default="cluster.local")
    args = p.parse_args(argv)
    if not args.pod_ip:
        p.error("no pod IP: pass --pod-ip or set POD_IP (fieldRef status.podIP)")
    if args.bundle is None and args.local_state is None:
        p.error("pass --local-state (local mode) or --bundle (the mesh's trust bundle)")
    return args


def settings_from(args: argparse.Namespace) -> WaypointSettings:
    bundle = args.bundle or args.local_state / "ca" / "trust-bundle.pem"
    return WaypointSettings(
        name=args.name,
        namespace=args.namespace,
        pod_ip=args.pod_ip,
        controller=args.controller,
        token_file=args.token_file,
        bundle_pem=bundle.read_bytes(),
        trust_domain=args.trust_domain,
    )


async def run(args: argparse.Namespace) -> None:
    waypoint = Waypoint(settings_from(args))
    await waypoint.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await waypoint.stop()


def main(argv: list[str] | None = None) -> int:
    logsetup.configure(PROG)
    install_fast_frame_repr()
    disable_created_metrics()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(run(parse_args(argv)))
    return 0
